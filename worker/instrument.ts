/**
 * Publish-time and run-time instrumentation of tenant JavaScript: a call to a budget "tick"
 * function is inserted as the first statement of every loop body and at the entry of every
 * function, so a reducer that loops forever can be stopped (see worker/budget.ts for why that
 * placement defeats try/catch/finally tricks).
 *
 * The source is parsed with acorn and edited by splicing text at node positions; everything
 * that is not an insertion stays byte-identical. Dynamic `import()` is rewritten to a call of a
 * host function (by default `<tickName>_import`) so tenant code cannot load uninstrumented
 * `data:`/`blob:` modules.
 *
 * Known limits: built-in functions (Array.from, String.prototype.repeat, RegExp matching...) run
 * without ticks, so one builtin call can overrun the budget by its own duration; a direct
 * `eval` inside instrumented code loses access to local scope once the sandbox replaces `eval`
 * (worker/sandbox_globals.ts); completion values of eval'd loops that end in `break` may differ.
 */
import { parse } from "acorn";

/** Which global names the inserted code calls. */
export interface InstrumentOptions {
  /** Global function called at every loop iteration and function entry. */
  tickName: string;
  /** Global function that replaces dynamic `import(...)`; default `importNameFor(tickName)`. */
  importName?: string;
}

/** The four dynamic-function constructors: Function, AsyncFunction, GeneratorFunction, ... */
export type FunctionKind = "normal" | "async" | "generator" | "asyncGenerator";

/** Parameter and body text for a dynamic-function constructor, after instrumentation. */
export interface FunctionParts {
  params: string;
  body: string;
}

/** The name of the host function that replaces `import(...)` for a given tick name. */
export function importNameFor(tickName: string): string {
  return `${tickName}_import`;
}

/** Instruments one ES module (a tenant bundle). Throws SyntaxError if it does not parse. */
export function instrumentModule(source: string, options: InstrumentOptions): string {
  const program = parse(source, {
    ecmaVersion: "latest",
    sourceType: "module",
  }) as unknown as AstNode;
  const edits = collectEdits(program, names(options), false);
  return applyEdits(source, edits, 0, source.length);
}

/**
 * Instruments code given to `eval` (a sloppy-mode script). Rejects `with` statements and any
 * mention of the tick/import names, which could otherwise shadow the tick function.
 */
export function instrumentScript(source: string, options: InstrumentOptions): string {
  const program = parse(source, {
    ecmaVersion: "latest",
    sourceType: "script",
  }) as unknown as AstNode;
  const edits = collectEdits(program, names(options), true);
  return applyEdits(source, edits, 0, source.length);
}

const FUNCTION_PREFIX: Record<FunctionKind, string> = {
  normal: "function",
  async: "async function",
  generator: "function*",
  asyncGenerator: "async function*",
};

/**
 * Instruments the arguments of a dynamic-function constructor (`Function(p1, p2, body)`).
 * The source is assembled the way the engine assembles it (`function anonymous(<params>\n) {\n
 * <body>\n}`), parsed as one function, instrumented, and split back into params and body text.
 */
export function instrumentFunctionParts(
  kind: FunctionKind,
  parts: FunctionParts,
  options: InstrumentOptions,
): FunctionParts {
  const head = `(${FUNCTION_PREFIX[kind]} anonymous(`;
  const middle = "\n) {\n";
  const source = `${head}${parts.params}${middle}${parts.body}\n})`;
  const paramsStart = head.length;
  const paramsEnd = paramsStart + parts.params.length;
  const bodyStart = paramsEnd + middle.length;
  const bodyEnd = bodyStart + parts.body.length;
  const program = parse(source, {
    ecmaVersion: "latest",
    sourceType: "script",
  }) as unknown as AstNode;
  const statements = program.body as AstNode[];
  const statement = statements.length === 1 ? statements[0] : undefined;
  const fn = statement?.type === "ExpressionStatement"
    ? statement.expression as AstNode
    : undefined;
  if (
    fn === undefined || fn.type !== "FunctionExpression" || fn.start !== 1 ||
    fn.end !== source.length - 1 || fn.async !== (kind === "async" || kind === "asyncGenerator") ||
    fn.generator !== (kind === "generator" || kind === "asyncGenerator")
  ) {
    throw new SyntaxError("Dynamic function source does not form a single function");
  }
  const edits = collectEdits(program, names(options), true);
  // The entry tick lands right after "{", which is in the fixed text before the body.
  for (const edit of edits) {
    if (edit.pos === bodyStart - 1) {
      edit.pos = bodyStart;
      edit.end = bodyStart;
    }
  }
  for (const edit of edits) {
    const inParams = edit.pos >= paramsStart && edit.end <= paramsEnd;
    const inBody = edit.pos >= bodyStart && edit.end <= bodyEnd;
    if (!inParams && !inBody) {
      throw new SyntaxError("Dynamic function source does not form a single function");
    }
  }
  return {
    params: applyEdits(source, edits, paramsStart, paramsEnd),
    body: applyEdits(source, edits, bodyStart, bodyEnd),
  };
}

