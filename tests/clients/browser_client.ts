/**
 * Browser entry of the client matrix (bundled by support.ts, loaded by the page that
 * browser_test.ts serves): exposes a ChatDriver as `globalThis.lightconeDriver`, which
 * the Playwright host calls through `page.evaluate`.
 */
import { ChatDriver, tapWebSocketFrames } from "./driver.ts";

tapWebSocketFrames(WebSocket);
(globalThis as { lightconeDriver?: ChatDriver }).lightconeDriver = new ChatDriver();
