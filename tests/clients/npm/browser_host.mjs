// Playwright host of the client matrix, run with Node by tests/clients/browser.ts:
// launches headless Chromium (the executable given as argv[2]) with playwright-core
// and serves one JSON request per stdin line, `{id, op, args}`, with one JSON reply
// per stdout line, `{id, ok, result | error}`. Operations: goto, reload, driver
// (calls globalThis.lightconeDriver.run in the page), fill, click, text, eval, log.
import process from "node:process";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const executablePath = process.argv[2];
const browser = await chromium.launch({ executablePath, headless: true });
const page = await browser.newPage();
const pageLog = [];
page.on("console", (message) => pageLog.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => pageLog.push(`pageerror: ${error.stack ?? error}`));

const operations = {
  goto: async ({ url }) => {
    await page.goto(url);
    return null;
  },
  reload: async () => {
    await page.reload();
    return null;
  },
  driver: ({ op, args }) =>
    page.evaluate(([op, args]) => globalThis.lightconeDriver.run(op, args), [op, args]),
  fill: async ({ selector, value }) => {
    await page.fill(selector, value);
    return null;
  },
  click: async ({ selector }) => {
    await page.click(selector);
    return null;
  },
  text: ({ selector }) => page.locator(selector).innerText({ timeout: 5000 }),
  eval: ({ expression }) => page.evaluate(expression),
  log: () => pageLog.splice(0),
};

const write = (reply) => process.stdout.write(JSON.stringify(reply) + "\n");
write({ id: 0, ok: true, result: { browser: browser.version() } });
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "") continue;
  const { id, op, args } = JSON.parse(line);
  try {
    const operation = operations[op];
    if (!operation) throw new Error(`Unknown host operation "${op}"`);
    write({ id, ok: true, result: (await operation(args ?? {})) ?? null });
  } catch (error) {
    write({ id, ok: false, error: String(error?.stack ?? error) });
  }
}
await browser.close();
process.exit(0);