// ---------------------------------------------------------------------------------------------

/** The parts of an acorn node this file reads; acorn's own types are a large union. */
interface AstNode {
  type: string;
  start: number;
  end: number;
  [key: string]: unknown;
}

interface Names {
  tick: string;
  importName: string;
}

/** One text edit: replace [pos, end) by text (an insertion when end === pos). */
interface Edit {
  pos: number;
  end: number;
  text: string;
  /** Closing text goes before opening text at the same position, innermost first. */
  closes: boolean;
  /** Pre-order number of the node that made the edit (outer nodes get smaller numbers). */
  seq: number;
}

function names(options: InstrumentOptions): Names {
  const importName = options.importName ?? importNameFor(options.tickName);
  for (const name of [options.tickName, importName]) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) {
      throw new TypeError(`Instrumentation name "${name}" is not a plain identifier`);
    }
  }
  return { tick: options.tickName, importName };
}

function isNode(value: unknown): value is AstNode {
  return typeof value === "object" && value !== null &&
    typeof (value as { type?: unknown }).type === "string";
}

function collectEdits(root: AstNode, names: Names, dynamic: boolean): Edit[] {
  const edits: Edit[] = [];
  const tickCall = `${names.tick}();`;
  let seq = 0;
  const stack: AstNode[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    seq++;
    const add = (pos: number, text: string, closes = false, end = pos) =>
      edits.push({ pos, end, text, closes, seq });
    switch (node.type) {
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression": {
        const body = node.body as AstNode;
        if (body.type !== "BlockStatement") {
          // Expression-bodied arrow: `x => e` becomes `x => (tick(), e)`.
          add(body.start, `(${names.tick}(), `);
          add(body.end, ")", true);
          break;
        }
        // After the directive prologue, so "use strict" keeps its meaning.
        let pos = body.start + 1;
        let afterDirective = false;
        for (const statement of body.body as AstNode[]) {
          if (statement.type !== "ExpressionStatement" || typeof statement.directive !== "string") {
            break;
          }
          pos = statement.end;
          afterDirective = true;
        }
        add(pos, afterDirective ? `;${tickCall}` : tickCall);
        break;
      }
      case "ForStatement":
      case "ForInStatement":
      case "ForOfStatement":
      case "WhileStatement":
      case "DoWhileStatement": {
        const body = node.body as AstNode;
        if (body.type === "BlockStatement") {
          add(body.start + 1, tickCall);
        } else {
          add(body.start, `{${tickCall}`);
          add(body.end, "}", true);
        }
        break;
      }
      case "StaticBlock": {
        const statements = node.body as AstNode[];
        add(statements.length > 0 ? statements[0].start : node.end - 1, tickCall);
        break;
      }
      case "ImportExpression": {
        // `import(spec, opts)` -> `<importName>(spec, opts)`; the host refuses to load.
        const source = node.source as AstNode;
        add(node.start, `${names.importName}(`, false, source.start);
        break;
      }
      case "Identifier":
        if (node.name === names.tick || node.name === names.importName) {
          throw new SyntaxError(`Identifier "${node.name}" is reserved by the host`);
        }
        break;
      case "WithStatement":
        // A `with` object (e.g. a Proxy) could answer for the tick name; modules are strict.
        if (dynamic) {
          throw new SyntaxError("'with' statements are not supported in generated code");
        }
        break;
    }
    // Push children in reverse so they pop in source order (pre-order numbering).
    const children: AstNode[] = [];
    for (const key in node) {
      const value = node[key];
      if (Array.isArray(value)) {
        for (const item of value) if (isNode(item)) children.push(item);
      } else if (isNode(value)) {
        children.push(value);
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return edits;
}

function compareEdits(a: Edit, b: Edit): number {
  if (a.pos !== b.pos) return a.pos - b.pos;
  if (a.closes !== b.closes) return a.closes ? -1 : 1;
  return a.closes ? b.seq - a.seq : a.seq - b.seq;
}

/** Applies the edits that fall inside [from, to] to source.slice(from, to), in one pass. */
function applyEdits(source: string, edits: Edit[], from: number, to: number): string {
  const inRange = edits.filter((edit) => edit.pos >= from && edit.end <= to);
  inRange.sort(compareEdits);
  const pieces: string[] = [];
  let cursor = from;
  for (const edit of inRange) {
    if (edit.pos < cursor) {
      throw new Error(`Instrumentation edits overlap at offset ${edit.pos}`);
    }
    pieces.push(source.slice(cursor, edit.pos), edit.text);
    cursor = edit.end;
  }
  pieces.push(source.slice(cursor, to));
  return pieces.join("");
}
