/**
 * Just enough of the WebAssembly binary format to check a module before it is instantiated:
 * the function types of its imports and exports, its memories, and a rewrite of the memory
 * section that gives the module's own memory a maximum (the database's memory budget).
 * Everything else in the binary is left to V8's validation.
 */

export class WasmFormatError extends Error {
  override name = "WasmFormatError";
}

/** A value type as the binary encodes it: 0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64, … */
export type ValueType = number;

export interface FuncType {
  params: ValueType[];
  results: ValueType[];
}

export interface WasmImport {
  module: string;
  name: string;
  kind: "function" | "table" | "memory" | "global" | "tag";
  /** The function type, for a function import. */
  type?: FuncType;
}

export interface WasmExport {
  name: string;
  kind: "function" | "table" | "memory" | "global" | "tag";
  /** The function type, for a function export. */
  type?: FuncType;
}

export interface MemoryLimits {
  initialPages: number;
  maximumPages: number | undefined;
}

export interface WasmModuleInfo {
  imports: WasmImport[];
  exports: WasmExport[];
  /** The memories the module defines itself (imported ones are in `imports`). */
  memories: MemoryLimits[];
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const KINDS = ["function", "table", "memory", "global", "tag"] as const;

/** True when `bytes` start with the WebAssembly magic number. */
export function isWasmBinary(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && MAGIC.every((b, i) => bytes[i] === b);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

class Reader {
  offset: number;
  constructor(readonly bytes: Uint8Array, offset = 0, readonly end = bytes.length) {
    this.offset = offset;
  }
  byte(): number {
    if (this.offset >= this.end) throw new WasmFormatError("unexpected end of the module");
    return this.bytes[this.offset++];
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw new WasmFormatError("LEB128 value out of range");
        return result;
      }
      shift += 7;
    }
    throw new WasmFormatError("LEB128 value too long");
  }
  u64(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new WasmFormatError("LEB128 value too long");
  }
  name(): string {
    const length = this.u32();
    if (this.offset + length > this.end) throw new WasmFormatError("name past the section end");
    let text: string;
    try {
      text = strictUtf8.decode(this.bytes.subarray(this.offset, this.offset + length));
    } catch {
      throw new WasmFormatError(`the name at byte ${this.offset} is not valid UTF-8`);
    }
    this.offset += length;
    return text;
  }
}

interface Section {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  end: number;
}

function sections(bytes: Uint8Array): Section[] {
  if (!isWasmBinary(bytes)) throw new WasmFormatError("not a WebAssembly module (bad magic)");
  if (bytes.length < 8 || bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmFormatError("unsupported WebAssembly binary version (expected 1)");
  }
  const out: Section[] = [];
  const r = new Reader(bytes, 8);
  while (r.offset < bytes.length) {
    const start = r.offset;
    const id = r.byte();
    const size = r.u32();
    const contentStart = r.offset;
    const end = contentStart + size;
    if (end > bytes.length) throw new WasmFormatError(`section ${id} runs past the module's end`);
    out.push({ id, start, contentStart, end });
    r.offset = end;
  }
  return out;
}

function readLimits(r: Reader, what: string): MemoryLimits {
  const flags = r.byte();
  if (flags & ~0x01) {
    // 0x02 shared, 0x04 memory64: not part of this ABI.
    throw new WasmFormatError(`${what}: shared or 64-bit memories are not supported`);
  }
  const initialPages = r.u32();
  const maximumPages = flags & 0x01 ? r.u32() : undefined;
  return { initialPages, maximumPages };
}

function skipTableType(r: Reader): void {
  r.byte(); // reference type
  const flags = r.byte();
  r.u32();
  if (flags & 0x01) r.u32();
}

