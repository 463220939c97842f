import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { clientSource } from "./client_source.ts";

Deno.test("clientSource() is the IPv4 address, or the IPv6 /64, of a client", () => {
  assertEquals(clientSource("203.0.113.7"), "ip4:203.0.113.7");
  assertEquals(clientSource("::ffff:203.0.113.7"), "ip4:203.0.113.7");
  assertEquals(clientSource("2001:db8:1:2:aaaa::1"), "ip6:2001:db8:1:2::/64");
  assertEquals(clientSource("2001:db8:1:2::ffff"), "ip6:2001:db8:1:2::/64");
  assertEquals(clientSource("[2001:DB8:0001:0002:3:4:5:6]"), "ip6:2001:db8:1:2::/64");
  assertEquals(clientSource("2001:db8::1"), "ip6:2001:db8:0:0::/64");
  assertEquals(clientSource("::1"), "ip6:0:0:0:0::/64");
  assertEquals(clientSource("fe80::1%eth0"), "ip6:fe80:0:0:0::/64");
  assertEquals(clientSource(undefined), undefined);
});
