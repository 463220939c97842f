import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  ConnReaper,
  establishedPeers,
  overdue,
  parseIpText,
  peerKey,
  type PeerState,
  probeSocketDestroy,
} from "./conn_reaper.ts";

Deno.test("peer keys: Deno's text and the kernel's hex give the same key", () => {
  assertEquals(peerKey("127.0.0.1", 5000), "127.0.0.1:5000");
  assertEquals(peerKey("::1", 80), "0:0:0:0:0:0:0:1:80");
  assertEquals(peerKey("::ffff:10.1.2.3", 7), "10.1.2.3:7");
  assertEquals(peerKey("[fe80::1%eth0]", 9), "fe80:0:0:0:0:0:0:1:9");
  assertEquals(peerKey("2001:db8::8:800:200c:417a", 1), "2001:db8:0:0:8:800:200c:417a:1");
  assertEquals(peerKey("localhost", 1), undefined);
  assertEquals(parseIpText("1.2.3.256"), undefined);
  assertEquals(parseIpText("1::2::3"), undefined);
  assertEquals(parseIpText("1:2:3:4:5:6:7:8:9"), undefined);
});

Deno.test("established connections of one port are read from /proc/net/tcp and tcp6", () => {
  const tcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
    "   1: 0100007F:0BB8 0100007F:D5A2 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
    "   2: 0100007F:D5A2 0100007F:0BB8 01 00000000:00000000 00:00000000 00000000     0        0 3 1",
    "   3: 0100007F:0BB8 0200000A:1F90 06 00000000:00000000 00:00000000 00000000     0        0 4 1",
    "   4: 0100007F:0BB9 0100007F:D5A3 01 00000000:00000000 00:00000000 00000000     0        0 5 1",
  ].join("\n");
  assertEquals(establishedPeers(tcp, 3000), [`127.0.0.1:${0xd5a2}`]);
  const tcp6 = [
    "  sl  local_address                         remote_address                        st",
    "   0: 00000000000000000000000001000000:0BB8 00000000000000000000000001000000:A000 01 0",
    "   1: 0000000000000000FFFF00000100007F:0BB8 0000000000000000FFFF00000100007F:A001 01 0",
  ].join("\n");
  assertEquals(establishedPeers(tcp6, 3000), [
    `0:0:0:0:0:0:0:1:${0xa000}`,
    `127.0.0.1:${0xa001}`,
  ]);
});

Deno.test("overdue: header timeout before the first request, idle after, never in flight", () => {
  const opts = { headerTimeoutMs: 1000, idleTimeoutMs: 5000 };
  const peer = (over: Partial<PeerState>): PeerState => ({
    firstSeenMs: 0,
    inFlight: 0,
    lastDoneMs: undefined,
    upgraded: false,
    ...over,
  });
  const peers: [string, PeerState][] = [
    ["silent", peer({})],
    ["young", peer({ firstSeenMs: 500 })],
    ["busy", peer({ inFlight: 1 })],
    ["idle-short", peer({ lastDoneMs: 100 })],
    ["idle-long", peer({ lastDoneMs: -5000 })],
    ["websocket", peer({ lastDoneMs: -99999, upgraded: true })],
  ];
  assertEquals(overdue(peers, 1200, opts), ["silent", "idle-long"]);
});

Deno.test("the socket-destroy probe gives a reason when it cannot, never throws", async () => {
  const reason = await probeSocketDestroy();
  // Root with iproute2 (CI) destroys; elsewhere a reason is given. Both are answers.
  assert(reason === undefined || (typeof reason === "string" && reason.length > 0));
  console.log(`  socket destroy here: ${reason ?? "works"}`);
});

Deno.test("a WebSocket that upgrades while the kernel's table is being read is never reaped", async () => {
  const port = 3000;
  const peer = { transport: "tcp" as const, hostname: "127.0.0.1", port: 40000 };
  const row = (remotePort: number) =>
    `   1: 0100007F:${port.toString(16).toUpperCase().padStart(4, "0")} 0100007F:${
      remotePort.toString(16).toUpperCase().padStart(4, "0")
    } 01 0`;
  const header = "  sl  local_address rem_address   st";
  let tables = [header];
  let duringRead: (() => void) | undefined;
  const destroyed: string[] = [];
  const reaper = new ConnReaper({ port, headerTimeoutMs: 50, idleTimeoutMs: 50, sweepMs: 1e9 }, {
    readTcpTables: () => {
      const snapshot = tables.join("\n"); // read before the upgrade below happens
      duringRead?.();
      duringRead = undefined;
      return Promise.resolve([snapshot]);
    },
    destroy: (_port, keys) => {
      destroyed.push(...keys);
      return Promise.resolve(true);
    },
    probe: () => Promise.resolve(undefined),
  });
  assertEquals((await reaper.start()).enforced, true);
  try {
    // The upgrade request starts and completes (101) while the sweep's read is in progress.
    duringRead = () => reaper.requestStarted(peer)(true);
    await reaper.sweep();
    tables = [header, row(peer.port)];
    await new Promise((r) => setTimeout(r, 120)); // past both timeouts
    await reaper.sweep();
    await reaper.sweep();
    assertEquals(destroyed, [], "the WebSocket's connection was destroyed");
    // A plain connection that never sends a request is destroyed past the header timeout.
    tables = [header, row(peer.port), row(40001)];
    await reaper.sweep();
    await new Promise((r) => setTimeout(r, 120));
    await reaper.sweep();
    assertEquals(destroyed, ["127.0.0.1:40001"]);
  } finally {
    reaper.stop();
  }
});
