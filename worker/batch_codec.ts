/**
 * Reducer calls and their results packed for the postMessage hop between the main thread
 * (worker/host.ts) and a database worker (worker/worker_main.ts).
 *
 * Structured clone pays per object and per property: a batch of 40 calls as objects with three
 * BigInts and a byte view each, and 80 result objects coming back, cost more than running the
 * calls. Packed, a batch is a handful of arrays: one Float64Array of numbers per call, the args
 * back to back in one transferred buffer, and tables of the distinct reducer names and callers.
 * Calls keep their place among the other requests (`requestsBefore`), and results among the
 * other items (`itemsBefore`), so the worker and the hub still see one ordered sequence.
 */
import type {
  BatchItem,
  BatchMessage,
  BatchReply,
  CallReducerRequest,
  CallResult,
  PackedCalls,
  WorkerRequest,
} from "./messages.ts";

/** Numbers per packed call: id, name index, caller index, args start, args end, requests before, timestamp. */
export const PACKED_CALL_FIELDS = 7;
/** Numbers per packed result: id, txOffset, durationMicros, items before. */
export const PACKED_RESULT_FIELDS = 4;

const ARGS_BYTES_INITIAL = 4096;
const ARGS_BYTES_KEPT_MAX = 1024 * 1024;
/** Distinct callers remembered per batch before the lookup map starts over (bounds memory). */
const CALLER_INDEX_MAX = 4096;

/** What a reducer call needs, without the id the host assigns. */
export type CallFields = Omit<CallReducerRequest, "id" | "kind">;

/** Main thread: collects the reducer calls of one batch. Reused across batches. */
export class CallPacker {
  #table = new Float64Array(64 * PACKED_CALL_FIELDS);
  #count = 0;
  #args = new Uint8Array(ARGS_BYTES_INITIAL);
  #argsLength = 0;
  #names: string[] = [];
  #nameIndex = new Map<string, number>();
  #callers: bigint[] = [];
  /** connection id -> caller index (the sender is checked too). */
  #callerIndex = new Map<bigint, number>();

  get count(): number {
    return this.#count;
  }

