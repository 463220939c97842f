/**
 * A read replica (`lightcone start --follow nats://host:port`): consumes the primary's stream
 * and makes each database's history its own.
 *
 * One ordered consumer over the whole stream, from the sequence after the last message this
 * data directory finished (`replication-follow.json`). Messages are handled one at a time, in
 * stream order: a module message creates the database (no `init`: its transactions follow in
 * the log) or runs the same module update at the same log offset; a log message's commits are
 * checked (CRC32C, contiguous offsets) and handed to the database process, which commits them
 * as its own transactions (its own commit log, its subscribers); the next message waits until
 * they are fsynced here. The local log decides what is new: transactions below its end are
 * skipped (a message seen again after a restart), a message starting past its end is a gap,
 * which stops following that database with an error naming both offsets.
 *
 * With a replication key (replication/auth.ts) every message's HMAC tag is checked before
 * anything else of it is read; a message without a right tag stops its database like a damaged
 * one, and so does a tagged message whose Lc-Prev-Seq is not the last message of its database
 * taken here (a captured message published again). A stopped database stays stopped across restarts: `<data>/replication-stopped/<identity>.json`
 * holds the reason; deleting that file (and restarting the replica) clears it, and following
 * that database resumes at the message that stopped it (after it, for a message refused as
 * unauthenticated), read again from the stream.
 */
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { log } from "../lib/log.ts";
import {
  checkRecordLayout,
  decodeTxRecord,
  forEachRecord,
  lengthPrefixed,
  readFrameAt,
} from "../storage/mod.ts";
import {
  connectNats,
  dbKeyOf,
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
} from "./stream.ts";
import { messageOf, writeAtomic } from "./primary.ts";
import { ChunkAssembler, ChunkError, chunkInfo } from "./chunks.ts";
import { checkTag, type HeaderReader } from "./auth.ts";

/** What the follower needs of the server's databases (server/server.ts adapts the registry). */
export interface FollowTarget {
  /** Transactions in the local log of `dbKey` (its durable end), undefined: no such database. */
  localEnd(dbKey: string): number | undefined;
  createDatabase(dbKey: string, body: ModuleBody): Promise<void>;
  /** Deletes the database and its data (the primary deleted it). */
  deleteDatabase(dbKey: string): Promise<void>;
  /** Runs the module update (no-op when the database runs this bundle already). */
  updateModule(dbKey: string, bundle: string): Promise<void>;
  /** Commits `count` records from log offset `firstTx` and resolves once they are durable. */
  apply(dbKey: string, firstTx: number, count: number, records: Uint8Array): Promise<void>;
}

export interface FollowerMetrics {
  dbKey: string;
  appliedTx: number;
  stopped: string | undefined;
}

const RETRY_MS = 1000;
/** A first connection to NATS slower than this is logged (once). */
const SLOW_CONNECT_WARN_MS = 5_000;
/** Tries of one message on a database that fails to take it (a crash loop) before giving up. */
const APPLY_ATTEMPTS_MAX = 30;

class GapError extends Error {
  override name = "GapError";
}

/**
 * Thrown by a FollowTarget for a message it can never take (e.g. a module message naming an
 * invalid database name): following that database stops at once, without the retries a failing
 * database gets.
 */
export class MessageRefusedError extends Error {
  override name = "MessageRefusedError";
}

/** What `<data>/replication-stopped/<identity>.json` holds. */
interface StoppedMarker {
  reason: string;
  stoppedAt: string;
  /** Stream sequence following the database resumes at once the marker is deleted. */
  resumeSeq: number;
}

