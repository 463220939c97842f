import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import type { LogLine } from "../worker/mod.ts";
import {
  OutboundHttp,
  type OutboundRequest,
  parseHttpAllow,
  specialRange,
} from "./outbound_http.ts";

/** A loopback HTTP server that records every request it receives. */
function upstream(handler: (request: Request) => Response | Promise<Response>) {
  const hits: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    const url = new URL(request.url);
    hits.push(`${request.method} ${request.headers.get("host")} ${url.pathname}`);
    return handler(request);
  });
  return { hits, port: server.addr.port, close: () => server.shutdown() };
}

function get(uri: string, extra: Partial<OutboundRequest> = {}): OutboundRequest {
  return { method: "GET", uri, headers: [], body: new Uint8Array(), timeoutMs: 5000, ...extra };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("parseHttpAllow() reads DB=HOST,HOST lists and refuses malformed ones", () => {
  const allow = parseHttpAllow(["chat=api.openai.com,127.0.0.1:8080", "*=example.org", "chat=*"]);
  assertEquals(allow.get("chat"), ["api.openai.com", "127.0.0.1:8080", "*"]);
  assertEquals(allow.get("*"), ["example.org"]);
  assertEquals(parseHttpAllow(["db=[::1]:80,::1"]).get("db"), ["[::1]:80", "::1"]);
  for (const bad of ["chat", "=host", "chat=", "chat=bad host", "chat=host:99999", "db=a_b"]) {
    assertThrows(() => parseHttpAllow([bad]), /Invalid/, bad);
  }
});

Deno.test("specialRange() names private, loopback, link-local and other special addresses", () => {
  const special: Record<string, string> = {
    "127.0.0.1": "loopback",
    "127.9.9.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",
    "0.0.0.0": "unspecified",
    "100.64.0.1": "shared",
    "224.0.0.1": "multicast",
    "255.255.255.255": "reserved",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:7f00:1": "loopback",
    "::ffff:10.0.0.1": "private",
    "64:ff9b::a00:1": "NAT64",
  };
  for (const [address, kind] of Object.entries(special)) {
    const range = specialRange(address);
    assert(range?.startsWith(kind), `${address}: expected ${kind}, got ${range}`);
  }
  for (const address of ["8.8.8.8", "172.32.0.1", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]) {
    assertEquals(specialRange(address), undefined, address);
  }
});

Deno.test("perform() fetches from a listed address and logs method, host, status and time", async () => {
  const server = upstream(async (request) =>
    Response.json({ greeting: "hi", body: await request.text() }, {
      status: 201,
      headers: { "x-echo": request.headers.get("x-probe") ?? "" },
    })
  );
  try {
    const outbound = new OutboundHttp({ allow: parseHttpAllow([`app=127.0.0.1:${server.port}`]) });
    const logs: LogLine[] = [];
    const result = await outbound.perform(
      { name: "app", identity: "c200aa" },
      get(`http://127.0.0.1:${server.port}/v1/thing?key=secret`, {
        method: "POST",
        headers: [["x-probe", new TextEncoder().encode("lightcone")]],
        body: new TextEncoder().encode("payload"),
      }),
      (line) => logs.push(line),
    );
    assert(result.ok, JSON.stringify(result));
    assertEquals(result.status, 201);
    assertEquals(JSON.parse(text(result.body)), { greeting: "hi", body: "payload" });
    const headers = new Map(result.headers.map(([name, value]) => [name, text(value)]));
    assertEquals(headers.get("x-echo"), "lightcone");
    assertEquals(headers.get("content-type"), "application/json");
    assertEquals(server.hits, [`POST 127.0.0.1:${server.port} /v1/thing`]);
    assertEquals(logs.length, 1);
    assertMatch(
      logs[0].message,
      new RegExp(`^outbound HTTP POST 127\\.0\\.0\\.1:${server.port} 201 in \\d+ ms$`),
    );
  } finally {
    await server.close();
  }
});

Deno.test("perform() refuses unlisted hosts, other databases and loopback behind `*`, sending nothing", async () => {
  const server = upstream(() => new Response("should not be reached"));
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow([`app=127.0.0.1:${server.port}`, "open=*"]),
    });
    const url = `http://127.0.0.1:${server.port}/x?token=secret`;
    const logs: LogLine[] = [];
    const other = await outbound.perform(
      { name: "other", identity: "c2" },
      get(url),
      (l) => logs.push(l),
    );
    assert(!other.ok);
    assertMatch(
      other.error,
      /module outbound HTTP requests are disabled for database "other".*--http-allow other=127\.0\.0\.1/,
    );
    const open = await outbound.perform({ name: "open", identity: "c3" }, get(url), () => {});
    assert(!open.ok);
    assertMatch(
      open.error,
      /^refusing to connect to private or special-purpose addresses: loopback address 127\.0\.0\.1.*--http-allow open=127\.0\.0\.1/,
    );
    const wrongPort = await outbound.perform(
      { name: "app", identity: "c4" },
      get(`http://127.0.0.1:${server.port + 1}/`),
      () => {},
    );
    assert(!wrongPort.ok);
    assertMatch(wrongPort.error, /"127\.0\.0\.1" is not on the HTTP allow-list of database "app"/);
    const localhost = await outbound.perform(
      { name: "open", identity: "c5" },
      get(`http://localhost:${server.port}/`),
      () => {},
    );
    assert(!localhost.ok);
    assertMatch(localhost.error, /"localhost" resolves to 127\.0\.0\.1/);
    assertEquals(server.hits, []);
    assert(!logs[0].message.includes("secret"), logs[0].message);
    assertMatch(logs[0].message, /refused/);
  } finally {
    await server.close();
  }
});

