/**
 * Loads a tenant bundle inside the database worker: every `spacetime:sys@X.Y`
 * import is pointed at a `data:` shim that reads the syscalls from a private
 * global, any other import is refused with the real host's message, and the
 * result is imported from a `blob:` URL so that the worker's permissions (none)
 * apply to everything the tenant code tries to load (deno-feasibility.md §1.3).
 */
import * as acorn from "acorn";
import { redactHostPaths } from "../lib/host_paths.ts";
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../protocol/mod.ts";
import { LOG_MESSAGE_CHARS_MAX } from "../lib/limits.ts";
import { MODULE_HOOKS_SYMBOL } from "./sys_abi.ts";

// Captured at load: a database process later reduces its globals to an allow-list.
const hostBtoa = btoa;
const HostBlob = Blob;
const hostCreateObjectURL = URL.createObjectURL;
const hostRevokeObjectURL = URL.revokeObjectURL;
const hostSetTimeout = setTimeout;
const hostClearTimeout = clearTimeout;

const SUPPORTED_SYS_VERSIONS = new Set(["2.0", "2.1"]);
const SYS_GLOBAL_KEY = Symbol.for("lightcone.sys");

export class ModuleLoadError extends Error {
  override name = "ModuleLoadError";
}

export interface SysModules {
  v20: Record<string, unknown>;
  v21: Record<string, unknown>;
}

/** Rewrites import specifiers; throws ModuleLoadError for imports the host cannot provide. */
export function rewriteImports(source: string): string {
  let program: acorn.Program;
  try {
    program = acorn.parse(source, { ecmaVersion: "latest", sourceType: "module" });
  } catch (error) {
    throw new ModuleLoadError(
      `The module is not valid JavaScript: ${error instanceof Error ? error.message : error}`,
    );
  }
  const edits: { start: number; end: number; text: string }[] = [];
  let sawSys = false;
  const visitSource = (node: acorn.Node | null | undefined) => {
    if (!node || node.type !== "Literal") return;
    const literal = node as acorn.Literal;
    if (typeof literal.value !== "string") return;
    edits.push({
      start: literal.start,
      end: literal.end,
      text: JSON.stringify(resolve(literal.value)),
    });
    sawSys = true;
  };
  for (const statement of program.body) {
    if (
      statement.type === "ImportDeclaration" || statement.type === "ExportAllDeclaration" ||
      statement.type === "ExportNamedDeclaration"
    ) {
      visitSource(statement.source);
      checkNamedSysImports(statement);
    }
  }
  // Dynamic import() is not part of the module API: every one becomes a rejected
  // promise, so tenant code never reaches a loader (files, npm, node: built-ins).
  walk(program, (node) => {
    if (node.type === "ImportExpression") {
      edits.push({ start: node.start, end: node.end, text: DENIED_IMPORT });
    }
  });
  if (!sawSys) {
    throw new ModuleLoadError(
      "The module does not import spacetime:sys@2.x: is it a bundle built from the spacetimedb " +
        "module library (`build`)?",
    );
  }
  // Outermost edits win (an import() nested inside another one goes with it).
  edits.sort((a, b) => a.start - b.start || b.end - a.end);
  const parts: string[] = [];
  let position = 0;
  for (const edit of edits) {
    if (edit.start < position) continue;
    parts.push(source.slice(position, edit.start), edit.text);
    position = edit.end;
  }
  parts.push(source.slice(position));
  return parts.join("");
}

/**
 * Refuses a named import (or re-export) of something the host's `spacetime:sys@X.Y` does not
 * export, e.g. a syscall of a newer SpacetimeDB, with V8's text naming the module by its
 * specifier (the engine's own text would name the shim's long data: URL instead).
 */