export class Follower {
  readonly #dataDir: string;
  readonly #server: string;
  readonly #target: FollowTarget;
  readonly #key: CryptoKey | undefined;
  /** PEM of `--nats-ca` (TLS to NATS). */
  readonly #natsCa: string | undefined;
  /** Per stopped database, where following it resumes once its marker is deleted. */
  readonly #resume = new Map<string, number>();
  /**
   * Per database, the stream sequence of the last message of it taken (persisted with the
   * position): with a key, a message must name it as its Lc-Prev-Seq, so a captured message
   * published again later (a replay) is refused.
   */
  readonly #subjectSeq = new Map<string, number>();
  /**
   * Per database taken over by a promoted replica (a `takeover` message), its new primary's id
   * and the takeover's stream sequence (persisted with the position): later messages of
   * another primary (the fenced one) are refused.
   */
  readonly #primaries = new Map<string, { primary: string; seq: number }>();
  #nc: NatsConnection | undefined;
  #closed = false;
  #lastSeq = 0;
  /** Messages in the stream after the last one handled (from the consumer's delivery info). */
  #pending = 0;
  readonly #stopped = new Map<string, string>();
  readonly #seen = new Set<string>();
  /** Messages refused (with a key) for databases this replica does not have. */
  #refusedUnknown = 0;
  /** Per database, the chunks of a message gathered so far (replication/chunks.ts). */
  readonly #chunks = new Map<string, ChunkAssembler>();
  #loop: Promise<void> | undefined;
  #slowConnect: ReturnType<typeof setTimeout> | undefined;
  /** The consumer's iterator: closing the connection alone does not always end it. */
  #messages: { stop(error?: Error): void } | undefined;

  constructor(
    options: {
      dataDir: string;
      server: string;
      target: FollowTarget;
      key?: CryptoKey;
      natsCa?: string;
    },
  ) {
    this.#dataDir = options.dataDir;
    this.#server = options.server;
    this.#target = options.target;
    this.#key = options.key;
    this.#natsCa = options.natsCa;
  }

  async start(): Promise<void> {
    const position = await this.#readPosition();
    this.#lastSeq = position.lastSeq;
    for (const [dbKey, seq] of position.subjectSeq) this.#subjectSeq.set(dbKey, seq);
    for (const [dbKey, taken] of position.primaries) this.#primaries.set(dbKey, taken);
    const markers = await this.#readMarkers();
    for (const [dbKey, marker] of markers) {
      this.#stopped.set(dbKey, marker.reason);
      this.#seen.add(dbKey);
      this.#resume.set(dbKey, position.resume.get(dbKey) ?? marker.resumeSeq);
      log.error("replication: this database stays stopped (stopped before the restart)", {
        identity: dbKey,
        error: marker.reason,
        stoppedAt: marker.stoppedAt,
        clear: `delete ${this.#markerPath(dbKey)} and restart`,
      });
    }
    // A marker the operator deleted: its database is read again from where it stopped.
    for (const [dbKey, resumeSeq] of position.resume) {
      if (markers.has(dbKey)) continue;
      this.#lastSeq = Math.min(this.#lastSeq, resumeSeq - 1);
      log.info("replication: following a stopped database again (its marker was deleted)", {
        identity: dbKey,
        fromSeq: resumeSeq,
      });
    }
    await this.#savePosition();
    this.#loop = this.#run();
  }

  /** Stream messages not handled yet, and per database what is applied. */
  metrics(): { pendingMessages: number; databases: FollowerMetrics[] } {
    return {
      pendingMessages: this.#pending,
      databases: [...this.#seen].map((dbKey) => ({
        dbKey,
        appliedTx: this.#target.localEnd(dbKey) ?? 0,
        stopped: this.#stopped.get(dbKey),
      })),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#slowConnect);
    this.#messages?.stop();
    await this.#nc?.close().catch(() => {});
    // A loop still waiting for its first connection (NATS unreachable, its certificate refused)
    // is not waited for: a connection that comes later is closed by the loop.
    if (this.#nc !== undefined) await this.#loop?.catch(() => {});
  }

