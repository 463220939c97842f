import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { captureIo } from "../io.ts";
import { updateEnvLocal } from "./dev.ts";

const PREFIXES = [
  "SPACETIMEDB",
  "VITE_SPACETIMEDB",
  "NEXT_PUBLIC_SPACETIMEDB",
  "REACT_APP_SPACETIMEDB",
  "EXPO_PUBLIC_SPACETIMEDB",
  "PUBLIC_SPACETIMEDB",
];

Deno.test("dev's .env.local names the database and host for Vite, Next.js, CRA, Expo and SvelteKit clients too, keeping other lines", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-dev-env-" });
  try {
    const path = join(dir, ".env.local");
    // A Vite client (e.g. SpacetimeDB's react-ts template) reads VITE_SPACETIMEDB_DB_NAME.
    await Deno.writeTextFile(
      path,
      "# mine\nAPI_KEY=abc\nVITE_SPACETIMEDB_DB_NAME=old-name\n  SPACETIMEDB_HOST = http://old",
    );
    await updateEnvLocal(dir, "my-db", "http://127.0.0.1:3000", captureIo());
    const lines = (await Deno.readTextFile(path)).split("\n");
    assertEquals(lines.slice(0, 2), ["# mine", "API_KEY=abc"]);
    for (const prefix of PREFIXES) {
      assertEquals(lines.filter((l) => l.startsWith(`${prefix}_DB_NAME=`)), [
        `${prefix}_DB_NAME=my-db`,
      ]);
      assertEquals(
        lines.filter((l) => l.trim().startsWith(`${prefix}_HOST`)),
        [`${prefix}_HOST=http://127.0.0.1:3000`],
      );
    }

    // A project without .env.local (a client copied from elsewhere) gets one.
    await Deno.remove(path);
    await updateEnvLocal(dir, "other-db", "http://127.0.0.1:3000", captureIo());
    const made = await Deno.readTextFile(path);
    assertEquals(
      made.split("\n").filter((l) => l.endsWith("_DB_NAME=other-db")).length,
      PREFIXES.length,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
