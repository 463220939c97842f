// Drives a template's built web page in headless Chromium with playwright-core, as a user
// would: node _page.mjs CHROMIUM URL KIND NAME. KIND "browser-ts" (plain DOM) or "react-ts"
// (the React page): waits for "Connected", adds the person NAME through the form, waits for
// the name in the list, reloads (the token is in localStorage) and checks the list again.
// Prints `ok …` / `FAIL …` lines and exits 0 only when every step passed.
import process from "node:process";
import { chromium } from "playwright-core";

const [executablePath, url, kind, name] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, headless: true });
const page = await browser.newPage();
const log = [];
page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
page.on("pageerror", (e) => log.push(`pageerror: ${e.stack ?? e}`));
const input = kind === "browser-ts" ? "#name-input" : 'input[placeholder="Enter name"]';
const submit = kind === "browser-ts" ? "#add-btn" : 'button[type="submit"]';
const list = kind === "browser-ts" ? "#people-list" : "ul";
let failed = 0;

async function step(label, body) {
  try {
    await body();
    console.log(`ok ${label}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${label}: ${String(error?.message ?? error).split("\n")[0]}`);
  }
}

await step("the page connects", async () => {
  await page.goto(url);
  await page.getByText("Connected", { exact: true }).waitFor({ timeout: 20_000 });
});
await step("adding a person through the form shows it in the list", async () => {
  await page.locator(input).fill(name);
  await page.locator(submit).click();
  await page.locator(list).getByText(name, { exact: true }).waitFor({ timeout: 20_000 });
});
await step("after a reload the subscription brings the row back", async () => {
  await page.reload();
  await page.getByText("Connected", { exact: true }).waitFor({ timeout: 20_000 });
  await page.locator(list).getByText(name, { exact: true }).waitFor({ timeout: 20_000 });
});
if (failed > 0) console.log(log.slice(-20).join("\n"));
await browser.close();
process.exit(failed === 0 ? 0 : 1);
