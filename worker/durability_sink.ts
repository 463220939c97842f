/**
 * Worker side of durability: committed transactions become commit records, one
 * batch (one message to the storage worker) per request batch; recovery streams
 * the stored snapshot and log back into the engine.
 */
import {
  decodeTxChanges,
  decodeTxRecord,
  type DurabilityChannel,
  DurabilityPort,
  forEachBatchRecordNumbered,
  type ReplayResult,
  TxBatchEncoder,
  type TxRecord,
  txRecordHasReducerName,
} from "../storage/mod.ts";
import type { CommittedTx, DatabaseEngine } from "./engine.ts";
import { MIGRATION_RECORD_NAME } from "./migrate_datastore.ts";
import { isViewTableId } from "./views.ts";

const MIGRATION_RECORD_NAME_BYTES = new TextEncoder().encode(MIGRATION_RECORD_NAME);

export class DurabilitySink {
  readonly #port: DurabilityPort;
  readonly #engine: DatabaseEngine;
  #encoder = new TxBatchEncoder();
  #firstTxOffset: number | undefined;
  #count = 0;

  /** `runSnapshotStep`: see DurabilityPortOptions (the process times snapshot pieces). */
  constructor(
    port: DurabilityChannel,
    engine: DatabaseEngine,
    runSnapshotStep?: (step: () => void) => void,
  ) {
    this.#engine = engine;
    this.#port = new DurabilityPort(port, {
      runSnapshotStep,
      // Engine offsets count committed transactions; the log's are 0-based, exclusive ends.
      // Copy-on-write capture, sent in pieces between batches (no pause for a large table).
      captureSnapshot: () => ({
        txOffset: BigInt(engine.txOffset),
        cursor: engine.captureSnapshot(),
      }),
    });
  }

  /** Streams the stored state into the engine; call once, before any append. */
  replay(): Promise<ReplayResult> {
    const engine = this.#engine;
    return this.#port.replay({
      snapshot: (bytes, txOffset) => engine.restoreSnapshot(bytes, Number(txOffset)),
      batch: (firstTxOffset, recordCount, bytes) =>
        forEachBatchRecordNumbered(
          Number(firstTxOffset),
          recordCount,
          bytes,
          (record, txOffset) => {
            if (txRecordHasReducerName(record, MIGRATION_RECORD_NAME_BYTES)) {
              engine.replayMigration(decodeTxRecord(record).args, txOffset + 1);
              return;
            }
            engine.replayTx(decodeTxChanges(record), txOffset + 1);
          },
        ),
    });
  }

  append(committed: CommittedTx[]): void {
    for (const tx of committed) this.appendOne(tx);
  }

  appendOne(tx: CommittedTx): void {
    if (this.#firstTxOffset === undefined) this.#firstTxOffset = tx.txOffset;
    this.#encoder.add(toRecord(tx));
    this.#count++;
  }

  /** Sends everything appended since the last flush as one batch. */
  flush(): void {
    if (this.#count === 0 || this.#firstTxOffset === undefined) return;
    const { bytes, recordCount } = this.#encoder.finish();
    this.#port.append(BigInt(this.#firstTxOffset - 1), recordCount, bytes);
    this.#firstTxOffset = undefined;
    this.#count = 0;
  }

  /** Snapshots the state now (after everything appended so far; see DurabilityPort.snapshotNow). */
  snapshotNow(): void {
    this.#port.snapshotNow();
  }

  /** Why the storage worker stopped accepting writes for this database, if it did. */
  get failure(): string | undefined {
    return this.#port.failure;
  }
}

function toRecord(tx: CommittedTx): TxRecord {
  return {
    reducerName: tx.reducer,
    callerIdentity: identityBytes.of(tx.sender),
    callerConnectionId: connectionIdBytes.of(tx.connectionId),
    timestampMicros: tx.timestampMicros,
    args: tx.args,
    // View instance tables are derived data: never logged, re-materialized on demand.
    tables: tx.hasViewTables
      ? tx.delta.tables.filter((table) => !isViewTableId(table.tableId))
      : tx.delta.tables,
    sequences: tx.delta.sequences,
  };
}

/**
 * Little-endian bytes of recent identities / connection ids. Converting a u256 takes 64 BigInt
 * operations (each allocates); a batch usually repeats a handful of callers. The encoder only
 * reads the bytes, so sharing one array per value is safe.
 */
class LittleEndianCache {
  readonly #byteCount: number;
  #entries = new Map<bigint, Uint8Array>();
  constructor(byteCount: number) {
    this.#byteCount = byteCount;
  }
  of(value: bigint): Uint8Array {
    let bytes = this.#entries.get(value);
    if (bytes === undefined) {
      if (this.#entries.size >= LITTLE_ENDIAN_CACHE_MAX) this.#entries = new Map();
      bytes = littleEndian(value, this.#byteCount);
      this.#entries.set(value, bytes);
    }
    return bytes;
  }
}

/** Entries kept per cache before it starts over (bounds memory with many connections). */
const LITTLE_ENDIAN_CACHE_MAX = 4096;
const identityBytes = new LittleEndianCache(32);
const connectionIdBytes = new LittleEndianCache(16);

function littleEndian(value: bigint, byteCount: number): Uint8Array {
  const bytes = new Uint8Array(byteCount);
  let rest = value;
  for (let i = 0; i < byteCount; i++) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return bytes;
}
