/**
 * Hash indexes. A unique index (or unique constraint) is a plain `Map<Key, rowId>`; this file
 * holds the non-unique one: key -> rowIds in insertion order. No range scans.
 */
import type { Key } from "./key_encoding.ts";

export class HashMultiIndex {
  readonly #buckets = new Map<Key, Set<number>>();

  add(key: Key, id: number): void {
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.add(id);
    else this.#buckets.set(key, new Set([id]));
  }

  remove(key: Key, id: number): void {
    const bucket = this.#buckets.get(key);
    if (!bucket) return;
    bucket.delete(id);
    if (bucket.size === 0) this.#buckets.delete(key);
  }

  forEachEqual(key: Key, visit: (id: number) => void): void {
    const bucket = this.#buckets.get(key);
    if (bucket) { for (const id of bucket) visit(id); }
  }

  clear(): void {
    this.#buckets.clear();
  }
}
