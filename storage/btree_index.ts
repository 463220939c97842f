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