Deno.test("perform() checks DNS answers: a listed name that resolves to a private address is refused", async () => {
  const server = upstream(() => new Response("pinned"));
  try {
    const resolve = (host: string) =>
      Promise.resolve(host === "api.example.com" ? ["127.0.0.1"] : ["93.184.215.14"]);
    const named = new OutboundHttp({ allow: parseHttpAllow(["app=api.example.com"]), resolve });
    const refused = await named.perform(
      { name: "app", identity: "c1" },
      get(`http://api.example.com:${server.port}/`),
      () => {},
    );
    assert(!refused.ok);
    assertMatch(refused.error, /"api\.example\.com" resolves to 127\.0\.0\.1/);
    assertEquals(server.hits, []);
    // Listing the address itself lets it through, and the connection goes to the checked
    // address (no second lookup) with the name in the Host header.
    const both = new OutboundHttp({
      allow: parseHttpAllow(["app=api.example.com,127.0.0.1"]),
      resolve,
    });
    const allowed = await both.perform(
      { name: "app", identity: "c1" },
      get(`http://api.example.com:${server.port}/p`),
      () => {},
    );
    assert(allowed.ok, JSON.stringify(allowed));
    assertEquals(text(allowed.body), "pinned");
    assertEquals(server.hits, [`GET api.example.com:${server.port} /p`]);
    const unresolvable = new OutboundHttp({
      allow: parseHttpAllow(["app=*"]),
      resolve: () => Promise.reject(new Error("no such host")),
    });
    const failed = await unresolvable.perform(
      { name: "app", identity: "c1" },
      get("http://nowhere.example/"),
      () => {},
    );
    assert(!failed.ok);
    // Worded as SpacetimeDB's host words a failed send: "error" and the URL, then the cause.
    assertMatch(
      failed.error,
      /^error sending request for url \(http:\/\/nowhere\.example\/\): Could not resolve "nowhere\.example": no such host$/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("perform() follows redirects itself and refuses a hop to a denied host", async () => {
  const denied = upstream(() => new Response("secret inside"));
  const server = upstream((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/to-denied") {
      return new Response(null, {
        status: 302,
        headers: { location: `http://127.0.0.1:${denied.port}/admin` },
      });
    }
    if (path === "/see-other") {
      return new Response(null, { status: 303, headers: { location: "/final" } });
    }
    return new Response(`final ${request.method} ${path}`);
  });
  try {
    const outbound = new OutboundHttp({ allow: parseHttpAllow([`app=127.0.0.1:${server.port}`]) });
    const logs: LogLine[] = [];
    const refused = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/to-denied`),
      (line) => logs.push(line),
    );
    assert(!refused.ok);
    assertMatch(refused.error, new RegExp(`"127\\.0\\.0\\.1" is not on the HTTP allow-list`));
    assertEquals(denied.hits, []);
    assertEquals(logs.map((line) => line.message.replace(/ in \d+ ms/, "")), [
      `outbound HTTP GET 127.0.0.1:${server.port} 302`,
      `outbound HTTP GET 127.0.0.1:${denied.port} refused: ${refused.error}`,
    ]);
    const followed = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/see-other`, {
        method: "POST",
        body: new TextEncoder().encode("x"),
      }),
      () => {},
    );
    assert(followed.ok, JSON.stringify(followed));
    assertEquals(text(followed.body), "final GET /final");
  } finally {
    await server.close();
    await denied.close();
  }
});

Deno.test("perform() stops at the response size limit and at the request's timeout", async () => {
  const server = upstream(async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/slow") await new Promise((resolve) => setTimeout(resolve, 2000));
    return new Response("x".repeat(4096));
  });
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow([`app=127.0.0.1:${server.port}`]),
      responseBytesMax: 1000,
    });
    const big = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/big`),
      () => {},
    );
    assert(!big.ok);
    assertMatch(big.error, /over the limit of 1000/);
    const started = performance.now();
    const slow = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/slow?k=secret`, { timeoutMs: 200 }),
      () => {},
    );
    assert(!slow.ok);
    assertMatch(
      slow.error,
      new RegExp(
        `^error sending request for url \\(http://127\\.0\\.0\\.1:${server.port}/slow\\): .*timed out after 200 ms`,
      ),
    );
    assert(!slow.error.includes("secret"));
    console.log(`timeout answered after ${Math.round(performance.now() - started)} ms`);
  } finally {
    await server.close();
  }
});

