/**
 * benchmarks-ts: SpacetimeDB's benchmark module (driven upstream by crates/bench). Not a
 * benchmark here: each workload's reducers are called once with a small load through the
 * official SDK and their results checked: row counts over SQL (the tables are private: the
 * owner's token comes from run.ts) and the "expected N, processed M" lines the reducers log.
 */
import { type Any, assertEq, checkArgs, connect, loadBindings, runChecks } from "./common.ts";

const { bindings: path, url, db, extra: [token] } = checkArgs();
const b = await loadBindings(path);
const { conn } = await connect(b, url, db);
const r = conn.reducers;
const LOAD = 10;

async function sql(query: string): Promise<Any[][]> {
  const response = await fetch(`${url}/v1/database/${db}/sql`, {
    method: "POST",
    body: query,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`SQL ${query}: ${response.status} ${text}`);
  return JSON.parse(text)[0].rows;
}

async function count(table: string): Promise<number> {
  return Number((await sql(`SELECT COUNT(*) AS n FROM ${table}`))[0][0]);
}

async function logLines(): Promise<string[]> {
  const response = await fetch(`${url}/v1/database/${db}/logs?num_lines=10000`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`logs: ${response.status} ${text}`);
  return text.trim().split("\n").map((line) => JSON.parse(line).message as string);
}

/** The last "PREFIX: expected, processed: n" line the module logged, as [expected, n]. */
async function processed(prefix: string): Promise<[number, number]> {
  const line = (await logLines()).findLast((l) => l.startsWith(`${prefix}:`));
  const match = line && /: (\d+), processed: (\d+)$/.exec(line);
  if (!match) throw new Error(`no "${prefix}: N, processed: M" line in the module log`);
  return [Number(match[1]), Number(match[2])];
}

await runChecks("benchmarks", [
  ["circles: init_game_circles loads, run_game_circles joins", async () => {
    await r.initGameCircles({ initialLoad: LOAD });
    assertEq([await count("food"), await count("entity"), await count("circle")], [
      LOAD,
      LOAD,
      LOAD,
    ], "food, entity, circle rows");
    await r.runGameCircles({ initialLoad: LOAD });
    const [expectedAll, all] = await processed("CROSS JOIN ALL");
    assertEq([expectedAll, all], [LOAD ** 3, LOAD ** 3], "CROSS JOIN ALL expected/processed");
    const [expectedFood, food] = await processed("CROSS JOIN CIRCLE FOOD");
    console.log(`     CROSS JOIN CIRCLE FOOD: expected ${expectedFood}, processed ${food}`);
    // Circles whose entity exists, times every food: the entity ids are auto-incremented.
    const entityIds = new Set((await sql("SELECT id FROM entity")).map((row) => Number(row[0])));
    const circlesWithEntity = (await sql("SELECT entity_id FROM circle"))
      .filter((row) => entityIds.has(Number(row[0]))).length;
    assertEq(food, circlesWithEntity * LOAD, "CROSS JOIN CIRCLE FOOD processed");
  }],
  ["ia_loop: init_game_ia_loop loads and moves, run_game_ia_loop visits every agent", async () => {
    await r.initGameIaLoop({ initialLoad: LOAD });
    assertEq([await count("position"), await count("velocity")], [LOAD * 100, LOAD * 50], "rows");
    assertEq(await processed("UPDATE POSITION ALL"), [LOAD * 100, LOAD * 100], "update all");
    assertEq(await processed("UPDATE POSITION BY VELOCITY"), [LOAD * 50, LOAD * 50], "by velocity");
    assertEq(await count("game_enemy_ai_agent_state"), LOAD, "agents");
    await r.runGameIaLoop({ initialLoad: LOAD });
    assertEq(await processed("ENEMY IA LOOP PLAYERS"), [LOAD, LOAD], "agents visited");
  }],
  ["synthetic: reducers without tables (1 and 32 arguments, logging)", async () => {
    await r.fnWith1Args({ arg: "x" });
    const args = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`arg${i + 1}`, `${i}`]));
    await r.fnWith32Args(args);
    const before = (await logLines()).filter((l) => l === "hello again!").length;
    await r.printManyThings({ n: 3 });
    const after = (await logLines()).filter((l) => l === "hello again!").length;
    assertEq(after - before, 3, "print_many_things lines");
  }],
  ["synthetic: table reducers fail as the module is written (upstream module bug)", async () => {
    // The module reads its synthetic tables as ctx.db.unique0U32U64Str etc., but declares them
    // in schema({...}) as unique_0_u32_u64_str: the library (2.8.3, 2.10.1 and the mirror's
    // own) names ctx.db's accessors after those keys, so the accessor is undefined and tsc
    // rejects the module (TS2349). SpacetimeDB's host fails the call the same way; this checks
    // that Lightcone reports it as it does, rolled back, instead of doing something else.
    let failure: unknown;
    try {
      await r.insertUnique0U32U64Str({ id: 1, name: "a", age: 10n });
    } catch (error) {
      failure = error;
    }
    assertEq(String(failure), "InternalError: The instance encountered a fatal error.", "error");
    const logged = (await logLines()).findLast((l) => l.includes("insert_unique_0_u32_u64_str"));
    assertEq(
      logged?.split("\n")[0],
      "TypeError: Cannot read properties of undefined (reading 'insert')",
      "module log",
    );
    assertEq(await count("unique_0_u32_u64_str"), 0, "rows");
  }],
]);
conn.disconnect();
