/** Door of the durable storage half of storage/ (commit log, storage actor, snapshots, recovery). */
export { DurabilityActor, StorageActorError, StorageError } from "./durability.ts";
export {
  type DurabilityChannel,
  DurabilityPort,
  type DurabilityPortOptions,
  forEachBatchRecord,
  forEachBatchRecordNumbered,
  type ReplayHandlers,
  type ReplayResult,
} from "./durability_port.ts";
export type {
  FromDatabaseMessage,
  OpenResult,
  StorageOptions,
  ToDatabaseMessage,
} from "./durability_messages.ts";
export { type CoreOptions, type CoreOutput, DurabilityCore } from "./durability_core.ts";
export { CommitBudgetCheck, type CommitLimits } from "./commit_budget.ts";
export {
  decodeTxBatch,
  decodeTxChanges,
  decodeTxRecord,
  encodeTxRecord,
  MalformedRecordError,
  type SequenceState,
  type TableChanges,
  TxBatchEncoder,
  type TxRecord,
  txRecordHasReducerName,
} from "./commit_record.ts";
export {
  type CommitLog,
  type CommitView,
  CorruptLogError,
  readCommitLog,
  type RecordView,
} from "./commitlog/reader.ts";
export { CommitLogFailedError, CommitLogWriter } from "./commitlog/writer.ts";
export { type SegmentVerdict, SegmentVerifier } from "./segment_verifier.ts";
export {
  checkRecordLayout,
  COMMIT_OVERHEAD_BYTES,
  forEachRecord,
  lengthPrefixed,
  readFrameAt,
} from "./commitlog/frame.ts";
export { segmentFileName } from "./commitlog/segment.ts";
export { crc32c } from "./commitlog/crc32c.ts";
export {
  type CrashMode,
  denoFs,
  type FileHandle,
  type FsLayer,
  InjectedFaultError,
  MemoryFs,
} from "./fs_layer.ts";
export { listSnapshots, readNewestValidSnapshot, writeSnapshot } from "./snapshot.ts";
export {
  databaseDir,
  logDir,
  planRecovery,
  recoverDatabase,
  type RecoveryHandlers,
  type RecoveryResult,
} from "./recovery.ts";
