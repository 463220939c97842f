import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  clientHostname,
  parseAddress,
  parseTrustedProxy,
  resolveClient,
  TrustedProxies,
} from "./client_address.ts";

Deno.test("parseAddress reads IPv4, IPv6 (compressed, mapped, bracketed, zoned) and refuses the rest", () => {
  assertEquals(parseAddress("203.0.113.7"), new Uint8Array([203, 0, 113, 7]));
  assertEquals(parseAddress("::ffff:203.0.113.7"), new Uint8Array([203, 0, 113, 7]));
  assertEquals(parseAddress("::FFFF:cb00:7107"), new Uint8Array([203, 0, 113, 7]));
  assertEquals(parseAddress("[::1]"), new Uint8Array([...new Array(15).fill(0), 1]));
  assertEquals(parseAddress("fe80::1%eth0")?.[0], 0xfe);
  assertEquals(
    parseAddress("2001:db8:0:0:1:0:0:1"),
    parseAddress("2001:db8::1:0:0:1"),
  );
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.4:80",
      "::1::2",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7::8",
      "12345::",
      "unknown",
      "_hidden",
    ]
  ) {
    assertEquals(parseAddress(bad), undefined, bad);
  }
});

Deno.test("trusted proxy ranges match by prefix, within one address family", () => {
  const proxies = TrustedProxies.parse([
    "10.0.0.0/8",
    "192.168.1.1",
    "fd00::/8",
    "::ffff:172.16.0.0/108",
  ]);
  for (const inside of ["10.1.2.3", "::ffff:10.9.9.9", "192.168.1.1", "fd12::5", "172.16.3.4"]) {
    assertEquals(proxies.contains(inside), true, inside);
  }
  for (
    const outside of ["11.0.0.1", "192.168.1.2", "fe00::1", "172.32.0.1", "::a00:1", undefined, "x"]
  ) {
    assertEquals(proxies.contains(outside), false, String(outside));
  }
  assertEquals(TrustedProxies.parse(["0.0.0.0/0"]).contains("8.8.8.8"), true);
  assertEquals(TrustedProxies.parse(["0.0.0.0/0"]).contains("2001:db8::1"), false);
  assertEquals(TrustedProxies.parse(["10.0.0.0/9"]).contains("10.128.0.1"), false);
  assertEquals(TrustedProxies.parse(["10.0.0.0/9"]).contains("10.127.0.1"), true);
  for (
    const bad of [
      "10.0.0.0/33",
      "fd00::/129",
      "10.0.0.0/",
      "10.0.0.0/x",
      "proxy.local",
      "::ffff:1.2.3.4/95",
    ]
  ) {
    assertThrows(() => parseTrustedProxy(bad), /Invalid --trusted-proxy/, bad);
  }
});

Deno.test("the client behind trusted proxies is the right-most untrusted X-Forwarded-For entry", () => {
  const proxies = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8"]);
  // An untrusted peer: its header proves nothing.
  assertEquals(clientHostname("203.0.113.7", "198.51.100.1", proxies), "203.0.113.7");
  // No trusted proxies configured: the header is ignored.
  assertEquals(clientHostname("127.0.0.1", "198.51.100.1", undefined), "127.0.0.1");
  assertEquals(clientHostname("127.0.0.1", "198.51.100.1", new TrustedProxies([])), "127.0.0.1");
  // One proxy.
  assertEquals(clientHostname("127.0.0.1", "198.51.100.1", proxies), "198.51.100.1");
  // A chain: entries the client wrote itself (left of the last untrusted one) are skipped.
  assertEquals(
    clientHostname("127.0.0.1", "127.0.0.1, 198.51.100.1, 10.1.1.1", proxies),
    "198.51.100.1",
  );
  // Spoofed loopback written by the client stays left of its real address.
  assertEquals(clientHostname("127.0.0.1", "127.0.0.1, 203.0.113.9", proxies), "203.0.113.9");
  // A trusted peer without the header, or a header of trusted hops only.
  assertEquals(clientHostname("127.0.0.1", undefined, proxies), "127.0.0.1");
  assertEquals(clientHostname("127.0.0.1", "10.2.2.2", proxies), "10.2.2.2");
  // A malformed entry stops the walk at the last trusted hop.
  assertEquals(clientHostname("127.0.0.1", "198.51.100.1, garbage", proxies), "127.0.0.1");
  assertEquals(clientHostname("127.0.0.1", "garbage, 10.3.3.3", proxies), "10.3.3.3");
});

Deno.test("X-Forwarded-For entries with a port are read; an unreadable one leaves the client unidentified", () => {
  const proxies = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8"]);
  // Some proxies write the client's port too: the address is still the client.
  assertEquals(clientHostname("127.0.0.1", "198.51.100.1:5678", proxies), "198.51.100.1");
  assertEquals(clientHostname("127.0.0.1", "[2001:db8::5]:443", proxies), "2001:db8::5");
  assertEquals(clientHostname("127.0.0.1", "[2001:db8::5]", proxies), "2001:db8::5");
  assertEquals(
    clientHostname("127.0.0.1", "198.51.100.1:1, 10.0.0.2:2", proxies),
    "198.51.100.1",
  );
  // Each request's client, not each connection's port: one share per address.
  assertEquals(
    clientHostname("127.0.0.1", "198.51.100.1:1", proxies),
    clientHostname("127.0.0.1", "198.51.100.1:2", proxies),
  );
  // Unreadable: the proxy stands in for the client, and says so.
  for (const header of ["unknown", "198.51.100.1, ", "1.2.3.4:99999", "_hidden, 10.3.3.3"]) {
    const client = resolveClient("127.0.0.1", header, proxies);
    assertEquals(client.identified, false, header);
  }
  assertEquals(resolveClient("127.0.0.1", "unknown", proxies).hostname, "127.0.0.1");
  assertEquals(resolveClient("127.0.0.1", "_hidden, 10.3.3.3", proxies).hostname, "10.3.3.3");
  assertEquals(resolveClient("127.0.0.1", "198.51.100.1", proxies).identified, true);
  assertEquals(resolveClient("127.0.0.1", undefined, proxies).identified, true);
  assertEquals(resolveClient("203.0.113.7", "unknown", proxies).identified, true);
});
