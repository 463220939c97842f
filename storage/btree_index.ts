/**
 * An in-memory B+tree of (key, rowId) entries ordered by key, then rowId. Keys are all numbers
 * or all memcomparable strings (see key_encoding.ts), so `<` orders them. Non-unique indexes
 * store one entry per row; leaves are linked both ways for range walks.
 *
 * Deletion removes empty nodes but does not rebalance underfull ones: the tree stays correct
 * and its height never grows from deletes.
 */
import { assert } from "../lib/assert.ts";
import type { Key } from "./key_encoding.ts";

const LEAF_ENTRIES_MAX = 64;
const INNER_CHILDREN_MAX = 64;

class Leaf {
  keys: Key[] = [];
  ids: number[] = [];
  prev: Leaf | null = null;
  next: Leaf | null = null;
}

class Inner {
  /** Separator i is the lowest possible entry of children[i + 1]. */
  keys: Key[] = [];
  ids: number[] = [];
  children: Node[] = [];
}

type Node = Leaf | Inner;

/** Compares entry (k1, id1) with (k2, id2). */
function compare(k1: Key, id1: number, k2: Key, id2: number): number {
  if (k1 < k2) return -1;
  if (k1 > k2) return 1;
  return id1 - id2;
}

/** Index of the first entry >= (key, id). */
function lowerBound(keys: Key[], ids: number[], key: Key, id: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(keys[mid], ids[mid], key, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Child index in an inner node for entry (key, id): the number of separators <= it. */
function childIndex(node: Inner, key: Key, id: number): number {
  const keys = node.keys;
  const ids = node.ids;
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(keys[mid], ids[mid], key, id) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class BTree {
  #root: Node = new Leaf();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  clear(): void {
    this.#root = new Leaf();
    this.#size = 0;
  }

  /**
   * A tree holding `keys[i], ids[i]` for every i, built bottom-up (bulk load: no splits, no
   * splices). The entries must be strictly ascending by (key, id). Leaves are filled to
   * LEAF_ENTRIES_MAX as appends fill them; inner nodes share their level's children evenly.
   */
  static fromSorted(keys: Key[], ids: ArrayLike<number>): BTree {
    const count = keys.length;
    assert(ids.length === count, "Bulk load needs one id per key");
    const tree = new BTree();
    if (count === 0) return tree;
    let level: Node[] = [];
    /** Lowest entry of each node of `level`: the separator its parent keeps before it. */
    let lowKeys: Key[] = [];
    let lowIds: number[] = [];
    let previous: Leaf | null = null;
    for (let start = 0; start < count; start += LEAF_ENTRIES_MAX) {
      const end = Math.min(count, start + LEAF_ENTRIES_MAX);
      const leaf = new Leaf();
      leaf.keys = keys.slice(start, end);
      const leafIds = new Array<number>(end - start);
      for (let i = start; i < end; i++) {
        if (i > 0) {
          assert(compare(keys[i - 1], ids[i - 1], keys[i], ids[i]) < 0, "Bulk load out of order");
        }
        leafIds[i - start] = ids[i];
      }
      leaf.ids = leafIds;
      leaf.prev = previous;
      if (previous) previous.next = leaf;
      previous = leaf;
      level.push(leaf);
      lowKeys.push(keys[start]);
      lowIds.push(ids[start]);
    }
    while (level.length > 1) {
      const parents = Math.ceil(level.length / INNER_CHILDREN_MAX);
      const next: Node[] = [];
      const nextKeys: Key[] = [];
      const nextIds: number[] = [];
      let at = 0;
      for (let p = 0; p < parents; p++) {
        // Even shares: the first `level.length % parents` parents take one child more.
        const take = Math.floor(level.length / parents) + (p < level.length % parents ? 1 : 0);
        const inner = new Inner();
        inner.children = level.slice(at, at + take);
        inner.keys = lowKeys.slice(at + 1, at + take);
        inner.ids = lowIds.slice(at + 1, at + take);
        next.push(inner);
        nextKeys.push(lowKeys[at]);
        nextIds.push(lowIds[at]);
        at += take;
      }
      level = next;
      lowKeys = nextKeys;
      lowIds = nextIds;
    }
    tree.#root = level[0];
    tree.#size = count;
    return tree;
  }

  /** Adds (key, id); returns false if that exact entry is already present. */
  insert(key: Key, id: number): boolean {
    const path: Inner[] = [];
    const slots: number[] = [];
    let node = this.#root;
    while (node instanceof Inner) {
      const slot = childIndex(node, key, id);
      path.push(node);
      slots.push(slot);
      node = node.children[slot];
    }
    const leaf = node;
    const at = lowerBound(leaf.keys, leaf.ids, key, id);
    if (at < leaf.keys.length && leaf.keys[at] === key && leaf.ids[at] === id) return false;
    leaf.keys.splice(at, 0, key);
    leaf.ids.splice(at, 0, id);
    this.#size++;
    if (leaf.keys.length > LEAF_ENTRIES_MAX) {
      // Appending past the largest entry (auto-increment ids): keep the left leaf full and start
      // the next one with the new entry, so append-only tables get full leaves, not half-full ones.
      const appended = leaf.next === null && at === leaf.keys.length - 1;
      this.#splitLeaf(leaf, path, slots, appended ? leaf.keys.length - 1 : leaf.keys.length >>> 1);
    }
    return true;
  }

  #splitLeaf(leaf: Leaf, path: Inner[], slots: number[], mid: number): void {
    const right = new Leaf();
    right.keys = leaf.keys.splice(mid);
    right.ids = leaf.ids.splice(mid);
    right.next = leaf.next;
    right.prev = leaf;
    if (leaf.next) leaf.next.prev = right;
    leaf.next = right;
    this.#insertSeparator(right.keys[0], right.ids[0], right, path, slots);
  }

  #insertSeparator(key: Key, id: number, right: Node, path: Inner[], slots: number[]): void {
    let depth = path.length - 1;
    while (true) {
      if (depth < 0) {
        const root = new Inner();
        root.children = [this.#root, right];
        root.keys = [key];
        root.ids = [id];
        this.#root = root;
        return;
      }
      const parent = path[depth];
      const slot = slots[depth];
      parent.keys.splice(slot, 0, key);
      parent.ids.splice(slot, 0, id);
      parent.children.splice(slot + 1, 0, right);
      if (parent.children.length <= INNER_CHILDREN_MAX) return;
      // Split the inner node; the middle separator moves up.
      const mid = parent.keys.length >>> 1;
      const sibling = new Inner();
      key = parent.keys[mid];
      id = parent.ids[mid];
      sibling.keys = parent.keys.splice(mid + 1);
      sibling.ids = parent.ids.splice(mid + 1);
      parent.keys.length = mid;
      parent.ids.length = mid;
      sibling.children = parent.children.splice(mid + 1);
      right = sibling;
      depth--;
    }
  }

  /** Removes (key, id); returns false if absent. */
  delete(key: Key, id: number): boolean {
    const path: Inner[] = [];
    const slots: number[] = [];
    let node = this.#root;
    while (node instanceof Inner) {
      const slot = childIndex(node, key, id);
      path.push(node);
      slots.push(slot);
      node = node.children[slot];
    }
    const leaf = node;
    const at = lowerBound(leaf.keys, leaf.ids, key, id);
    if (at >= leaf.keys.length || leaf.keys[at] !== key || leaf.ids[at] !== id) return false;
    leaf.keys.splice(at, 1);
    leaf.ids.splice(at, 1);
    this.#size--;
    if (leaf.keys.length === 0 && path.length > 0) {
      if (leaf.prev) leaf.prev.next = leaf.next;
      if (leaf.next) leaf.next.prev = leaf.prev;
      this.#removeChild(path, slots);
    }
    return true;
  }

  /** Removes child slots[last] from path[last], cascading up through emptied nodes. */
  #removeChild(path: Inner[], slots: number[]): void {
    for (let depth = path.length - 1; depth >= 0; depth--) {
      const parent = path[depth];
      const slot = slots[depth];
      parent.children.splice(slot, 1);
      const separator = slot > 0 ? slot - 1 : 0;
      parent.keys.splice(separator, 1);
      parent.ids.splice(separator, 1);
      if (parent.children.length > 0) break;
    }
    let root = this.#root;
    while (root instanceof Inner && root.children.length === 1) root = root.children[0];
    if (root instanceof Inner && root.children.length === 0) root = new Leaf();
    this.#root = root;
  }

  #leafFor(key: Key, id: number): Leaf {
    let node = this.#root;
    while (node instanceof Inner) node = node.children[childIndex(node, key, id)];
    return node;
  }

  /** Calls `visit(id)` for entries with lo <= key < hi, in key order. */
  forEachInRange(lo: Key, hi: Key, visit: (id: number) => void): void {
    let leaf: Leaf | null = this.#leafFor(lo, -Infinity);
    let at = lowerBound(leaf.keys, leaf.ids, lo, -Infinity);
    while (leaf) {
      const keys = leaf.keys;
      for (; at < keys.length; at++) {
        if (!(keys[at] < hi)) return;
        visit(leaf.ids[at]);
      }
      leaf = leaf.next;
      at = 0;
    }
  }

  /**
   * Calls `visit(id)` for entries in key order from the first with key >= `from` (ascending) or
   * the last with key <= `from` (descending); every entry when `from` is undefined. Stops when
   * `visit` returns false. (Top-N subscription windows seek from their last row this way.)
   */
  walk(from: Key | undefined, descending: boolean, visit: (id: number) => boolean): void {
    if (!descending) {
      let leaf: Leaf | null = from === undefined
        ? this.#edgeLeaf(false)
        : this.#leafFor(from, -Infinity);
      let at = from === undefined ? 0 : lowerBound(leaf.keys, leaf.ids, from, -Infinity);
      for (; leaf; leaf = leaf.next, at = 0) {
        for (; at < leaf.keys.length; at++) if (!visit(leaf.ids[at])) return;
      }
      return;
    }
    let leaf: Leaf | null = from === undefined
      ? this.#edgeLeaf(true)
      : this.#leafFor(from, Infinity);
    let at = from === undefined
      ? leaf.keys.length - 1
      : lowerBound(leaf.keys, leaf.ids, from, Infinity) - 1;
    while (leaf) {
      for (; at >= 0; at--) if (!visit(leaf.ids[at])) return;
      leaf = leaf.prev;
      if (leaf) at = leaf.keys.length - 1;
    }
  }

  /** The first (or last) leaf. */
  #edgeLeaf(last: boolean): Leaf {
    let node = this.#root;
    while (node instanceof Inner) node = node.children[last ? node.children.length - 1 : 0];
    return node;
  }

  /** Calls `visit(id)` for entries whose key equals `key`, in rowId order. */
  forEachEqual(key: Key, visit: (id: number) => void): void {
    let leaf: Leaf | null = this.#leafFor(key, -Infinity);
    let at = lowerBound(leaf.keys, leaf.ids, key, -Infinity);
    while (leaf) {
      const keys = leaf.keys;
      for (; at < keys.length; at++) {
        if (keys[at] !== key) return;
        visit(leaf.ids[at]);
      }
      leaf = leaf.next;
      at = 0;
    }
  }

  /** All entries in order (for tests and checks). */
  entries(): [Key, number][] {
    let node = this.#root;
    while (node instanceof Inner) node = node.children[0];
    const out: [Key, number][] = [];
    for (let leaf: Leaf | null = node; leaf; leaf = leaf.next) {
      for (let i = 0; i < leaf.keys.length; i++) out.push([leaf.keys[i], leaf.ids[i]]);
    }
    return out;
  }

  /** Checks ordering and separator invariants; for tests. */
  checkInvariants(): void {
    const entries = this.entries();
    assert(entries.length === this.#size, "BTree size does not match its entries");
    for (let i = 1; i < entries.length; i++) {
      const [k1, id1] = entries[i - 1];
      const [k2, id2] = entries[i];
      assert(compare(k1, id1, k2, id2) < 0, "BTree entries out of order");
    }
    checkNode(this.#root, null, null);
  }
}

type Bound = [Key, number] | null;

function checkNode(node: Node, lo: Bound, hi: Bound): void {
  const inBounds = (key: Key, id: number) =>
    (lo === null || compare(key, id, lo[0], lo[1]) >= 0) &&
    (hi === null || compare(key, id, hi[0], hi[1]) < 0);
  if (node instanceof Leaf) {
    for (let i = 0; i < node.keys.length; i++) {
      assert(inBounds(node.keys[i], node.ids[i]), "BTree leaf entry outside its separators");
    }
    return;
  }
  assert(node.keys.length === node.children.length - 1, "BTree inner node is malformed");
  for (let i = 0; i < node.children.length; i++) {
    const childLo: Bound = i === 0 ? lo : [node.keys[i - 1], node.ids[i - 1]];
    const childHi: Bound = i === node.keys.length ? hi : [node.keys[i], node.ids[i]];
    checkNode(node.children[i], childLo, childHi);
  }
}

// --- integer keys -------------------------------------------------------------------------------

/** Entries per leaf / separators per inner node of an Int64BTree. */
const LEAF64_ENTRIES_MAX = 64;
const INNER64_CHILDREN_MAX = 64;

/**
 * Entries as (high, low, id) triples of unsigned 32-bit numbers in one Uint32Array: `high, low`
 * are the key's 8 bytes (big-endian, sign bit flipped for i64, key_encoding.ts), so unsigned
 * (high, low) order is the key order over the whole u64/i64 range, exactly.
 */
class Leaf64 {
  cells = new Uint32Array(3 * LEAF64_ENTRIES_MAX);
  count = 0;
  prev: Leaf64 | null = null;
  next: Leaf64 | null = null;
}

class Inner64 {
  /** Separator i (a triple) is the lowest entry of children[i + 1]. */
  cells = new Uint32Array(3 * (INNER64_CHILDREN_MAX - 1));
  children: Node64[] = [];
}

type Node64 = Leaf64 | Inner64;

/** High 32 bits of an 8-code-unit key (one byte per unit, big-endian), unsigned. */
function keyHigh(key: string): number {
  return ((key.charCodeAt(0) << 24) | (key.charCodeAt(1) << 16) | (key.charCodeAt(2) << 8) |
    key.charCodeAt(3)) >>> 0;
}

function keyLow(key: string): number {
  return ((key.charCodeAt(4) << 24) | (key.charCodeAt(5) << 16) | (key.charCodeAt(6) << 8) |
    key.charCodeAt(7)) >>> 0;
}

function keyString(high: number, low: number): string {
  return String.fromCharCode(
    high >>> 24,
    (high >>> 16) & 0xff,
    (high >>> 8) & 0xff,
    high & 0xff,
    low >>> 24,
    (low >>> 16) & 0xff,
    (low >>> 8) & 0xff,
    low & 0xff,
  );
}

/** Compares triple `at` of `cells` with (high, low, id); `id` may be ±Infinity. */
function compare64(cells: Uint32Array, at: number, high: number, low: number, id: number): number {
  const h = cells[at];
  if (h !== high) return h < high ? -1 : 1;
  const l = cells[at + 1];
  if (l !== low) return l < low ? -1 : 1;
  const i = cells[at + 2];
  return i < id ? -1 : i > id ? 1 : 0;
}

/** Index of the first entry of `count` >= (high, low, id). */
function lowerBound64(
  cells: Uint32Array,
  count: number,
  high: number,
  low: number,
  id: number,
): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare64(cells, 3 * mid, high, low, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Child of `node` holding (high, low, id): the number of separators <= it. */
function childIndex64(node: Inner64, high: number, low: number, id: number): number {
  const cells = node.cells;
  let lo = 0;
  let hi = node.children.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare64(cells, 3 * mid, high, low, id) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A range-scan bound (a key_encoding.ts string: a key, a shorter prefix, a key followed by
 * KEY_MAX, or KEY_MAX) as a position among triples: entries at or after it have keys >= `bound`
 * as strings compare. Keys have 8 units of at most 0xff each.
 */
function boundOf(bound: string): [number, number, number] {
  const units = new Array<number>(8);
  let length = Math.min(8, bound.length);
  let past = bound.length > 8;
  for (let i = 0; i < length; i++) {
    const unit = bound.charCodeAt(i);
    if (unit > 0xff) {
      // Above every byte: every key starting with the units before it sorts below the bound.
      length = i;
      past = true;
      for (let j = i; j < 8; j++) units[j] = 0xff;
      break;
    }
    units[i] = unit;
  }
  if (!past) { for (let j = length; j < 8; j++) units[j] = 0; }
  const high = ((units[0] << 24) | (units[1] << 16) | (units[2] << 8) | units[3]) >>> 0;
  const low = ((units[4] << 24) | (units[5] << 16) | (units[6] << 8) | units[7]) >>> 0;
  return [high, low, past ? Infinity : -Infinity];
}

/**
 * The B+tree for indexes over one u64/i64 column (auto-increment ids): the same entries, order
 * and interface as BTree (keys in and out are key_encoding.ts strings), but each leaf keeps its
 * entries as integer triples in one Uint32Array instead of a JS string and two array slots per
 * row: ~12 bytes per entry in full leaves, and no per-row object for the GC to trace.
 */
export class Int64BTree {
  #root: Node64 = new Leaf64();
  #size = 0;
  /**
   * The leaf the last insert went into when it had no right neighbour: while it still has none
   * (a split gives it one) it is the rightmost leaf, so an entry above its last one is appended
   * there without a descent (auto-increment ids). Dropped when delete unlinks it.
   */
  #tail: Leaf64 | null = null;

  get size(): number {
    return this.#size;
  }

  clear(): void {
    this.#root = new Leaf64();
    this.#size = 0;
    this.#tail = null;
  }

  /** As BTree.fromSorted: entries strictly ascending by (key, id), built bottom-up. */
  static fromSorted(keys: Key[], ids: ArrayLike<number>): Int64BTree {
    const highs = new Uint32Array(keys.length);
    const lows = new Uint32Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      highs[i] = keyHigh(keys[i] as string);
      lows[i] = keyLow(keys[i] as string);
    }
    return Int64BTree.fromSortedParts(highs, lows, ids);
  }

  /** `fromSorted` with each key given as its two unsigned 32-bit halves (no string per key). */
  static fromSortedParts(
    highs: Uint32Array,
    lows: Uint32Array,
    ids: ArrayLike<number>,
  ): Int64BTree {
    const count = highs.length;
    assert(ids.length === count && lows.length === count, "Bulk load needs one id per key");
    const tree = new Int64BTree();
    if (count === 0) return tree;
    let level: Node64[] = [];
    let firsts: number[] = []; // triples: the lowest entry of each node of `level`
    let previous: Leaf64 | null = null;
    let lastHigh = -1;
    let lastLow = -1;
    let lastId = -1;
    for (let start = 0; start < count; start += LEAF64_ENTRIES_MAX) {
      const end = Math.min(count, start + LEAF64_ENTRIES_MAX);
      const leaf = new Leaf64();
      const cells = leaf.cells;
      for (let i = start; i < end; i++) {
        const high = highs[i];
        const low = lows[i];
        const id = ids[i];
        assert(
          high > lastHigh ||
            (high === lastHigh && (low > lastLow || (low === lastLow && id > lastId))),
          "Bulk load out of order",
        );
        const at = 3 * (i - start);
        cells[at] = high;
        cells[at + 1] = low;
        cells[at + 2] = id;
        lastHigh = high;
        lastLow = low;
        lastId = id;
      }
      leaf.count = end - start;
      leaf.prev = previous;
      if (previous) previous.next = leaf;
      previous = leaf;
      level.push(leaf);
      firsts.push(cells[0], cells[1], cells[2]);
    }
    while (level.length > 1) {
      const parents = Math.ceil(level.length / INNER64_CHILDREN_MAX);
      const next: Node64[] = [];
      const nextLows: number[] = [];
      let at = 0;
      for (let p = 0; p < parents; p++) {
        const take = Math.floor(level.length / parents) + (p < level.length % parents ? 1 : 0);
        const inner = new Inner64();
        inner.children = level.slice(at, at + take);
        for (let c = 1; c < take; c++) {
          inner.cells[3 * (c - 1)] = firsts[3 * (at + c)];
          inner.cells[3 * (c - 1) + 1] = firsts[3 * (at + c) + 1];
          inner.cells[3 * (c - 1) + 2] = firsts[3 * (at + c) + 2];
        }
        next.push(inner);
        nextLows.push(firsts[3 * at], firsts[3 * at + 1], firsts[3 * at + 2]);
        at += take;
      }
      level = next;
      firsts = nextLows;
    }
    tree.#root = level[0];
    tree.#size = count;
    return tree;
  }

  /** Adds (key, id); returns false if that exact entry is already present. */
  insert(key: Key, id: number): boolean {
    return this.insertParts(keyHigh(key as string), keyLow(key as string), id);
  }

  /** `insert` of the key whose unsigned 32-bit halves (key order) are `high` and `low`. */
  insertParts(high: number, low: number, id: number): boolean {
    const tail = this.#tail;
    if (
      tail !== null && tail.next === null && tail.count > 0 && tail.count < LEAF64_ENTRIES_MAX &&
      compare64(tail.cells, 3 * tail.count - 3, high, low, id) < 0
    ) {
      const at = 3 * tail.count;
      tail.cells[at] = high;
      tail.cells[at + 1] = low;
      tail.cells[at + 2] = id;
      tail.count++;
      this.#size++;
      return true;
    }
    const path: Inner64[] = [];
    const slots: number[] = [];
    let node = this.#root;
    while (node instanceof Inner64) {
      const slot = childIndex64(node, high, low, id);
      path.push(node);
      slots.push(slot);
      node = node.children[slot];
    }
    let leaf = node;
    let at = lowerBound64(leaf.cells, leaf.count, high, low, id);
    if (at < leaf.count && compare64(leaf.cells, 3 * at, high, low, id) === 0) return false;
    if (leaf.count === LEAF64_ENTRIES_MAX) {
      // Appending past the largest entry (auto-increment ids): keep the full leaf and start the
      // next one with the new entry, so append-only tables get full leaves.
      const appended = leaf.next === null && at === leaf.count;
      const mid = appended ? leaf.count : leaf.count >>> 1;
      const right = this.#splitLeaf(leaf, mid, path, slots, appended ? [high, low, id] : null);
      // An entry that lands exactly at the split is below the right leaf's first: it stays left.
      if (appended || at > mid) {
        leaf = right;
        at -= mid;
      }
    }
    const cells = leaf.cells;
    cells.copyWithin(3 * at + 3, 3 * at, 3 * leaf.count);
    cells[3 * at] = high;
    cells[3 * at + 1] = low;
    cells[3 * at + 2] = id;
    leaf.count++;
    this.#size++;
    if (leaf.next === null) this.#tail = leaf;
    return true;
  }

  /**
   * Moves entries [mid, count) of `leaf` to a new right sibling and files it in the parent.
   * `first`: the right leaf's lowest entry when it starts empty (an append).
   */
  #splitLeaf(
    leaf: Leaf64,
    mid: number,
    path: Inner64[],
    slots: number[],
    first: [number, number, number] | null,
  ): Leaf64 {
    const right = new Leaf64();
    right.cells.set(leaf.cells.subarray(3 * mid, 3 * leaf.count));
    right.count = leaf.count - mid;
    leaf.count = mid;
    right.next = leaf.next;
    right.prev = leaf;
    if (leaf.next) leaf.next.prev = right;
    leaf.next = right;
    const separator = first ?? [right.cells[0], right.cells[1], right.cells[2]];
    this.#insertSeparator(separator, right, path, slots);
    return right;
  }

  #insertSeparator(
    separator: [number, number, number],
    right: Node64,
    path: Inner64[],
    slots: number[],
  ): void {
    let depth = path.length - 1;
    let [high, low, id] = separator;
    while (true) {
      if (depth < 0) {
        const root = new Inner64();
        root.children = [this.#root, right];
        root.cells[0] = high;
        root.cells[1] = low;
        root.cells[2] = id;
        this.#root = root;
        return;
      }
      const parent = path[depth];
      const slot = slots[depth];
      const separators = parent.children.length - 1;
      if (parent.children.length < INNER64_CHILDREN_MAX) {
        parent.cells.copyWithin(3 * slot + 3, 3 * slot, 3 * separators);
        parent.cells[3 * slot] = high;
        parent.cells[3 * slot + 1] = low;
        parent.cells[3 * slot + 2] = id;
        parent.children.splice(slot + 1, 0, right);
        return;
      }
      // Full: lay out the separators with the new one in a scratch array, then split; the middle
      // separator moves up.
      const all = new Uint32Array(3 * (separators + 1));
      all.set(parent.cells.subarray(0, 3 * slot));
      all[3 * slot] = high;
      all[3 * slot + 1] = low;
      all[3 * slot + 2] = id;
      all.set(parent.cells.subarray(3 * slot, 3 * separators), 3 * slot + 3);
      const children = parent.children;
      children.splice(slot + 1, 0, right);
      const mid = (separators + 1) >>> 1;
      const sibling = new Inner64();
      high = all[3 * mid];
      low = all[3 * mid + 1];
      id = all[3 * mid + 2];
      parent.cells.fill(0);
      parent.cells.set(all.subarray(0, 3 * mid));
      sibling.cells.set(all.subarray(3 * mid + 3));
      sibling.children = children.splice(mid + 1);
      right = sibling;
      depth--;
    }
  }

  /** Removes (key, id); returns false if absent. */
  delete(key: Key, id: number): boolean {
    const high = keyHigh(key as string);
    const low = keyLow(key as string);
    const path: Inner64[] = [];
    const slots: number[] = [];
    let node = this.#root;
    while (node instanceof Inner64) {
      const slot = childIndex64(node, high, low, id);
      path.push(node);
      slots.push(slot);
      node = node.children[slot];
    }
    const leaf = node;
    const at = lowerBound64(leaf.cells, leaf.count, high, low, id);
    if (at >= leaf.count || compare64(leaf.cells, 3 * at, high, low, id) !== 0) return false;
    leaf.cells.copyWithin(3 * at, 3 * at + 3, 3 * leaf.count);
    leaf.count--;
    this.#size--;
    if (leaf.count === 0 && path.length > 0) {
      if (leaf === this.#tail) this.#tail = null;
      if (leaf.prev) leaf.prev.next = leaf.next;
      if (leaf.next) leaf.next.prev = leaf.prev;
      for (let depth = path.length - 1; depth >= 0; depth--) {
        const parent = path[depth];
        const slot = slots[depth];
        const separators = parent.children.length - 1;
        parent.children.splice(slot, 1);
        if (separators > 0) {
          const removed = slot > 0 ? slot - 1 : 0;
          parent.cells.copyWithin(3 * removed, 3 * removed + 3, 3 * separators);
        }
        if (parent.children.length > 0) break;
      }
      let root = this.#root;
      while (root instanceof Inner64 && root.children.length === 1) root = root.children[0];
      if (root instanceof Inner64 && root.children.length === 0) root = new Leaf64();
      this.#root = root;
    }
    return true;
  }

  #leafFor(high: number, low: number, id: number): Leaf64 {
    let node = this.#root;
    while (node instanceof Inner64) node = node.children[childIndex64(node, high, low, id)];
    return node;
  }

  /** Calls `visit(id)` for entries with lo <= key < hi (key_encoding.ts bounds), in key order. */
  forEachInRange(lo: Key, hi: Key, visit: (id: number) => void): void {
    const [loHigh, loLow, loId] = boundOf(lo as string);
    const [hiHigh, hiLow, hiId] = boundOf(hi as string);
    let leaf: Leaf64 | null = this.#leafFor(loHigh, loLow, loId);
    let at = lowerBound64(leaf.cells, leaf.count, loHigh, loLow, loId);
    while (leaf) {
      const cells = leaf.cells;
      for (; at < leaf.count; at++) {
        if (compare64(cells, 3 * at, hiHigh, hiLow, hiId) >= 0) return;
        visit(cells[3 * at + 2]);
      }
      leaf = leaf.next;
      at = 0;
    }
  }

  /** As BTree.walk: from the first entry >= `from` (or last <= it, descending), until false. */
  walk(from: Key | undefined, descending: boolean, visit: (id: number) => boolean): void {
    const high = from === undefined ? 0 : keyHigh(from as string);
    const low = from === undefined ? 0 : keyLow(from as string);
    if (!descending) {
      let leaf: Leaf64 | null = from === undefined
        ? this.#edgeLeaf(false)
        : this.#leafFor(high, low, -Infinity);
      let at = from === undefined ? 0 : lowerBound64(leaf.cells, leaf.count, high, low, -Infinity);
      for (; leaf; leaf = leaf.next, at = 0) {
        for (; at < leaf.count; at++) if (!visit(leaf.cells[3 * at + 2])) return;
      }
      return;
    }
    let leaf: Leaf64 | null = from === undefined
      ? this.#edgeLeaf(true)
      : this.#leafFor(high, low, Infinity);
    let at = from === undefined
      ? leaf.count - 1
      : lowerBound64(leaf.cells, leaf.count, high, low, Infinity) - 1;
    while (leaf) {
      for (; at >= 0; at--) if (!visit(leaf.cells[3 * at + 2])) return;
      leaf = leaf.prev;
      if (leaf) at = leaf.count - 1;
    }
  }

  /** The first (or last) leaf. */
  #edgeLeaf(last: boolean): Leaf64 {
    let node = this.#root;
    while (node instanceof Inner64) node = node.children[last ? node.children.length - 1 : 0];
    return node;
  }

  /** Calls `visit(id)` for entries whose key equals `key`, in rowId order. */
  forEachEqual(key: Key, visit: (id: number) => void): void {
    const high = keyHigh(key as string);
    const low = keyLow(key as string);
    let leaf: Leaf64 | null = this.#leafFor(high, low, -Infinity);
    let at = lowerBound64(leaf.cells, leaf.count, high, low, -Infinity);
    while (leaf) {
      const cells = leaf.cells;
      for (; at < leaf.count; at++) {
        if (cells[3 * at] !== high || cells[3 * at + 1] !== low) return;
        visit(cells[3 * at + 2]);
      }
      leaf = leaf.next;
      at = 0;
    }
  }

  /** All entries in order, keys as strings (for tests and checks). */
  entries(): [Key, number][] {
    let node = this.#root;
    while (node instanceof Inner64) node = node.children[0];
    const out: [Key, number][] = [];
    for (let leaf: Leaf64 | null = node; leaf; leaf = leaf.next) {
      const cells = leaf.cells;
      for (let i = 0; i < leaf.count; i++) {
        out.push([keyString(cells[3 * i], cells[3 * i + 1]), cells[3 * i + 2]]);
      }
    }
    return out;
  }

  /** Checks ordering and separator invariants; for tests. */
  checkInvariants(): void {
    const entries = this.entries();
    assert(entries.length === this.#size, "BTree size does not match its entries");
    for (let i = 1; i < entries.length; i++) {
      const [k1, id1] = entries[i - 1];
      const [k2, id2] = entries[i];
      assert(compare(k1, id1, k2, id2) < 0, "BTree entries out of order");
    }
    checkNode64(this.#root, null, null);
  }
}

type Bound64 = [number, number, number] | null;

function checkNode64(node: Node64, lo: Bound64, hi: Bound64): void {
  const inBounds = (cells: Uint32Array, at: number) =>
    (lo === null || compare64(cells, at, lo[0], lo[1], lo[2]) >= 0) &&
    (hi === null || compare64(cells, at, hi[0], hi[1], hi[2]) < 0);
  if (node instanceof Leaf64) {
    assert(node.count <= LEAF64_ENTRIES_MAX, "BTree leaf overfull");
    for (let i = 0; i < node.count; i++) {
      assert(inBounds(node.cells, 3 * i), "BTree leaf entry outside its separators");
    }
    return;
  }
  assert(node.children.length <= INNER64_CHILDREN_MAX, "BTree inner node overfull");
  for (let i = 0; i < node.children.length; i++) {
    const c = node.cells;
    const childLo: Bound64 = i === 0 ? lo : [c[3 * i - 3], c[3 * i - 2], c[3 * i - 1]];
    const childHi: Bound64 = i === node.children.length - 1
      ? hi
      : [c[3 * i], c[3 * i + 1], c[3 * i + 2]];
    checkNode64(node.children[i], childLo, childHi);
  }
}