/** Reads the imports, exports (with function types) and memories of a module. */
export function inspectWasm(bytes: Uint8Array): WasmModuleInfo {
  const types: FuncType[] = [];
  const imports: WasmImport[] = [];
  const importedFunctionTypes: number[] = [];
  const functionTypes: number[] = [];
  const memories: MemoryLimits[] = [];
  const rawExports: { name: string; kind: number; index: number }[] = [];
  for (const section of sections(bytes)) {
    const r = new Reader(bytes, section.contentStart, section.end);
    switch (section.id) {
      case 1: { // type
        const count = r.u32();
        for (let i = 0; i < count; i++) {
          const form = r.byte();
          if (form !== 0x60) throw new WasmFormatError(`type ${i} is not a function type`);
          const params = Array.from({ length: r.u32() }, () => r.byte());
          const results = Array.from({ length: r.u32() }, () => r.byte());
          types.push({ params, results });
        }
        break;
      }
      case 2: { // import
        const count = r.u32();
        for (let i = 0; i < count; i++) {
          const module = r.name();
          const name = r.name();
          const kind = r.byte();
          if (kind === 0) {
            const typeIndex = r.u32();
            importedFunctionTypes.push(typeIndex);
            imports.push({ module, name, kind: "function", type: types[typeIndex] });
          } else if (kind === 1) {
            skipTableType(r);
            imports.push({ module, name, kind: "table" });
          } else if (kind === 2) {
            readLimits(r, `memory import ${module}.${name}`);
            imports.push({ module, name, kind: "memory" });
          } else if (kind === 3) {
            r.byte();
            r.byte();
            imports.push({ module, name, kind: "global" });
          } else if (kind === 4) {
            r.byte();
            r.u32();
            imports.push({ module, name, kind: "tag" });
          } else {
            throw new WasmFormatError(`import ${module}.${name} has an unknown kind ${kind}`);
          }
        }
        break;
      }
      case 3: { // function
        const count = r.u32();
        for (let i = 0; i < count; i++) functionTypes.push(r.u32());
        break;
      }
      case 5: { // memory
        const count = r.u32();
        for (let i = 0; i < count; i++) memories.push(readLimits(r, `memory ${i}`));
        break;
      }
      case 7: { // export
        const count = r.u32();
        for (let i = 0; i < count; i++) {
          rawExports.push({ name: r.name(), kind: r.byte(), index: r.u32() });
        }
        break;
      }
    }
  }
  const exports = rawExports.map(({ name, kind, index }): WasmExport => {
    const kindName = KINDS[kind];
    if (kindName === undefined) throw new WasmFormatError(`export ${name} has an unknown kind`);
    if (kindName !== "function") return { name, kind: kindName };
    const typeIndex = index < importedFunctionTypes.length
      ? importedFunctionTypes[index]
      : functionTypes[index - importedFunctionTypes.length];
    return { name, kind: kindName, type: types[typeIndex] };
  });
  return { imports, exports, memories };
}

function encodeU32(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

/**
 * A copy of `bytes` whose memory section gives every defined memory the maximum `maxPages`
 * (the module's own maximum must not be larger: the caller checks). Nothing else changes.
 */
export function capMemories(bytes: Uint8Array, maxPages: number): Uint8Array {
  const all = sections(bytes);
  const memory = all.find((s) => s.id === 5);
  if (memory === undefined) return bytes;
  const r = new Reader(bytes, memory.contentStart, memory.end);
  const count = r.u32();
  const content: number[] = [...encodeU32(count)];
  for (let i = 0; i < count; i++) {
    const limits = readLimits(r, `memory ${i}`);
    const maximum = Math.min(limits.maximumPages ?? maxPages, maxPages);
    content.push(0x01, ...encodeU32(limits.initialPages), ...encodeU32(maximum));
  }
  const header = [5, ...encodeU32(content.length)];
  const out = new Uint8Array(
    bytes.length - (memory.end - memory.start) + header.length + content.length,
  );
  out.set(bytes.subarray(0, memory.start), 0);
  out.set(header, memory.start);
  out.set(content, memory.start + header.length);
  out.set(bytes.subarray(memory.end), memory.start + header.length + content.length);
  return out;
}

const VALUE_TYPE_NAMES: Record<number, string> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};

/** `(i32, i64) -> i32` */
export function formatFuncType(type: FuncType | undefined): string {
  if (type === undefined) return "(unknown type)";
  const names = (list: ValueType[]) =>
    list.map((t) => VALUE_TYPE_NAMES[t] ?? `0x${t.toString(16)}`);
  const results = names(type.results);
  return `(${names(type.params).join(", ")}) -> ${
    results.length === 0 ? "()" : results.length === 1 ? results[0] : `(${results.join(", ")})`
  }`;
}

export function sameFuncType(a: FuncType | undefined, b: FuncType): boolean {
  return a !== undefined && a.params.length === b.params.length &&
    a.results.length === b.results.length && a.params.every((t, i) => t === b.params[i]) &&
    a.results.every((t, i) => t === b.results[i]);
}
