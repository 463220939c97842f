/**
 * Client matrix, browser: headless Chromium (Debian's package, driven by playwright-core)
 * loads a page from a server of its own, cross-origin to Lightcone, with the official SDK
 * (2.8.3 and the newest 2.x) bundled for the browser, and runs the chat scenario in it.
 * Skips loudly only where Debian's chromium could not be installed.
 */
import { chatScenario } from "./scenario.ts";
import {
  announceSkip,
  bundle,
  chromiumPath,
  ensureClientsInstalled,
  SDK_VERSIONS,
  servePages,
  startBrowser,
} from "./support.ts";

await ensureClientsInstalled();
const chromium = chromiumPath();
if (!chromium) {
  announceSkip(
    "browser client matrix (tests/clients/browser_test.ts)",
    "Debian's chromium is not installed and tests/support/install_clients.sh could not install it",
  );
}

for (const sdk of SDK_VERSIONS) {
  Deno.test({
    name: `client matrix: Chromium with spacetimedb@${sdk}`,
    ignore: !chromium,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      const script = await bundle("browser_client.ts", { sdk, platform: "browser" });
      const pages = servePages({
        "/": {
          type: "text/html",
          text:
            `<!doctype html><title>chat ${sdk}</title><script type="module" src="/client.js"></script>`,
        },
        "/client.js": { path: script, type: "text/javascript" },
      });
      const browser = await startBrowser(`Chromium sdk ${sdk}`, chromium!);
      try {
        await browser.request("goto", { url: `${pages.url}/` });
        await chatScenario(t, (op, args) => browser.request("driver", { op, args }));
      } catch (error) {
        console.error(`page log:\n${(await browser.request<string[]>("log")).join("\n")}`);
        throw error;
      } finally {
        await browser.close();
        await pages.close();
      }
    },
  });
}
