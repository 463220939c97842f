import { strictEqual } from "node:assert/strict";
import { TrustedProxies } from "../../lib/client_address.ts";
import { externalUri } from "./http_handlers.ts";

const url = new URL("http://10.0.0.5:3000/v1/database/app/route/hook?x=1");
const forwarded = new Headers({
  host: "10.0.0.5:3000",
  "x-forwarded-proto": "https, http",
  "x-forwarded-host": "app.example.com, inner.example",
});
const proxies = TrustedProxies.parse(["10.0.0.0/24"]);

Deno.test("externalUri() takes X-Forwarded-Proto/-Host from a trusted proxy", () => {
  strictEqual(
    externalUri(url, forwarded, "10.0.0.9", proxies),
    "https://app.example.com/v1/database/app/route/hook?x=1",
  );
});

Deno.test("externalUri() ignores X-Forwarded-Proto/-Host from a peer that is not a trusted proxy", () => {
  const asReceived = "http://10.0.0.5:3000/v1/database/app/route/hook?x=1";
  strictEqual(externalUri(url, forwarded, "192.0.2.7", proxies), asReceived);
  strictEqual(externalUri(url, forwarded, undefined, proxies), asReceived);
  // Without --trusted-proxy no peer is trusted.
  strictEqual(externalUri(url, forwarded, "10.0.0.9", undefined), asReceived);
  strictEqual(externalUri(url, forwarded, "10.0.0.9", TrustedProxies.parse([])), asReceived);
});

Deno.test("externalUri() keeps the Host header, and a trusted proxy's unknown scheme is not taken", () => {
  const headers = new Headers({ host: "db.example.org", "x-forwarded-proto": "gopher" });
  strictEqual(
    externalUri(url, headers, "10.0.0.9", proxies),
    "http://db.example.org/v1/database/app/route/hook?x=1",
  );
  strictEqual(
    externalUri(url, new Headers(), "192.0.2.7", proxies),
    "http://10.0.0.5:3000/v1/database/app/route/hook?x=1",
  );
});
