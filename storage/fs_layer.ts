/**
 * The file operations the durable storage uses, behind an interface so tests can swap the
 * real disk for an in-memory fake that loses unsynced data, tears writes, flips bits and
 * fails the Nth operation. Everything is synchronous: the storage actor runs in its own
 * worker, where blocking calls are cheaper than async ones (~2 µs vs ~90 µs per write).
 */
import { assert } from "../lib/assert.ts";
import { type Random, seededRandom } from "../lib/random.ts";

export interface FileHandle {
  readonly path: string;
  /** Writes all of `bytes` at byte `position`, extending the file if needed. */
  write(bytes: Uint8Array, position: number): void;
  /** Reads up to `into.length` bytes from `position`; returns how many were read. */
  read(into: Uint8Array, position: number): number;
  /** fdatasync: file data and the metadata needed to read it (size) reach the disk. */
  syncData(): void;
  /**
   * `syncData` off the calling thread (a real file: Deno's blocking-I/O pool), so a large
   * snapshot's fdatasync does not stop the storage worker. Optional; callers fall back to
   * `syncData`.
   */
  syncDataAsync?(): Promise<void>;
  /** Length of the file in bytes. */
  size(): number;
  /** Sets the file length, dropping or zero-extending the tail. */
  truncate(lengthBytes: number): void;
  close(): void;
}

export interface OpenOptions {
  /** Create the file if it does not exist. */
  create?: boolean;
  /** Fail if the file already exists. */
  createNew?: boolean;
}

export interface FsLayer {
  open(path: string, options?: OpenOptions): FileHandle;
  readFile(path: string): Uint8Array;
  /** Entry names in a directory; an empty list when it does not exist. */
  readDir(path: string): string[];
  exists(path: string): boolean;
  /** Creates one directory (its parent must exist); no error when it already exists. */
  mkdir(path: string): void;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): void;
  /** Removes a file, or a directory with everything in it; no error when missing. */
  remove(path: string): void;
  /** fsync a directory so created, renamed and removed entries in it are durable. */
  syncDir(path: string): void;
}

