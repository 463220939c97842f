/**
 * A checker for list-append histories, in the style of Jepsen's Elle. Pure: a history in, the
 * anomalies found out.
 *
 * Every transaction is a list of micro-ops on integer keys: `append(key, value)` adds a value to
 * the end of the key's list, `read(key)` returns the whole list. Values are unique per history,
 * so a read names exactly which appends it saw, in which order; every read of a key must be a
 * prefix of the longest one. From those prefixes the checker infers the dependency graph:
 *
 *   ww  T1 -> T2   T2 appended the element right after T1's in the key's list
 *   wr  T1 -> T2   T2 read a list ending in T1's element
 *   rw  T1 -> T2   T1 read a list that T2's element (the next one) was not yet in
 *
 * plus real-time edges (T1 was acknowledged before T2 was invoked) and process edges (the
 * operations of one client, in order). A serializable and strict history has no cycle.
 *
 * Reported anomalies:
 * - duplicate-append: a value twice in one list;
 * - garbage-read: a value nobody appended to that key;
 * - aborted-read: a value whose append failed (definitely did not commit);
 * - incompatible-order: two reads of a key where neither is a prefix of the other;
 * - lost-write: an acknowledged append missing from a read invoked after it was acknowledged;
 * - non-monotonic-read: a client reads a list missing what it read or appended before;
 * - internal: a read inside a transaction disagreeing with the transaction's own earlier ops;
 * - cycle: G0 (ww only), G1c (ww/wr), G-single (one rw), G2 (several rw), with "-process" or
 *   "-realtime" when the cycle needs those edges.
 *
 * Operations whose outcome is unknown ("info": the connection dropped or the call timed out)
 * may or may not have happened: their appends may show up, their reads tell nothing.
 */

export type MicroOp =
  | { f: "append"; key: number; value: number }
  | { f: "read"; key: number; value: readonly number[] | null };

export type EventType = "invoke" | "ok" | "fail" | "info";

export interface HistoryEvent {
  type: EventType;
  /** One client connection; a process runs one operation at a time. */
  process: number;
  /** Milliseconds on one monotonic clock shared by all processes. */
  time: number;
  /** The transaction; an "ok" event carries it with the read values filled in. */
  txn: readonly MicroOp[];
  /**
   * A read of a client-side cache (invoked and completed at once). It may lag behind the
   * server, so it is ordered after its own process's earlier operations but never after
   * other processes' operations in real time.
   */
  stale?: boolean;
  error?: string;
}

export type AnomalyKind =
  | "duplicate-append"
  | "garbage-read"
  | "aborted-read"
  | "incompatible-order"
  | "lost-write"
  | "non-monotonic-read"
  | "internal"
  | "cycle";

export type EdgeKind = "ww" | "wr" | "rw" | "process" | "realtime";

export interface Anomaly {
  kind: AnomalyKind;
  message: string;
  /** For cycles: the Elle-style name (G0, G1c, G-single, G2, with -process/-realtime). */
  name?: string;
  /** For cycles: the operations (ids) and the edge that leads from each to the next. */
  cycle?: { op: number; edge: EdgeKind }[];
}

export interface CheckResult {
  valid: boolean;
  anomalies: Anomaly[];
  counts: Partial<Record<AnomalyKind, number>>;
  stats: {
    ok: number;
    fail: number;
    info: number;
    appendsOk: number;
    readsOk: number;
    keys: number;
  };
}

/** One operation: an invocation paired with its completion. Its id is its invocation's index. */
export interface Operation {
  id: number;
  process: number;
  outcome: "ok" | "fail" | "info";
  invokeTime: number;
  /** Infinity when the outcome is unknown. */
  completeTime: number;
  txn: readonly MicroOp[];
  stale: boolean;
}

/** Pairs invocations with completions; an invocation never completed is "info". */
export function pairOperations(history: readonly HistoryEvent[]): Operation[] {
  const pending = new Map<number, Operation>();
  const operations: Operation[] = [];
  history.forEach((event, index) => {
    if (event.type === "invoke") {
      if (pending.has(event.process)) {
        throw new RangeError(
          `History event ${index}: process ${event.process} invokes while an operation is open`,
        );
      }
      const operation: Operation = {
        id: index,
        process: event.process,
        outcome: "info",
        invokeTime: event.time,
        completeTime: Infinity,
        txn: event.txn,
        stale: event.stale ?? false,
      };
      pending.set(event.process, operation);
      operations.push(operation);
      return;
    }
    const operation = pending.get(event.process);
    if (!operation) {
      throw new RangeError(
        `History event ${index}: process ${event.process} completes with no open operation`,
      );
    }
    pending.delete(event.process);
    operation.outcome = event.type;
    if (event.type === "info") return;
    operation.completeTime = event.time;
    if (event.type === "ok") {
      if (event.txn.length !== operation.txn.length) {
        throw new RangeError(
          `History event ${index}: the completion's transaction has another length`,
        );
      }
      operation.txn = event.txn;
    }
  });
  return operations;
}

