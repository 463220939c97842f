/**
 * The primary's replicator (`lightcone start --replicate nats://host:port`): publishes every
 * database's commit log, in order, to JetStream once it is durable here.
 *
 * One pump per database, at most one publish in flight for it: each message carries every whole
 * commit durable since the last one (up to REPLICATION_MESSAGE_BYTES_MAX), read back from the
 * log on disk (replication/log_tail.ts), so a slow or absent NATS never holds a commit or memory
 * back: it only grows the backlog, which the pump works off when NATS answers again. What
 * JetStream acknowledged is kept per database in `<database>/replication/state.json`; on start
 * (and after any refused publish) the pump also asks JetStream for the database's last message,
 * which is the truth: a crash between an ack and the state write costs nothing.
 *
 * Module changes (RegistryOptions.onModuleChange) are written to
 * `<database>/replication/module-<at tx>.json` before the new module runs, and published in
 * their place in the log: after the transactions before `at`, before those after it.
 */
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { toHex } from "../lib/bytes.ts";
import { log } from "../lib/log.ts";
import { syncDirectory } from "../lib/sync_directory.ts";
import { databaseDir } from "../storage/mod.ts";
import { LogTail } from "./log_tail.ts";
import { checkTag, HEADER_AUTH, HEADER_AUTH_BODY, type HeaderReader, messageTag } from "./auth.ts";
import {
  CHUNK_HEADER_ROOM_BYTES,
  chunkHeaders,
  type ChunkInfo,
  chunkInfo,
  HEADER_CHUNK,
  sha256Hex,
  splitBody,
} from "./chunks.ts";
import {
  connectNats,
  ensureStream,
  HEADER_AT_TX,
  HEADER_END_TX,
  HEADER_FIRST_TX,
  HEADER_KIND,
  HEADER_PREV_SEQ,
  HEADER_PRIMARY,
  type ModuleBody,
  natsDisplay,
  STREAM_NAME,
  subjectOf,
} from "./stream.ts";

/** Bytes of commits one message carries at most (below NATS's default max_payload, 1 MiB). */
export const REPLICATION_MESSAGE_BYTES_MAX = 900 * 1024;
/** Points (durable end, cumulative bytes) kept per database for the lag in bytes. */
const DURABLE_POINTS_MAX = 4096;
/** A first connection to NATS slower than this is logged (once). */
const SLOW_CONNECT_WARN_MS = 5_000;
/** Wait before retrying after NATS failed to answer (it reconnects meanwhile). */
const RETRY_MS = 500;

export interface ModuleChangeRecord {
  dbKey: string;
  owner: string;
  names: string[];
  bundle: string;
  atTx: number;
}

interface PumpState {
  /** Transactions [0, acked) are in JetStream. */
  acked: number;
  /** Stream sequence of the database's last message (0: none). */
  lastSeq: number;
}

export interface ReplicationMetrics {
  dbKey: string;
  /** Transactions JetStream acknowledged (exclusive end). */
  replicatedTx: number;
  durableTx: number;
  /** Commit-log record bytes made durable since this server started and not yet acknowledged. */
  lagBytes: number;
  /** Set once replication of this database stopped for good (a conflict). */
  stopped: string | undefined;
}

class Pump {
  state: PumpState | undefined;
  durable = 0;
  running = false;
  again = false;
  stopped: string | undefined;
  failing = false;
  /** What JetStream acknowledged last (kept while the state is asked again after a failure). */
  lastAcked = 0;
  /** The module files in `<database>/replication`, cached (undefined: read them again). */
  modules: { at: number; pending: boolean }[] | undefined;
  modulesVersion = 0;
  /**
   * Offsets of module changes this process has under way (moduleChanging until it settles):
   * their pending files are not left over from a crash, and resolveStalePending leaves them.
   */
  readonly livePending = new Set<number>();
  invalidateModules(): void {
    this.modules = undefined;
    this.modulesVersion++;
  }
  tail: LogTail;
  /** (durable end, cumulative record bytes) from durable events, for lagBytes. */
  durableBytes: Array<[number, number]> = [];
  bytesDurable = 0;
  bytesAcked = 0;
  constructor(readonly dbKey: string, readonly dir: string, dataDir: string) {
    this.tail = new LogTail(dataDir, dbKey);
  }
}

export class PrimaryReplicator {
  readonly #dataDir: string;
  readonly #server: string;
  readonly #existingModule: (dbKey: string) => Promise<ModuleBody | string>;
  /** Signs every message (replication/auth.ts); undefined: messages go out unauthenticated. */
  readonly #key: CryptoKey | undefined;
  /** PEM of `--nats-ca` (TLS to NATS). */
  readonly #natsCa: string | undefined;
  readonly #pumps = new Map<string, Pump>();
  #nc: NatsConnection | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  #primaryId = "";
  #slowConnect: ReturnType<typeof setTimeout> | undefined;
  /** `--promote` (see promote()); undefined: not asked. */
  readonly #promote: PromoteOptions | undefined;
  /** Called when readOnlyReason(dbKey) changed (server/server.ts restarts its process). */
  readonly #onReadOnlyChange: (dbKey: string) => void;
  /** True from start() until promote() settled: every database is read-only meanwhile. */
  #promoting = false;
  /** Pumps wait for this (the promotion) before their first step. */
  #gate: Promise<void> = Promise.resolve();
  #openGate: () => void = () => {};
  /** Databases fenced by another primary's takeover: why (their `fenced.json`). */
  readonly #fenced = new Map<string, string>();
  /** Databases whose takeover is not in JetStream yet (their `takeover.json`). */
  readonly #takeovers = new Map<string, TakeoverRecord>();

  /**
   * `existingModule`: for a database created before replication was on, the module its log
   * starts with, or why there is none to send (server/server.ts reads the registry).
   */
  constructor(
    options: {
      dataDir: string;
      server: string;
      existingModule: (dbKey: string) => Promise<ModuleBody | string>;
      key?: CryptoKey;
      natsCa?: string;
      promote?: PromoteOptions;
      onReadOnlyChange?: (dbKey: string) => void;
    },
  ) {
    this.#dataDir = options.dataDir;
    this.#server = options.server;
    this.#existingModule = options.existingModule;
    this.#key = options.key;
    this.#natsCa = options.natsCa;
    this.#promote = options.promote;
    this.#onReadOnlyChange = options.onReadOnlyChange ?? (() => {});
  }

