import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { join } from "node:path";
import { importReplicationKey, loadReplicationKey } from "./auth.ts";

const SECRET = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeKey(path: string, text: string, mode: number): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
}

/** Whether `key` is the HMAC key of `secret` (same tag over the same bytes). */
async function keyOf(key: CryptoKey, secret: string): Promise<boolean> {
  const data = new TextEncoder().encode("probe");
  const expected = await importReplicationKey(new TextEncoder().encode(secret));
  const a = new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
  const b = new Uint8Array(await crypto.subtle.sign("HMAC", expected, data));
  return a.every((byte, i) => byte === b[i]);
}

Deno.test("loadReplicationKey() reads an owner-only key file, white space dropped", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "key");
    await writeKey(path, `  ${SECRET}\n`, 0o600);
    assertEquals(await keyOf(await loadReplicationKey(path), SECRET), true);
  });
});

Deno.test("loadReplicationKey() refuses a missing, readable-by-others, non-regular, large or short file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "key");
    await rejects(loadReplicationKey(path), /"[^"]*key" does not exist/);
    await writeKey(path, SECRET, 0o640);
    await rejects(loadReplicationKey(path), /may be read by its group or others \(mode 640\)/);
    await writeKey(path, "x".repeat(5000), 0o600);
    await rejects(loadReplicationKey(path), /is 5000 bytes, over the 4096 a key file may have/);
    await writeKey(path, "short", 0o600);
    await rejects(loadReplicationKey(path), /holds a secret of 5 bytes: use at least 16/);
    await rejects(loadReplicationKey(dir), /is not a regular file/);
  });
});

Deno.test("loadReplicationKey() never takes a secret from a file replaced after its checks", async () => {
  // The path is swapped for a world-readable file holding another secret right after the
  // server's look by path: the bytes read must be the checked file's, or the load refused.
  await withDir(async (dir) => {
    const path = join(dir, "key");
    const swap = join(dir, "swap");
    await writeKey(path, SECRET, 0o600);
    await writeKey(swap, OTHER, 0o644);
    const stat = Deno.stat;
    let swapped = false;
    Deno.stat = async (target: string | URL) => {
      const info = await stat(target);
      if (!swapped && String(target) === path) {
        swapped = true;
        await Deno.rename(swap, path);
      }
      return info;
    };
    try {
      const outcome = await loadReplicationKey(path).then(
        (key) => keyOf(key, OTHER).then((other) => other ? "the swapped file's secret" : "kept"),
        (error: Error) => error.message,
      );
      assertEquals(swapped, true);
      assertEquals(
        /may be read by its group or others \(mode 644\)/.test(outcome) || outcome === "kept",
        true,
        outcome,
      );
    } finally {
      Deno.stat = stat;
    }
  });
});