Deno.test("specialRange() treats IPv4-mapped 0.0.0.0 (::ffff:0:0, which Linux connects to loopback) as unspecified", () => {
  for (const address of ["::ffff:0:0", "::ffff:0.0.0.0", "::ffff:0.0.0.5"]) {
    assert(
      specialRange(address)?.startsWith("unspecified"),
      `${address}: ${specialRange(address)}`,
    );
  }
});

Deno.test("perform() refuses a `*` host whose AAAA answer is IPv4-mapped 0.0.0.0, sending nothing", async () => {
  const server = upstream(() => new Response("internal"));
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow(["app=*"]),
      resolve: () => Promise.resolve(["::ffff:0:0"]),
    });
    const viaName = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://rebind.example:${server.port}/`),
      () => {},
    );
    assert(!viaName.ok, JSON.stringify(viaName));
    assertMatch(viaName.error, /unspecified/);
    const literal = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://[::ffff:0.0.0.0]:${server.port}/`),
      () => {},
    );
    assert(!literal.ok, JSON.stringify(literal));
    assertEquals(server.hits, []);
  } finally {
    await server.close();
  }
});

Deno.test("perform() connects to a checked IPv6 address (the pinned connection brackets it)", async () => {
  const server = upstream(() => new Response("over v4-mapped v6"));
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow(["app=api.example.com,::ffff:7f00:1"]),
      resolve: () => Promise.resolve(["::ffff:7f00:1"]),
    });
    const result = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://api.example.com:${server.port}/six`),
      () => {},
    );
    assert(result.ok, JSON.stringify(result));
    assertEquals(text(result.body), "over v4-mapped v6");
    assertEquals(server.hits, [`GET api.example.com:${server.port} /six`]);
  } finally {
    await server.close();
  }
});

Deno.test("perform() drops credentials on a redirect to another origin, keeps them on the same origin", async () => {
  const seen: string[] = [];
  const other = upstream((request) => {
    seen.push(`other ${request.headers.get("authorization")} ${request.headers.get("cookie")}`);
    return new Response("other");
  });
  const server = upstream((request) => {
    const path = new URL(request.url).pathname;
    seen.push(`${path} ${request.headers.get("authorization")} ${request.headers.get("cookie")}`);
    if (path === "/same") {
      return new Response(null, { status: 302, headers: { location: "/here" } });
    }
    if (path === "/away") {
      return new Response(null, {
        status: 307,
        headers: { location: `http://127.0.0.1:${other.port}/there` },
      });
    }
    return new Response("here");
  });
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow([`app=127.0.0.1:${server.port},127.0.0.1:${other.port}`]),
    });
    const secret: [string, Uint8Array][] = [
      ["Authorization", new TextEncoder().encode("Bearer sk-secret")],
      ["Cookie", new TextEncoder().encode("session=secret")],
    ];
    const same = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/same`, { headers: secret }),
      () => {},
    );
    assert(same.ok, JSON.stringify(same));
    const away = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/away`, { headers: secret }),
      () => {},
    );
    assert(away.ok, JSON.stringify(away));
    assertEquals(seen, [
      "/same Bearer sk-secret session=secret",
      "/here Bearer sk-secret session=secret",
      "/away Bearer sk-secret session=secret",
      "other null null",
    ]);
  } finally {
    await server.close();
    await other.close();
  }
});