interface Writer {
  op: Operation;
  key: number;
}

interface ReadObservation {
  op: Operation;
  key: number;
  values: readonly number[];
  /** What the transaction saw of the key before its own writes; only the first read per key. */
  external: readonly number[] | undefined;
}

function isPrefix(short: readonly number[], long: readonly number[]): boolean {
  if (short.length > long.length) return false;
  for (let i = 0; i < short.length; i++) if (short[i] !== long[i]) return false;
  return true;
}

function listText(values: readonly number[]): string {
  return values.length > 12
    ? `[${values.slice(0, 5).join(" ")} … ${values.slice(-5).join(" ")}] (${values.length})`
    : `[${values.join(" ")}]`;
}

function opText(op: Operation): string {
  const shown = op.txn.length > 6 ? op.txn.slice(0, 5) : op.txn;
  const more = op.txn.length > shown.length ? ` … (${op.txn.length} micro-ops)` : "";
  const txn =
    shown.map((micro) =>
      micro.f === "append"
        ? `append(${micro.key}, ${micro.value})`
        : `read(${micro.key})${micro.value ? "=" + listText(micro.value) : ""}`
    ).join(" ") + more;
  return `op ${op.id} (process ${op.process}, ${op.outcome}${op.stale ? ", cache" : ""}: ${txn})`;
}

