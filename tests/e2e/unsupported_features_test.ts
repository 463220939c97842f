/**
 * A module that declares a feature Lightcone does not execute, or a rule SpacetimeDB refuses
 * (RLS on a private table, a join rule that does not type-check, a view with parameters), is refused at publish with an error naming it (never accepted and silently ignored), and an
 * update to such a module is refused while the running module keeps serving.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const REFUSED: { fixture: string; message: RegExp }[] = [
  {
    fixture: "rls_private_table",
    message:
      /failed to create row-level security: `SELECT \* FROM secret WHERE owner = :sender`: Cannot define RLS rule on private table: secret\. Please make table public if you wish to restrict access using RLS\./,
  },
  {
    fixture: "rls_join_rule",
    message:
      /failed to create row-level security: `SELECT doc\.\* FROM doc JOIN account ON doc\.account_id = account\.ident WHERE account\.ident = :sender`: Unexpected type: \(expected\) /,
  },
  {
    // A view is always called without arguments: one declaring parameters could never run.
    fixture: "view_params",
    message:
      /The anonymous view "older_than" declares parameters \(min_age\): views with parameters are not supported/,
  },
];

async function putModule(
  url: string,
  name: string,
  bundle: string,
  token?: string,
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${url}/v1/database/${name}?host_type=Js`, {
    method: "PUT",
    body: bundle,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "publishing a module with an unsupported feature is refused with the feature's name",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      const gate = await publish(server.url, "running", await fixtureBundle("gate"));
      for (const { fixture, message } of REFUSED) {
        const bundle = await fixtureBundle(fixture);
        await t.step(`${fixture}: a first publish is refused`, async () => {
          const refused = await putModule(server.url, fixture.replaceAll("_", "-"), bundle);
          assertEquals(refused.status, 400);
          assertMatch(refused.text, message);
          const describe = await fetch(
            `${server.url}/v1/database/${fixture.replaceAll("_", "-")}/schema?version=9`,
          );
          await describe.body?.cancel();
          assertEquals(describe.status, 404);
        });
        await t.step(`${fixture}: an update to it is refused, the old module serves`, async () => {
          const refused = await putModule(server.url, "running", bundle, gate.token);
          assertEquals(refused.status, 400);
          assertMatch(refused.text, message);
          assertEquals((await call(server.url, "running", "entries", [])).json, ["from init"]);
        });
      }
    } finally {
      await server.close();
    }
  },
});
