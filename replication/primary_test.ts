import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { resolveStalePending } from "./primary.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("a pending module change under way in this process is not taken for one a crash left", async () => {
  // A new database being published: no module.js yet, its module change pending at offset 0.
  const dir = await Deno.makeTempDir({ prefix: "lightcone-primary-test-" });
  try {
    await Deno.mkdir(`${dir}/replication`);
    const pending = (at: number) =>
      `${dir}/replication/module-${String(at).padStart(20, "0")}.pending.json`;
    const body = JSON.stringify({ owner: "ab".repeat(32), names: ["db"], bundle: "new" });
    await Deno.writeTextFile(pending(0), body);
    await Deno.writeTextFile(pending(7), body);
    // The pump's first look at the database while the publish has not settled yet: offset 0 is
    // live (its publish renames or removes the file), offset 7 was left by a crash.
    await resolveStalePending(dir, new Set([0]));
    assertEquals(await exists(pending(0)), true, "the live change's file was removed");
    assertEquals(await exists(pending(7)), false, "the stale change's file stayed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