Deno.test("perform() stops a response body that trickles forever at the request's timeout", async () => {
  let timer: ReturnType<typeof setInterval> | undefined;
  const server = upstream(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        timer = setInterval(() => controller.enqueue(new Uint8Array([120])), 20);
      },
      cancel() {
        clearInterval(timer);
      },
    });
    return new Response(body);
  });
  try {
    const outbound = new OutboundHttp({ allow: parseHttpAllow([`app=127.0.0.1:${server.port}`]) });
    const result = await outbound.perform(
      { name: "app", identity: "c1" },
      get(`http://127.0.0.1:${server.port}/trickle`, { timeoutMs: 300 }),
      () => {},
    );
    assert(!result.ok, JSON.stringify(result));
    assertMatch(result.error, /timed out after 300 ms/);
  } finally {
    clearInterval(timer);
    await server.close();
  }
});

Deno.test("perform() bounds the requests in flight per database and in all, whatever the process sends", async () => {
  // The database process is untrusted: a forged one can send requests without waiting for the
  // answers, more than it has procedure threads. Each held request costs the main thread a
  // connection and up to the response limit.
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = upstream(async () => {
    await released;
    return new Response("late");
  });
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow([`*=127.0.0.1:${server.port}`]),
      perDatabaseMax: 3,
      inFlightMax: 5,
    });
    const uri = `http://127.0.0.1:${server.port}/slow`;
    const logs: LogLine[] = [];
    const held = [0, 1, 2].map(() =>
      outbound.perform({ name: "evil", identity: "e1" }, get(uri), (line) => logs.push(line))
    );
    const over = await outbound.perform(
      { name: "evil", identity: "e1" },
      get(uri),
      (line) => logs.push(line),
    );
    assert(!over.ok);
    assertMatch(over.error, /Too many outbound HTTP requests at once: this database has 3/);
    assert(logs.some((line) => /outbound HTTP refused: Too many/.test(line.message)));
    // Another database still gets its share, up to the server-wide bound.
    const other = [0, 1].map(() => outbound.perform({ identity: "o2" }, get(uri), () => {}));
    const overAll = await outbound.perform({ identity: "o3" }, get(uri), () => {});
    assert(!overAll.ok);
    assertMatch(overAll.error, /Too many outbound HTTP requests at once on this server/);
    release();
    for (const result of await Promise.all([...held, ...other])) {
      assert(result.ok, JSON.stringify(result));
      assertEquals(text(result.body), "late");
    }
    // Their places are given back.
    const again = await outbound.perform({ name: "evil", identity: "e1" }, get(uri), () => {});
    assert(again.ok, JSON.stringify(again));
  } finally {
    release();
    await server.close();
  }
});

Deno.test("perform() stops a request whose database process is gone, and gives its place back", async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = upstream(async () => {
    await released;
    return new Response("never read");
  });
  try {
    const outbound = new OutboundHttp({
      allow: parseHttpAllow([`*=127.0.0.1:${server.port}`]),
      perDatabaseMax: 1,
    });
    const uri = `http://127.0.0.1:${server.port}/slow`;
    const gone = new AbortController();
    const pending = outbound.perform(
      { identity: "d1" },
      get(uri, { timeoutMs: 20_000 }),
      () => {},
      gone.signal,
    );
    // Wait until the upstream has the request, then the process dies.
    while (server.hits.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    gone.abort(new Error("database worker crashed"));
    const result = await pending;
    assert(!result.ok, JSON.stringify(result));
    assertMatch(result.error, /database worker crashed/);
    // The next process of the database may fetch again at once (its one place was given back).
    release();
    const next = await outbound.perform({ identity: "d1" }, get(uri), () => {});
    assert(next.ok, JSON.stringify(next));
  } finally {
    release();
    await server.close();
  }
});
