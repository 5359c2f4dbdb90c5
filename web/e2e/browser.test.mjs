// End-to-end tests of the chat page in a real browser: Playwright
// (playwright-core, no browser download) drives Debian's /usr/bin/chromium
// against a real tollgate server. Run by TestJavaScript (go test ./web/).
// Screenshots of the main states go to $TOLLGATE_ARTIFACTS (gitignored).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { chromium } from "playwright-core";

import { Server, RELAXED, api, login, waitFor } from "./lib/server.mjs";
import { Proxy } from "./lib/proxy.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Playwright itself adds a fresh, temporary --user-data-dir to every launch
// (it refuses one in args); each context below is isolated besides.
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ARTIFACTS = process.env.TOLLGATE_ARTIFACTS ?? join(import.meta.dirname ?? ".", "artifacts");
const PASSWORD = "correct horse battery";
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./;

/** @type {import("playwright-core").Browser} */
let browser;
/** @type {Server} */
let server;

/** Every URL any page requested, WebSocket URLs included. */
const requested = [];
/** Every access and refresh token the browser was given (cookies, response bodies). */
const tokens = new Set();
/** CSP violations reported by any page. */
const violations = [];

/** @param {import("playwright-core").Page} page @param {string} name */
async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, name + ".png") });
}

/**
 * context makes an isolated browser context whose traffic is logged.
 * @returns {Promise<import("playwright-core").BrowserContext>}
 */
async function context() {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  ctx.on("request", (r) => requested.push(r.url()));
  ctx.on("response", async (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/api/auth/login" || u.pathname === "/api/auth/refresh") {
      try {
        const b = await r.json();
        if (b.access_token) tokens.add(b.access_token);
        if (b.refresh_token) tokens.add(b.refresh_token);
      } catch {
        // a refused call has no tokens
      }
    }
  });
  ctx.on("page", (p) => p.on("websocket", (ws) => requested.push(ws.url())));
  await ctx.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      // @ts-ignore
      (window.__csp ??= []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return ctx;
}

/** Remembers the token cookies a context holds now. @param {import("playwright-core").BrowserContext} ctx */
async function collectCookies(ctx) {
  for (const c of await ctx.cookies()) {
    if (c.name.endsWith("auth_token") || c.name.endsWith("refresh_token")) {
      assert.ok(c.httpOnly, `${c.name} is HttpOnly`);
      if (c.value) tokens.add(c.value);
    }
  }
}

/** @param {import("playwright-core").Page} page */
async function checkPage(page) {
  const v = await page.evaluate(() => /** @type {any} */ (window).__csp ?? []);
  violations.push(...v);
  // Nothing secret in web storage: the page keeps only room names there.
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
  assert.ok(!JWT.test(stored), "a JWT is in web storage");
  for (const t of tokens) assert.ok(!stored.includes(t), "a token is in web storage");
}

/**
 * The messages a page shows in a room.
 * @param {import("playwright-core").Page} page
 * @param {string} room
 * @returns {Promise<{id: number, from: string, text: string}[]>}
 */
function shown(page, room) {
  return page.$$eval(`ol.messages[data-room="${room}"] li.msg[data-id]`, (els) =>
    els.map((el) => ({
      id: Number(/** @type {HTMLElement} */ (el).dataset.id),
      from: el.querySelector(".from")?.textContent ?? "",
      text: el.querySelector(".text")?.textContent ?? "",
    })),
  );
}

/** @param {import("playwright-core").Page} page @param {string} room @param {string} text */
async function waitShown(page, room, text, timeout = 15000) {
  await waitFor(async () => (await shown(page, room)).some((m) => m.text === text), `"${text}" in #${room}`, timeout);
}

/** @param {import("playwright-core").Page} page @param {string} text */
async function send(page, text) {
  await page.fill("#send-form input[name=text]", text);
  await page.press("#send-form input[name=text]", "Enter");
}

/** @param {import("playwright-core").Page} page @param {string} name */
async function register(page, name) {
  await page.waitForSelector("#auth:not([hidden])");
  await page.fill("#register-form input[name=username]", name);
  await page.fill("#register-form input[name=password]", PASSWORD);
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector('#conn[data-state="open"]');
  await page.waitForSelector('ol.messages[data-room="general"]');
}

