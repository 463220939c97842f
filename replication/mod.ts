/** Replication of commit logs over NATS JetStream: the primary's publisher, the follower. */
export {
  PrimaryReplicator,
  type PromotedDatabase,
  PromotionRefusedError,
  type ReplicationMetrics,
} from "./primary.ts";
export {
  Follower,
  type FollowerMetrics,
  type FollowTarget,
  MessageRefusedError,
} from "./follower.ts";
export { type ModuleBody, natsUrlDisplay, parseNatsUrl } from "./stream.ts";
export { loadReplicationKey } from "./auth.ts";
