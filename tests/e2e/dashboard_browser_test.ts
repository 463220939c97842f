/**
 * The dashboard in a real browser: headless Chromium (Debian's package, driven by playwright-core
 * as in tests/clients/browser_test.ts) opens /dashboard of a real server, signs in with the
 * owner's token, finds the published database in the list, browses a table, lists the module's
 * reducers and calls some through the form (the rows they write seen in the table browser, the
 * server's error for a bad argument shown as written), runs a query and sees its rows, and sees
 * an SQL error exactly as the server wrote it. Every step waits for an element (bounded, generous
 * deadlines), never for a fixed time. Skips loudly only where Debian's chromium could not be
 * installed.
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

/** GET or POST against the server as `token`: the status and the text, for comparison. */
async function apiText(url: string, token: string, init: RequestInit = {}) {
  const response = await fetch(url, {
    ...init,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name:
    "dashboard in Chromium: sign in, list the database, browse, module and calls, query, SQL error, logs, stranger",
  ignore: !chromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    let browser: LineClient | undefined;
    try {
      const db = `${server.url}/v1/database/dash-kitchen`;
      const owner = await publish(server.url, "dash-kitchen", await fixtureBundle("kitchen"));
      const label = "hello from the dashboard test";
      const added = await call(server.url, "dash-kitchen", "add_point", [3, 4, label], owner.token);
      assertEquals(added.status, 200, added.text);
      const badSql = "SELECT * FROM no_such_table";
      const expectedError = await apiText(`${db}/sql`, owner.token, {
        method: "POST",
        body: badSql,
      });
      assertEquals(expectedError.status, 400);

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
      const row = await waitForText(browser, '#databases tr[data-database="dash-kitchen"]');
      assert(row.includes("you"), `the owner column names the signed-in identity: ${row}`);
      assert(/running|hibernated/.test(row), `the state is shown: ${row}`);
      // Its host type, from GET /v1/database/:name; no replication column on this server.
      assertEquals(
        await waitForText(browser, '#databases tr[data-database="dash-kitchen"] td.host-type'),
        "JS",
      );

      // The database page: its tables with row counts (private ones too), and the table browser.
      await browser.request("click", {
        selector: '#databases a[href="#/db/dash-kitchen"]',
      }, STEP_MS);
      await waitForText(browser, "#database-name", "text === 'dash-kitchen'");
      assertEquals(await waitForText(browser, "#host-type"), "JS");
      const points = '#tables tr[data-table="points"] td.row-count';
      assertEquals(await waitForText(browser, points, "text === '1'"), "1");
      const counters = '#tables tr[data-table="counters"] td.row-count';
      assertEquals(await waitForText(browser, counters, "text === '0'"), "0");
      await browser.request("click", { selector: '#tables tr[data-table="points"]' }, STEP_MS);
      const browsed = await waitForText(
        browser,
        "#browse-rows",
        `text.includes(${JSON.stringify(label)})`,
      );
      assert(/\blabel\b/.test(browsed), `the browser shows the column names: ${browsed}`);

      // The Module tab: the kitchen's reducers with their typed parameters, its procedures;
      // no views and no schedules. Each call goes through the form to the public call route.
      await browser.request("click", { selector: "#tab-module" }, STEP_MS);
      const addPoint = await waitForText(browser, '#reducers tr[data-reducer="add_point"]');
      assert(
        addPoint.includes("x: i32") && addPoint.includes("label: string"),
        `the parameters with their types: ${addPoint}`,
      );
      const countPoints = await waitForText(
        browser,
        '#procedures tr[data-procedure="count_points"]',
      );
      assert(countPoints.includes("u64"), `a procedure with its return type: ${countPoints}`);
      await waitForText(browser, "#views-none");
      await waitForText(browser, "#schedules-none");
      const secondLabel = "called through the form";
      await browser.request("click", {
        selector: '#reducers tr[data-reducer="add_point"] button.call',
      }, STEP_MS);
      await waitForText(browser, '#call-form[data-function="add_point"]');
      await browser.request("fill", { selector: "#call-arg-0", value: "5" }, STEP_MS);
      await browser.request("fill", { selector: "#call-arg-1", value: "-6" }, STEP_MS);
      await browser.request("fill", { selector: "#call-arg-2", value: secondLabel }, STEP_MS);
      await browser.request("click", { selector: "#call-send" }, STEP_MS);
      await waitForText(browser, "#call-ok", "text.startsWith('add_point: HTTP 200')");

      // An i64 beyond 2^53 goes through exact; a value the form cannot parse is not sent.
      await browser.request("click", {
        selector: '#reducers tr[data-reducer="bump"] button.call',
      }, STEP_MS);
      await waitForText(browser, '#call-form[data-function="bump"]');
      await browser.request("fill", { selector: "#call-arg-0", value: "big" }, STEP_MS);
      await browser.request("fill", { selector: "#call-arg-1", value: "1.5" }, STEP_MS);
      await browser.request("click", { selector: "#call-send" }, STEP_MS);
      const invalid = await waitForText(browser, "#call-invalid");
      assert(invalid.startsWith("Not sent: by (i64): "), invalid);
      const big = "9007199254740993";
      await browser.request("fill", { selector: "#call-arg-1", value: big }, STEP_MS);
      await browser.request("click", { selector: "#call-send" }, STEP_MS);
      await waitForText(browser, "#call-ok", "text.startsWith('bump: HTTP 200')");

      // A procedure's return value, as the route wrote it.
      await browser.request("click", {
        selector: '#procedures tr[data-procedure="count_points"] button.call',
      }, STEP_MS);
      await waitForText(browser, '#call-form[data-function="count_points"]');
      await browser.request("click", { selector: "#call-send" }, STEP_MS);
      assertEquals(await waitForText(browser, "#call-returned", "text.trim() !== ''"), "3");

      // An argument the form passes on but the module's types refuse: the server's error.
      const badRow = "[1]";
      const refused = await fetch(`${db}/call/insert_all_types`, {
        method: "POST",
        headers: { authorization: `Bearer ${owner.token}`, "content-type": "application/json" },
        body: `[${badRow}]`,
      });
      const refusedText = await refused.text();
      assertEquals(refused.status, 400, refusedText);
      await browser.request("click", {
        selector: '#reducers tr[data-reducer="insert_all_types"] button.call',
      }, STEP_MS);
      await waitForText(browser, '#call-form[data-function="insert_all_types"]');
      await browser.request("fill", { selector: "#call-arg-0", value: badRow }, STEP_MS);
      await browser.request("click", { selector: "#call-send" }, STEP_MS);
      assertEquals(await waitForText(browser, "#call-error"), `HTTP 400: ${refusedText}`);

      // The calls' rows, in the table browser: the new point, and the counter exact.
      await browser.request("click", { selector: "#tab-tables" }, STEP_MS);
      assertEquals(await waitForText(browser, points, "text === '3'"), "3");
      await browser.request("click", { selector: '#tables tr[data-table="points"]' }, STEP_MS);
      const pointsNow = await waitForText(
        browser,
        "#browse-rows",
        `text.includes(${JSON.stringify(secondLabel)})`,
      );
      assert(pointsNow.includes("-6"), pointsNow);
      await browser.request("click", { selector: '#tables tr[data-table="counters"]' }, STEP_MS);
      const countersNow = await waitForText(browser, "#browse-rows", "text.includes('big')");
      assert(countersNow.includes(big), `the i64 arrived exact: ${countersNow}`);

      // The SQL console: rows as a table.
      await browser.request("click", { selector: "#tab-sql" }, STEP_MS);
      const query = "SELECT id, label FROM points";
      await browser.request("fill", { selector: "#sql-input", value: query }, STEP_MS);
      await browser.request("click", { selector: "#sql-run" }, STEP_MS);
      const result = await waitForText(
        browser,
        "#sql-result",
        `text.includes(${JSON.stringify(label)})`,
      );
      assert(
        /\bid\b/.test(result) && !/\bx\b/.test(result),
        `only the projected columns: ${result}`,
      );

      // An SQL error, as the server wrote it.
      await browser.request("fill", { selector: "#sql-input", value: badSql }, STEP_MS);
      await browser.request("click", { selector: "#sql-run" }, STEP_MS);
      assertEquals(await waitForText(browser, "#sql-error"), `HTTP 400: ${expectedError.text}`);

      // The module's log in follow mode: a line logged after it is opened arrives.
      await browser.request("click", { selector: "#tab-logs" }, STEP_MS);
      await waitForText(browser, "#logs-status", "text !== ''");
      await browser.request("click", { selector: "#logs-follow" }, STEP_MS);
      await waitForText(browser, "#logs-following");
      const logged = await call(server.url, "dash-kitchen", "log_something", ["dashboard"]);
      assertEquals(logged.status, 200, logged.text);
      const logText = await waitForText(
        browser,
        "#logs-output",
        "text.includes('hello dashboard')",
      );
      assert(logText.includes("careful"), logText);

      // The token lives in the page's memory only: not in the address, not in any storage (a
      // page a module's handler serves on this origin could read the tab's sessionStorage).
      const where = await browser.request<{ href: string; stored: boolean; local: number }>(
        "eval",
        {
          expression: `({ href: location.href, local: localStorage.length,
            stored: Object.keys(sessionStorage).some((key) =>
              sessionStorage.getItem(key)?.includes(${JSON.stringify(owner.token)})) })`,
        },
      );
      assert(!where.href.includes(owner.token), where.href);
      assertEquals(where.stored, false);
      assertEquals(where.local, 0);

      // A module with lifecycle and scheduled reducers: those are marked, lifecycle ones have no
      // call form, and the schedule names its table, reducer and column.
      await publish(server.url, "dash-everything", await fixtureBundle("codegen_everything"), {
        token: owner.token,
      });
      await browser.request("eval", { expression: `location.hash = "#/db/dash-everything"` });
      await waitForText(browser, "#database-name", "text === 'dash-everything'");
      await browser.request("click", { selector: "#tab-module" }, STEP_MS);
      const init = await waitForText(browser, '#reducers tr[data-reducer="init"]');
      assert(init.includes("init"), init);
      const onConnect = await waitForText(browser, '#reducers tr[data-reducer="on_connect"]');
      assert(onConnect.includes("client_connected"), onConnect);
      const buttons = await browser.request<number[]>("eval", {
        expression: `["init", "on_connect", "tick"].map((name) => document.querySelectorAll(
          '#reducers tr[data-reducer="' + name + '"] button.call').length)`,
      });
      assertEquals(buttons, [0, 0, 1]);
      const schedule = await waitForText(browser, '#schedules tr[data-table="tick_schedule"]');
      assertEquals(schedule.split("\t").map((cell) => cell.trim()), [
        "tick_schedule",
        "tick",
        "scheduled_at",
      ]);

      // A stranger (a new identity minted from the sign-in page) sees what the API shows it:
      // the public table, not the private one, and the logs refused with the server's words.
      await browser.request("click", { selector: "#sign-out" }, STEP_MS);
      await browser.request("click", { selector: "#new-identity" }, STEP_MS);
      await waitForText(browser, "#new-token");
      const strangerToken = (await waitForText(browser, "#new-token code")).trim();
      assert(strangerToken && strangerToken !== owner.token, "a new token was minted");
      const strangerRow = await waitForText(
        browser,
        '#databases tr[data-database="dash-kitchen"]',
      );
      assert(!strangerRow.includes("you"), strangerRow);
      await browser.request("click", {
        selector: '#databases a[href="#/db/dash-kitchen"]',
      }, STEP_MS);
      await waitForText(browser, "#not-owner");
      assertEquals(await waitForText(browser, points, "text === '3'"), "3");
      await waitForText(browser, counters, "text === '—'");
      const refusedCount = await browser.request<string>("eval", {
        expression: `document.querySelector(${JSON.stringify(counters)}).title`,
      });
      const expectedCount = await apiText(`${db}/sql`, strangerToken, {
        method: "POST",
        body: `SELECT COUNT(*) AS n FROM "counters"`,
      });
      assertEquals(refusedCount, `HTTP ${expectedCount.status}: ${expectedCount.text}`);
      await browser.request("click", { selector: "#tab-logs" }, STEP_MS);
      const logsRefused = await waitForText(browser, "#logs-error");
      const expectedLogs = await apiText(`${db}/logs?num_lines=200`, strangerToken);
      assertEquals(expectedLogs.status, 403);
      assertEquals(logsRefused, `HTTP 403: ${expectedLogs.text}`);

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
