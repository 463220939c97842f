/**
 * Worker side of durability: committed transactions become commit records, one
 * batch (one message to the storage worker) per request batch; recovery streams
 * the stored snapshot and log back into the engine.
 */
import {
  decodeTxRecord,
  DurabilityPort,
  forEachBatchRecord,
  type ReplayResult,
  TxBatchEncoder,
  type TxRecord,
} from "../storage/mod.ts";
import type { CommittedTx, DatabaseEngine } from "./engine.ts";

/** Take a snapshot once this many transactions are durable since the last one. */
const SNAPSHOT_INTERVAL_TX = 100_000;

export class DurabilitySink {
  readonly #port: DurabilityPort;
  readonly #engine: DatabaseEngine;
  #encoder = new TxBatchEncoder();
  #firstTxOffset: number | undefined;
  #count = 0;

  constructor(port: MessagePort, engine: DatabaseEngine) {
    this.#engine = engine;
    this.#port = new DurabilityPort(port, {
      // Engine offsets count committed transactions; the log's are 0-based, exclusive ends.
      takeSnapshot: () => ({
        txOffset: BigInt(engine.txOffset),
        bytes: engine.datastore.exportState(),
      }),
      snapshotIntervalTx: SNAPSHOT_INTERVAL_TX,
    });
  }

  /** Streams the stored state into the engine; call once, before any append. */
  replay(): Promise<ReplayResult> {
    const engine = this.#engine;
    return this.#port.replay({
      snapshot: (bytes, txOffset) => engine.restoreSnapshot(bytes, Number(txOffset)),
      batch: (firstTxOffset, recordCount, bytes) =>
        forEachBatchRecord(firstTxOffset, recordCount, bytes, (record, txOffset) => {
          const decoded = decodeTxRecord(record);
          engine.replayTx(
            { tables: decoded.tables, sequences: decoded.sequences },
            Number(txOffset) + 1,
          );
        }),
    });
  }

  append(committed: CommittedTx[]): void {
    for (const tx of committed) {
      if (this.#firstTxOffset === undefined) this.#firstTxOffset = tx.txOffset;
      this.#encoder.add(toRecord(tx));
      this.#count++;
    }
  }

  /** Sends everything appended since the last flush as one batch. */
  flush(): void {
    if (this.#count === 0 || this.#firstTxOffset === undefined) return;
    const { bytes, recordCount } = this.#encoder.finish();
    this.#port.append(BigInt(this.#firstTxOffset - 1), recordCount, bytes);
    this.#firstTxOffset = undefined;
    this.#count = 0;
  }

  /** Why the storage worker stopped accepting writes for this database, if it did. */
  get failure(): string | undefined {
    return this.#port.failure;
  }
}

function toRecord(tx: CommittedTx): TxRecord {
  return {
    reducerName: tx.reducer,
    callerIdentity: littleEndian(tx.sender, 32),
    callerConnectionId: littleEndian(tx.connectionId, 16),
    timestampMicros: tx.timestampMicros,
    args: tx.args,
    tables: tx.delta.tables,
    sequences: tx.delta.sequences,
  };
}

function littleEndian(value: bigint, byteCount: number): Uint8Array {
  const bytes = new Uint8Array(byteCount);
  let rest = value;
  for (let i = 0; i < byteCount; i++) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return bytes;
}
