/**
 * The text of a migration plan as SpacetimeDB prints it (`AutoMigratePlan::pretty_print`,
 * crates/schema/src/auto_migrate/formatter.rs and termcolor_formatter.rs), with or without
 * ANSI colours; and Rust `Debug` renderings of values, which that text and the execution
 * errors embed (`U32(\n    0,\n)`, `String("x")`).
 */
import {
  type AlgebraicType,
  BinaryReader,
  decodeValue,
  type ModuleDef,
  type TableDef,
  type Value,
} from "../protocol/mod.ts";
import { compareText, formatType, type MigrationPlan, resolveDeep } from "./auto_migrate.ts";

/** termcolor's ANSI codes for the colours SpacetimeDB's scheme uses. */
const COLORS = {
  created: "32", // green
  removed: "31", // red
  changed: "33", // yellow
  header: "34", // blue
  tableName: "36", // cyan
  columnType: "35", // magenta
  sectionHeader: "34", // blue
  access: "32", // green
};

class PlanWriter {
  text = "";
  #indent = 0;
  constructor(readonly color: boolean) {}

  colored(text: string, fg: string | undefined, bold: boolean): void {
    if (!this.color) {
      this.text += text;
      return;
    }
    // termcolor: reset, then bold and the foreground colour, the text, reset.
    let spec = "\x1b[0m";
    if (bold) spec += "\x1b[1m";
    if (fg) spec += `\x1b[${fg}m`;
    this.text += spec + text + "\x1b[0m";
  }
  indentText(): void {
    this.text += "    ".repeat(this.#indent);
  }
  line(text: string): void {
    this.indentText();
    this.text += text + "\n";
  }
  coloredLine(text: string, fg: string | undefined, bold: boolean): void {
    this.indentText();
    this.colored(text, fg, bold);
    this.text += "\n";
  }
  action(action: "Created" | "Removed" | "Changed"): void {
    this.indentText();
    this.text += "▸ ";
    const fg = action === "Created"
      ? COLORS.created
      : action === "Removed"
      ? COLORS.removed
      : COLORS.changed;
    this.colored(action, fg, true);
  }
  table(name: string): void {
    this.colored(name, COLORS.tableName, true);
  }
  type(type: AlgebraicType): void {
    this.colored(formatType(type), COLORS.columnType, false);
  }
  indent(): void {
    this.#indent++;
  }
  dedent(): void {
    if (this.#indent > 0) this.#indent--;
  }
}

/** The plan as SpacetimeDB's `pretty_print` renders it (`color`: `AnsiColor`, else `NoColor`). */
export function formatMigrationPlan(plan: MigrationPlan, options: { color: boolean }): string {
  const out = new PlanWriter(options.color);
  const rule = "━".repeat(60);
  out.line(rule);
  out.coloredLine("Database Migration Plan", COLORS.header, true);
  out.line(rule);
  out.line("");
  const oldTables = new Map(plan.old.tables.map((table) => [table.name, table]));
  const newTables = new Map(plan.new.tables.map((table) => [table.name, table]));
  const oldTable = (name: string) => oldTables.get(name)!;
  const newTable = (name: string) => newTables.get(name)!;
  for (const step of plan.steps) {
    switch (step.kind) {
      case "AddTable":
        writeAddTable(out, newTable(step.name));
        break;
      case "RemoveTable":
        out.action("Removed");
        out.text += " table: ";
        out.table(step.name);
        out.text += "\n";
        out.line("");
        break;
      case "AddIndex":
      case "RemoveIndex":
      case "ChangeIndexSourceName": {
        const table = step.kind === "RemoveIndex" ? oldTable(step.table) : newTable(step.table);
        const index = table.indexes.find((candidate) => candidate.name === step.name)!;
        out.action(
          step.kind === "AddIndex"
            ? "Created"
            : step.kind === "RemoveIndex"
            ? "Removed"
            : "Changed",
        );
        out.text += ` index ${index.name} on [${columnNames(table, index.columns)}] of table `;
        out.table(table.name);
        out.text += "\n";
        break;
      }
      case "AddConstraint":
      case "RemoveConstraint": {
        const table = step.kind === "AddConstraint" ? newTable(step.table) : oldTable(step.table);
        const constraint = table.uniqueConstraints.find((c) => c.name === step.name)!;
        out.action(step.kind === "AddConstraint" ? "Created" : "Removed");
        out.text += ` unique constraint ${constraint.name} on [${
          columnNames(table, constraint.columns)
        }] of table `;
        out.table(table.name);
        out.text += "\n";
        break;
      }
      case "AddSequence":
      case "RemoveSequence": {
        const table = step.kind === "AddSequence" ? newTable(step.table) : oldTable(step.table);
        const sequence = table.sequences.find((s) => s.name === step.name)!;
        out.action(step.kind === "AddSequence" ? "Created" : "Removed");
        out.text += ` auto-increment constraint ${sequence.name} on column ${
          table.columns[sequence.column].name
        } of table `;
        out.table(table.name);
        out.text += "\n";
        break;
      }
      case "ChangeAccess": {
        const table = newTables.get(step.name);
        const isPublic = table
          ? table.isPublic
          : plan.new.views.find((view) => view.name === step.name)?.isPublic ?? false;
        out.action("Changed");
        out.text += " access for table ";
        out.table(step.name);
        out.text += " (";
        out.colored(isPublic ? "private → public" : "public → private", COLORS.access, false);
        out.text += ")\n";
        break;
      }
      case "ChangePrimaryKey": {
        const before = oldTable(step.name).primaryKey;
        const after = newTable(step.name).primaryKey;
        if (before === undefined && after === undefined) break;
        const description = after === undefined
          ? "removed"
          : before === undefined
          ? `added on column ${after}`
          : `changed to column ${after}`;
        out.action("Changed");
        out.text += " primary key on table ";
        out.table(step.name);
        out.text += ` (${description})\n`;
        break;
      }
      case "AddSchedule":
      case "RemoveSchedule": {
        const table = step.kind === "AddSchedule" ? newTable(step.table) : oldTable(step.table);
        const schedule = table.schedule!;
        out.action(step.kind === "AddSchedule" ? "Created" : "Removed");
        out.text += " schedule for table ";
        out.table(table.name);
        out.text += ` calling ${schedule.functionKind} ${schedule.functionName}\n`;
        break;
      }
      case "AddRowLevelSecurity":
      case "RemoveRowLevelSecurity": {
        const inOld = plan.old.rowLevelSecurity.some((rule) => rule.sql === step.name);
        const inNew = plan.new.rowLevelSecurity.some((rule) => rule.sql === step.name);
        if (inOld === inNew) break;
        out.action(step.kind === "AddRowLevelSecurity" ? "Created" : "Removed");
        out.text += " row level security policy:\n";
        out.indent();
        out.indentText();
        out.text += "`";
        out.colored(step.name, COLORS.sectionHeader, false);
        out.text += "`\n";
        out.dedent();
        break;
      }
      case "ChangeColumns": {
        const before = oldTable(step.name);
        const after = newTable(step.name);
        out.action("Changed");
        out.text += " columns for table ";
        out.table(step.name);
        out.text += "\n";
        out.indent();
        for (const column of after.columns) {
          const old = before.columns.find((candidate) => candidate.colId === column.colId);
          if (!old) continue;
          if (old.name !== column.name) {
            out.line(`~ Renamed: ${old.name} → ${column.name}`);
          }
          if (JSON.stringify(old.type) !== JSON.stringify(column.type)) {
            out.indentText();
            out.text += `~ Modified: ${column.name} (`;
            out.type(resolveDeep(old.type, before.typespace));
            out.text += " → ";
            out.type(resolveDeep(column.type, after.typespace));
            out.text += ")\n";
          }
        }
        out.dedent();
        break;
      }
      case "AddColumns": {
        const before = oldTable(step.name);
        const after = newTable(step.name);
        const added = after.columns.filter((column) =>
          !before.columns.some((old) => old.colId === column.colId)
        );
        out.action("Created");
        out.text += ` column${added.length > 1 ? "s" : ""} in table `;
        out.table(step.name);
        out.text += "\n";
        out.indent();
        for (const column of added) {
          const type = resolveDeep(column.type, after.typespace);
          out.indentText();
          out.text += `+ ${column.name}: `;
          out.type(type);
          const value = column.defaultValue === undefined
            ? undefined
            : decodeValue(new BinaryReader(column.defaultValue), type, after.typespace);
          out.text += (value === undefined ? "" : ` (default: ${debugValue(type, value, true)})`) +
            "\n";
        }
        out.dedent();
        break;
      }
      case "ChangeTableAccessorName":
        out.action("Changed");
        out.text += " table accessor name for ";
        out.table(step.name);
        out.text += "\n";
        break;
      case "ChangeColumnAccessorName":
        out.action("Changed");
        out.text += " column accessor name for ";
        out.table(step.name);
        out.text += ".";
        out.colored(step.column, COLORS.columnType, true);
        out.text += "\n";
        break;
      case "ReschemaEventTable":
        out.action("Changed");
        out.text += " schema of event table ";
        out.table(step.name);
        out.text += "\n";
        break;
      case "AddView":
      case "RemoveView": {
        const def = step.kind === "AddView" ? plan.new : plan.old;
        writeView(out, def, step.name, step.kind === "AddView" ? "Created" : "Removed");
        break;
      }
      case "UpdateView":
        break;
      case "DisconnectAllUsers": {
        out.indentText();
        const warning =
          "!!! Warning: All clients will be disconnected due to breaking schema changes";
        // termcolor: bold on a red background.
        out.text += options.color ? `\x1b[0m\x1b[1m\x1b[41m${warning}\x1b[0m` : warning;
        out.text += "\n";
        break;
      }
    }
  }
  return out.text;
}

function writeAddTable(out: PlanWriter, table: TableDef): void {
  out.indentText();
  out.text += "▸ ";
  out.colored("Created", COLORS.created, true);
  out.text += ` ${table.tableType === "System" ? "system" : "user"} table: `;
  out.table(table.name);
  out.text += " (";
  out.colored(table.isPublic ? "public" : "private", COLORS.access, false);
  out.text += ")\n";
  out.indent();
  if (table.columns.length > 0) {
    out.coloredLine("Columns:", COLORS.sectionHeader, true);
    out.indent();
    for (const column of table.columns) {
      out.indentText();
      out.text += `• ${column.name}: `;
      out.type(resolveDeep(column.type, table.typespace));
      out.text += "\n";
    }
    out.dedent();
  }
  const byName = <T extends { name: string }>(items: T[]) =>
    [...items].sort((a, b) => compareText(a.name, b.name));
  if (table.uniqueConstraints.length > 0) {
    out.coloredLine("Unique constraints:", COLORS.sectionHeader, true);
    out.indent();
    for (const constraint of byName(table.uniqueConstraints)) {
      out.line(`• ${constraint.name} on [${columnNames(table, constraint.columns)}]`);
    }
    out.dedent();
  }
  if (table.indexes.length > 0) {
    out.coloredLine("Indexes:", COLORS.sectionHeader, true);
    out.indent();
    for (const index of byName(table.indexes)) {
      out.line(`• ${index.name} on [${columnNames(table, index.columns)}]`);
    }
    out.dedent();
  }
  if (table.sequences.length > 0) {
    out.coloredLine("Auto-increment constraints:", COLORS.sectionHeader, true);
    out.indent();
    for (const sequence of byName(table.sequences)) {
      out.line(`• ${sequence.name} on ${table.columns[sequence.column].name}`);
    }
    out.dedent();
  }
  if (table.schedule) {
    out.coloredLine("Schedule:", COLORS.sectionHeader, true);
    out.indent();
    out.line(`• Calls ${table.schedule.functionKind}: ${table.schedule.functionName}`);
    out.dedent();
  }
  out.dedent();
  out.line("");
}

function writeView(
  out: PlanWriter,
  def: ModuleDef,
  name: string,
  action: "Created" | "Removed",
): void {
  const view = def.views.find((candidate) => candidate.name === name);
  if (!view) return;
  // SpacetimeDB writes the "▸ " prefix twice for views.
  out.indentText();
  out.text += "▸ ";
  out.action(action);
  out.text += view.isAnonymous ? " anonymous view: " : " view: ";
  out.table(name);
  out.text += "\n";
  out.indent();
  if (view.params.elements.length > 0) {
    out.coloredLine("Parameters:", COLORS.sectionHeader, true);
    out.indent();
    for (const param of view.params.elements) {
      out.indentText();
      out.text += `• ${param.name}: `;
      out.type(resolveDeep(param.algebraicType, def.typespace));
      out.text += "\n";
    }
    out.dedent();
  }
  const row = rowOfView(view.returnType, def);
  if (row.length > 0) {
    out.coloredLine("Columns:", COLORS.sectionHeader, true);
    out.indent();
    for (const column of row) {
      out.indentText();
      out.text += `• ${column.name}: `;
      out.type(resolveDeep(column.algebraicType, def.typespace));
      out.text += "\n";
    }
    out.dedent();
  }
  out.dedent();
  out.line("");
}

function rowOfView(returnType: AlgebraicType, def: ModuleDef) {
  let type = resolveDeep(returnType, def.typespace);
  if (type.tag === "Array") type = type.value;
  if (type.tag === "Sum" && type.value.variants.length === 2) {
    type = type.value.variants[0].algebraicType;
  }
  if (type.tag === "Product" && type.value.elements.length === 1) {
    const inner = type.value.elements[0];
    if (inner.name === "__query__") type = inner.algebraicType;
  }
  return type.tag === "Product" ? type.value.elements : [];
}

function columnNames(table: TableDef, columns: number[]): string {
  return columns.map((column) => table.columns[column].name).join(", ");
}

// --- Rust Debug renderings ------------------------------------------------------------------

type DebugNode =
  | { kind: "leaf"; text: string }
  | { kind: "tuple"; name: string; items: DebugNode[] }
  | { kind: "struct"; name: string; fields: [string, DebugNode][] }
  | { kind: "list"; items: DebugNode[] };

const leaf = (text: string): DebugNode => ({ kind: "leaf", text });
const tuple = (name: string, ...items: DebugNode[]): DebugNode => ({ kind: "tuple", name, items });

/**
 * A value as Rust's `Debug` prints SpacetimeDB's `AlgebraicValue` (`{:?}`, or `{:#?}` when
 * `pretty`): `U32(5)`, `String("x")`, `Product(ProductValue { elements: [...] })`.
 */
export function debugValue(type: AlgebraicType, value: Value, pretty: boolean): string {
  return render(valueNode(type, value), pretty, 0);
}

function valueNode(type: AlgebraicType, value: Value): DebugNode {
  switch (type.tag) {
    case "Bool":
      return tuple("Bool", leaf(String(value)));
    case "String":
      return tuple("String", leaf(rustString(value as string)));
    case "I128":
    case "U128":
      return tuple(type.tag, tuple("Packed", leaf(String(value))));
    case "F32":
    case "F64": {
      const n = value as number;
      const text = Number.isInteger(n) ? n.toFixed(1) : String(n);
      return tuple(type.tag, tuple("Total", leaf(text)));
    }
    case "Product": {
      const elements = value as Value[];
      return tuple("Product", productNode(type.value.elements, elements));
    }
    case "Sum": {
      const sum = value as { tag: number; value: Value };
      const variant = type.value.variants[sum.tag];
      return tuple("Sum", {
        kind: "struct",
        name: "SumValue",
        fields: [["tag", leaf(String(sum.tag))], [
          "value",
          valueNode(variant.algebraicType, sum.value),
        ]],
      });
    }
    case "Array": {
      const items = value instanceof Uint8Array ? [...value] : value as Value[];
      const element = type.value;
      const list: DebugNode = {
        kind: "list",
        items: items.map((item) => {
          const node = valueNode(element, item as Value);
          // Packed arrays hold plain Rust values: `U32([1, 2])`, not `[U32(1), ...]`.
          if (node.kind === "tuple" && node.items.length === 1 && element.tag !== "Product") {
            return node.items[0];
          }
          if (element.tag === "Product" && node.kind === "tuple") return node.items[0];
          return node;
        }),
      };
      const arrayKind = element.tag === "Ref" ? "Product" : element.tag;
      return tuple("Array", tuple(arrayKind, list));
    }
    case "Ref":
      return leaf(String(value));
    default:
      return tuple(type.tag, leaf(String(value)));
  }
}

function productNode(
  elements: { algebraicType: AlgebraicType }[],
  values: Value[],
): DebugNode {
  return {
    kind: "struct",
    name: "ProductValue",
    fields: [["elements", {
      kind: "list",
      items: values.map((value, i) => valueNode(elements[i].algebraicType, value)),
    }]],
  };
}

function render(node: DebugNode, pretty: boolean, depth: number): string {
  const pad = (n: number) => "    ".repeat(n);
  switch (node.kind) {
    case "leaf":
      return node.text;
    case "tuple":
      if (!pretty) return `${node.name}(${node.items.map((i) => render(i, false, 0)).join(", ")})`;
      return `${node.name}(\n` +
        node.items.map((item) => `${pad(depth + 1)}${render(item, true, depth + 1)},\n`).join("") +
        `${pad(depth)})`;
    case "list":
      if (node.items.length === 0) return "[]";
      if (!pretty) return `[${node.items.map((i) => render(i, false, 0)).join(", ")}]`;
      return "[\n" +
        node.items.map((item) => `${pad(depth + 1)}${render(item, true, depth + 1)},\n`).join("") +
        `${pad(depth)}]`;
    case "struct":
      if (!pretty) {
        return `${node.name} { ${
          node.fields.map(([name, value]) => `${name}: ${render(value, false, 0)}`).join(", ")
        } }`;
      }
      return `${node.name} {\n` +
        node.fields.map(([name, value]) =>
          `${pad(depth + 1)}${name}: ${render(value, true, depth + 1)},\n`
        ).join("") +
        `${pad(depth)}}`;
  }
}

/** A string as Rust's Debug writes it: double quotes, backslash escapes. */
function rustString(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (char === '"') out += '\\"';
    else if (char === "\\") out += "\\\\";
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += char;
  }
  return out + '"';
}