export function checkListAppend(history: readonly HistoryEvent[]): CheckResult {
  const operations = pairOperations(history);
  const anomalies: Anomaly[] = [];
  const report = (anomaly: Anomaly) => anomalies.push(anomaly);

  // Who appended which value.
  const writers = new Map<number, Writer>();
  let appendsOk = 0;
  for (const op of operations) {
    for (const micro of op.txn) {
      if (micro.f !== "append") continue;
      if (writers.has(micro.value)) {
        throw new RangeError(
          `Value ${micro.value} is appended twice in the history; values must be unique`,
        );
      }
      writers.set(micro.value, { op, key: micro.key });
      if (op.outcome === "ok") appendsOk++;
    }
  }

  // Reads, with the internal consistency of each transaction.
  const reads: ReadObservation[] = [];
  for (const op of operations) {
    if (op.outcome !== "ok") continue;
    const known = new Map<number, number[]>();
    const ownAppends = new Map<number, number[]>();
    for (const micro of op.txn) {
      if (micro.f === "append") {
        const own = ownAppends.get(micro.key) ?? [];
        own.push(micro.value);
        ownAppends.set(micro.key, own);
        continue;
      }
      if (micro.value === null) throw new RangeError(`${opText(op)} is ok but a read has no value`);
      const values = micro.value;
      const before = known.get(micro.key);
      const own = ownAppends.get(micro.key) ?? [];
      let external: readonly number[] | undefined;
      if (before !== undefined) {
        const expected = [...before, ...own];
        if (!isPrefix(expected, values) || values.length !== expected.length) {
          report({
            kind: "internal",
            message: `${opText(op)}: read(${micro.key}) gave ${listText(values)} but the ` +
              `transaction's own earlier ops imply ${listText(expected)}`,
          });
        }
      } else {
        const tail = values.slice(values.length - own.length);
        if (own.length > values.length || own.some((value, i) => tail[i] !== value)) {
          report({
            kind: "internal",
            message: `${opText(op)}: read(${micro.key}) gave ${listText(values)}, which does not ` +
              `end with the transaction's own appends ${listText(own)}`,
          });
        } else {
          external = values.slice(0, values.length - own.length);
        }
      }
      known.set(micro.key, [...values]);
      ownAppends.set(micro.key, []);
      reads.push({ op, key: micro.key, values, external });
    }
  }

  // Duplicates, garbage and aborted reads.
  const reportedValues = new Set<string>();
  const once = (tag: string, anomaly: Anomaly) => {
    if (reportedValues.has(tag)) return;
    reportedValues.add(tag);
    report(anomaly);
  };
  for (const read of reads) {
    const seen = new Set<number>();
    for (const value of read.values) {
      if (seen.has(value)) {
        once(`dup ${read.key} ${value}`, {
          kind: "duplicate-append",
          message: `${opText(read.op)}: value ${value} appears twice in key ${read.key}'s list ` +
            listText(read.values),
        });
      }
      seen.add(value);
      const writer = writers.get(value);
      if (!writer || writer.key !== read.key) {
        once(`garbage ${read.key} ${value}`, {
          kind: "garbage-read",
          message: `${opText(read.op)}: key ${read.key} holds ${value}, which ` +
            (writer ? `was appended to key ${writer.key}` : "nobody appended"),
        });
      } else if (writer.op.outcome === "fail") {
        once(`aborted ${value}`, {
          kind: "aborted-read",
          message: `${opText(read.op)}: key ${read.key} holds ${value}, appended by the failed ` +
            opText(writer.op),
        });
      }
    }
  }

  // The version order of each key: the longest read, if every read is a prefix of it.
  const readsByKey = new Map<number, ReadObservation[]>();
  for (const read of reads) {
    const list = readsByKey.get(read.key) ?? [];
    list.push(read);
    readsByKey.set(read.key, list);
  }
  const versionOrder = new Map<number, readonly number[]>();
  for (const [key, keyReads] of readsByKey) {
    let longest: readonly number[] = [];
    for (const read of keyReads) if (read.values.length > longest.length) longest = read.values;
    let compatible = true;
    const reported = new Set<string>();
    for (const read of keyReads) {
      if (isPrefix(read.values, longest)) continue;
      compatible = false;
      const text = read.values.join(",");
      if (reported.has(text)) continue;
      reported.add(text);
      report({
        kind: "incompatible-order",
        message: `key ${key}: ${opText(read.op)} read ${listText(read.values)}, not a prefix of ` +
          `the longest read ${listText(longest)}`,
      });
    }
    if (compatible) versionOrder.set(key, longest);
  }

  // Lost writes: an acknowledged append missing from a read invoked after it was acknowledged.
  for (const op of operations) {
    if (op.outcome !== "ok") continue;
    for (const micro of op.txn) {
      if (micro.f !== "append") continue;
      const later = (readsByKey.get(micro.key) ?? []).filter((read) =>
        !read.op.stale && read.op.invokeTime > op.completeTime &&
        !read.values.includes(micro.value)
      );
      if (later.length > 0) {
        report({
          kind: "lost-write",
          message: `${opText(op)} was acknowledged, yet ${later.length} later read(s) miss ` +
            `value ${micro.value}, e.g. ${opText(later[0].op)}`,
        });
      }
    }
  }

  // Monotonic reads per process: what a process read or appended stays in its later reads.
  const byProcess = new Map<number, Operation[]>();
  for (const op of operations) {
    const list = byProcess.get(op.process) ?? [];
    list.push(op);
    byProcess.set(op.process, list);
  }
  for (const processOps of byProcess.values()) {
    const mustContain = new Map<number, Set<number>>();
    for (const op of processOps) {
      if (op.outcome !== "ok") continue;
      const checked = new Set<number>();
      for (const micro of op.txn) {
        if (micro.f !== "read" || checked.has(micro.key)) continue;
        checked.add(micro.key);
        const values = micro.value ?? [];
        const missing = [...mustContain.get(micro.key) ?? []].filter((v) => !values.includes(v));
        if (missing.length > 0) {
          report({
            kind: "non-monotonic-read",
            message: `${opText(op)}: key ${micro.key} lacks ${listText(missing)}, which process ` +
              `${op.process} had read or appended before`,
          });
        }
      }
      for (const micro of op.txn) {
        const set = mustContain.get(micro.key) ?? new Set<number>();
        if (micro.f === "read") { for (const value of micro.value ?? []) set.add(value); }
        else set.add(micro.value);
        mustContain.set(micro.key, set);
      }
    }
  }

  // The dependency graph.
  const graph = new Graph();
  const writerOf = (value: number, key: number) => {
    const writer = writers.get(value);
    return writer && writer.key === key && writer.op.outcome !== "fail" ? writer.op : undefined;
  };
  for (const [key, order] of versionOrder) {
    for (let i = 0; i + 1 < order.length; i++) {
      const from = writerOf(order[i], key);
      const to = writerOf(order[i + 1], key);
      if (from && to) graph.add(from.id, to.id, "ww");
    }
  }
  for (const read of reads) {
    const order = versionOrder.get(read.key);
    if (!order || read.external === undefined) continue;
    const seen = read.external;
    if (seen.length > 0) {
      const from = writerOf(seen[seen.length - 1], read.key);
      if (from) graph.add(from.id, read.op.id, "wr");
    }
    if (order.length > seen.length) {
      const to = writerOf(order[seen.length], read.key);
      if (to) graph.add(read.op.id, to.id, "rw");
    }
  }
  for (const processOps of byProcess.values()) {
    const done = processOps.filter((op) => op.outcome !== "fail");
    for (let i = 0; i + 1 < done.length; i++) {
      if (done[i].outcome === "ok") graph.add(done[i].id, done[i + 1].id, "process");
    }
  }
  addRealtimeEdges(operations, graph);

  for (const anomaly of findCycles(graph, operations)) report(anomaly);

  const counts: Partial<Record<AnomalyKind, number>> = {};
  for (const anomaly of anomalies) counts[anomaly.kind] = (counts[anomaly.kind] ?? 0) + 1;
  const keys = new Set<number>();
  for (const op of operations) for (const micro of op.txn) keys.add(micro.key);
  return {
    valid: anomalies.length === 0,
    anomalies,
    counts,
    stats: {
      ok: operations.filter((op) => op.outcome === "ok").length,
      fail: operations.filter((op) => op.outcome === "fail").length,
      info: operations.filter((op) => op.outcome === "info").length,
      appendsOk,
      readsOk: reads.length,
      keys: keys.size,
    },
  };
}

