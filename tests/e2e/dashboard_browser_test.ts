/**
 * The dashboard in a real browser: headless Chromium (Debian's package, driven by playwright-core
 * as in tests/clients/browser_test.ts) opens /dashboard of a real server, signs in with the
 * owner's token, finds the published database in the list, browses a table, runs a query and
 * sees its rows, and sees an SQL error exactly as the server wrote it. Every step waits for an
 * element (bounded, generous deadlines), never for a fixed time. Skips loudly only where
 * Debian's chromium could not be installed.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  announceSkip,
  chromiumPath,
  ensureClientsInstalled,
  type LineClient,
  startBrowser,
} from "../clients/support.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

await ensureClientsInstalled();
const chromium = chromiumPath();
if (!chromium) {
  announceSkip(
    "dashboard browser test (tests/e2e/dashboard_browser_test.ts)",
    "Debian's chromium is not installed and tests/support/install_clients.sh could not install it",
  );
}

/** How long one step may wait for the page (a loaded 2-core machine is slow, never stuck). */
const STEP_MS = 60_000;

/**
 * The innerText of the first element matching `selector` once `predicate` (a JS expression over
 * `text`) holds, polled in the page; the step fails after STEP_MS with what it saw last.
 */
async function waitForText(
  browser: LineClient,
  selector: string,
  predicate = "true",
): Promise<string> {
  const expression = `(async () => {
    const deadline = Date.now() + ${STEP_MS};
    let seen = "(no element)";
    while (Date.now() < deadline) {
      const element = document.querySelector(${JSON.stringify(selector)});
      if (element) {
        const text = element.innerText;
        seen = text;
        if (${predicate}) return text;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("timed out waiting for " + ${JSON.stringify(`${selector} (${predicate})`)} +
      "; last seen: " + seen);
  })()`;
  return await browser.request<string>("eval", { expression }, STEP_MS + 10_000);
}

Deno.test({
  name: "dashboard in Chromium: sign in, list the database, browse, query rows, see an SQL error",
  ignore: !chromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    let browser: LineClient | undefined;
    try {
      const owner = await publish(server.url, "dash-chat", await fixtureBundle("chat"));
      const text = "hello from the dashboard test";
      const sent = await call(server.url, "dash-chat", "send_message", [text], owner.token);
      assertEquals(sent.status, 200, sent.text);
      const badSql = "SELECT * FROM no_such_table";
      const expectedError = await fetch(`${server.url}/v1/database/dash-chat/sql`, {
        method: "POST",
        headers: { authorization: `Bearer ${owner.token}` },
        body: badSql,
      });
      assertEquals(expectedError.status, 400);
      const expectedErrorText = await expectedError.text();

      browser = await startBrowser("dashboard Chromium", chromium!);
      await browser.request("goto", { url: `${server.url}/dashboard` }, STEP_MS);

      // Sign in with the owner's token.
      await waitForText(browser, "#sign-in");
      await browser.request("fill", { selector: "#token-input", value: owner.token }, STEP_MS);
      await browser.request("click", { selector: "#sign-in" }, STEP_MS);
      const ownerIdentity: string = JSON.parse(atob(owner.token.split(".")[1])).hex_identity;
      const whoami = await waitForText(browser, "#whoami", "text.startsWith('identity ')");
      assertEquals(whoami, `identity ${ownerIdentity.slice(0, 8)}…${ownerIdentity.slice(-6)}`);

      // The database list: this owner's database, with its state from /v1/metrics.
      const row = await waitForText(browser, '#databases tr[data-database="dash-chat"]');
      assert(row.includes("dash-chat"), row);
      assert(row.includes("you"), `the owner column names the signed-in identity: ${row}`);
      assert(/running|hibernated/.test(row), `the state is shown: ${row}`);

      // The database page: its tables with row counts, and the table browser.
      await browser.request("click", { selector: '#databases a[href="#/db/dash-chat"]' }, STEP_MS);
      await waitForText(browser, "#database-name", "text === 'dash-chat'");
      const messageRow = await waitForText(
        browser,
        '#tables tr[data-table="message"] td.row-count',
        "text === '1'",
      );
      assertEquals(messageRow, "1");
      await browser.request("click", { selector: '#tables tr[data-table="message"]' }, STEP_MS);
      const browsed = await waitForText(
        browser,
        "#browse-rows",
        `text.includes(${JSON.stringify(text)})`,
      );
      assert(browsed.includes("sender"), `the browser shows the column names: ${browsed}`);

      // The SQL console: rows as a table.
      await browser.request("click", { selector: "#tab-sql" }, STEP_MS);
      await browser.request(
        "fill",
        { selector: "#sql-input", value: "SELECT id, text FROM message" },
        STEP_MS,
      );
      await browser.request("click", { selector: "#sql-run" }, STEP_MS);
      const result = await waitForText(
        browser,
        "#sql-result",
        `text.includes(${JSON.stringify(text)})`,
      );
      assert(/\bid\b/.test(result) && result.includes("text"), result);

      // An SQL error, as the server wrote it.
      await browser.request("fill", { selector: "#sql-input", value: badSql }, STEP_MS);
      await browser.request("click", { selector: "#sql-run" }, STEP_MS);
      const error = await waitForText(browser, "#sql-error");
      assertEquals(error, `HTTP 400: ${expectedErrorText}`);

      // The module's log, for the owner, without an error.
      await browser.request("click", { selector: "#tab-logs" }, STEP_MS);
      await waitForText(browser, "#logs-output, #logs-error");
      assertEquals(
        await browser.request("eval", { expression: "!!document.querySelector('#logs-error')" }),
        false,
      );

      // The token lives in this tab's sessionStorage, never in the address.
      const where = await browser.request<{ href: string; stored: boolean; local: number }>(
        "eval",
        {
          expression:
            `({ href: location.href, stored: sessionStorage.getItem("lightcone.dashboard.token") === ${
              JSON.stringify(owner.token)
            }, local: localStorage.length })`,
        },
      );
      assert(!where.href.includes(owner.token), where.href);
      assertEquals(where.stored, true);
      assertEquals(where.local, 0);

      // Nothing the page did was blocked by its own Content-Security-Policy.
      const pageLog = await browser.request<string[]>("log");
      const blocked = pageLog.filter((line) => /Content Security Policy/i.test(line));
      assertEquals(blocked, []);
    } catch (error) {
      if (browser) {
        const pageLog = await browser.request<string[]>("log").catch(() => []);
        console.error(`page log:\n${pageLog.join("\n")}`);
      }
      throw error;
    } finally {
      await browser?.close();
      await server.close();
    }
  },
});