  /**
   * Why `dbKey` must not write now, or undefined: fenced by another primary's takeover, or its
   * own takeover (a promotion) not acknowledged by JetStream yet. Read by the registry when a
   * database process starts (RegistryOptions.readOnlyFor).
   */
  readOnlyReason(dbKey: string): string | undefined {
    const fenced = this.#fenced.get(dbKey);
    if (fenced !== undefined) return fenced;
    if (this.#promoting) {
      return "This server is being promoted from read replica to primary (--promote): writes " +
        "are refused until the promotion is checked and its takeover is in JetStream";
    }
    if (this.#takeovers.has(dbKey)) {
      const stopped = this.#pumps.get(dbKey)?.stopped;
      return stopped !== undefined
        ? `This database's promotion to primary failed (${stopped}): writes are refused`
        : "This database is being promoted to primary: writes are refused until its takeover " +
          `is acknowledged by JetStream (${natsDisplay(this.#server)})`;
    }
    return undefined;
  }

  /** Connects in the background (retrying until NATS answers); commits never wait for it. */
  async start(): Promise<void> {
    this.#primaryId = await primaryId(this.#dataDir);
    await this.#loadFailoverFiles();
    if (this.#promote !== undefined) {
      if (await exists(`${this.#dataDir}/${PROMOTED_FILE}`)) {
        log.info("--promote: this data directory was promoted before; it is the primary", {
          primary: this.#primaryId,
        });
      } else if (!(await exists(`${this.#dataDir}/${FOLLOW_FILE}`))) {
        throw new Error(
          `--promote: "${this.#dataDir}" is not a read replica's data directory (it has no ` +
            `${FOLLOW_FILE}): only a replica's (--follow) is promoted; start a primary with ` +
            `--replicate alone`,
        );
      } else {
        this.#promoting = true;
        this.#gate = new Promise((resolve) => (this.#openGate = resolve));
      }
    }
    // The client retries its first connection by itself: say so when it takes a while.
    this.#slowConnect = setTimeout(() => {
      log.warn("replication: NATS is not answering yet; commits go on, publishing waits", {
        server: natsDisplay(this.#server),
      });
    }, SLOW_CONNECT_WARN_MS);
    this.#ready = (async () => {
      for (let attempt = 1;; attempt++) {
        if (this.#closed) return;
        try {
          this.#nc ??= await connectNats(this.#server, "lightcone primary", { ca: this.#natsCa });
          if (this.#closed) {
            // Closed while the first connection was pending: nothing will use it.
            await this.#nc.close().catch(() => {});
            return;
          }
          await ensureStream(this.#nc);
          clearTimeout(this.#slowConnect);
          log.info("replication: connected to NATS", { server: natsDisplay(this.#server) });
          return;
        } catch (error) {
          if (attempt === 1) {
            log.warn("replication: NATS is not answering, retrying until it does", {
              server: natsDisplay(this.#server),
              error: messageOf(error),
            });
          }
          await sleep(RETRY_MS * 4);
        }
      }
    })();
    void this.#ready.then(() => {
      for (const pump of this.#pumps.values()) this.#kick(pump);
      void this.#publishTombstones();
    });
  }

  /** The storage made transactions [0, offset) of `dbKey` durable (`bytes`: their records). */
  durable(dbKey: string, offset: number, bytes: number): void {
    const pump = this.#pump(dbKey);
    if (offset > pump.durable) pump.durable = offset;
    if (bytes > 0) {
      pump.bytesDurable += bytes;
      pump.durableBytes.push([offset, pump.bytesDurable]);
      // A long outage must not grow this without bound: keep every other point (the lag in
      // bytes is then counted from an earlier point: over, never under).
      if (pump.durableBytes.length > DURABLE_POINTS_MAX) {
        const last = pump.durableBytes.length - 1;
        pump.durableBytes = pump.durableBytes.filter((_, i) => i % 2 === 0 || i === last);
      }
    }
    this.#kick(pump);
  }

  /**
   * A database's module is about to change at `atTx` (0: a new database). Resolves once the
   * change is on disk here as pending: nothing from `atTx` on is published until the function
   * it resolves with says whether the change took (then the module goes out first, NATS or
   * not) or failed (the old module serves on; nothing to publish).
   */
  async moduleChanging(change: ModuleChangeRecord): Promise<(ok: boolean) => Promise<void>> {
    const pump = this.#pump(change.dbKey);
    await Deno.mkdir(`${pump.dir}/replication`, { recursive: true });
    const body: ModuleBody = { owner: change.owner, names: change.names, bundle: change.bundle };
    const pending = `${pump.dir}/replication/${moduleFileName(change.atTx, true)}`;
    pump.livePending.add(change.atTx);
    await writeAtomic(pending, JSON.stringify(body));
    pump.invalidateModules();
    return async (ok) => {
      try {
        if (ok) {
          await Deno.rename(pending, `${pump.dir}/replication/${moduleFileName(change.atTx)}`);
        } else await Deno.remove(pending).catch(() => {});
      } finally {
        pump.livePending.delete(change.atTx);
      }
      pump.invalidateModules();
      this.#kick(pump);
    };
  }

  /**
   * A database is being deleted here: its pump stops now (before its files go), and a `delete`
   * message follows its history in JetStream (kept as a tombstone file until acknowledged).
   */
  async deleted(dbKey: string): Promise<void> {
    const pump = this.#pumps.get(dbKey);
    if (pump) {
      pump.stopped = "deleted";
      pump.tail.close();
      this.#pumps.delete(dbKey);
    }
    await Deno.mkdir(this.#tombstoneDir(), { recursive: true });
    await writeAtomic(`${this.#tombstoneDir()}/${dbKey}`, "");
    void this.#publishTombstones();
  }

  #tombstoneDir(): string {
    return `${this.#dataDir}/replication-deleted`;
  }

  #tombstonesRunning = false;

  /** Publishes every tombstone (retrying while NATS does not answer), then drops its history. */
  async #publishTombstones(): Promise<void> {
    if (this.#tombstonesRunning) return;
    this.#tombstonesRunning = true;
    try {
      await this.#ready;
      for (;;) {
        if (this.#closed) return;
        const keys: string[] = [];
        try {
          for await (const entry of Deno.readDir(this.#tombstoneDir())) {
            if (/^[0-9a-f]{64}$/.test(entry.name)) keys.push(entry.name);
          }
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
        if (keys.length === 0) return;
        try {
          for (const dbKey of keys) {
            // It follows the subject's last message like any other (Lc-Prev-Seq).
            const prevSeq = (await lastSubjectMessage(this.#nc!, subjectOf(dbKey)))?.seq ?? 0;
            const h = await signedHeaders(
              this.#key,
              subjectOf(dbKey),
              [
                [HEADER_KIND, "delete"],
                [HEADER_PRIMARY, this.#primaryId],
                [HEADER_PREV_SEQ, String(prevSeq)],
              ],
              new Uint8Array(0),
            );
            const ack = await jetstream(this.#nc!).publish(subjectOf(dbKey), new Uint8Array(0), {
              headers: h,
              msgID: `${dbKey}:delete`,
              expect: { lastSubjectSequence: prevSeq },
            });
            // Its history serves no one now: everything before the delete message goes.
            const jsm = await jetstreamManager(this.#nc!);
            await jsm.streams.purge(STREAM_NAME, { filter: subjectOf(dbKey), seq: ack.seq });
            await Deno.remove(`${this.#tombstoneDir()}/${dbKey}`);
            log.info("replication: database deletion published", { identity: dbKey });
          }
        } catch (error) {
          log.warn("replication: publishing a deletion failed, retrying", {
            error: messageOf(error),
          });
          await sleep(RETRY_MS * 4);
        }
      }
    } finally {
      this.#tombstonesRunning = false;
    }
  }

  metrics(): ReplicationMetrics[] {
    return [...this.#pumps.values()].map((pump) => {
      const acked = pump.lastAcked;
      let bytesAtAcked = 0;
      for (const [end, cumulative] of pump.durableBytes) {
        if (end <= acked) bytesAtAcked = cumulative;
      }
      return {
        dbKey: pump.dbKey,
        replicatedTx: acked,
        durableTx: pump.durable,
        lagBytes: Math.max(0, pump.bytesDurable - bytesAtAcked),
        stopped: pump.stopped,
      };
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#openGate();
    clearTimeout(this.#slowConnect);
    for (const pump of this.#pumps.values()) pump.tail.close();
    await this.#nc?.close().catch(() => {});
  }

  #pump(dbKey: string): Pump {
    let pump = this.#pumps.get(dbKey);
    if (!pump) {
      pump = new Pump(dbKey, databaseDir(this.#dataDir, dbKey), this.#dataDir);
      pump.stopped = this.#fenced.get(dbKey);
      this.#pumps.set(dbKey, pump);
    }
    return pump;
  }

  #kick(pump: Pump): void {
    if (this.#closed || pump.stopped !== undefined) return;
    if (pump.running) {
      pump.again = true;
      return;
    }
    pump.running = true;
    void this.#run(pump).finally(() => {
      pump.running = false;
    });
  }

  async #run(pump: Pump): Promise<void> {
    await this.#ready;
    await this.#gate;
    for (;;) {
      if (this.#closed || pump.stopped !== undefined) return;
      pump.again = false;
      let progressed: boolean;
      try {
        progressed = await this.#step(pump);
      } catch (error) {
        if (error instanceof ConflictError) {
          pump.stopped = error.message;
          log.error("replication of this database stopped", {
            identity: pump.dbKey,
            error: error.message,
          });
          // A failed takeover changes the text writes are refused with.
          if (this.#takeovers.has(pump.dbKey)) this.#onReadOnlyChange(pump.dbKey);
          return;
        }
        if (error instanceof Deno.errors.NotFound && !(await exists(pump.dir))) {
          // Deleted here; its replicated history stays in JetStream.
          this.#pumps.delete(pump.dbKey);
          pump.tail.close();
          return;
        }
        if (this.#closed) return;
        if (!pump.failing) {
          log.warn("replication: publish failed, retrying", {
            identity: pump.dbKey,
            error: messageOf(error),
          });
        }
        pump.failing = true;
        // Ask JetStream again where the database stands before the next publish.
        pump.state = undefined;
        await sleep(RETRY_MS);
        continue;
      }
      if (progressed && pump.failing) {
        pump.failing = false;
        log.info("replication: publishing again", { identity: pump.dbKey });
      }
      if (!progressed && !pump.again) return;
    }
  }

  /** Publishes the next message of `pump`'s database; false when there is nothing to send. */
  async #step(pump: Pump): Promise<boolean> {
    const nc = this.#nc!;
    const subject = subjectOf(pump.dbKey);
    if (pump.state === undefined && this.#takeovers.has(pump.dbKey)) {
      await this.#publishTakeover(pump, nc, this.#takeovers.get(pump.dbKey)!);
      return true;
    }
    if (pump.state === undefined) {
      await resolveStalePending(pump.dir, pump.livePending);
      pump.invalidateModules();
      pump.state = await this.#reconcile(pump, nc);
      pump.lastAcked = pump.state.acked;
      await pump.tail.seek(pump.state.acked);
    }
    const state = pump.state;
    if (pump.modules === undefined) {
      const version = pump.modulesVersion;
      const read = await moduleFiles(pump.dir);
      // A module change began meanwhile: read again.
      if (version !== pump.modulesVersion) return true;
      pump.modules = read;
    }
    const modules = pump.modules;
    // Modules published already (a crash before their file went).
    for (const { at } of modules.filter((file) => !file.pending && file.at < state.acked)) {
      await removeModule(pump.dir, at);
      pump.invalidateModules();
    }
    const next = modules.find((file) => file.at >= state.acked);
    // A module change in progress (pending) holds back everything from its offset on.
    const nextModule = next?.at;
    const js = jetstream(nc);
    if (next !== undefined && !next.pending && next.at === state.acked) {
      const body = await Deno.readFile(`${pump.dir}/replication/${moduleFileName(next.at)}`);
      const h: [string, string][] = [
        [HEADER_KIND, "module"],
        [HEADER_AT_TX, String(next.at)],
        [HEADER_PRIMARY, this.#primaryId],
      ];
      // The bundle's hash too: two updates at one offset (no transaction between them, or an
      // update before the first transaction) are two messages, not one and its duplicate.
      const sha256 = await sha256Hex(body);
      // And the primary's id: a promoted replica's message must never be taken for one the
      // old primary published at the same offset (deleted by a forced promotion).
      const msgID = `${pump.dbKey}:${this.#primaryId}:module:${next.at}:${sha256.slice(0, 32)}`;
      const ack = await publish(js, subject, body, h, msgID, state, {
        chunkBytes: this.#chunkBytes(),
        key: this.#key,
        sha256,
      });
      state.lastSeq = ack;
      await this.#saveState(pump);
      await removeModule(pump.dir, next.at);
      pump.invalidateModules();
      return true;
    }
    if (state.lastSeq === 0 && nextModule === undefined && pump.durable > 0) {
      // Created before --replicate was on: its module goes first, if it is the one the log
      // starts with.
      const existing = await this.#existingModule(pump.dbKey);
      if (typeof existing === "string") {
        throw new ConflictError(`it cannot be replicated: ${existing}`);
      }
      await Deno.mkdir(`${pump.dir}/replication`, { recursive: true });
      await writeAtomic(
        `${pump.dir}/replication/${moduleFileName(0)}`,
        JSON.stringify(existing),
      );
      pump.invalidateModules();
      return true;
    }
    const end = nextModule === undefined ? pump.durable : Math.min(pump.durable, nextModule);
    const run = await pump.tail.read(end, REPLICATION_MESSAGE_BYTES_MAX);
    if (!run) return false;
    const h: [string, string][] = [
      [HEADER_KIND, "log"],
      [HEADER_FIRST_TX, String(run.firstTx)],
      [HEADER_END_TX, String(run.endTx)],
      [HEADER_PRIMARY, this.#primaryId],
    ];
    try {
      state.lastSeq = await publish(
        js,
        subject,
        run.frames,
        h,
        `${pump.dbKey}:${this.#primaryId}:${run.firstTx}-${run.endTx}`,
        state,
        { chunkBytes: this.#chunkBytes(), key: this.#key },
      );
    } catch (error) {
      // The cursor moved past what JetStream may not have: seek again on the retry.
      pump.state = undefined;
      throw error;
    }
    state.acked = run.endTx;
    pump.lastAcked = state.acked;
    while (pump.durableBytes.length > 1 && pump.durableBytes[1][0] <= state.acked) {
      pump.durableBytes.shift();
    }
    await this.#saveState(pump);
    return true;
  }

  /** The largest body one message carries: what the NATS server takes, less room for headers. */
  #chunkBytes(): number {
    const maxPayload = this.#nc?.info?.max_payload ?? 1024 * 1024;
    return Math.max(
      1024,
      Math.min(REPLICATION_MESSAGE_BYTES_MAX, maxPayload - CHUNK_HEADER_ROOM_BYTES),
    );
  }

  /**
   * Where the database stands in JetStream: its last message decides (the state file may be
   * one ack behind). A message of another primary there is a conflict.
   */
  async #reconcile(pump: Pump, nc: NatsConnection): Promise<PumpState> {
    const saved = await readState(pump.dir);
    const last = await lastSubjectMessage(nc, subjectOf(pump.dbKey));
    if (!last) {
      if (saved && saved.acked > 0) {
        throw new ConflictError(
          `JetStream holds nothing for this database but acknowledged transactions [0, ${saved.acked}) ` +
            `earlier: the stream was deleted or purged`,
        );
      }
      return { acked: 0, lastSeq: 0 };
    }
    if (this.#key !== undefined) {
      // Its headers decide where publishing resumes: a message tagged with another key is not
      // ours. An untagged one (a message from before --replication-key-file was on) is taken,
      // with a warning, only when it is the last message this primary saved as published, or
      // a whole log message (its bytes are compared with this log below): anyone may publish
      // an untagged module message, or chunk, claiming any offset.
      const untagged = (last.header?.get(HEADER_AUTH) ?? "") === "";
      const problem = untagged
        ? undefined
        : await checkTag(this.#key, subjectOf(pump.dbKey), last.header, last.data);
      const wholeLog = last.header?.get(HEADER_KIND) === "log" &&
        (last.header?.get(HEADER_CHUNK) ?? "") === "";
      if (untagged && saved?.lastSeq !== last.seq && !wholeLog) {
        throw new ConflictError(
          `the database's last JetStream message (sequence ${last.seq}) is untagged and not ` +
            `the last one this primary published: someone without the replication key ` +
            `published on its subject`,
        );
      }
      if (untagged) {
        log.warn(
          "replication: the database's last JetStream message is untagged (published before " +
            "--replication-key-file was on?); publishing goes on after it",
          { identity: pump.dbKey, seq: last.seq },
        );
      }
      if (problem !== undefined) {
        throw new ConflictError(
          `the database's last JetStream message (sequence ${last.seq}) is not ours: ${problem}; ` +
            `someone without the replication key published on its subject`,
        );
      }
    }
    const primary = last.header?.get(HEADER_PRIMARY) ?? "";
    if (primary !== this.#primaryId) {
      const takeover = await this.#takeoverAfter(nc, pump.dbKey, saved?.lastSeq ?? 0);
      if (takeover !== undefined) await this.#fence(pump, takeover);
      const replica = await exists(`${this.#dataDir}/${FOLLOW_FILE}`) &&
          !(await exists(`${this.#dataDir}/${PROMOTED_FILE}`))
        ? " (this data directory was a read replica's: promote it with --promote)"
        : "";
      throw new ConflictError(
        `another primary ("${primary}") publishes this database's log (this one is ` +
          `"${this.#primaryId}"); two primaries must not write one database${replica}`,
      );
    }
    const kind = last.header?.get(HEADER_KIND);
    let chunk: ChunkInfo | undefined;
    try {
      chunk = chunkInfo(last.header);
    } catch (error) {
      throw new ConflictError(`the database's last JetStream message: ${messageOf(error)}`);
    }
    // A message whose chunks stopped part way (a crash, NATS gone): it goes out again whole,
    // from chunk 0, after what came before it.
    const partial = chunk !== undefined && chunk.index < chunk.count - 1;
    const acked = Number(
      kind === "module" || kind === "takeover"
        ? last.header?.get(HEADER_AT_TX)
        : last.header?.get(partial ? HEADER_FIRST_TX : HEADER_END_TX),
    );
    if (partial) {
      if (!Number.isSafeInteger(acked) || acked < 0 || (acked > pump.durable && pump.durable > 0)) {
        throw new ConflictError(`the database's last JetStream message has no valid offset`);
      }
      return { acked, lastSeq: last.seq };
    }
    // Published before a crash took its file away.
    if (kind === "module" && Number.isSafeInteger(acked)) await removeModule(pump.dir, acked);
    if (!Number.isSafeInteger(acked) || acked < 0) {
      throw new ConflictError(`the database's last JetStream message has no valid offset`);
    }
    if (acked > pump.durable && pump.durable > 0) {
      throw new ConflictError(
        `JetStream holds transactions up to ${acked} but this log is durable only to ` +
          `${pump.durable}: this data directory lost transactions it had replicated`,
      );
    }
    if (kind === "log") {
      // Same id, same history: JetStream's copy of those commits must be this log's bytes (a
      // copied data directory shares the id but not what it wrote since).
      const first = Number(last.header?.get(HEADER_FIRST_TX));
      const tail = new LogTail(this.#dataDir, pump.dbKey);
      try {
        await tail.seek(first);
        const run = await tail.read(acked, REPLICATION_MESSAGE_BYTES_MAX);
        const same = run !== undefined && run.endTx === acked &&
          (chunk === undefined
            ? equalBytes(run.frames, last.data)
            : run.frames.length === chunk.totalBytes &&
              (await sha256Hex(run.frames)) === chunk.sha256);
        if (!same) {
          throw new ConflictError(
            `JetStream's copy of transactions [${first}, ${acked}) differs from this commit ` +
              `log: another primary wrote this database`,
          );
        }
      } finally {
        tail.close();
      }
    }
    return { acked, lastSeq: last.seq };
  }

  /** Reads every database's `fenced.json` and `takeover.json` (before any process starts). */
  async #loadFailoverFiles(): Promise<void> {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(`${this.#dataDir}/databases`));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      if (!entry.isDirectory || !/^[0-9a-f]{64}$/.test(entry.name)) continue;
      const dir = `${databaseDir(this.#dataDir, entry.name)}/replication`;
      const fenced = await readJson(`${dir}/${FENCED_FILE}`);
      if (fenced !== undefined) {
        // A torn or odd file still fences: a fence must never be lost.
        this.#fenced.set(
          entry.name,
          typeof fenced?.reason === "string"
            ? fenced.reason
            : `this database was fenced by another primary's takeover (${dir}/${FENCED_FILE})`,
        );
      }
      const takeover = await readJson(`${dir}/${TAKEOVER_FILE}`);
      if (takeover !== undefined) {
        if (
          !Number.isSafeInteger(takeover?.atTx) || !Number.isSafeInteger(takeover?.prevSeq) ||
          typeof takeover?.previousPrimary !== "string"
        ) {
          throw new Error(`"${dir}/${TAKEOVER_FILE}" is not a takeover record`);
        }
        this.#takeovers.set(entry.name, takeover as unknown as TakeoverRecord);
      }
    }
  }

  /**
   * `--promote`: checks every database of this former replica against its subject and makes
   * the promotion: a new primary id, per database a takeover to publish (`takeover.json`),
   * `replication-promoted.json`. Refused (PromotionRefusedError, nothing changed) when a
   * database is not caught up with its subject (the replica did not take the subject's last
   * message, or its log ends before that message's), when following one stopped, or when one
   * failed to start here, unless `discardUnapplied`; refused always when the subject's last
   * message is not authenticated (with a key) or is the database's deletion. Waits for NATS.
   */
  async promote(databases: PromotedDatabase[], unstarted: PromotedDatabase[]): Promise<void> {
    if (!this.#promoting) return;
    await this.#ready;
    if (this.#closed || this.#nc === undefined) throw new Error("closed while promoting");
    const nc = this.#nc;
    const force = this.#promote?.discardUnapplied ?? false;
    const follow = await readFollowState(this.#dataDir);
    const problems: string[] = [];
    const discards: string[] = [];
    const plans = new Map<string, TakeoverRecord>();
    const promotedAt = new Date().toISOString();
    const hosted = new Set(databases.map((database) => database.dbKey));
    for (const database of unstarted) {
      const text = `${database.label}: it failed to start here, so it cannot be promoted`;
      if (force) discards.push(text);
      else problems.push(text);
    }
    for (const [dbKey, reason] of follow.stopped) {
      if (hosted.has(dbKey) || unstarted.some((database) => database.dbKey === dbKey)) continue;
      const text = `${dbKey}: following it stopped before this replica had it (${reason})`;
      if (force) discards.push(text);
      else problems.push(text);
    }
    for (const { dbKey, localEnd, label } of databases) {
      const subject = subjectOf(dbKey);
      const last = await lastSubjectMessage(nc, subject);
      if (!last) {
        // Nothing to take over: published from its start like any database new to JetStream.
        log.info("--promote: JetStream holds nothing for this database; it is published anew", {
          identity: dbKey,
        });
        continue;
      }
      if (this.#key !== undefined) {
        const problem = await checkTag(this.#key, subject, last.header, last.data);
        if (problem !== undefined) {
          problems.push(
            `${label}: the last message of its subject (sequence ${last.seq}) is not ` +
              `authenticated: ${problem}`,
          );
          continue;
        }
      }
      const primary = last.header?.get(HEADER_PRIMARY) ?? "";
      if (primary === this.#primaryId) continue; // Promoted before: nothing to take over.
      const kind = last.header?.get(HEADER_KIND) ?? "";
      if (kind === "delete") {
        problems.push(
          `${label}: the primary deleted it (stream message ${last.seq}) and this replica did ` +
            `not apply the deletion yet: follow (--follow) until it has, or delete its data`,
        );
        continue;
      }
      let chunk: ChunkInfo | undefined;
      try {
        chunk = chunkInfo(last.header);
      } catch (error) {
        problems.push(`${label}: the last message of its subject: ${messageOf(error)}`);
        continue;
      }
      const end = Number(last.header?.get(kind === "log" ? HEADER_END_TX : HEADER_AT_TX));
      if (!Number.isSafeInteger(end) || end < 0) {
        problems.push(`${label}: the last message of its subject has no valid offset`);
        continue;
      }
      if (localEnd > end) {
        problems.push(
          `${label}: its log ends at transaction ${localEnd}, past the end of the stream ` +
            `(${end}): it holds transactions no primary published; it cannot take over`,
        );
        continue;
      }
      const stopped = follow.stopped.get(dbKey);
      const took = (follow.subjectSeq.get(dbKey) ?? 0) >= last.seq;
      const partial = chunk !== undefined && chunk.index < chunk.count - 1;
      const behind = stopped !== undefined || !took || localEnd < end || partial;
      let discarded: string | undefined;
      if (behind) {
        const why = stopped !== undefined
          ? `following it stopped (${stopped})`
          : `its log ends at transaction ${localEnd}; the stream's last message (sequence ` +
            `${last.seq}, ${kind}${partial ? ", a chunked message cut short" : ""}) ${
              took ? "ends at" : "was not taken here; it ends at"
            } transaction ${end}`;
        if (!force) {
          problems.push(`${label}: not caught up with its subject: ${why}`);
          continue;
        }
        discarded = `promoted while behind (${why}): what the old primary published after ` +
          `transaction ${localEnd} is discarded`;
      }
      let prevSeq = last.seq;
      if (discarded !== undefined) {
        // The stream must hold this replica's history only: what it lacks goes (deleted before
        // the takeover is published), so that a replica made later replays exactly it.
        const keep = await this.#keptHistory(nc, dbKey, localEnd, follow, stopped);
        if (typeof keep === "string") {
          problems.push(`${label}: ${keep}`);
          continue;
        }
        prevSeq = keep;
        discards.push(`${label}: ${discarded}`);
      }
      plans.set(dbKey, {
        atTx: localEnd,
        prevSeq,
        previousPrimary: primary,
        discarded,
        promotedAt,
      });
    }
    if (problems.length > 0) {
      throw new PromotionRefusedError(
        `--promote refused for ${problems.length} database(s); nothing was changed:\n` +
          problems.map((problem) => `  - ${problem}`).join("\n") +
          `\nStart this data directory with --follow until it caught up (or clear a stop), ` +
          `or add --promote-discard-unapplied to promote it at what it has, losing what the ` +
          `stream holds past it`,
      );
    }
    // A new primary id: a replica seeded from a copy of the primary's data directory must not
    // publish under the old primary's id.
    const id = toHex(crypto.getRandomValues(new Uint8Array(16)));
    await writeAtomic(`${this.#dataDir}/replication-primary-id`, id);
    this.#primaryId = id;
    for (const [dbKey, plan] of plans) {
      const dir = `${databaseDir(this.#dataDir, dbKey)}/replication`;
      await Deno.mkdir(dir, { recursive: true });
      await writeAtomic(`${dir}/${TAKEOVER_FILE}`, JSON.stringify(plan));
      this.#takeovers.set(dbKey, plan);
    }
    await writeAtomic(
      `${this.#dataDir}/${PROMOTED_FILE}`,
      JSON.stringify({ promotedAt, primary: id, takeovers: plans.size, discards }, null, 2),
    );
    this.#promoting = false;
    for (const discard of discards) log.warn(`--promote-discard-unapplied: ${discard}`);
    log.info("promoted to primary: publishing takeovers", {
      primary: id,
      databases: plans.size,
    });
    // Those with a takeover stay read-only until it is acknowledged (#takeoverDone).
    for (const { dbKey } of databases) if (!plans.has(dbKey)) this.#onReadOnlyChange(dbKey);
    this.#openGate();
  }

  /**
   * The stream sequence of the last message of `dbKey`'s subject this replica's history
   * (its log's end `localEnd`) holds; what follows it is not in that history. A string: why
   * there is no such point (the log ends inside a message).
   */
  async #keptHistory(
    nc: NatsConnection,
    dbKey: string,
    localEnd: number,
    follow: { subjectSeq: Map<string, number> },
    stopped: string | undefined,
  ): Promise<number | string> {
    const taken = follow.subjectSeq.get(dbKey) ?? 0;
    let keep = 0;
    for await (const message of subjectMessagesAfter(nc, subjectOf(dbKey), 0)) {
      const kind = message.header?.get(HEADER_KIND) ?? "";
      const first = Number(message.header?.get(HEADER_FIRST_TX));
      const end = Number(message.header?.get(kind === "log" ? HEADER_END_TX : HEADER_AT_TX));
      if (!Number.isSafeInteger(end)) break; // Not a message this replica could have taken.
      if (kind === "log") {
        if (end <= localEnd) {
          keep = message.seq;
          continue;
        }
        if (Number.isSafeInteger(first) && first < localEnd) {
          return `its log ends at transaction ${localEnd}, inside the stream's message ` +
            `${message.seq} (transactions [${first}, ${end})): there is no point to take ` +
            `over from`;
        }
        break;
      }
      // A module update at the log's end is this replica's if it took it (and did not stop
      // at it); a takeover at or before it is history too.
      const had = end < localEnd ||
        (end === localEnd && (kind === "takeover" || (message.seq <= taken && !stopped)));
      if (!had) break;
      keep = message.seq;
    }
    return keep;
  }

  /**
   * Publishes `takeover` as the database's next message; once acknowledged, this server is
   * its primary: publishing goes on from `atTx` and writes are taken.
   */
  async #publishTakeover(pump: Pump, nc: NatsConnection, takeover: TakeoverRecord): Promise<void> {
    const subject = subjectOf(pump.dbKey);
    const body: TakeoverBody = {
      previousPrimary: takeover.previousPrimary,
      promotedAt: takeover.promotedAt,
      ...(takeover.discarded === undefined ? {} : { discarded: takeover.discarded }),
    };
    let streamSeq: number | undefined;
    if (takeover.discarded !== undefined) {
      const deleted = await deleteAfter(nc, subject, takeover.prevSeq);
      streamSeq = (await (await jetstreamManager(nc)).streams.info(STREAM_NAME)).state.last_seq;
      if (deleted > 0) {
        log.warn("--promote-discard-unapplied: deleted the messages this replica lacked", {
          identity: pump.dbKey,
          afterSeq: takeover.prevSeq,
          messages: deleted,
        });
      }
    }
    let seq: number;
    try {
      seq = await publish(
        jetstream(nc),
        subject,
        new TextEncoder().encode(JSON.stringify(body)),
        [
          [HEADER_KIND, "takeover"],
          [HEADER_AT_TX, String(takeover.atTx)],
          [HEADER_PRIMARY, this.#primaryId],
        ],
        `${pump.dbKey}:takeover:${this.#primaryId}`,
        { acked: takeover.atTx, lastSeq: takeover.prevSeq },
        { chunkBytes: this.#chunkBytes(), key: this.#key, streamSeq },
      );
    } catch (error) {
      if (!(error instanceof WrongSequenceError)) throw error;
      const last = await lastSubjectMessage(nc, subject);
      if (last && (last.header?.get(HEADER_PRIMARY) ?? "") === this.#primaryId) {
        // Published before (its ack or the file's removal lost): publishing resumes after it.
        await this.#takeoverDone(pump);
        return;
      }
      if (takeover.discarded === undefined) {
        throw new ConflictError(
          `its takeover was refused: the subject moved on after the promotion checked it ` +
            `(message ${last?.seq ?? 0} of primary "${
              last?.header?.get(HEADER_PRIMARY) ?? ""
            }" follows ${takeover.prevSeq}): the old primary is still publishing, and this ` +
            `server is behind it`,
        );
      }
      // Promoted at what it has, whatever came since: deleted again on the retry.
      throw error;
    }
    pump.state = { acked: takeover.atTx, lastSeq: seq };
    await this.#saveState(pump);
    await this.#takeoverDone(pump);
    log.info("replication: takeover published; this server is the database's primary", {
      identity: pump.dbKey,
      atTx: takeover.atTx,
      seq,
    });
  }

  /** The takeover is in JetStream: the pump asks where the subject stands, writes are taken. */
  async #takeoverDone(pump: Pump): Promise<void> {
    pump.state = undefined;
    await Deno.remove(`${pump.dir}/replication/${TAKEOVER_FILE}`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    this.#takeovers.delete(pump.dbKey);
    this.#onReadOnlyChange(pump.dbKey);
  }

  /**
   * The first message on the database's subject after `afterSeq` that another primary
   * published, if it is a takeover (its tag checked with a key); else undefined.
   */
  async #takeoverAfter(
    nc: NatsConnection,
    dbKey: string,
    afterSeq: number,
  ): Promise<FoundTakeover | undefined> {
    const subject = subjectOf(dbKey);
    for await (const message of subjectMessagesAfter(nc, subject, afterSeq)) {
      const primary = message.header?.get(HEADER_PRIMARY) ?? "";
      if (primary === this.#primaryId) continue;
      const kind = message.header?.get(HEADER_KIND);
      // A deletion by another primary: it took over, then deleted the database (which purged
      // the takeover with the rest of its history).
      if (kind !== "takeover" && kind !== "delete") return undefined;
      if (
        this.#key !== undefined &&
        (await checkTag(this.#key, subject, message.header, message.data)) !== undefined
      ) {
        return undefined;
      }
      if (kind === "delete") return { seq: message.seq, primary, atTx: -1, promotedAt: "" };
      const atTx = Number(message.header?.get(HEADER_AT_TX));
      if (!Number.isSafeInteger(atTx) || atTx < 0) return undefined;
      let promotedAt = "";
      try {
        promotedAt = String(JSON.parse(new TextDecoder().decode(message.data))?.promotedAt ?? "");
      } catch { /* the time is only for the message */ }
      return { seq: message.seq, primary, atTx, promotedAt };
    }
    return undefined;
  }

  /**
   * Another primary took this database over: never publish it again, refuse its writes
   * (persisted in `fenced.json`, read again at start), and throw the reason.
   */
  async #fence(pump: Pump, takeover: FoundTakeover): Promise<never> {
    const lost = takeover.atTx >= 0 && pump.durable > takeover.atTx
      ? `; its transactions [${takeover.atTx}, ${pump.durable}) here were never taken over ` +
        `and exist only on this server`
      : "";
    const reason = takeover.atTx < 0
      ? `This database was taken over and then deleted by another primary ("${takeover.primary}", ` +
        `stream message ${takeover.seq}): this server (primary "${this.#primaryId}") is fenced ` +
        `and refuses its writes`
      : `This database was taken over by another primary ("${takeover.primary}", ` +
        `stream message ${takeover.seq}${
          takeover.promotedAt === "" ? "" : `, promoted ${takeover.promotedAt}`
        }) from transaction ${takeover.atTx}: this server (primary "${this.#primaryId}") is ` +
        `fenced and refuses its writes; send them to the new primary${lost}`;
    await Deno.mkdir(`${pump.dir}/replication`, { recursive: true });
    await writeAtomic(
      `${pump.dir}/replication/${FENCED_FILE}`,
      JSON.stringify(
        {
          reason,
          primary: takeover.primary,
          takeoverSeq: takeover.seq,
          atTx: takeover.atTx,
          durableTx: pump.durable,
          fencedAt: new Date().toISOString(),
        },
        null,
        2,
      ),
    );
    this.#fenced.set(pump.dbKey, reason);
    log.error("replication: this database was taken over by another primary; fenced", {
      identity: pump.dbKey,
      primary: takeover.primary,
      atTx: takeover.atTx,
      durableTx: pump.durable,
    });
    this.#onReadOnlyChange(pump.dbKey);
    throw new ConflictError(reason);
  }

  async #saveState(pump: Pump): Promise<void> {
    if (pump.stopped !== undefined) return; // Deleted meanwhile: never recreate its directory.
    await Deno.mkdir(`${pump.dir}/replication`, { recursive: true });
    // No fsync: the state only saves a question to JetStream, whose last message decides.
    const path = `${pump.dir}/replication/state.json`;
    await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(pump.state));
    await Deno.rename(`${path}.tmp`, path);
  }
}

class ConflictError extends Error {
  override name = "ConflictError";
}

/** JetStream refused a publish: the subject's last message is not the one it expected. */
class WrongSequenceError extends Error {
  override name = "WrongSequenceError";
}

/** `--promote` refused (replica behind, stopped databases, …): the server does not start. */
export class PromotionRefusedError extends Error {
  override name = "PromotionRefusedError";
}

/** `--promote` and `--promote-discard-unapplied`. */
export interface PromoteOptions {
  /**
   * Promote databases the replica is behind on anyway, at what it has: what the stream holds
   * past its log (and a stopped database's messages after its stop) is lost.
   */
  discardUnapplied: boolean;
}

/** A database of the replica being promoted (server/server.ts reads the registry). */
export interface PromotedDatabase {
  dbKey: string;
  /** Transactions in its local log (durable end). */
  localEnd: number;
  /** Its name (or identity) for messages. */
  label: string;
}

/** `<database>/replication/takeover.json`: a takeover to publish before anything else. */
interface TakeoverRecord {
  /** The log offset the new primary continues from (its log's end at promotion). */
  atTx: number;
  /** The subject's last message when promotion checked it (the takeover must follow it). */
  prevSeq: number;
  previousPrimary: string;
  /** Promoted with --promote-discard-unapplied while behind: what was given up. */
  discarded?: string;
  promotedAt: string;
}

/** What a `takeover` message's body holds (JSON; covered by Lc-Auth like any body). */
export interface TakeoverBody {
  previousPrimary: string;
  promotedAt: string;
  discarded?: string;
}

/** A takeover found after this primary's last message (`#takeoverAfter`). */
interface FoundTakeover {
  seq: number;
  primary: string;
  atTx: number;
  promotedAt: string;
}

/** Written in the data directory once a promotion is done (later starts skip the checks). */
const PROMOTED_FILE = "replication-promoted.json";
/** The follower's position file (replication/follower.ts): this directory was a replica's. */
const FOLLOW_FILE = "replication-follow.json";
const TAKEOVER_FILE = "takeover.json";
const FENCED_FILE = "fenced.json";

/**
 * Publishes with dedupe id and ordering check; returns the stream sequence of the (last)
 * message. A body over `chunkBytes` goes out in chunks (replication/chunks.ts), each expecting
 * the one before it; they carry no dedupe id (a failed publish is followed by a fresh look at
 * the subject's last message, and the chunks then start over).
 */
async function publish(
  js: ReturnType<typeof jetstream>,
  subject: string,
  body: Uint8Array,
  entries: [string, string][],
  msgID: string,
  state: PumpState,
  /**
   * `sha256`: the body's, when the caller has it already (a bundle of up to 64 MiB).
   * `streamSeq`: expect the whole stream's last sequence instead of the subject's (a forced
   * takeover after deleting the subject's newest messages: nats-server 2.9 then answers the
   * subject's last sequence as 0).
   */
  options: { chunkBytes: number; key: CryptoKey | undefined; sha256?: string; streamSeq?: number },
): Promise<number> {
  const { chunkBytes, key } = options;
  const withHeaders = (more: [string, string][], part: Uint8Array) =>
    signedHeaders(key, subject, entries.concat(more), part);
  try {
    if (body.length <= chunkBytes) {
      const ack = await js.publish(subject, body, {
        headers: await withHeaders([[HEADER_PREV_SEQ, String(state.lastSeq)]], body),
        msgID,
        expect: options.streamSeq === undefined
          ? { lastSubjectSequence: state.lastSeq }
          : { lastSequence: options.streamSeq },
      });
      return ack.seq;
    }
    const sha256 = options.sha256 ?? await sha256Hex(body);
    const parts = splitBody(body, chunkBytes);
    // The whole message's tag rides on every chunk (and is covered by each chunk's own tag).
    const wholeTag: [string, string][] = key === undefined
      ? []
      : [[HEADER_AUTH_BODY, await messageTag(key, subject, headerReader(entries), body, true)]];
    let lastSeq = state.lastSeq;
    for (let index = 0; index < parts.length; index++) {
      const ack = await js.publish(subject, parts[index], {
        headers: await withHeaders(
          [
            ...chunkHeaders(index, parts.length, body.length, sha256),
            ...wholeTag,
            [HEADER_PREV_SEQ, String(lastSeq)],
          ],
          parts[index],
        ),
        expect: { lastSubjectSequence: lastSeq },
      });
      lastSeq = ack.seq;
    }
    return lastSeq;
  } catch (error) {
    if (/wrong last sequence/i.test(messageOf(error))) {
      throw new WrongSequenceError(
        `JetStream refused the publish (${messageOf(error)}); asking it again`,
      );
    }
    throw error;
  }
}

/** The last message on `subject`, or null when it has none. */
async function lastSubjectMessage(nc: NatsConnection, subject: string) {
  const jsm = await jetstreamManager(nc);
  try {
    return await jsm.streams.getMessage(STREAM_NAME, { last_by_subj: subject });
  } catch (error) {
    if (/no message found|not found/i.test(messageOf(error))) return null;
    throw error;
  }
}

/**
 * The messages of `subject` after stream sequence `afterSeq`, in order (JetStream's
 * `next_by_subj`; the client's type names only `seq` and `last_by_subj`).
 */
async function* subjectMessagesAfter(nc: NatsConnection, subject: string, afterSeq: number) {
  const jsm = await jetstreamManager(nc);
  for (let seq = afterSeq + 1;;) {
    let message;
    try {
      message = await jsm.streams.getMessage(
        STREAM_NAME,
        { seq, next_by_subj: subject } as unknown as { seq: number },
      );
    } catch (error) {
      if (/no message found|not found/i.test(messageOf(error))) return;
      throw error;
    }
    if (!message) return;
    yield message;
    seq = message.seq + 1;
  }
}

/** Deletes every message of `subject` after `afterSeq`; returns how many. */
async function deleteAfter(nc: NatsConnection, subject: string, afterSeq: number): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const doomed: number[] = [];
  for await (const message of subjectMessagesAfter(nc, subject, afterSeq)) {
    doomed.push(message.seq);
  }
  for (const seq of doomed) await jsm.streams.deleteMessage(STREAM_NAME, seq, false);
  return doomed.length;
}

/** NATS headers of `entries`, with their Lc-Auth tag over `body` when there is a key. */
async function signedHeaders(
  key: CryptoKey | undefined,
  subject: string,
  entries: [string, string][],
  body: Uint8Array,
): Promise<ReturnType<typeof headers>> {
  const h = headers();
  for (const [name, value] of entries) h.set(name, value);
  if (key !== undefined) {
    h.set(HEADER_AUTH, await messageTag(key, subject, headerReader(entries), body));
  }
  return h;
}

function headerReader(entries: [string, string][]): NonNullable<HeaderReader> {
  const map = new Map(entries);
  return { get: (name) => map.get(name) ?? "" };
}

/** A JSON file's value, undefined when it does not exist (unreadable JSON: null). */
async function readJson(path: string): Promise<Record<string, unknown> | null | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * What the follower left in this data directory (replication/follower.ts): per database the
 * stream sequence of the last message it took, and the databases it stopped following.
 */
async function readFollowState(
  dataDir: string,
): Promise<{ subjectSeq: Map<string, number>; stopped: Map<string, string> }> {
  const subjectSeq = new Map<string, number>();
  const position = await readJson(`${dataDir}/${FOLLOW_FILE}`);
  const seqs = position?.subjectSeq;
  if (seqs && typeof seqs === "object") {
    for (const [dbKey, seq] of Object.entries(seqs)) {
      if (Number.isSafeInteger(seq)) subjectSeq.set(dbKey, seq as number);
    }
  }
  const stopped = new Map<string, string>();
  try {
    for await (const entry of Deno.readDir(`${dataDir}/replication-stopped`)) {
      const match = /^([0-9a-f]{64})\.json$/.exec(entry.name);
      if (!match) continue;
      const marker = await readJson(`${dataDir}/replication-stopped/${entry.name}`);
      stopped.set(
        match[1],
        typeof marker?.reason === "string" ? marker.reason : "(unreadable stop marker)",
      );
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { subjectSeq, stopped };
}

async function readState(dir: string): Promise<PumpState | undefined> {
  try {
    const value = JSON.parse(await Deno.readTextFile(`${dir}/replication/state.json`));
    if (Number.isSafeInteger(value?.acked) && Number.isSafeInteger(value?.lastSeq)) return value;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return undefined;
}

function moduleFileName(atTx: number, pending = false): string {
  return `module-${String(atTx).padStart(20, "0")}${pending ? ".pending" : ""}.json`;
}

async function moduleFiles(dir: string): Promise<{ at: number; pending: boolean }[]> {
  const found: { at: number; pending: boolean }[] = [];
  try {
    for await (const entry of Deno.readDir(`${dir}/replication`)) {
      const match = /^module-(\d{20})(\.pending)?\.json$/.exec(entry.name);
      if (match) found.push({ at: Number(match[1]), pending: match[2] !== undefined });
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found.sort((a, b) => a.at - b.at);
}

/**
 * A module change left pending by a crash: it took when the database now runs its bundle
 * (`module.js`, once no `module.next.js` waits to be tried), else it is dropped.
 */
export async function resolveStalePending(dir: string, live: ReadonlySet<number>): Promise<void> {
  // A change under way in this process is not stale: its publish settles it (a new database's
  // module.js does not exist yet, and its pending file would be taken for a failed one).
  const pending = (await moduleFiles(dir)).filter((file) => file.pending && !live.has(file.at));
  if (pending.length === 0 || (await exists(`${dir}/module.next.js`))) return;
  const running = await Deno.readTextFile(`${dir}/module.js`).catch(() => undefined);
  for (const { at } of pending) {
    const path = `${dir}/replication/${moduleFileName(at, true)}`;
    const body = JSON.parse(await Deno.readTextFile(path)) as ModuleBody;
    if (running !== undefined && body.bundle === running) {
      await Deno.rename(path, `${dir}/replication/${moduleFileName(at)}`);
    } else await Deno.remove(path);
  }
}

async function removeModule(dir: string, atTx: number): Promise<void> {
  await Deno.remove(`${dir}/replication/${moduleFileName(atTx)}`).catch(() => {});
}

/** This data directory's primary id: random, made once (`replication-primary-id`). */
async function primaryId(dataDir: string): Promise<string> {
  const path = `${dataDir}/replication-primary-id`;
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const id = toHex(bytes);
  await writeAtomic(path, id);
  return id;
}

/**
 * Writes a file by rename, fsynced with its directory, so that after a crash the path holds the
 * old text or the new, never a torn one or none (the module file must exist before its module
 * runs; a follower's stop marker must survive). `mode` applies to a newly created file.
 */
export async function writeAtomic(path: string, text: string, mode?: number): Promise<void> {
  const temp = `${path}.tmp`;
  const file = await Deno.open(temp, { write: true, create: true, truncate: true, mode });
  try {
    const bytes = new TextEncoder().encode(text);
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(temp, path);
  const slash = path.lastIndexOf("/");
  await syncDirectory(slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