/** A directed graph of operation ids with labelled edges. */
export class Graph {
  readonly out = new Map<number, Map<number, Set<EdgeKind>>>();
  add(from: number, to: number, kind: EdgeKind): void {
    if (from === to) return;
    let targets = this.out.get(from);
    if (!targets) this.out.set(from, targets = new Map());
    let kinds = targets.get(to);
    if (!kinds) targets.set(to, kinds = new Set());
    kinds.add(kind);
  }
  nodes(): number[] {
    const nodes = new Set<number>();
    for (const [from, targets] of this.out) {
      nodes.add(from);
      for (const to of targets.keys()) nodes.add(to);
    }
    return [...nodes];
  }
}

/**
 * Real-time order without quadratic edges: an operation invoked after others completed gets an
 * edge from each completed operation not yet followed by a later completed one (the frontier).
 * Stale reads get no incoming real-time edges.
 */
function addRealtimeEdges(operations: readonly Operation[], graph: Graph): void {
  const events: { time: number; complete: boolean; op: Operation }[] = [];
  for (const op of operations) {
    if (op.outcome === "fail") continue;
    events.push({ time: op.invokeTime, complete: false, op });
    if (op.outcome === "ok") events.push({ time: op.completeTime, complete: true, op });
  }
  // At equal times invocations go first: only a completion strictly earlier orders them.
  events.sort((a, b) => a.time - b.time || Number(a.complete) - Number(b.complete));
  const frontier = new Set<number>();
  const predecessors = new Map<number, number[]>();
  for (const event of events) {
    if (!event.complete) {
      if (event.op.stale) continue;
      const before = [...frontier];
      predecessors.set(event.op.id, before);
      for (const from of before) graph.add(from, event.op.id, "realtime");
    } else {
      for (const from of predecessors.get(event.op.id) ?? []) frontier.delete(from);
      predecessors.delete(event.op.id);
      frontier.add(event.op.id);
    }
  }
}

const PREFERENCE: readonly EdgeKind[] = ["ww", "wr", "rw", "process", "realtime"];

/** Strongly connected components with more than one node (iterative Tarjan). */
function components(graph: Graph, allowed: ReadonlySet<EdgeKind>): number[][] {
  const successors = (node: number): number[] => {
    const result: number[] = [];
    for (const [to, kinds] of graph.out.get(node) ?? []) {
      for (const kind of kinds) {
        if (allowed.has(kind)) {
          result.push(to);
          break;
        }
      }
    }
    return result;
  };
  const index = new Map<number, number>();
  const low = new Map<number, number>();
  const onStack = new Set<number>();
  const stack: number[] = [];
  const result: number[][] = [];
  let counter = 0;
  for (const root of graph.nodes()) {
    if (index.has(root)) continue;
    const work: { node: number; next: number[]; at: number }[] = [];
    const enter = (node: number) => {
      index.set(node, counter);
      low.set(node, counter);
      counter++;
      stack.push(node);
      onStack.add(node);
      work.push({ node, next: successors(node), at: 0 });
    };
    enter(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      if (frame.at < frame.next.length) {
        const to = frame.next[frame.at++];
        if (!index.has(to)) enter(to);
        else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: number[] = [];
        let node: number;
        do {
          node = stack.pop()!;
          onStack.delete(node);
          component.push(node);
        } while (node !== frame.node);
        if (component.length > 1) result.push(component);
      }
    }
  }
  return result;
}