export function joinPath(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

export function parentPath(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const cut = trimmed.lastIndexOf("/");
  if (cut < 0) return ".";
  if (cut === 0) return "/";
  return trimmed.slice(0, cut);
}

/** Creates `path` and any missing parents, fsyncing each parent so the new entries survive a crash. */
export function makeDirsDurable(fs: FsLayer, path: string): void {
  const missing: string[] = [];
  let current = path.replace(/\/+$/, "");
  while (current !== "" && current !== "." && current !== "/" && !fs.exists(current)) {
    missing.push(current);
    current = parentPath(current);
  }
  for (const dir of missing.reverse()) {
    fs.mkdir(dir);
    fs.syncDir(parentPath(dir));
  }
}

/** Removes `path` recursively and makes the removal durable. */
export function removeDurable(fs: FsLayer, path: string): void {
  if (!fs.exists(path)) return;
  fs.remove(path);
  fs.syncDir(parentPath(path));
}

// ---------------------------------------------------------------------------------------------
// Real disk

class DenoFileHandle implements FileHandle {
  #file: Deno.FsFile;
  #position = 0;
  constructor(readonly path: string, file: Deno.FsFile) {
    this.#file = file;
  }
  write(bytes: Uint8Array, position: number): void {
    if (position !== this.#position) {
      this.#file.seekSync(position, Deno.SeekMode.Start);
      this.#position = position;
    }
    let written = 0;
    try {
      while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
    } finally {
      this.#position += written;
    }
  }
  read(into: Uint8Array, position: number): number {
    this.#file.seekSync(position, Deno.SeekMode.Start);
    let total = 0;
    try {
      while (total < into.length) {
        const count = this.#file.readSync(into.subarray(total));
        if (count === null || count === 0) break;
        total += count;
      }
    } finally {
      this.#position = position + total;
    }
    return total;
  }
  syncData(): void {
    this.#file.syncDataSync();
  }

  syncDataAsync(): Promise<void> {
    return this.#file.syncData();
  }
  size(): number {
    return this.#file.statSync().size;
  }
  truncate(lengthBytes: number): void {
    this.#file.truncateSync(lengthBytes);
  }
  close(): void {
    this.#file.close();
  }
}

/** The real file system, through Deno's synchronous APIs. */
export const denoFs: FsLayer = {
  open(path, options = {}) {
    const file = Deno.openSync(path, {
      read: true,
      write: true,
      create: options.create ?? false,
      createNew: options.createNew ?? false,
    });
    return new DenoFileHandle(path, file);
  },
  readFile(path) {
    // Deno.readFileSync grows its buffer in steps (~1 s for 64 MiB); one sized read is ~4x faster.
    const file = Deno.openSync(path, { read: true });
    try {
      const bytes = new Uint8Array(file.statSync().size);
      let total = 0;
      while (total < bytes.length) {
        const count = file.readSync(bytes.subarray(total));
        if (count === null || count === 0) break;
        total += count;
      }
      return total === bytes.length ? bytes : bytes.subarray(0, total);
    } finally {
      file.close();
    }
  },
  readDir(path) {
    try {
      return [...Deno.readDirSync(path)].map((entry) => entry.name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
  },
  exists(path) {
    try {
      Deno.statSync(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  },
  mkdir(path) {
    try {
      Deno.mkdirSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  },
  rename: (from, to) => Deno.renameSync(from, to),
  remove(path) {
    try {
      Deno.removeSync(path, { recursive: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  },
  syncDir(path) {
    const dir = Deno.openSync(path, { read: true });
    try {
      dir.syncSync();
    } finally {
      dir.close();
    }
  },
};

/**
 * Deliberately broken, for the test that proves replies follow their fdatasync
 * (tests/e2e/fsync_order_test.ts): a file data sync returns at once and the real one runs
 * `delayMs` later, so the storage reports offsets durable before they are.
 */
export function withLateSync(fs: FsLayer, delayMs: number): FsLayer {
  return {
    ...fs,
    open(path, options) {
      const file = fs.open(path, options);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const syncNow = () => {
        clearTimeout(timer);
        timer = undefined;
        file.syncData();
      };
      return {
        path: file.path,
        write: (bytes, position) => file.write(bytes, position),
        read: (into, position) => file.read(into, position),
        syncData: () => {
          timer ??= setTimeout(syncNow, delayMs);
        },
        size: () => file.size(),
        truncate: (lengthBytes) => file.truncate(lengthBytes),
        close: () => {
          if (timer !== undefined) syncNow();
          file.close();
        },
      };
    },
  };
}

/** Benchmarks only: the same file system with file data syncs turned into no-ops. */
export function withoutSync(fs: FsLayer): FsLayer {
  return {
    ...fs,
    open(path, options) {
      const file = fs.open(path, options);
      return {
        path: file.path,
        write: (bytes, position) => file.write(bytes, position),
        read: (into, position) => file.read(into, position),
        syncData: () => {},
        size: () => file.size(),
        truncate: (lengthBytes) => file.truncate(lengthBytes),
        close: () => file.close(),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// In-memory fake with crash and fault injection

export type FsOperation = "write" | "sync" | "rename" | "truncate" | "open" | "remove" | "mkdir";

/** Thrown by MemoryFs when an injected fault fires. */
export class InjectedFaultError extends Error {
  override name = "InjectedFaultError";
  readonly code = "EIO";
  constructor(readonly operation: FsOperation, readonly callNumber: number) {
    super(`Injected ${operation} failure on call ${callNumber}`);
  }
}

export interface FaultPlan {
  operation: FsOperation;
  /** 1-based call number (counted per operation since the fs was made) that fails. */
  nth: number;
  /** Keep failing every later call of this operation too. */
  persistent?: boolean;
}

/** How unsynced data looks after a simulated power loss. */
export type CrashMode =
  /** Only synced data and synced directory entries survive. */
  | "lose-unsynced"
  /** Everything written survives (the OS flushed it all), still only synced directory entries. */
  | "keep-unsynced"
  /** Each 512-byte sector of unsynced data independently survives or not; the length is either. */
  | "tear-unsynced";

const SECTOR_BYTES = 512;

class Inode {
  data = new Uint8Array(0);
  length = 0;
  synced = new Uint8Array(0);
  #dirtyStart = Infinity;
  #dirtyEnd = 0;
  content(): Uint8Array {
    return this.data.subarray(0, this.length);
  }
  writeAt(bytes: Uint8Array, position: number): void {
    const end = position + bytes.length;
    this.#ensure(end);
    if (position > this.length) this.data.fill(0, this.length, position);
    this.data.set(bytes, position);
    if (end > this.length) this.length = end;
    this.#markDirty(position, end);
  }
  setLength(lengthBytes: number): void {
    this.#ensure(lengthBytes);
    if (lengthBytes > this.length) this.data.fill(0, this.length, lengthBytes);
    this.#markDirty(Math.min(lengthBytes, this.length), Math.max(lengthBytes, this.length));
    this.length = lengthBytes;
  }
  sync(): void {
    const oldLength = this.synced.length;
    if (oldLength !== this.length) {
      const next = new Uint8Array(this.length);
      next.set(this.synced.subarray(0, Math.min(oldLength, this.length)));
      this.synced = next;
      this.#dirtyStart = Math.min(this.#dirtyStart, oldLength);
      this.#dirtyEnd = Math.max(this.#dirtyEnd, this.length);
    }
    if (this.#dirtyStart < this.#dirtyEnd) {
      const end = Math.min(this.#dirtyEnd, this.length);
      if (this.#dirtyStart < end) {
        this.synced.set(this.data.subarray(this.#dirtyStart, end), this.#dirtyStart);
      }
    }
    this.#dirtyStart = Infinity;
    this.#dirtyEnd = 0;
  }
  #ensure(capacity: number): void {
    if (capacity <= this.data.length) return;
    const next = new Uint8Array(Math.max(capacity, this.data.length * 2, 1024));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
  #markDirty(start: number, end: number): void {
    if (start < this.#dirtyStart) this.#dirtyStart = start;
    if (end > this.#dirtyEnd) this.#dirtyEnd = end;
  }
}

type Entry = { kind: "dir" } | { kind: "file"; inode: Inode };

function normalizePath(path: string): string {
  const absolute = path.startsWith("/");
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  const joined = parts.join("/");
  if (absolute) return "/" + joined;
  return joined === "" ? "." : joined;
}

function isRoot(path: string): boolean {
  return path === "/" || path === ".";
}

class MemoryFileHandle implements FileHandle {
  #closed = false;
  constructor(readonly path: string, readonly inode: Inode, readonly fs: MemoryFs) {}
  write(bytes: Uint8Array, position: number): void {
    assert(!this.#closed, `Write to closed file "${this.path}"`);
    this.fs.beforeWrite(this, bytes, position);
    this.inode.writeAt(bytes, position);
  }
  read(into: Uint8Array, position: number): number {
    assert(!this.#closed, `Read from closed file "${this.path}"`);
    const available = Math.max(0, Math.min(into.length, this.inode.length - position));
    into.set(this.inode.data.subarray(position, position + available));
    return available;
  }
  syncData(): void {
    assert(!this.#closed, `Sync of closed file "${this.path}"`);
    this.fs.count("sync");
    this.inode.sync();
  }
  size(): number {
    return this.inode.length;
  }
  truncate(lengthBytes: number): void {
    this.fs.count("truncate");
    this.inode.setLength(lengthBytes);
  }
  close(): void {
    this.#closed = true;
  }
}

/**
 * A file system in memory. Directory entries become durable only when their directory is
 * synced, file bytes only when the file is synced; `crash()` returns what a power loss leaves.
 */
export class MemoryFs implements FsLayer {
  #entries = new Map<string, Entry>();
  #durableEntries = new Map<string, Entry>();
  #random: Random;
  #faults: FaultPlan[] = [];
  /** Calls made so far, per operation. */
  readonly counts: Record<FsOperation, number> = {
    write: 0,
    sync: 0,
    rename: 0,
    truncate: 0,
    open: 0,
    remove: 0,
    mkdir: 0,
  };

  constructor(options: { random?: Random } = {}) {
    this.#random = options.random ?? seededRandom(1);
  }

  /** Schedules a failure; see FaultPlan. */
  injectFault(plan: FaultPlan): void {
    this.#faults.push(plan);
  }

  clearFaults(): void {
    this.#faults = [];
  }

  /** Counts a call and throws if a fault is planned for it. */
  count(operation: FsOperation): void {
    const callNumber = ++this.counts[operation];
    for (const fault of this.#faults) {
      if (fault.operation !== operation) continue;
      if (callNumber === fault.nth || (fault.persistent && callNumber > fault.nth)) {
        throw new InjectedFaultError(operation, callNumber);
      }
    }
  }

  /** Called by file handles before a write: a failing write leaves a random prefix behind. */
  beforeWrite(handle: MemoryFileHandle, bytes: Uint8Array, position: number): void {
    try {
      this.count("write");
    } catch (error) {
      const prefix = Math.floor(this.#random.next() * bytes.length);
      if (prefix > 0) handle.inode.writeAt(bytes.subarray(0, prefix), position);
      throw error;
    }
  }

  open(path: string, options: OpenOptions = {}): FileHandle {
    const key = normalizePath(path);
    this.count("open");
    const existing = this.#entries.get(key);
    if (existing) {
      if (existing.kind === "dir") throw new Error(`Cannot open directory "${path}" as a file`);
      if (options.createNew) throw new Deno.errors.AlreadyExists(`File "${path}" exists`);
      return new MemoryFileHandle(key, existing.inode, this);
    }
    if (!options.create && !options.createNew) {
      throw new Deno.errors.NotFound(`No file "${path}"`);
    }
    this.#requireDir(normalizePath(parentPath(key)));
    const entry: Entry = { kind: "file", inode: new Inode() };
    this.#entries.set(key, entry);
    return new MemoryFileHandle(key, entry.inode, this);
  }

  readFile(path: string): Uint8Array {
    const entry = this.#entries.get(normalizePath(path));
    if (!entry || entry.kind !== "file") throw new Deno.errors.NotFound(`No file "${path}"`);
    return entry.inode.content().slice();
  }

  readDir(path: string): string[] {
    const key = normalizePath(path);
    if (!isRoot(key) && this.#entries.get(key)?.kind !== "dir") return [];
    const names: string[] = [];
    for (const entryPath of this.#entries.keys()) {
      if (normalizePath(parentPath(entryPath)) === key) {
        names.push(entryPath.slice(entryPath.lastIndexOf("/") + 1));
      }
    }
    return names.sort();
  }

  exists(path: string): boolean {
    const key = normalizePath(path);
    return isRoot(key) || this.#entries.has(key);
  }

  mkdir(path: string): void {
    const key = normalizePath(path);
    this.count("mkdir");
    const existing = this.#entries.get(key);
    if (existing) {
      if (existing.kind !== "dir") throw new Deno.errors.AlreadyExists(`"${path}" is a file`);
      return;
    }
    this.#requireDir(normalizePath(parentPath(key)));
    this.#entries.set(key, { kind: "dir" });
  }

  rename(from: string, to: string): void {
    const fromKey = normalizePath(from);
    const toKey = normalizePath(to);
    this.count("rename");
    const entry = this.#entries.get(fromKey);
    if (!entry || entry.kind !== "file") throw new Deno.errors.NotFound(`No file "${from}"`);
    if (this.#entries.get(toKey)?.kind === "dir") throw new Error(`"${to}" is a directory`);
    this.#requireDir(normalizePath(parentPath(toKey)));
    this.#entries.delete(fromKey);
    this.#entries.set(toKey, entry);
  }

  remove(path: string): void {
    const key = normalizePath(path);
    this.count("remove");
    for (const entryPath of [...this.#entries.keys()]) {
      if (entryPath === key || entryPath.startsWith(key + "/")) this.#entries.delete(entryPath);
    }
  }

  syncDir(path: string): void {
    const key = normalizePath(path);
    this.count("sync");
    if (!isRoot(key) && this.#entries.get(key)?.kind !== "dir") {
      throw new Deno.errors.NotFound(`No directory "${path}"`);
    }
    const children = new Set<string>();
    for (const map of [this.#entries, this.#durableEntries]) {
      for (const entryPath of map.keys()) {
        if (normalizePath(parentPath(entryPath)) === key) children.add(entryPath);
      }
    }
    for (const child of children) {
      const entry = this.#entries.get(child);
      if (entry) this.#durableEntries.set(child, entry);
      else this.#durableEntries.delete(child);
    }
  }

  /** What a power loss at this instant leaves on disk, as a new MemoryFs without faults. */
  crash(mode: CrashMode = "lose-unsynced"): MemoryFs {
    const after = new MemoryFs({ random: this.#random });
    const survives = (path: string): boolean => {
      let current = path;
      while (!isRoot(current)) {
        if (!this.#durableEntries.has(current)) return false;
        current = normalizePath(parentPath(current));
      }
      return true;
    };
    const inodes = new Map<Inode, Inode>();
    for (const [path, entry] of this.#durableEntries) {
      if (!survives(path)) continue;
      if (entry.kind === "dir") {
        after.#entries.set(path, entry);
        after.#durableEntries.set(path, entry);
        continue;
      }
      let inode = inodes.get(entry.inode);
      if (!inode) {
        inode = new Inode();
        inode.writeAt(this.#crashContent(entry.inode, mode), 0);
        inode.sync();
        inodes.set(entry.inode, inode);
      }
      const copy: Entry = { kind: "file", inode };
      after.#entries.set(path, copy);
      after.#durableEntries.set(path, copy);
    }
    return after;
  }

  /** Flips one bit of a file, on "disk" (both the synced and the current content). */
  flipBit(path: string, bitIndex: number): void {
    const entry = this.#entries.get(normalizePath(path));
    if (!entry || entry.kind !== "file") throw new Deno.errors.NotFound(`No file "${path}"`);
    const byte = Math.floor(bitIndex / 8);
    const mask = 1 << (bitIndex % 8);
    assert(byte < entry.inode.length, `Bit ${bitIndex} is past the end of "${path}"`);
    entry.inode.data[byte] ^= mask;
    if (byte < entry.inode.synced.length) entry.inode.synced[byte] ^= mask;
  }

  #crashContent(inode: Inode, mode: CrashMode): Uint8Array {
    const current = inode.content();
    const synced = inode.synced;
    if (mode === "keep-unsynced") return current.slice();
    if (mode === "lose-unsynced") return synced.slice();
    const length = current.length === synced.length
      ? current.length
      : this.#random.next() < 0.5
      ? current.length
      : synced.length;
    const result = new Uint8Array(length);
    for (let start = 0; start < length; start += SECTOR_BYTES) {
      const end = Math.min(length, start + SECTOR_BYTES);
      const source = this.#random.next() < 0.5 ? current : synced;
      // Bytes the chosen version does not have read as zeros (a hole).
      const available = Math.max(0, Math.min(end, source.length) - start);
      if (available > 0) result.set(source.subarray(start, start + available), start);
    }
    return result;
  }

  #requireDir(path: string): void {
    if (isRoot(path)) return;
    if (this.#entries.get(path)?.kind !== "dir") {
      throw new Deno.errors.NotFound(`No directory "${path}"`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Test-only faults on the real disk, switched on by an environment variable

/**
 * Environment variable read once by the storage worker. Tests only; the server logs a warning
 * naming the fault when it is set. Values:
 * - `fail-fdatasync:N`: the Nth fdatasync of the process (1-based) fails with EIO;
 * - `unsafe-delay-writes:MS`: BROKEN ON PURPOSE: file writes reach the file only MS ms later and
 *   fdatasync returns at once, so acknowledged transactions are lost when the process dies.
 */
export const TEST_FS_FAULT_ENV = "LIGHTCONE_TEST_FS_FAULT";

export type TestFsFault =
  | { kind: "fail-fdatasync"; nth: number }
  | { kind: "unsafe-delay-writes"; delayMs: number };

export function parseTestFsFault(text: string): TestFsFault {
  const match = /^(fail-fdatasync|unsafe-delay-writes):(\d+)$/.exec(text.trim());
  const number = match ? Number(match[2]) : NaN;
  if (!match || !Number.isSafeInteger(number) || number < 1) {
    throw new RangeError(
      `Invalid ${TEST_FS_FAULT_ENV} "${text}": expected "fail-fdatasync:N" or ` +
        `"unsafe-delay-writes:MS" with a positive integer`,
    );
  }
  return match[1] === "fail-fdatasync"
    ? { kind: "fail-fdatasync", nth: number }
    : { kind: "unsafe-delay-writes", delayMs: number };
}

/** Wraps `fs` with a test fault (see TEST_FS_FAULT_ENV). */
export function withTestFault(fs: FsLayer, fault: TestFsFault): FsLayer {
  if (fault.kind === "fail-fdatasync") {
    let syncs = 0;
    return wrapHandles(fs, (file) => ({
      ...forward(file),
      syncData() {
        if (++syncs === fault.nth) {
          throw new Error(
            `Input/output error (os error 5): injected fdatasync failure ${syncs} of ` +
              `"${file.path}" (${TEST_FS_FAULT_ENV})`,
          );
        }
        file.syncData();
      },
    }));
  }
  return wrapHandles(fs, (file) => {
    // Writes wait in memory (copied: callers reuse their buffers); a timer applies them later.
    let pending: { bytes: Uint8Array; position: number }[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const apply = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      const writes = pending;
      pending = [];
      for (const write of writes) file.write(write.bytes, write.position);
    };
    const applyFirst = <T>(run: () => T): T => {
      apply();
      return run();
    };
    return {
      path: file.path,
      write(bytes, position) {
        pending.push({ bytes: bytes.slice(), position });
        timer ??= setTimeout(apply, fault.delayMs);
      },
      read: (into, position) => applyFirst(() => file.read(into, position)),
      syncData() {},
      size: () => applyFirst(() => file.size()),
      truncate: (lengthBytes) => applyFirst(() => file.truncate(lengthBytes)),
      close: () => applyFirst(() => file.close()),
    };
  });
}

function forward(file: FileHandle): FileHandle {
  return {
    path: file.path,
    write: (bytes, position) => file.write(bytes, position),
    read: (into, position) => file.read(into, position),
    syncData: () => file.syncData(),
    size: () => file.size(),
    truncate: (lengthBytes) => file.truncate(lengthBytes),
    close: () => file.close(),
  };
}

function wrapHandles(fs: FsLayer, wrap: (file: FileHandle) => FileHandle): FsLayer {
  return { ...fs, open: (path, options) => wrap(fs.open(path, options)) };
}
