/**
 * Worker side of subscriptions: compiles queries against the datastore, takes
 * initial rows between transactions and computes per-query deltas per commit.
 */
import type { TxDelta } from "../storage/mod.ts";
import type { DatabaseEngine } from "./engine.ts";
import type {
  OneOffQueryRequest,
  OneOffQueryResult,
  QueryDelta,
  SubscribeRequest,
  SubscribeResult,
  UnsubscribeRequest,
  UnsubscribeResult,
} from "./messages.ts";

export class SubscriptionHost {
  readonly #engine: DatabaseEngine;
  constructor(engine: DatabaseEngine) {
    this.#engine = engine;
  }

  onCommit(_delta: TxDelta): QueryDelta[] {
    return [];
  }

  dropClient(_connectionId: bigint): void {}

  subscribe(request: SubscribeRequest): SubscribeResult {
    return {
      kind: "subscribe",
      id: request.id,
      ok: false,
      error: "subscriptions are not wired yet",
      txOffset: this.#engine.txOffset,
    };
  }

  unsubscribe(request: UnsubscribeRequest): UnsubscribeResult {
    return {
      kind: "unsubscribe",
      id: request.id,
      ok: false,
      error: "subscriptions are not wired yet",
      txOffset: this.#engine.txOffset,
    };
  }

  query(request: OneOffQueryRequest): OneOffQueryResult {
    return {
      kind: "query",
      id: request.id,
      ok: false,
      error: "queries are not wired yet",
      txOffset: this.#engine.txOffset,
    };
  }
}