/** Shortest path from `from` to `to` inside `within` over `allowed` edges, as labelled steps. */
function shortestPath(
  graph: Graph,
  from: number,
  to: number,
  within: ReadonlySet<number>,
  allowed: ReadonlySet<EdgeKind>,
): { op: number; edge: EdgeKind }[] | undefined {
  const parent = new Map<number, { node: number; edge: EdgeKind }>();
  const queue = [from];
  const visited = new Set([from]);
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head];
    for (const [next, kinds] of graph.out.get(node) ?? []) {
      if (!within.has(next)) continue;
      const edge = PREFERENCE.find((kind) => allowed.has(kind) && kinds.has(kind));
      if (!edge) continue;
      if (next === to) {
        const steps = [{ op: node, edge }];
        let at = node;
        while (at !== from) {
          const step = parent.get(at)!;
          steps.push({ op: step.node, edge: step.edge });
          at = step.node;
        }
        return steps.reverse();
      }
      if (visited.has(next)) continue;
      visited.add(next);
      parent.set(next, { node, edge });
      queue.push(next);
    }
  }
  return undefined;
}

function cycleName(cycle: readonly { edge: EdgeKind }[]): string {
  const rw = cycle.filter((step) => step.edge === "rw").length;
  const base = rw === 0
    ? cycle.some((step) => step.edge === "wr") ? "G1c" : "G0"
    : rw === 1
    ? "G-single"
    : "G2";
  if (cycle.some((step) => step.edge === "realtime")) return `${base}-realtime`;
  if (cycle.some((step) => step.edge === "process")) return `${base}-process`;
  return base;
}

const G_SINGLE_TRIES_MAX = 100;

function findCycles(graph: Graph, operations: readonly Operation[]): Anomaly[] {
  const byId = new Map(operations.map((op) => [op.id, op]));
  const anomalies: Anomaly[] = [];
  const covered = new Set<number>();
  const passes: EdgeKind[][] = [
    ["ww"],
    ["ww", "wr"],
    ["ww", "wr", "rw"],
    ["ww", "wr", "rw", "process", "realtime"],
  ];
  for (const kinds of passes) {
    const allowed = new Set(kinds);
    for (const component of components(graph, allowed)) {
      if (component.some((node) => covered.has(node))) continue;
      const within = new Set(component);
      let cycle: { op: number; edge: EdgeKind }[] | undefined;
      if (allowed.has("rw")) {
        // Prefer a cycle with a single anti-dependency (G-single) when there is one.
        const noRw = new Set([...allowed].filter((kind) => kind !== "rw"));
        let tries = 0;
        for (const from of component) {
          for (const [to, edgeKinds] of graph.out.get(from) ?? []) {
            if (!edgeKinds.has("rw") || !within.has(to) || tries++ >= G_SINGLE_TRIES_MAX) continue;
            const back = shortestPath(graph, to, from, within, noRw);
            if (back) {
              cycle = [{ op: from, edge: "rw" }, ...back];
              break;
            }
          }
          if (cycle) break;
        }
      }
      cycle ??= shortestPath(graph, component[0], component[0], within, allowed);
      if (!cycle) continue;
      for (const node of component) covered.add(node);
      const name = cycleName(cycle);
      const text = cycle.map((step) => `${opText(byId.get(step.op)!)} -${step.edge}->`).join(" ");
      anomalies.push({
        kind: "cycle",
        name,
        cycle,
        message: `${name} cycle over ${cycle.length} operations: ${text} back to op ${cycle[0].op}`,
      });
    }
  }
  return anomalies;
}

/** The first `max` anomalies as text lines, with a count per kind first. */
export function describeResult(result: CheckResult, max = 10): string {
  const counts = Object.entries(result.counts).map(([kind, count]) => `${kind}=${count}`);
  const lines = [
    `${result.valid ? "valid" : "INVALID"}: ${result.stats.ok} ok, ${result.stats.fail} failed, ` +
    `${result.stats.info} unknown; ${result.stats.appendsOk} acknowledged appends, ` +
    `${result.stats.readsOk} reads over ${result.stats.keys} keys` +
    (counts.length ? `; anomalies: ${counts.join(" ")}` : ""),
  ];
  for (const anomaly of result.anomalies.slice(0, max)) {
    lines.push(`  ${anomaly.kind}${anomaly.name ? ` ${anomaly.name}` : ""}: ${anomaly.message}`);
  }
  if (result.anomalies.length > max) lines.push(`  … ${result.anomalies.length - max} more`);
  return lines.join("\n");
}
