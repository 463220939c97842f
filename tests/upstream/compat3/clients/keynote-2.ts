// Driver for templates/keynote-2: runs the template's own load client for a few seconds, its
// SpacetimeDB connector (src/connectors/spacetimedb.ts) with the runner and the test-1
// scenario (reducer_single: transfer between Zipf-chosen accounts), over bindings that
// `lightcone generate` wrote to module_bindings/. run.ts seeds the accounts first with
// `lightcone call DB seed N BALANCE`, as the template's init script does with `spacetime call`.
// Its environment: STDB_URL, STDB_MODULE, SEED_ACCOUNTS, SEED_INITIAL_BALANCE, VERIFY=1.
import { getSharedRuntimeDefaults } from "./config";
import { spacetimedb } from "./connectors/spacetimedb";
import { runOne } from "./core/runner";
import { reducer_single } from "./scenario_recipes/reducer_single";
import { check, expect, finish } from "./_check";

// deno-lint-ignore no-explicit-any
const env = (globalThis as any).process.env;
const seconds = Number(env.LC_SECONDS ?? "3");
const config = getSharedRuntimeDefaults(env);

await check(
  "the template's connector reads the seeded accounts, runs transfers, verifies the total",
  async () => {
    const root = spacetimedb(config);
    await root.open();
    const first = await root.getAccount(0);
    expect(first?.balance === BigInt(config.initialBalance), `account 0: ${first?.balance}`);
    const result = await runOne({
      connector: spacetimedb(config),
      scenario: reducer_single,
      seconds,
      concurrency: 4,
      accounts: config.accounts,
      alpha: 1.5,
      runtimeConfig: config,
    });
    console.log(
      `keynote-2 load: ${result.samples} transfers in ${seconds}s (${result.tps.toFixed(0)} tps, ` +
        `p50 ${result.p50_ms.toFixed(1)} ms, p99 ${result.p99_ms.toFixed(1)} ms, ` +
        `collision rate ${result.collision_rate.toFixed(3)}) on this machine`,
    );
    expect(result.samples > 0, "no transfer completed");
    // Total balance preserved, some balances changed (the template's own verification).
    await new Promise((resolve) => setTimeout(resolve, 500));
    await root.verify!();
    await root.close();
  },
);

finish();