function checkNamedSysImports(
  statement: acorn.ImportDeclaration | acorn.ExportNamedDeclaration | acorn.ExportAllDeclaration,
): void {
  const specifier = statement.source?.value;
  if (typeof specifier !== "string" || statement.type === "ExportAllDeclaration") return;
  const version = /^spacetime:sys@(.*)$/.exec(specifier)?.[1];
  if (version === undefined || !SUPPORTED_SYS_VERSIONS.has(version)) return;
  const provided = sysExportNames(version);
  for (const item of statement.specifiers) {
    let imported: acorn.Identifier | acorn.Literal | undefined;
    if (item.type === "ImportSpecifier") imported = item.imported;
    else if (item.type === "ExportSpecifier") imported = item.local;
    if (imported === undefined) continue; // default or namespace import
    const name = imported.type === "Identifier" ? imported.name : String(imported.value);
    if (!provided.includes(name)) {
      throw new ModuleLoadError(
        `The module failed to load: SyntaxError: The requested module '${specifier}' does not ` +
          `provide an export named '${name}'`,
      );
    }
  }
}

function sysExportNames(version: string): readonly string[] {
  return version === "2.0" ? ["moduleHooks", ...SYS_2_0_EXPORTS] : SYS_2_1_EXPORTS;
}

function resolve(specifier: string): string {
  const match = /^spacetime:(\w+)@(.*)$/.exec(specifier);
  if (!match || match[1] !== "sys") {
    throw new ModuleLoadError(`Could not find module "${specifier}"`);
  }
  const version = match[2];
  if (!/^\d+\.\d+$/.test(version)) {
    throw new ModuleLoadError(`Invalid version in module spec "${specifier}"`);
  }
  if (!SUPPORTED_SYS_VERSIONS.has(version)) {
    throw new ModuleLoadError(
      `Could not import "${specifier}", likely because this module was built for a newer ` +
        `version of SpacetimeDB. It requires sys module v${version}, but that version is ` +
        `not supported by the database.`,
    );
  }
  return shimUrl(version);
}

/** Visits every node of an acorn tree. */
function walk(node: acorn.Node, visit: (node: acorn.Node) => void): void {
  visit(node);
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const child of value) if (isNode(child)) walk(child, visit);
    } else if (isNode(value)) {
      walk(value, visit);
    }
  }
}

function isNode(value: unknown): value is acorn.Node {
  return typeof value === "object" && value !== null &&
    typeof (value as acorn.Node).type === "string" &&
    typeof (value as acorn.Node).start === "number";
}

const DENIED_IMPORT =
  '(Promise.reject(new TypeError("Dynamic import() is not available to modules")))';

const shimCache = new Map<string, string>();

function shimUrl(version: string): string {
  let url = shimCache.get(version);
  if (url) return url;
  const names = sysExportNames(version);
  const key = version === "2.0" ? "v20" : "v21";
  const lines = [
    `const s = globalThis[Symbol.for("lightcone.sys")].${key};`,
    ...names.map((n) => `export const ${n} = s.${n};`),
  ];
  url = "data:text/javascript;base64," + hostBtoa(lines.join("\n"));
  shimCache.set(version, url);
  return url;
}

export { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../protocol/mod.ts";

/** The hooks object returned by `default[moduleHooks](namespace)`. */
export interface ModuleHooks {
  __describe_module__(): Uint8Array;
  __get_error_constructor__(code: number): new (message: string) => Error;
  readonly __sender_error_class__: new (message: string) => Error;
  __call_reducer__(
    reducerId: number,
    sender: bigint,
    connectionId: bigint,
    timestamp: bigint,
    args: DataView,
  ): unknown;
  __call_view__(id: number, sender: bigint, args: Uint8Array): unknown;
  __call_view_anon__(id: number, args: Uint8Array): unknown;
  __call_procedure__(
    id: number,
    sender: bigint,
    connectionId: bigint,
    timestamp: bigint,
    args: Uint8Array,
  ): Uint8Array;
  __call_http_handler__?(
    id: number,
    timestamp: bigint,
    request: Uint8Array,
    body: Uint8Array,
  ): [Uint8Array, Uint8Array];
}

const REQUIRED_HOOKS = [
  "__describe_module__",
  "__get_error_constructor__",
  "__call_reducer__",
  "__call_view__",
  "__call_view_anon__",
  "__call_procedure__",
] as const;

/**
 * Imports the tenant bundle and returns its hooks. `source` must already be
 * instrumented if runaway protection is wanted.
 */
export async function loadModule(
  source: string,
  sys: SysModules,
  options: { timeoutMs: number; importsRewritten?: boolean },
): Promise<ModuleHooks> {
  const rewritten = options.importsRewritten ? source : rewriteImports(source);
  (globalThis as Record<symbol, unknown>)[SYS_GLOBAL_KEY] = sys;
  const url = hostCreateObjectURL(new HostBlob([rewritten], { type: "text/javascript" }));
  let namespace: Record<string, unknown>;
  try {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = hostSetTimeout(
        () => reject(new ModuleLoadError("module has top-level await and is pending")),
        options.timeoutMs,
      );
    });
    try {
      namespace = await Promise.race([import(url), timeout]) as Record<string, unknown>;
    } finally {
      hostClearTimeout(timer);
    }
  } catch (error) {
    if (error instanceof ModuleLoadError) throw error;
    throw new ModuleLoadError(`The module failed to load: ${describeError(error)}`);
  } finally {
    hostRevokeObjectURL(url);
    // The shims copied the syscalls when they were evaluated; the global is not for tenants.
    delete (globalThis as Record<symbol, unknown>)[SYS_GLOBAL_KEY];
  }
  const schema = namespace.default as Record<symbol, unknown> | undefined | null;
  if (schema === undefined || schema === null) {
    throw new ModuleLoadError("must export schema as default export");
  }
  const factory = schema[MODULE_HOOKS_SYMBOL];
  if (typeof factory !== "function") {
    throw new ModuleLoadError("default export is not a Schema object");
  }
  let hooks: ModuleHooks;
  try {
    hooks = factory.call(schema, namespace) as ModuleHooks;
  } catch (error) {
    throw new ModuleLoadError(`The module failed to register its exports: ${describeError(error)}`);
  }
  for (const name of REQUIRED_HOOKS) {
    if (typeof hooks?.[name] !== "function") {
      throw new ModuleLoadError(`The module's hooks lack the function ${name}`);
    }
  }
  if (typeof hooks.__sender_error_class__ !== "function") {
    throw new ModuleLoadError("The module's hooks lack __sender_error_class__");
  }
  return hooks;
}

/** "Name: message" of an error from tenant code, for replies; host paths removed. */
export function describeError(error: unknown): string {
  if (error instanceof ModuleLoadError) return capText(redactHostPaths(cutText(error.message)));
  if (error instanceof Error) {
    return capText(redactHostPaths(cutText(`${error.name}: ${cutText(String(error.message))}`)));
  }
  return capText(redactHostPaths(cutText(String(error))));
}

/** Error texts a database reports are cut here (a tenant can throw a 100 MB message). */
const ERROR_TEXT_CHARS_MAX = LOG_MESSAGE_CHARS_MAX;

function cutText(text: string): string {
  // Before the redaction pass: leave room for it, never scan a huge string.
  return text.length > ERROR_TEXT_CHARS_MAX * 2 ? text.slice(0, ERROR_TEXT_CHARS_MAX * 2) : text;
}

function capText(text: string): string {
  if (text.length <= ERROR_TEXT_CHARS_MAX) return text;
  return `${text.slice(0, ERROR_TEXT_CHARS_MAX - 40)}… [${
    text.length - ERROR_TEXT_CHARS_MAX + 40
  }+ characters truncated]`;
}

/**
 * The stack of an error from tenant code, for the module's log: the tenant's own frames (in its
 * bundle, loaded from a `blob:` URL) are kept, the host's frames (our worker files, Deno's
 * `ext:` and `node:` code, V8 builtins) are dropped, and host paths left in the text are
 * replaced, so that neither a client nor a tenant learns where or what the host runs.
 */
export function describeErrorStack(error: unknown): string {
  if (!(error instanceof Error)) return redactHostPaths(String(error));
  const stack = typeof error.stack === "string" ? cutText(error.stack) : "";
  const lines = stack.split("\n");
  const head = lines.findIndex((line) => STACK_FRAME.test(line));
  if (head < 0) return describeError(error);
  const kept = lines.slice(head).filter((line) => line.includes("blob:"));
  return capText(redactHostPaths([...lines.slice(0, head), ...kept].join("\n")));
}

const STACK_FRAME = /^\s+at /;
