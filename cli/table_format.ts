/** psql-style text tables, as the official CLI prints them. */

/** ` a   | b ` header, `-----+----` rule, one line per row; every line ends with "\n". */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => ` ${(cell ?? "").padEnd(widths[i])} `).join("|").trimEnd();
  const rule = widths.map((w) => "-".repeat(w + 2)).join("+");
  return [line(headers), rule, ...rows.map(line)].join("\n") + "\n";
}
