// Node tests of the SDK (web/static/sdk/tollgate.js) against a real tollgate
// server: tickets, reconnect with backoff, resume without gaps or
// duplicates, idempotent publish retries, token renewal, close codes.
// Run by TestJavaScript (go test ./web/), which builds the server binary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";

import { TollgateClient, TollgateError } from "../static/sdk/tollgate.js";
import { Server, RELAXED, api, account, waitFor } from "./lib/server.mjs";
import { Proxy } from "./lib/proxy.mjs";

/**
 * Wire records what a client sent over the network: every socket URL and
 * every REST call, so tests can check tickets and that no token is in a URL.
 */
class Wire {
  constructor() {
    /** @type {string[]} */
    this.sockets = [];
    /** @type {{method: string, url: string, status?: number, ticket?: string}[]} */
    this.calls = [];
    /** @type {Promise<void>|null} while set, ticket requests wait for it */
    this.gate = null;
    const wire = this;
    this.WebSocket = class extends WebSocket {
      /** @param {string} url @param {string|string[]} protocols */
      constructor(url, protocols) {
        wire.sockets.push(url);
        super(url, protocols);
      }
    };
    /** @type {typeof fetch} */
    this.fetch = async (input, init) => {
      const url = String(input);
      const rec = { method: init?.method ?? "GET", url };
      this.calls.push(rec);
      if (url.endsWith("/api/auth/ws-ticket") && this.gate) await this.gate;
      const res = await fetch(input, init);
      rec.status = res.status;
      if (url.endsWith("/api/auth/ws-ticket") && res.ok) {
        const body = await res.clone().json();
        rec.ticket = body.ticket;
      }
      return res;
    };
  }

  /** Holds ticket requests until the returned function is called. */
  hold() {
    let release = () => {};
    this.gate = new Promise((r) => (release = r));
    return () => {
      this.gate = null;
      release();
    };
  }

  tickets() {
    return this.calls.filter((c) => c.ticket).map((c) => /** @type {string} */ (c.ticket));
  }
}

/**
 * Seen collects what a client emitted.
 * @param {TollgateClient} c
 */
function observe(c) {
  const seen = {
    /** @type {any[]} */ messages: [],
    /** @type {any[]} */ states: [],
    /** @type {any[]} */ errors: [],
    /** @type {any[]} */ joined: [],
    /** @type {any[]} */ refreshed: [],
    /** @param {string} room */
    ids(room) {
      return this.messages.filter((m) => m.room === room).map((m) => m.id);
    },
    /** @param {string} room */
    texts(room) {
      return this.messages.filter((m) => m.room === room).map((m) => m.text);
    },
  };
  c.on("message", (m) => seen.messages.push(m));
  c.on("state", (s) => seen.states.push(s));
  c.on("error", (e) => seen.errors.push(e));
  c.on("joined", (j) => seen.joined.push(j));
  c.on("refreshed", (r) => seen.refreshed.push(r));
  return seen;
}

/** @type {TollgateClient[]} */
let clients = [];

/**
 * client makes an SDK client for a logged-in account (Bearer mode: the app
 * hands the SDK its token), with fast backoff for tests.
 * @param {string} url
 * @param {{access: string}} acct
 * @param {Partial<import("../static/sdk/tollgate.js").ClientOptions>} [extra]
 */
function client(url, acct, extra = {}) {
  const wire = new Wire();
  const c = new TollgateClient({
    url,
    token: () => acct.access,
    WebSocket: /** @type {any} */ (wire.WebSocket),
    fetch: wire.fetch,
    backoff: { initial: 50, max: 400 },
    ...extra,
  });
  clients.push(c);
  return { c, wire, seen: observe(c) };
}

