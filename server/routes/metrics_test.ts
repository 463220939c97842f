import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TrustedProxies } from "../../lib/client_address.ts";
import { metricsAllowed } from "./metrics.ts";

Deno.test("metrics behind a trusted proxy on loopback: only a client the header names as local", () => {
  const options = { trustedProxies: TrustedProxies.parse(["127.0.0.1"]) };
  const fromProxy = { remoteAddr: { hostname: "127.0.0.1", port: 40000, transport: "tcp" } };
  const allowed = (header: string | undefined) => metricsAllowed(options, fromProxy, header);
  assertEquals(allowed(undefined), true); // The proxy's host itself, or a local client.
  assertEquals(allowed("127.0.0.1"), true);
  assertEquals(allowed("::1"), true);
  assertEquals(allowed("198.51.100.1"), false);
  // A header the proxy wrote with ports, or one it could not fill: the client is not known,
  // so not taken for the (local) proxy.
  assertEquals(allowed("198.51.100.1:5678"), false);
  assertEquals(allowed("unknown"), false);
  assertEquals(allowed("198.51.100.1, "), false);
  assertEquals(allowed("127.0.0.1:5678"), true);
  // --metrics-public serves everyone.
  assertEquals(metricsAllowed({ ...options, metricsPublic: true }, fromProxy, "unknown"), true);
  // An untrusted peer is judged by its own address.
  const remote = { remoteAddr: { hostname: "203.0.113.7", port: 40000, transport: "tcp" } };
  assertEquals(metricsAllowed(options, remote, "127.0.0.1"), false);
});