  /**
   * Packs one call placed after `requestsBefore` unpacked requests. Returns false, packing
   * nothing, when the call does not fit the packed form (then send it as an object).
   */
  add(call: CallFields, id: number, requestsBefore: number): boolean {
    const timestampMicros = Number(call.timestampMicros);
    if (!Number.isSafeInteger(timestampMicros) || !(call.args instanceof Uint8Array)) return false;
    let nameIndex = this.#nameIndex.get(call.reducer);
    if (nameIndex === undefined) {
      nameIndex = this.#names.length;
      this.#names.push(call.reducer);
      this.#nameIndex.set(call.reducer, nameIndex);
    }
    const callerIndex = this.#caller(call.sender, call.connectionId);
    const args = call.args;
    const start = this.#argsLength;
    this.#reserveArgs(args.length);
    const out = this.#args;
    if (args.length <= 64) {
      for (let i = 0; i < args.length; i++) out[start + i] = args[i];
    } else {
      out.set(args, start);
    }
    this.#argsLength = start + args.length;
    if ((this.#count + 1) * PACKED_CALL_FIELDS > this.#table.length) {
      const bigger = new Float64Array(this.#table.length * 2);
      bigger.set(this.#table);
      this.#table = bigger;
    }
    const at = this.#count * PACKED_CALL_FIELDS;
    const table = this.#table;
    table[at] = id;
    table[at + 1] = nameIndex;
    table[at + 2] = callerIndex;
    table[at + 3] = start;
    table[at + 4] = this.#argsLength;
    table[at + 5] = requestsBefore;
    table[at + 6] = timestampMicros;
    this.#count++;
    return true;
  }

  /** The packed calls (fresh arrays; `args.buffer` may be transferred), and a reset packer. */
  finish(): PackedCalls | undefined {
    if (this.#count === 0) return undefined;
    const packed: PackedCalls = {
      table: this.#table.slice(0, this.#count * PACKED_CALL_FIELDS),
      args: this.#args.slice(0, this.#argsLength),
      names: this.#names,
      callers: this.#callers,
    };
    this.#count = 0;
    this.#argsLength = 0;
    // One batch with huge args should not pin a huge buffer for the life of the database.
    if (this.#args.length > ARGS_BYTES_KEPT_MAX) this.#args = new Uint8Array(ARGS_BYTES_INITIAL);
    this.#names = [];
    this.#nameIndex.clear();
    this.#callers = [];
    this.#callerIndex.clear();
    return packed;
  }

  #caller(sender: bigint, connectionId: bigint): number {
    const known = this.#callerIndex.get(connectionId);
    if (known !== undefined && this.#callers[known * 2] === sender) return known;
    const index = this.#callers.length / 2;
    this.#callers.push(sender, connectionId);
    if (this.#callerIndex.size >= CALLER_INDEX_MAX) this.#callerIndex.clear();
    this.#callerIndex.set(connectionId, index);
    return index;
  }

  #reserveArgs(extra: number): void {
    const needed = this.#argsLength + extra;
    if (needed <= this.#args.length) return;
    const bigger = new Uint8Array(Math.max(needed, this.#args.length * 2));
    bigger.set(this.#args.subarray(0, this.#argsLength));
    this.#args = bigger;
  }
}

/** Worker: visits every request of a batch in order, packed calls unpacked in place. */
export function forEachRequest(
  message: BatchMessage,
  visit: (request: WorkerRequest) => void,
): void {
  const requests = message.requests;
  const calls = message.calls;
  let next = 0;
  if (calls !== undefined) {
    const table = calls.table;
    for (let at = 0; at < table.length; at += PACKED_CALL_FIELDS) {
      const before = table[at + 5];
      while (next < before) visit(requests[next++]);
      visit({
        kind: "call",
        id: table[at],
        reducer: calls.names[table[at + 1]],
        sender: calls.callers[table[at + 2] * 2],
        connectionId: calls.callers[table[at + 2] * 2 + 1],
        args: calls.args.subarray(table[at + 3], table[at + 4]),
        timestampMicros: BigInt(table[at + 6]),
      });
    }
  }
  while (next < requests.length) visit(requests[next++]);
}

/** Worker: collects committed calls whose transaction changed no subscribed query. */
export class ResultPacker {
  #table = new Float64Array(64 * PACKED_RESULT_FIELDS);
  #count = 0;

  add(id: number, txOffset: number, durationMicros: number, itemsBefore: number): void {
    if ((this.#count + 1) * PACKED_RESULT_FIELDS > this.#table.length) {
      const bigger = new Float64Array(this.#table.length * 2);
      bigger.set(this.#table);
      this.#table = bigger;
    }
    const at = this.#count * PACKED_RESULT_FIELDS;
    this.#table[at] = id;
    this.#table[at + 1] = txOffset;
    this.#table[at + 2] = durationMicros;
    this.#table[at + 3] = itemsBefore;
    this.#count++;
  }

  finish(): Float64Array | undefined {
    if (this.#count === 0) return undefined;
    const packed = this.#table.slice(0, this.#count * PACKED_RESULT_FIELDS);
    this.#count = 0;
    return packed;
  }
}

/**
 * Why a reply's packed results are malformed, or undefined. The worker also runs tenant code,
 * so the main thread checks what it is sent (see worker/reply_check.ts).
 */
export function checkPackedResults(committed: unknown, itemCount: number): string | undefined {
  if (committed === undefined) return undefined;
  if (!(committed instanceof Float64Array)) return "committed is not a Float64Array";
  if (committed.length % PACKED_RESULT_FIELDS !== 0) return "committed has a partial entry";
  let itemsBefore = 0;
  for (let at = 0; at < committed.length; at += PACKED_RESULT_FIELDS) {
    for (let field = 0; field < PACKED_RESULT_FIELDS; field++) {
      const value = committed[at + field];
      if (!Number.isSafeInteger(value) || value < 0) return "committed holds a non-count";
    }
    const before = committed[at + 3];
    if (before < itemsBefore || before > itemCount) return "committed is out of order";
    itemsBefore = before;
  }
  return undefined;
}

/**
 * Main thread: the reply's items in worker order, packed results as `CallResult`s. Throws a
 * TypeError when the packed results are malformed.
 */
export function expandItems(reply: BatchReply): BatchItem[] {
  const committed = reply.committed;
  if (committed === undefined) return reply.items;
  const problem = checkPackedResults(committed, reply.items.length);
  if (problem !== undefined) throw new TypeError(`Malformed batch reply: ${problem}`);
  const items = reply.items;
  const out: BatchItem[] = new Array(items.length + committed.length / PACKED_RESULT_FIELDS);
  let next = 0;
  let written = 0;
  for (let at = 0; at < committed.length; at += PACKED_RESULT_FIELDS) {
    const before = committed[at + 3];
    while (next < before) out[written++] = items[next++];
    const result: CallResult = {
      kind: "call",
      id: committed[at],
      status: "committed",
      txOffset: committed[at + 1],
      durationMicros: committed[at + 2],
    };
    out[written++] = result;
  }
  while (next < items.length) out[written++] = items[next++];
  return out;
}