/** @param {{id: number}[]} list */
function assertUniqueIncreasing(list) {
  for (let i = 1; i < list.length; i++) assert.ok(list[i].id > list[i - 1].id, `ids ${list.map((m) => m.id)} not increasing`);
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await new Server({ flags: [...RELAXED, "--anonymous"] }).start();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** @type {import("playwright-core").BrowserContext} */ let ctxA;
/** @type {import("playwright-core").BrowserContext} */ let ctxB;
/** @type {import("playwright-core").Page} */ let alice;
/** @type {import("playwright-core").Page} */ let bob;

test("two browsers register, join a room and see each other's messages", async () => {
  ctxA = await context();
  ctxB = await context();
  alice = await ctxA.newPage();
  bob = await ctxB.newPage();

  const page = await alice.goto(server.url + "/");
  const h = page?.headers() ?? {};
  assert.match(h["content-security-policy"], /default-src 'self'/);
  assert.match(h["content-security-policy"], /frame-ancestors 'none'/);
  assert.equal(h["x-content-type-options"], "nosniff");
  await alice.waitForSelector("#auth:not([hidden])");
  await shot(alice, "01-login");

  await register(alice, "alice");
  await bob.goto(server.url + "/");
  await register(bob, "bob");
  await collectCookies(ctxA);
  await collectCookies(ctxB);

  await send(alice, "hello from alice");
  await waitShown(bob, "general", "hello from alice");
  await send(bob, "hi alice, bob here");
  await waitShown(alice, "general", "hi alice, bob here");
  await waitShown(alice, "general", "hello from alice");

  const a = await shown(alice, "general");
  const b = await shown(bob, "general");
  assert.deepEqual(a, b, "both see the same messages");
  assert.deepEqual(a.map((m) => [m.from, m.text]), [
    ["alice", "hello from alice"],
    ["bob", "hi alice, bob here"],
  ]);
  assert.equal(await alice.textContent("#who"), "alice");
  await shot(alice, "02-chat-alice");
  await shot(bob, "03-chat-bob");

  // A second room, joined from the page.
  await alice.fill("#join-form input[name=room]", "random");
  await alice.press("#join-form input[name=room]", "Enter");
  await alice.waitForSelector('ol.messages[data-room="random"]:not([hidden])');
  await send(alice, "anyone in random?");
  await waitShown(alice, "random", "anyone in random?");
  await alice.click('button.room-button[data-room="general"]');
  await checkPage(alice);
  await checkPage(bob);
});

test("a reload keeps the login through the HttpOnly cookie", async () => {
  const before = await shown(alice, "general");
  await alice.reload();
  await alice.waitForSelector('#conn[data-state="open"]');
  assert.equal(await alice.isHidden("#auth"), true, "no login form after a reload");
  assert.equal(await alice.textContent("#who"), "alice");
  // The rooms come back (their names are remembered) with their recent messages.
  await waitShown(alice, "general", "hi alice, bob here");
  await alice.waitForSelector('ol.messages[data-room="random"]', { state: "attached" });
  assert.deepEqual(await shown(alice, "general"), before);
  await shot(alice, "04-after-reload");
  await checkPage(alice);
});

test("the server restarts mid-chat: the page reconnects with a fresh ticket and shows what it missed, once", async () => {
  /** @type {string[]} */
  const sockets = [];
  alice.on("websocket", (ws) => sockets.push(ws.url()));
  // Alice's page may not get a ticket until bob has written while she was away.
  let release = () => {};
  const gate = new Promise((r) => (release = () => r(undefined)));
  let ticketCalls = 0;
  await ctxA.route("**/api/auth/ws-ticket", async (route) => {
    ticketCalls++;
    await gate;
    await route.continue().catch(() => {});
  });

  await server.restart("SIGTERM");
  await alice.waitForSelector('#conn[data-state="reconnecting"]');
  await bob.waitForSelector('#conn[data-state="open"]', { timeout: 15000 });
  await shot(alice, "05-reconnecting");

  // Alice writes while offline: the message waits, then goes out once.
  await send(alice, "written while offline");
  await alice.waitForSelector("li.msg.pending");

  for (const n of [1, 2, 3]) await send(bob, "while you were away " + n);
  await waitShown(bob, "general", "while you were away 3");
  assert.equal(await alice.getAttribute("#conn", "data-state"), "reconnecting");
  assert.ok(ticketCalls >= 1, "alice asked for a new ticket");

  release();
  await alice.waitForSelector('#conn[data-state="open"]', { timeout: 15000 });
  await waitShown(alice, "general", "while you were away 3");
  await waitShown(alice, "general", "written while offline");
  await waitShown(bob, "general", "written while offline");
  await alice.waitForSelector("li.msg.pending", { state: "detached" });
  await ctxA.unroute("**/api/auth/ws-ticket");

  const a = await shown(alice, "general");
  const b = await shown(bob, "general");
  assertUniqueIncreasing(a);
  assert.deepEqual(a, b, "alice shows exactly what bob shows: no gap, no duplicate");
  assert.deepEqual(a.map((m) => m.text), [
    "hello from alice",
    "hi alice, bob here",
    "while you were away 1",
    "while you were away 2",
    "while you were away 3",
    "written while offline",
  ]);
  // The reconnect took a new ticket (a ticket opens one socket only).
  assert.ok(sockets.length >= 1);
  const fresh = new URL(sockets.at(-1) ?? "").searchParams.get("ticket");
  const earlier = requested.filter((u) => u.includes("/ws?ticket=") && u !== sockets.at(-1)).map((u) => new URL(u).searchParams.get("ticket"));
  assert.ok(fresh && !earlier.includes(fresh), "the reconnect used a ticket never used before");
  await shot(alice, "06-resumed-after-restart");
  await checkPage(alice);
});

test("a page from another origin cannot open a socket with the victim's cookie", async () => {
  const target = server.url.replace("http:", "ws:") + "/ws";
  // A recording proxy in front of tollgate, on this same host: what the
  // browser sends through it is what it sends to tollgate's port, since
  // cookies are scoped to the host, not the port.
  const recorder = await new Proxy(() => {
    const [host, port] = server.addr.split(":");
    return { host, port: Number(port) };
  }).start();
  const recorded = recorder.url.replace("http:", "ws:") + "/ws";
  const evil = http.createServer((req, res) => {
    if (req.url === "/evil.js") {
      res.setHeader("Content-Type", "text/javascript");
      res.end(`
        window.results = {};
        const say = (line) => { const p = document.createElement("p"); p.textContent = line; document.body.append(p); };
        const ws = new WebSocket(${JSON.stringify(target)}, "tollgate.v1");
        ws.onopen = () => { window.results.opened = true; };
        ws.onmessage = (e) => { window.results.frame = String(e.data); };
        ws.onclose = (e) => { window.results.closed = e.code; say("socket to tollgate with the victim's cookie: closed " + e.code + " before opening"); };
        const viaRecorder = new WebSocket(${JSON.stringify(recorded)}, "tollgate.v1");
        viaRecorder.onopen = () => { window.results.openedViaRecorder = true; };
        viaRecorder.onclose = (e) => { window.results.closedViaRecorder = e.code; };
        fetch(${JSON.stringify(server.url + "/api/auth/ws-ticket")}, { method: "POST", credentials: "include" })
          .then((r) => { window.results.ticket = r.status; }, (e) => { window.results.ticket = "blocked: " + e.message; say("ticket request: " + window.results.ticket); });
      `);
      return;
    }
    res.setHeader("Content-Type", "text/html");
    res.end(`<!doctype html><title>evil</title><h1>A page on another origin</h1><p>Framing tollgate's page (frame-ancestors 'none'):</p><script src="/evil.js"></script>
      <iframe src="${server.url}/" width="500" height="200"></iframe>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", () => r(undefined)));
  const evilURL = `http://127.0.0.1:${/** @type {any} */ (evil.address()).port}/`;
  try {
    // The victim (alice) is logged in in this context; the evil page opens beside hers.
    const page = await ctxA.newPage();
    const consoleLines = [];
    page.on("console", (m) => consoleLines.push(m.text()));
    const logFrom = server.log.length;

    await page.goto(evilURL);
    await page.waitForFunction(() => {
      const r = /** @type {any} */ (window).results;
      return r && r.closed !== undefined && r.closedViaRecorder !== undefined && r.ticket !== undefined;
    });
    const results = await page.evaluate(() => /** @type {any} */ (window).results);
    assert.equal(results.opened, undefined, "the cross-origin socket never opened");
    assert.equal(results.frame, undefined, "no frame reached the other origin");
    assert.equal(results.closed, 1006);
    assert.equal(results.openedViaRecorder, undefined);
    assert.equal(results.closedViaRecorder, 1006);
    assert.match(String(results.ticket), /^blocked/, "the other origin cannot read a ticket");

    // The handshake did carry alice's cookie (same site: only the port
    // differs), and the server refused it for its Origin: 403 before any 101.
    const cookie = (await ctxA.cookies()).find((c) => c.name === "auth_token");
    assert.ok(cookie?.value, "alice is logged in");
    const head = recorder.heads.find((h) => h.startsWith("GET /ws "));
    assert.ok(head, "the evil page's handshake went through the recorder");
    assert.match(head, new RegExp(`^Origin: ${evilURL.slice(0, -1)}$`, "mi"));
    assert.ok(head.includes("auth_token=" + cookie.value), "the victim's cookie rode along with the handshake");
    await waitFor(() => consoleLines.filter((l) => l.includes("Unexpected response code: 403")).length === 2, "the browser's 403s");
    const log = server.log.slice(logFrom);
    assert.match(log, /msg="request refused" method=GET path=\/ws code=origin_not_allowed/);
    assert.match(log, /msg="request refused" method=POST path=\/api\/auth\/ws-ticket code=origin_not_allowed/);
    assert.doesNotMatch(log, /path=\/ws status=101/, "no socket was opened meanwhile");
    // frame-ancestors 'none': the page cannot be framed by it either.
    await waitFor(() => consoleLines.some((l) => l.includes("frame-ancestors")), "the framing refusal");
    await shot(page, "07-other-origin-refused");
    await page.close();
    // Alice's own page is untouched.
    assert.equal(await alice.getAttribute("#conn", "data-state"), "open");
  } finally {
    await recorder.close();
    await new Promise((r) => evil.close(() => r(undefined)));
  }
});

test("a guest chats in an anonymous room (--anonymous)", async () => {
  const ctx = await context();
  const page = await ctx.newPage();
  await page.goto(server.url + "/");
  await page.waitForSelector("#auth:not([hidden])");
  await page.click("#guest");
  await page.waitForSelector('#conn[data-state="open"]');
  await page.waitForSelector('ol.messages[data-room="lobby"]');
  assert.match((await page.textContent("#who")) ?? "", /^guest-.* \(guest\)$/);
  await send(page, "hi from a guest");
  await waitShown(page, "lobby", "hi from a guest");
  // A room outside --anonymous-rooms is refused, and the page says so.
  await page.fill("#join-form input[name=room]", "general");
  await page.press("#join-form input[name=room]", "Enter");
  await page.waitForSelector('#banner:not([hidden])[data-code="forbidden"]');
  await shot(page, "08-guest");
  await checkPage(page);
  await ctx.close();
});

test("log out ends the session: the page shows the login form, also after a reload", async () => {
  await alice.click("#logout");
  await alice.waitForSelector("#auth:not([hidden])");
  assert.equal(await alice.getAttribute("#conn", "data-state"), "closed");
  await alice.reload();
  await alice.waitForSelector("#auth:not([hidden])");
  const names = (await ctxA.cookies()).map((c) => c.name);
  assert.ok(!names.includes("auth_token") && !names.includes("refresh_token"), "cookies cleared");
  await shot(alice, "09-logged-out");
  await ctxA.close();
  await ctxB.close();
});

test("an expiring token is renewed in-band with the refresh cookie; the socket stays", { timeout: 60000 }, async () => {
  const s = await new Server({ flags: [...RELAXED, "--access-token-ttl", "15s"] }).start();
  try {
    const ctx = await context();
    const page = await ctx.newPage();
    /** @type {string[]} */
    const sockets = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    /** @type {number[]} */
    const refreshes = [];
    page.on("response", (r) => {
      if (new URL(r.url()).pathname === "/api/auth/refresh") refreshes.push(r.status());
    });
    await page.goto(s.url + "/");
    await register(page, "renata");
    // (The page's first refresh, before registering, was a 401: nobody was logged in.)
    refreshes.length = 0;
    const start = Date.now();
    await waitFor(() => Date.now() - start > 20000, "past the first token's expiry", 25000);
    assert.ok(refreshes.length >= 1 && refreshes.every((x) => x === 200), `refreshes: ${refreshes}`);
    // The refresh cookie went only to /api/auth/refresh (Path=/api/auth), in a POST body-less call.
    assert.equal(sockets.length, 1, "one socket all along");
    assert.equal(await page.getAttribute("#conn", "data-state"), "open");
    await send(page, "still connected");
    await waitShown(page, "general", "still connected");
    await collectCookies(ctx);
    await checkPage(page);
    await ctx.close();
  } finally {
    await s.close();
  }
});

test("rate limited, then blocked: the page says so", async () => {
  const s = await new Server({
    flags: ["--publish-rate", "2", "--publish-window", "4s", "--block-violations", "2", "--login-rate", "1000", "--handshake-rate", "1000"],
  }).start();
  try {
    const ctx = await context();
    const page = await ctx.newPage();
    await page.goto(s.url + "/");
    await register(page, "rita");
    for (const n of [1, 2, 3]) await send(page, "quick " + n);
    await page.waitForSelector('#banner:not([hidden])[data-code="rate_limited"]');
    assert.match((await page.textContent("#banner-text")) ?? "", /rate limited\. Retrying in \d+ s/);
    await shot(page, "10-rate-limited");
    // The SDK waits retry_after and sends it again: delivered once.
    await waitShown(page, "general", "quick 3", 15000);
    assert.deepEqual((await shown(page, "general")).map((m) => m.text), ["quick 1", "quick 2", "quick 3"]);

    // Another client of rita's floods the room; her second violation blocks her
    // everywhere, and the page's socket is closed 1008 blocked.
    const other = await login(s.url, "rita", PASSWORD);
    tokens.add(other.access);
    tokens.add(other.refresh);
    const sock = new WebSocket(s.url.replace("http:", "ws:") + "/ws", "tollgate.v1", {
      headers: { Authorization: "Bearer " + other.access },
    });
    await new Promise((resolve, reject) => {
      sock.once("open", resolve);
      sock.once("error", reject);
    });
    sock.send(JSON.stringify({ type: "join", room: "general" }));
    for (let n = 0; n < 6; n++) sock.send(JSON.stringify({ type: "publish", room: "general", text: "flood " + n }));
    await page.waitForSelector('#conn[data-state="closed"]');
    assert.equal(await page.textContent("#conn"), "blocked");
    await page.waitForSelector('#banner:not([hidden])[data-code="blocked"]');
    await shot(page, "11-blocked");
    sock.close();
    // A blocked user cannot get a ticket either.
    const t = await api(s.url, "POST", "/api/auth/ws-ticket", { token: other.access });
    assert.equal(t.status, 403);
    assert.equal(t.body.error.code, "blocked");
    await ctx.close();
  } finally {
    await s.close();
  }
});

test("no access token ever appeared in a request URL, and no CSP violation happened", () => {
  assert.ok(tokens.size >= 4, `tokens seen: ${tokens.size}`);
  assert.ok(requested.length > 20, `requests logged: ${requested.length}`);
  for (const u of requested) {
    assert.ok(!JWT.test(u), `a JWT in a URL: ${u.slice(0, 80)}`);
    for (const t of tokens) assert.ok(!u.includes(t), `a token in a URL: ${u.slice(0, 80)}`);
    const q = new URL(u).searchParams;
    assert.ok(!q.has("token") && !q.has("access_token"), `a token parameter: ${u.slice(0, 80)}`);
  }
  // Sockets were opened with tickets (or the guest's cookie), nothing else.
  const sockets = requested.filter((u) => u.startsWith("ws:"));
  assert.ok(sockets.length >= 4);
  for (const u of sockets) assert.match(u, /\/ws(\?ticket=[A-Za-z0-9_-]{43,})?$/);
  assert.deepEqual(violations, [], "CSP violations");
});
