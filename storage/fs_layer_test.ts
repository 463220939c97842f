import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import {
  denoFs,
  InjectedFaultError,
  makeDirsDurable,
  MemoryFs,
  parseTestFsFault,
  withTestFault,
} from "./fs_layer.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("MemoryFs.crash() keeps synced bytes and synced directory entries only", () => {
  const fs = new MemoryFs();
  makeDirsDurable(fs, "/d");
  const synced = fs.open("/d/synced", { create: true });
  synced.write(bytes(1, 2, 3), 0);
  synced.syncData();
  synced.write(bytes(9), 3);
  fs.syncDir("/d");
  const unlisted = fs.open("/d/unlisted", { create: true });
  unlisted.write(bytes(5), 0);
  unlisted.syncData();
  const lost = fs.crash("lose-unsynced");
  deepStrictEqual(lost.readFile("/d/synced"), bytes(1, 2, 3));
  deepStrictEqual(lost.exists("/d/unlisted"), false);
  deepStrictEqual(fs.crash("keep-unsynced").readFile("/d/synced"), bytes(1, 2, 3, 9));
  fs.rename("/d/synced", "/d/renamed");
  deepStrictEqual(fs.crash().exists("/d/renamed"), false);
  fs.syncDir("/d");
  deepStrictEqual(fs.crash().readFile("/d/renamed"), bytes(1, 2, 3));
  deepStrictEqual(fs.crash().exists("/d/synced"), false);
});

Deno.test("MemoryFs directories survive a crash only once their parent is synced", () => {
  const fs = new MemoryFs();
  fs.mkdir("/a");
  fs.mkdir("/a/b");
  fs.syncDir("/a");
  deepStrictEqual(fs.crash().exists("/a/b"), false);
  fs.syncDir("/");
  deepStrictEqual(fs.crash().exists("/a/b"), true);
});

Deno.test("MemoryFs fails the Nth call once, or from then on when persistent", () => {
  const fs = new MemoryFs();
  const file = fs.open("/f", { create: true });
  fs.injectFault({ operation: "sync", nth: 2 });
  file.syncData();
  throws(() => file.syncData(), InjectedFaultError);
  file.syncData();
  fs.injectFault({ operation: "write", nth: 2, persistent: true });
  file.write(bytes(1), 0);
  throws(() => file.write(bytes(2), 1), InjectedFaultError);
  throws(() => file.write(bytes(3), 2), InjectedFaultError);
  deepStrictEqual(fs.counts.write, 3);
});

Deno.test("MemoryFs tear-unsynced keeps each sector either old or new", () => {
  const fs = new MemoryFs({ random: seededRandom(3) });
  const file = fs.open("/f", { create: true });
  file.write(new Uint8Array(4096).fill(1), 0);
  file.syncData();
  fs.syncDir("/");
  file.write(new Uint8Array(4096).fill(2), 0);
  const kinds = new Set<number>();
  for (let trial = 0; trial < 20; trial++) {
    const after = fs.crash("tear-unsynced").readFile("/f");
    for (let sector = 0; sector < 8; sector++) {
      const slice = after.subarray(sector * 512, sector * 512 + 512);
      ok(slice.every((b) => b === slice[0]), "a sector is never mixed");
      kinds.add(slice[0]);
    }
  }
  deepStrictEqual([...kinds].sort(), [1, 2]);
});

Deno.test("the test fault switch parses its two faults and refuses anything else", () => {
  deepStrictEqual(parseTestFsFault("fail-fdatasync:3"), { kind: "fail-fdatasync", nth: 3 });
  deepStrictEqual(parseTestFsFault("unsafe-delay-writes:200"), {
    kind: "unsafe-delay-writes",
    delayMs: 200,
  });
  for (const bad of ["fail-fdatasync", "fail-fdatasync:0", "drop-writes:5", "fail-fdatasync:x"]) {
    throws(() => parseTestFsFault(bad), /Invalid LIGHTCONE_TEST_FS_FAULT/);
  }
});

Deno.test("withTestFault fails exactly the Nth fdatasync on the real disk", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const fs = withTestFault(denoFs, { kind: "fail-fdatasync", nth: 2 });
    const file = fs.open(`${dir}/f`, { create: true });
    file.write(bytes(1), 0);
    file.syncData();
    throws(() => file.syncData(), /injected fdatasync failure 2/);
    file.syncData();
    file.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("withTestFault unsafe-delay-writes keeps writes in memory until later", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const fs = withTestFault(denoFs, { kind: "unsafe-delay-writes", delayMs: 20 });
    const file = fs.open(`${dir}/f`, { create: true });
    const buffer = bytes(1, 2);
    file.write(buffer, 0);
    buffer[0] = 9; // callers may reuse their buffers
    file.syncData();
    deepStrictEqual(Deno.readFileSync(`${dir}/f`), bytes(), "nothing on disk after a 'sync'");
    await new Promise((resolve) => setTimeout(resolve, 60));
    deepStrictEqual(Deno.readFileSync(`${dir}/f`), bytes(1, 2));
    file.write(bytes(3), 2);
    deepStrictEqual(file.size(), 3, "reads see pending writes");
    file.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