/** @param {number[]} ids */
function assertIncreasing(ids) {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids not increasing at ${i}: ${ids}`);
}

/**
 * The stored history of a room, as a fresh client reads it.
 * @param {string} url
 * @param {{access: string}} acct
 * @param {string} room
 */
async function stored(url, acct, room) {
  const { c } = client(url, acct);
  await c.connect();
  await c.join(room);
  /** @type {any[]} */
  let all = [];
  let since = 0;
  for (;;) {
    const page = await c.history(room, { since, limit: 500 });
    all = all.concat(page);
    if (page.length < 500) break;
    since = page[page.length - 1].id;
  }
  c.close();
  return all;
}

/** @param {{wire: Wire}} x @param {string[]} tokens */
function assertNoTokenInURLs(x, tokens) {
  const urls = [...x.wire.sockets, ...x.wire.calls.map((c) => c.url)];
  for (const u of urls) {
    for (const t of tokens) assert.ok(!u.includes(t), `an access token is in a URL: ${u.slice(0, 60)}…`);
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(u), `a JWT is in a URL: ${u.slice(0, 60)}…`);
  }
  for (const s of x.wire.sockets) {
    const q = new URL(s).searchParams;
    assert.deepEqual([...q.keys()], ["ticket"], `socket URL carries only a ticket: ${s.slice(0, 40)}`);
  }
}

let server;
before(async () => {
  server = await new Server({ flags: RELAXED }).start();
});

after(async () => {
  for (const c of clients) c.close();
  await server?.close();
});

test("connect takes a fresh one-time ticket, opens tollgate.v1 and chats", async () => {
  const alice = await account(server.url, "alice");
  const bob = await account(server.url, "bob");
  const a = client(server.url, alice);
  const b = client(server.url, bob);
  const user = await a.c.connect();
  assert.equal(user.name, "alice");
  assert.equal(a.c.state, "open");
  await b.c.connect();
  await a.c.join("general");
  await b.c.join("general");

  const ack = await a.c.publish("general", "hello bob");
  assert.ok(ack.id > 0);
  await waitFor(() => b.seen.messages.length === 1, "bob gets the message");
  assert.equal(b.seen.messages[0].text, "hello bob");
  assert.equal(b.seen.messages[0].from.name, "alice");
  assert.equal(b.seen.messages[0].id, ack.id);
  // The sender gets its own copy too, once.
  await waitFor(() => a.seen.messages.length === 1, "alice gets her own copy");

  // A retried publish with the same client_id is the same message.
  const again = await a.c.publish("general", "hello bob", { clientId: ack.clientId });
  assert.equal(again.id, ack.id);

  assert.deepEqual(
    a.seen.states.map((s) => s.state),
    ["connecting", "open"],
  );
  assert.equal(a.wire.sockets.length, 1);
  assert.equal(a.wire.tickets().length, 1);
  assert.ok(a.wire.sockets[0].startsWith(server.url.replace("http", "ws") + "/ws?ticket="));
  // The login state was checked first.
  assert.ok(a.wire.calls[0].url.endsWith("/api/me"));
  assertNoTokenInURLs(a, [alice.access, alice.refresh]);

  // Refused requests are errors with the server's code, and the socket stays.
  await assert.rejects(a.c.publish("elsewhere", "x"), (e) => e instanceof TollgateError && e.code === "not_joined");
  await assert.rejects(a.c.publish("general", "x".repeat(4001)), (e) => e.code === "too_long");
  await assert.rejects(a.c.join("Bad Room"), (e) => e.code === "invalid_request");
  assert.equal(a.c.state, "open");
});

test("connect rejects without a valid login and never opens a socket", async () => {
  const x = client(server.url, { access: "not-a-token" });
  await assert.rejects(x.c.connect(), (e) => e.code === "unauthenticated");
  assert.equal(x.c.state, "closed");
  assert.equal(x.wire.sockets.length, 0);
});

test("restart: reconnects with a fresh ticket and resumes every room without gaps or duplicates", async () => {
  const carol = await account(server.url, "carol");
  const dave = await account(server.url, "dave");
  const c = client(server.url, carol);
  const d = client(server.url, dave);
  await c.c.connect();
  await d.c.connect();
  await c.c.join("ops");
  await c.c.join("random");
  await d.c.join("ops");
  await d.c.join("random");
  for (let i = 1; i <= 3; i++) await d.c.publish("ops", "before " + i);
  await waitFor(() => c.seen.ids("ops").length === 3, "carol sees the first messages");

  // Carol may not come back until dave has written while she was away.
  const release = c.wire.hold();
  await server.restart("SIGTERM");
  await waitFor(() => c.seen.states.some((s) => s.state === "reconnecting" && s.code === 1001), "carol sees 1001");
  const closing = c.seen.states.find((s) => s.state === "reconnecting");
  assert.equal(closing.reason, "shutting_down");
  // Carol writes while offline: it waits and goes out after the resume.
  const offline = c.c.publish("ops", "written while away");

  await d.c.connect();
  await waitFor(() => d.c.state === "open" && d.c.rooms.length === 2, "dave is back");
  await d.c.join("ops");
  for (let i = 1; i <= 5; i++) await d.c.publish("ops", "away " + i);
  await d.c.publish("random", "also away");
  assert.equal(c.c.state, "reconnecting");

  release();
  const ack = await offline;
  await waitFor(() => c.seen.texts("ops").includes("written while away"), "carol's own message");
  await waitFor(() => c.seen.texts("random").includes("also away"), "the other room resumed");

  const history = await stored(server.url, dave, "ops");
  assert.deepEqual(c.seen.ids("ops"), history.map((m) => m.id), "carol saw exactly the stored history, in order");
  assert.deepEqual(c.seen.texts("ops"), [
    "before 1", "before 2", "before 3",
    "away 1", "away 2", "away 3", "away 4", "away 5",
    "written while away",
  ]);
  assert.equal(history.filter((m) => m.text === "written while away").length, 1);
  assert.equal(ack.id, history.at(-1).id);
  assert.ok(c.seen.joined.some((j) => j.room === "ops" && j.resumed));

  // Two sockets, two different tickets; never a token in a URL.
  const tickets = c.wire.tickets();
  assert.equal(c.wire.sockets.length, 2);
  assert.equal(new Set(tickets).size, tickets.length);
  for (const [i, s] of c.wire.sockets.entries()) assert.equal(new URL(s).searchParams.get("ticket"), tickets[i]);
  assertNoTokenInURLs(c, [carol.access, carol.refresh]);

  // Live messages go on after the resume.
  await d.c.publish("ops", "live again");
  await waitFor(() => c.seen.texts("ops").at(-1) === "live again", "live message after resume");
  assertIncreasing(c.seen.ids("ops"));
});

test("a crash (SIGKILL, 1006) loses nothing: resume and idempotent retry", async () => {
  const erin = await account(server.url, "erin");
  const frank = await account(server.url, "frank");
  const e = client(server.url, erin);
  const f = client(server.url, frank);
  await e.c.connect();
  await f.c.connect();
  await e.c.join("crash");
  await f.c.join("crash");
  await f.c.publish("crash", "one");
  await waitFor(() => e.seen.ids("crash").length === 1, "erin sees one");

  const release = e.wire.hold();
  await server.restart("SIGKILL");
  await waitFor(() => e.seen.states.some((s) => s.state === "reconnecting" && s.code === 1006), "erin sees 1006");
  await waitFor(() => f.c.state === "open", "frank reconnects");
  await f.c.publish("crash", "two");
  await f.c.publish("crash", "three");
  release();
  await waitFor(() => e.seen.ids("crash").length === 3, "erin resumes");
  assert.deepEqual(e.seen.texts("crash"), ["one", "two", "three"]);
  const history = await stored(server.url, frank, "crash");
  assert.deepEqual(e.seen.ids("crash"), history.map((m) => m.id));
});

test("a cut socket whose ack was lost: the retried publish is stored once and delivered once", async () => {
  const gina = await account(server.url, "gina");
  const hank = await account(server.url, "hank");
  const proxy = await new Proxy(() => {
    const [host, port] = server.addr.split(":");
    return { host, port: Number(port) };
  }).start();
  try {
    const g = client(proxy.url, gina);
    const h = client(server.url, hank);
    await g.c.connect();
    await h.c.connect();
    await g.c.join("lossy");
    await h.c.join("lossy");

    // The server gets the publish, but its ack never reaches gina.
    proxy.pauseDownstream();
    const p = g.c.publish("lossy", "did it arrive?");
    await waitFor(() => h.seen.texts("lossy").includes("did it arrive?"), "the server stored it");
    proxy.hold(true);
    proxy.killAll();
    await waitFor(() => g.c.state === "reconnecting", "gina notices");
    await h.c.publish("lossy", "meanwhile");
    proxy.hold(false);

    const ack = await p;
    await waitFor(() => g.seen.texts("lossy").includes("meanwhile"), "gina resumes");
    const history = await stored(server.url, hank, "lossy");
    assert.deepEqual(history.map((m) => m.text), ["did it arrive?", "meanwhile"]);
    assert.equal(ack.id, history[0].id, "the retry was acknowledged with the stored id");
    assert.deepEqual(g.seen.ids("lossy"), history.map((m) => m.id));
    assert.ok(g.c.pending.length === 0);
  } finally {
    await proxy.close();
  }
});

test("a silent connection is detected by the heartbeat, dropped and resumed", async () => {
  const ivy = await account(server.url, "ivy");
  const jack = await account(server.url, "jack");
  const proxy = await new Proxy(() => {
    const [host, port] = server.addr.split(":");
    return { host, port: Number(port) };
  }).start();
  try {
    // The fetch pool's connection is silenced too: REST calls need their timeout.
    const i = client(proxy.url, ivy, { heartbeat: 300, requestTimeout: 1500 });
    const j = client(server.url, jack);
    await i.c.connect();
    await j.c.connect();
    await i.c.join("quiet");
    await j.c.join("quiet");
    proxy.blackhole();
    await j.c.publish("quiet", "into the void");
    await waitFor(() => i.seen.states.some((s) => s.state === "reconnecting" && s.reason === "heartbeat_timeout"), "heartbeat timeout", 5000);
    await waitFor(() => i.seen.texts("quiet").includes("into the void"), "resumed after the timeout");
    assert.equal(i.seen.texts("quiet").length, 1);
  } finally {
    await proxy.close();
  }
});

test("backoff: exponential caps with full jitter, a fresh ticket per attempt", async () => {
  const kim = await account(server.url, "kim");
  const proxy = await new Proxy(() => {
    const [host, port] = server.addr.split(":");
    return { host, port: Number(port) };
  }).start();
  try {
    const k = client(proxy.url, kim, { backoff: { initial: 40, max: 320, factor: 2 } });
    await k.c.connect();
    proxy.hold(true);
    proxy.killAll();
    await waitFor(() => k.seen.states.filter((s) => s.state === "reconnecting").length >= 7, "seven attempts", 10000);
    const tries = k.seen.states.filter((s) => s.state === "reconnecting");
    for (const [n, s] of tries.entries()) {
      assert.equal(s.attempt, n + 1);
      const cap = Math.min(320, 40 * 2 ** n);
      assert.ok(s.delay >= 0 && s.delay <= cap, `attempt ${n + 1}: delay ${s.delay} above cap ${cap}`);
    }
    // Jitter: the delays are not simply the caps.
    assert.ok(tries.some((s, n) => s.delay < Math.min(320, 40 * 2 ** n) - 1), "no jitter seen");
    proxy.hold(false);
    await waitFor(() => k.c.state === "open", "back");
    // Every socket had its own ticket; a ticket is never reused.
    assert.equal(k.wire.sockets.length, 2);
    assert.equal(new Set(k.wire.tickets()).size, k.wire.tickets().length);
  } finally {
    await proxy.close();
  }
});

test("a resume longer than one history page is paged, in order and complete", async () => {
  const lea = await account(server.url, "lea");
  const max = await account(server.url, "max");
  const l = client(server.url, lea);
  const m = client(server.url, max, { maxInFlight: 64 });
  await l.c.connect();
  await m.c.connect();
  await l.c.join("busy");
  await m.c.join("busy");
  await m.c.publish("busy", "first");
  await waitFor(() => l.seen.ids("busy").length === 1, "lea sees the first");
  const release = l.wire.hold();
  await server.restart("SIGTERM");
  await waitFor(() => m.c.state === "open", "max is back");
  const sends = [];
  for (let n = 0; n < 620; n++) sends.push(m.c.publish("busy", "bulk " + n));
  await Promise.all(sends);
  release();
  await waitFor(() => l.seen.ids("busy").length === 621, "lea has all 621", 30000);
  assertIncreasing(l.seen.ids("busy"));
  const history = await stored(server.url, max, "busy");
  assert.deepEqual(l.seen.ids("busy"), history.map((x) => x.id));
});

test("1008 session_revoked stops the client: no reconnect, pending publishes rejected", async () => {
  const nia = await account(server.url, "nia");
  const n = client(server.url, nia);
  await n.c.connect();
  await n.c.join("bye");
  const r = await api(server.url, "POST", "/api/auth/logout", { token: nia.access });
  assert.equal(r.status, 200);
  await waitFor(() => n.c.state === "closed", "closed");
  const closed = n.seen.states.at(-1);
  assert.equal(closed.reason, "session_revoked");
  assert.equal(closed.code, 1008);
  await assert.rejects(n.c.publish("bye", "too late"), (e) => e.code === "closed");
  await new Promise((res) => setTimeout(res, 500));
  assert.equal(n.wire.sockets.length, 1, "no reconnect after session_revoked");
});

test("ticket mode: the app's backend mints the tickets, one per connect", async () => {
  const oli = await account(server.url, "oli");
  /** @type {string[]} */
  const minted = [];
  const wire = new Wire();
  const c = new TollgateClient({
    url: server.url,
    // What an app's backend does with its own Bearer token.
    ticket: async () => {
      const r = await api(server.url, "POST", "/api/auth/ws-ticket", { token: oli.access });
      minted.push(r.body.ticket);
      return r.body.ticket;
    },
    WebSocket: /** @type {any} */ (wire.WebSocket),
    backoff: { initial: 50, max: 200 },
  });
  clients.push(c);
  const seen = observe(c);
  await c.connect();
  await c.join("tickets");
  await server.restart("SIGTERM");
  await waitFor(() => seen.states.filter((s) => s.state === "open").length === 2, "reconnected", 10000);
  // Each socket (the ones refused while the server restarted too) used its own new ticket.
  const used = wire.sockets.map((u) => new URL(u).searchParams.get("ticket"));
  assert.ok(used.length >= 2);
  assert.deepEqual(used, minted.slice(0, used.length));
  assert.equal(new Set(used).size, used.length);
  await c.publish("tickets", "works");
  c.close();
  assert.equal(c.state, "closed");
});

test("rate limited: the publish waits retry_after and is then stored once", async () => {
  const s = await new Server({ flags: ["--publish-rate", "2", "--publish-window", "2s", "--block-violations", "10"] }).start();
  try {
    const pia = await account(s.url, "pia");
    const p = client(s.url, pia);
    await p.c.connect();
    await p.c.join("slow");
    const acks = await Promise.all([1, 2, 3].map((n) => p.c.publish("slow", "m" + n)));
    const limited = p.seen.errors.filter((e) => e.code === "rate_limited");
    assert.ok(limited.length >= 1, "a rate_limited error was reported");
    assert.ok(limited[0].retryAfter >= 1);
    assert.equal(limited[0].room, "slow");
    assert.deepEqual(new Set(acks.map((a) => a.id)).size, 3);
    await waitFor(() => p.seen.ids("slow").length === 3, "all three delivered");
    assert.deepEqual(p.seen.texts("slow"), ["m1", "m2", "m3"]);
    assert.equal(p.c.state, "open");
  } finally {
    await s.close();
  }
});

test("token_expiring: renews in-band (refresh frame) and the socket outlives its first token", { timeout: 60000 }, async () => {
  const s = await new Server({ flags: [...RELAXED, "--access-token-ttl", "15s"] }).start();
  try {
    const quinn = await account(s.url, "quinn");
    const tokens = { ...quinn };
    let renewals = 0;
    const q = client(s.url, tokens, {
      minRenewInterval: 4000,
      // The app's own refresh: rotate the refresh token, hand over the access token.
      renewToken: async () => {
        const r = await api(s.url, "POST", "/api/auth/refresh", { body: { refresh_token: tokens.refresh } });
        assert.equal(r.status, 200);
        tokens.access = r.body.access_token;
        tokens.refresh = r.body.refresh_token;
        renewals++;
        return tokens.access;
      },
    });
    await q.c.connect();
    await q.c.join("long");
    const start = Date.now();
    await waitFor(() => Date.now() - start > 20000, "past the first token's expiry", 25000);
    assert.ok(renewals >= 2, `renewed ${renewals} times`);
    assert.ok(q.seen.refreshed.length >= 2);
    assert.equal(q.wire.sockets.length, 1, "the same socket all along");
    assert.deepEqual(q.seen.states.map((x) => x.state), ["connecting", "open"]);
    await q.c.publish("long", "still here");
    assertNoTokenInURLs(q, [quinn.access, tokens.access]);
  } finally {
    await s.close();
  }
});
