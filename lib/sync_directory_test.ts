import { rejects } from "node:assert/strict";
import { syncDirectory } from "./sync_directory.ts";

Deno.test("syncDirectory() syncs a directory and refuses one that does not exist", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-sync-dir-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await syncDirectory(dir);
    await syncDirectory(dir, { bestEffort: true });
    // Best effort covers a failed fsync only, not a directory that is not there.
    await rejects(syncDirectory(`${dir}/missing`, { bestEffort: true }), Deno.errors.NotFound);
    await rejects(syncDirectory(`${dir}/missing`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