  async #run(): Promise<void> {
    let warned = false;
    // The client retries its first connection by itself, silently: say so when it takes a while.
    this.#slowConnect = setTimeout(() => {
      log.warn(
        "replication: NATS is not answering yet (down, unreachable, or its TLS certificate " +
          "refused); following waits",
        { server: natsDisplay(this.#server) },
      );
    }, SLOW_CONNECT_WARN_MS);
    while (!this.#closed) {
      try {
        this.#nc ??= await connectNats(this.#server, "lightcone follower", { ca: this.#natsCa });
        clearTimeout(this.#slowConnect);
        if (this.#closed) {
          await this.#nc.close().catch(() => {});
          return;
        }
        await ensureStream(this.#nc);
        const js = jetstream(this.#nc);
        const consumer = await js.consumers.get(STREAM_NAME, { opt_start_seq: this.#lastSeq + 1 });
        const messages = await consumer.consume();
        this.#messages = messages;
        if (this.#closed) break;
        log.info("replication: following", {
          server: natsDisplay(this.#server),
          fromSeq: this.#lastSeq + 1,
        });
        warned = false;
        for await (const message of messages) {
          if (this.#closed) break;
          await this.#handle(message.seq, message.subject, message.headers, message.data);
          this.#lastSeq = message.seq;
          this.#pending = message.info.pending;
          await this.#savePosition();
        }
      } catch (error) {
        if (this.#closed) return;
        if (!warned) {
          log.warn("replication: following failed, retrying", {
            server: natsDisplay(this.#server),
            error: messageOf(error),
          });
          warned = true;
        }
      }
      if (!this.#closed) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  async #handle(
    seq: number,
    subject: string,
    headers: HeaderReader,
    data: Uint8Array,
  ): Promise<void> {
    const dbKey = dbKeyOf(subject);
    if (dbKey === undefined) {
      log.warn("replication: skipped a message on an unknown subject", { subject });
      return;
    }
    if (this.#stopped.has(dbKey)) return;
    if (this.#key !== undefined) {
      // Before anything of the message is read: a message without the right tag is not ours.
      const problem = await checkTag(this.#key, subject, headers, data) ??
        this.#checkChain(dbKey, seq, headers!);
      if (problem !== undefined) {
        if (this.#target.localEnd(dbKey) === undefined && !this.#subjectSeq.has(dbKey)) {
          // A database this replica never had: nothing to stop, and a marker (and a metric)
          // per forged subject would let anyone without the key fill the disk.
          this.#refusedUnknown++;
          if ((this.#refusedUnknown & (this.#refusedUnknown - 1)) === 0) {
            log.warn("replication: refused a message for a database this replica does not have", {
              identity: dbKey,
              seq,
              error: problem,
              refusedSoFar: this.#refusedUnknown,
            });
          }
          return;
        }
        await this.#stop(dbKey, `message ${seq} refused: ${problem}`, seq + 1);
        return;
      }
    }
    this.#seen.add(dbKey);
    if (seq > (this.#subjectSeq.get(dbKey) ?? 0)) this.#subjectSeq.set(dbKey, seq);
    const firstSeq = this.#chunks.get(dbKey)?.startSeq || seq;
    try {
      const whole = await this.#gather(dbKey, seq, headers, data);
      if (whole === undefined) return;
      if (this.#key !== undefined && whole !== data) {
        const problem = await checkTag(this.#key, subject, headers, whole, true);
        if (problem !== undefined) {
          await this.#stop(
            dbKey,
            `chunked message ${firstSeq}-${seq} refused: ${problem}`,
            seq + 1,
          );
          return;
        }
      }
      data = whole;
    } catch (error) {
      if (!(error instanceof ChunkError)) throw error;
      await this.#stop(dbKey, `a broken chunked message: ${error.message}`, firstSeq);
      return;
    }
    // A database restarting after a crash (~0.5 s) is waited for; one that cannot take the
    // message for APPLY_ATTEMPTS_MAX tries stops following, so it never blocks the others.
    for (let attempt = 1;; attempt++) {
      try {
        await this.#apply(dbKey, headers, data, seq);
        return;
      } catch (error) {
        if (this.#closed) throw error;
        const gap = error instanceof GapError || error instanceof MessageRefusedError;
        if (!gap && attempt < APPLY_ATTEMPTS_MAX) {
          if (attempt === 1) {
            log.warn("replication: applying a message failed, retrying", {
              identity: dbKey,
              error: messageOf(error),
            });
          }
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
          continue;
        }
        const reason = gap
          ? (error as Error).message
          : `applying a message failed ${attempt} times: ${messageOf(error)}`;
        await this.#stop(dbKey, reason, firstSeq);
        return;
      }
    }
  }

  /**
   * Undefined when a tagged message follows the last message of its database taken here (its
   * signed Lc-Prev-Seq names it), else why not. A message at or before that one is one read
   * again (a restart, a stop cleared): the stream's past does not change, it is taken.
   */
  #checkChain(
    dbKey: string,
    seq: number,
    headers: NonNullable<HeaderReader>,
  ): string | undefined {
    const prev = headers.get(HEADER_PREV_SEQ) ?? "";
    if (!/^(0|[1-9][0-9]{0,15})$/.test(prev)) {
      return `a message without a valid ${HEADER_PREV_SEQ} header`;
    }
    const known = this.#subjectSeq.get(dbKey);
    if (known === undefined || seq <= known || Number(prev) === known) return undefined;
    if (headers.get(HEADER_KIND) === "takeover") {
      return `a takeover that follows message ${prev} of this database, but the last one taken ` +
        `here was ${known}: the new primary was promoted while behind this replica (the ` +
        `messages it lacked were discarded), so the histories differ; make this replica again ` +
        `from an empty data directory`;
    }
    return `it follows message ${prev} of this database, but the last one taken was ${known} ` +
      `(a captured message published again?)`;
  }

  /**
   * Stops following `dbKey` for good (persisted, see the module comment); `resumeSeq`: where
   * following it starts again once the operator deletes the marker.
   */
  async #stop(dbKey: string, reason: string, resumeSeq: number): Promise<void> {
    this.#seen.add(dbKey);
    this.#stopped.set(dbKey, reason);
    this.#resume.set(dbKey, resumeSeq);
    this.#chunks.delete(dbKey);
    const marker: StoppedMarker = { reason, stoppedAt: new Date().toISOString(), resumeSeq };
    await Deno.mkdir(this.#markerDir(), { recursive: true });
    await writeAtomic(this.#markerPath(dbKey), JSON.stringify(marker, null, 2) + "\n", 0o600);
    log.error("replication: stopped following this database", {
      identity: dbKey,
      error: reason,
      clear: `delete ${this.#markerPath(dbKey)} and restart`,
    });
  }

  #markerDir(): string {
    return `${this.#dataDir}/replication-stopped`;
  }

  #markerPath(dbKey: string): string {
    return `${this.#markerDir()}/${dbKey}.json`;
  }

  async #readMarkers(): Promise<Map<string, StoppedMarker>> {
    const markers = new Map<string, StoppedMarker>();
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.#markerDir()));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return markers;
      throw error;
    }
    for (const entry of entries) {
      const match = /^([0-9a-f]{64})\.json$/.exec(entry.name);
      if (!match) continue;
      const path = this.#markerPath(match[1]);
      let marker: StoppedMarker;
      try {
        marker = JSON.parse(await Deno.readTextFile(path));
      } catch (error) {
        // A torn marker still stops its database: a stop must never be lost.
        marker = {
          reason: `(unreadable marker: ${messageOf(error)})`,
          stoppedAt: "",
          resumeSeq: 0,
        };
      }
      if (typeof marker?.reason !== "string") marker = { ...marker, reason: "(no reason kept)" };
      if (!Number.isSafeInteger(marker.resumeSeq) || marker.resumeSeq < 0) marker.resumeSeq = 0;
      markers.set(match[1], marker);
    }
    return markers;
  }

  /**
   * A whole message's body: `data` itself, or once a chunked message's last chunk came, the
   * body its chunks make (undefined before). A chunk after a restart whose earlier chunks were
   * handled before it (the whole message was applied) is skipped like that message.
   */
  async #gather(
    dbKey: string,
    seq: number,
    headers: HeaderReader,
    data: Uint8Array,
  ): Promise<Uint8Array | undefined> {
    const info = chunkInfo(headers);
    if (info === undefined) {
      // A whole message: a chunked one left part way was started over by the primary.
      this.#chunks.delete(dbKey);
      return data;
    }
    let assembler = this.#chunks.get(dbKey);
    if (assembler === undefined) {
      if (info.index > 0 && this.#applied(dbKey, headers!)) return undefined;
      this.#chunks.set(dbKey, assembler = new ChunkAssembler());
    }
    try {
      const whole = await assembler.add(seq, info, data);
      if (whole !== undefined) this.#chunks.delete(dbKey);
      return whole;
    } catch (error) {
      this.#chunks.delete(dbKey);
      throw error;
    }
  }

  /** True when the local log already holds what a message brings. */
  #applied(dbKey: string, headers: NonNullable<HeaderReader>): boolean {
    const end = this.#target.localEnd(dbKey);
    if (end === undefined) return false;
    const kind = headers.get(HEADER_KIND);
    if (kind === "log") return Number(headers.get(HEADER_END_TX)) <= end;
    if (kind === "module") return Number(headers.get(HEADER_AT_TX)) < end;
    return false;
  }

  #apply(
    dbKey: string,
    headers: HeaderReader,
    data: Uint8Array,
    seq: number,
  ): Promise<void> {
    const kind = headers?.get(HEADER_KIND);
    const primary = headers?.get(HEADER_PRIMARY) ?? "";
    const taken = this.#primaries.get(dbKey);
    if (taken !== undefined && seq > taken.seq && primary !== taken.primary) {
      return Promise.reject(
        new GapError(
          `a ${kind ?? ""} message of primary "${primary}" after primary "${taken.primary}" ` +
            `took this database over (stream message ${taken.seq})`,
        ),
      );
    }
    if (headers && kind === "takeover") {
      const atTx = intHeader(headers, HEADER_AT_TX);
      return Promise.resolve().then(() => this.#takeover(dbKey, atTx, primary, seq));
    }
    if (headers && kind === "module") {
      return this.#module(dbKey, intHeader(headers, HEADER_AT_TX), data);
    }
    if (headers && kind === "log") {
      return this.#log(
        dbKey,
        intHeader(headers, HEADER_FIRST_TX),
        intHeader(headers, HEADER_END_TX),
        data,
      );
    }
    if (kind === "delete") {
      if (this.#target.localEnd(dbKey) === undefined) return Promise.resolve();
      return this.#target.deleteDatabase(dbKey).then(() =>
        log.info("replication: database deleted", { identity: dbKey })
      );
    }
    return Promise.reject(new GapError(`a message of unknown kind "${kind ?? ""}"`));
  }

  async #module(dbKey: string, atTx: number, data: Uint8Array): Promise<void> {
    let body: ModuleBody;
    try {
      body = JSON.parse(new TextDecoder().decode(data));
    } catch {
      throw new GapError("a module message that is not JSON");
    }
    if (typeof body?.bundle !== "string" || typeof body.owner !== "string") {
      throw new GapError("a module message without bundle or owner");
    }
    if (!/^[0-9a-f]{64}$/i.test(body.owner)) {
      throw new GapError("a module message whose owner is not an identity");
    }
    if (
      !Array.isArray(body.names) ||
      !body.names.every((name: unknown) => typeof name === "string" && name !== "")
    ) {
      throw new GapError("a module message whose names are not a list of names");
    }
    const end = this.#target.localEnd(dbKey);
    if (end === undefined) {
      if (atTx !== 0) {
        throw new GapError(
          `the stream starts this database with a module update at transaction ${atTx}: ` +
            `its history before that is missing`,
        );
      }
      await this.#target.createDatabase(dbKey, body);
      log.info("replication: database created", { identity: dbKey });
      return;
    }
    if (atTx < end) return; // Applied before a restart.
    if (atTx > end) {
      throw new GapError(
        `a module update at transaction ${atTx}, but the local log ends at ${end}`,
      );
    }
    await this.#target.updateModule(dbKey, body.bundle);
    log.info("replication: module updated", { identity: dbKey, atTx });
  }

  /**
   * A promoted replica continues the database as its primary from its log's end `atTx`: this
   * replica's log must end there too (a log that goes further holds transactions of the old
   * primary the new one never had: following stops, the histories differ).
   */
  #takeover(dbKey: string, atTx: number, primary: string, seq: number): void {
    if (seq <= (this.#primaries.get(dbKey)?.seq ?? 0)) return; // Taken before a restart.
    const end = this.#target.localEnd(dbKey);
    if (end === undefined) {
      throw new GapError(
        `a takeover (at transaction ${atTx}) of a database whose module never came`,
      );
    }
    if (end > atTx) {
      throw new GapError(
        `primary "${primary}" took this database over from transaction ${atTx}, but this ` +
          `replica's log holds transactions [${atTx}, ${end}) of the previous primary that ` +
          `the new one does not have (it was promoted while behind): the histories differ; ` +
          `make this replica again from an empty data directory`,
      );
    }
    if (end < atTx) {
      throw new GapError(
        `gap in the replicated log: primary "${primary}" took this database over from ` +
          `transaction ${atTx}, the local log ends at ${end}`,
      );
    }
    this.#primaries.set(dbKey, { primary, seq });
    log.info("replication: the database has a new primary (takeover)", {
      identity: dbKey,
      primary,
      atTx,
    });
  }

  async #log(dbKey: string, firstTx: number, endTx: number, data: Uint8Array): Promise<void> {
    const end = this.#target.localEnd(dbKey);
    if (end === undefined) {
      throw new GapError(
        `transactions [${firstTx}, ${endTx}) of a database whose module never came`,
      );
    }
    if (endTx <= firstTx) {
      throw new GapError(`a log message announcing the empty range [${firstTx}, ${endTx})`);
    }
    // Checked whole before anything is skipped or applied: a damaged message is never taken
    // for one seen before.
    const records = checkedRecords(firstTx, endTx, data, end);
    if (endTx <= end) return; // A message seen again after a restart.
    if (firstTx > end) {
      throw new GapError(
        `gap in the replicated log: the next message starts at transaction ${firstTx}, ` +
          `the local log ends at ${end}`,
      );
    }
    await this.#target.apply(dbKey, end, records.length, lengthPrefixed(records));
  }

  async #readPosition(): Promise<
    {
      lastSeq: number;
      resume: Map<string, number>;
      subjectSeq: Map<string, number>;
      primaries: Map<string, { primary: string; seq: number }>;
    }
  > {
    let value;
    try {
      value = JSON.parse(await Deno.readTextFile(this.#positionPath()));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        return { lastSeq: 0, resume: new Map(), subjectSeq: new Map(), primaries: new Map() };
      }
      throw error;
    }
    if (!Number.isSafeInteger(value?.lastSeq) || value.lastSeq < 0) {
      throw new Error(`"${this.#positionPath()}" holds no valid lastSeq`);
    }
    // Per database key, a stream sequence: entries that are not one are dropped.
    const sequences = (entries: unknown) => {
      const map = new Map<string, number>();
      for (const [dbKey, seq] of Object.entries(entries ?? {})) {
        if (/^[0-9a-f]{64}$/.test(dbKey) && Number.isSafeInteger(seq) && (seq as number) >= 1) {
          map.set(dbKey, seq as number);
        }
      }
      return map;
    };
    const primaries = new Map<string, { primary: string; seq: number }>();
    for (const [dbKey, taken] of Object.entries(value.primaries ?? {})) {
      const { primary, seq } = (taken ?? {}) as { primary?: unknown; seq?: unknown };
      if (
        /^[0-9a-f]{64}$/.test(dbKey) && typeof primary === "string" &&
        Number.isSafeInteger(seq) && (seq as number) >= 1
      ) {
        primaries.set(dbKey, { primary, seq: seq as number });
      }
    }
    return {
      lastSeq: value.lastSeq,
      resume: sequences(value.resume),
      subjectSeq: sequences(value.subjectSeq),
      primaries,
    };
  }

  /**
   * No fsync: a position behind the log only re-reads messages, which the log skips. Never past
   * the first chunk of a message still being gathered (a restart must read it again).
   */
  async #savePosition(): Promise<void> {
    const path = this.#positionPath();
    let lastSeq = this.#lastSeq;
    for (const assembler of this.#chunks.values()) {
      if (assembler.startSeq > 0) lastSeq = Math.min(lastSeq, assembler.startSeq - 1);
    }
    const resume = Object.fromEntries(this.#resume);
    const subjectSeq = Object.fromEntries(this.#subjectSeq);
    const primaries = Object.fromEntries(this.#primaries);
    await Deno.writeTextFile(
      `${path}.tmp`,
      JSON.stringify({ lastSeq, resume, subjectSeq, primaries }),
    );
    await Deno.rename(`${path}.tmp`, path);
  }

  #positionPath(): string {
    return `${this.#dataDir}/replication-follow.json`;
  }
}

function intHeader(headers: NonNullable<HeaderReader>, name: string): number {
  // Decimal digits only: Number() would read a missing header ("") as 0, and "0x1f" or "1e3".
  const text = headers.get(name);
  const value = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new GapError(
      text === "" ? `a message without the ${name} header` : `a message whose ${name} header ` +
        `"${text.slice(0, 32)}" is not an offset`,
    );
  }
  return value;
}

/**
 * The records of a log message's commits from transaction `end` on, after checking all of it:
 * every frame whole and its checksum right, the commits contiguous from `firstTx` to `endTx`.
 */
function checkedRecords(
  firstTx: number,
  endTx: number,
  data: Uint8Array,
  end: number,
): Uint8Array[] {
  const records: Uint8Array[] = [];
  let at = 0;
  let next = firstTx;
  while (at < data.length) {
    const frame = readFrameAt(data, at);
    if (frame.kind !== "ok") {
      throw new GapError(
        `a damaged commit in the message of [${firstTx}, ${endTx}) at byte ${at}: ${
          frame.kind === "bad" ? frame.reason : "the message ends early"
        }`,
      );
    }
    const { header } = frame;
    if (Number(header.firstTxOffset) !== next) {
      throw new GapError(`a commit of transaction ${header.firstTxOffset} where ${next} was due`);
    }
    const payload = data.subarray(frame.payloadStart, frame.end - 4);
    const problem = checkRecordLayout(payload, header.recordCount);
    if (problem) throw new GapError(`a malformed commit at transaction ${next}: ${problem}`);
    forEachRecord(payload, header.recordCount, (index, record) => {
      if (next + index < end) return;
      // A record the database process cannot decode would crash it at every retry (and leave
      // the database stopped): refused here, the database keeps serving what it has.
      try {
        decodeTxRecord(record);
      } catch (error) {
        throw new GapError(
          `a malformed transaction record at transaction ${next + index}: ${messageOf(error)}`,
        );
      }
      records.push(record);
    });
    next += header.recordCount;
    at = frame.end;
  }
  if (next !== endTx) {
    throw new GapError(`a message announcing [${firstTx}, ${endTx}) holds [${firstTx}, ${next})`);
  }
  return records;
}
