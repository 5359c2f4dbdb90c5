// @ts-check
/**
 * tollgate client SDK: an ES module with no dependencies and no build step,
 * for browsers and Node.js 20+.
 *
 * It opens sockets the safe way (docs/api.md): it checks the login state
 * (GET /api/me), asks for a one-time ticket (POST /api/auth/ws-ticket) and
 * opens `GET /ws?ticket=…` with the `tollgate.v1` subprotocol; it takes a
 * fresh ticket for every reconnect, renews the access token in-band when the
 * server says `token_expiring`, resumes every joined room from the last id it
 * saw (no gaps, no duplicates), and retries publishes until they are
 * acknowledged (the server deduplicates them by `client_id`). An access token
 * never goes into a URL or into storage: with cookies the SDK never sees one
 * except for the moment between POST /api/auth/refresh and the `refresh`
 * frame; with `token` it asks the app each time it needs one.
 *
 *     import { TollgateClient } from "/sdk/tollgate.js";
 *     const tg = new TollgateClient();            // same-origin page, login cookie
 *     tg.on("message", (m) => console.log(m.from.name, m.text));
 *     await tg.connect();
 *     await tg.join("general");
 *     await tg.publish("general", "hello");
 *
 * In Node.js 20 pass a WebSocket implementation (`import WebSocket from "ws"`)
 * and a token: `new TollgateClient({ url, WebSocket, token: () => accessToken })`.
 *
 * @module tollgate
 */

/** The JSON subprotocol the SDK speaks. */
export const PROTOCOL = "tollgate.v1";

/** Room names: 1–64 of [a-z0-9_.-] (docs/api.md). */
export const ROOM_PATTERN = /^[a-z0-9_.-]{1,64}$/;

/** The largest `limit` of one history request. */
export const MAX_HISTORY = 500;

/**
 * Close reasons (with code 1008) after which reconnecting cannot help: the
 * client stops and reports the reason in the `closed` state.
 */
export const FATAL_CLOSE_REASONS = Object.freeze([
  "session_revoked",
  "user_disabled",
  "blocked",
  "origin_not_allowed",
  "unauthenticated",
]);

/**
 * @typedef {"idle"|"connecting"|"open"|"reconnecting"|"closed"} ConnectionState
 *
 * @typedef {object} User
 * @property {string} id
 * @property {string} name
 * @property {boolean} [anonymous]
 *
 * @typedef {object} Message A room message (the server's `message` frame).
 * @property {string} room
 * @property {number} id Increasing per room.
 * @property {{id: string, name: string}} from
 * @property {string} text
 * @property {string} ts RFC 3339 time in UTC.
 *
 * @typedef {object} StateEvent
 * @property {ConnectionState} state
 * @property {ConnectionState} previous
 * @property {number} [attempt] reconnecting: the number of this attempt (1, 2, …).
 * @property {number} [delay] reconnecting: milliseconds until the attempt.
 * @property {number} [code] the close code that caused this state, if any.
 * @property {string} [reason] closed: why (a close reason such as
 *   "session_revoked" or "blocked", an API error code such as
 *   "unauthenticated", or "client" after close(), "logout" after logout());
 *   reconnecting: the close reason or error code that caused it.
 * @property {TollgateError} [error] the error that caused this state, if any.
 *
 * @typedef {object} JoinedEvent
 * @property {string} room
 * @property {number} last_id The room's newest id when it was joined.
 * @property {boolean} resumed True when this join restored the room after a reconnect.
 *
 * @typedef {object} Backoff Reconnect delays: attempt n waits a random time
 *   between 0 and min(max, initial * factor^(n-1)) ms ("full jitter").
 * @property {number} [initial] default 500
 * @property {number} [max] default 30000
 * @property {number} [factor] default 2
 *
 * @typedef {object} ClientOptions
 * @property {string} [url] The server's base URL (`https://chat.example.com`).
 *   Default: the page's origin. Required outside a browser.
 * @property {"cookie"|"bearer"|"ticket"|"anonymous"} [auth] How the client
 *   authenticates. Default: "ticket" when `ticket` is given, "bearer" when
 *   `token` is given, else "cookie" (a same-origin page whose login set the
 *   HttpOnly cookie). "anonymous" is what anonymous() switches to.
 * @property {() => (string|Promise<string>)} [token] bearer: returns the app's
 *   current access token; called for every ticket and login-state check, never
 *   stored by the SDK.
 * @property {() => Promise<string>} [renewToken] bearer or ticket: returns a
 *   new access token for the in-band `refresh` when the server announces
 *   `token_expiring`. Bearer default: call `token` again. Without it in ticket
 *   mode the socket closes at expiry and the client reconnects with a fresh ticket.
 * @property {() => Promise<string>} [ticket] ticket: returns a fresh one-time
 *   ticket (for instance from your backend, which called POST
 *   /api/auth/ws-ticket with its own Bearer token). Called for every connect.
 * @property {typeof WebSocket} [WebSocket] A WebSocket constructor. Default:
 *   globalThis.WebSocket (browsers; Node 22+). On Node 20 pass the `ws` package's.
 * @property {typeof fetch} [fetch] Default: globalThis.fetch.
 * @property {Backoff} [backoff]
 * @property {number} [ackTimeout] ms to wait for an `ack` before sending a
 *   publish again with the same client_id. Default 10000.
 * @property {number} [maxInFlight] publishes sent and not yet acknowledged at
 *   once. Default 1: messages go out in order and a burst never earns more
 *   than one rate-limit violation at a time.
 * @property {number} [requestTimeout] ms for each REST call and for join, leave
 *   and history. Default 15000.
 * @property {number} [heartbeat] ms between `ping` frames; a socket that sends
 *   nothing for twice as long is dropped and reconnected. 0 turns it off.
 *   Default 25000.
 * @property {number} [minRenewInterval] ms between two token renewals of one
 *   socket. Default 10000.
 * @property {number} [historyBacklog] how many older messages a first join()
 *   replays by default (see JoinOptions.backlog). Default 0.
 */

/**
 * TollgateError is every error the SDK reports: a refused request (the
 * server's `code` and `message`), a failed HTTP call (`status`), or a local
 * failure ("disconnected", "closed", "timeout", "network").
 */
export class TollgateError extends Error {
  /**
   * @param {string} code snake_case code (docs/api.md) or a local one
   * @param {string} message human-readable, safe to show
   * @param {{status?: number, retryAfter?: number, room?: string, clientId?: string, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "TollgateError";
    /** @type {string} */
    this.code = code;
    /** @type {number|undefined} HTTP status, for errors of the REST API. */
    this.status = extra.status;
    /** @type {number|undefined} seconds to wait (rate_limited). */
    this.retryAfter = extra.retryAfter;
    /** @type {string|undefined} */
    this.room = extra.room;
    /** @type {string|undefined} the publish's client_id, for its errors. */
    this.clientId = extra.clientId;
  }
}

/** Codes of a refused publish that a retry cannot fix. */
const PERMANENT_PUBLISH_CODES = new Set(["forbidden", "not_joined", "invalid_request", "too_long"]);

/** @returns {string} 128 random bits, URL-safe; crypto.getRandomValues works outside secure contexts too. */
function randomId() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * Serializes token renewals across the tabs of one browser (Web Locks), so
 * that two tabs never present the same refresh cookie: a spent refresh token
 * revokes the whole session (docs/api.md, "Refresh token").
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
function withRefreshLock(fn) {
  const locks = /** @type {any} */ (globalThis.navigator)?.locks;
  if (locks && typeof locks.request === "function") {
    return locks.request("tollgate.refresh", fn);
  }
  return fn();
}

/**
 * @typedef {object} RoomState
 * @property {number|null} lastId the newest id delivered to the app; null before the first join.
 * @property {boolean} ready joined and caught up on the current socket.
 * @property {boolean} resuming catching up from history; live messages wait in buffer.
 * @property {Message[]} buffer
 * @property {number|undefined} since first join: replay from this id.
 * @property {number} backlog first join: replay this many older messages.
 * @property {Array<{resolve: (e: JoinedEvent) => void, reject: (e: Error) => void}>} waiters join() calls waiting for the first joined.
 *
 * @typedef {object} PendingPublish
 * @property {string} clientId
 * @property {string} room
 * @property {string} text
 * @property {boolean} inFlight
 * @property {number} attempts
 * @property {ReturnType<typeof setTimeout>|undefined} timer
 * @property {(a: {id: number, room: string, clientId: string}) => void} resolve
 * @property {(e: Error) => void} reject
 *
 * @typedef {object} Waiter A request waiting for its answer frame.
 * @property {string} answer the answer's frame type
 * @property {string|undefined} room
 * @property {string} ref the client_id sent with the request, echoed by errors
 * @property {(f: any) => void} resolve
 * @property {(e: Error) => void} reject
 * @property {ReturnType<typeof setTimeout>|undefined} timer
 */

/**
 * TollgateClient is one logical connection to a tollgate server: it keeps a
 * socket open (reconnecting as needed), the rooms joined and the publishes
 * not yet acknowledged. Events: "state" ({@link StateEvent}), "message"
 * ({@link Message}, once per id and in id order per room), "joined"
 * ({@link JoinedEvent}), "left" ({room}), "error" ({@link TollgateError}: every
 * refused request and failed connect), "welcome" (the server's first frame),
 * "refreshed" ({expires_at}).
 */
export class TollgateClient {
  /** @type {Required<Pick<ClientOptions, "ackTimeout"|"maxInFlight"|"requestTimeout"|"heartbeat"|"minRenewInterval"|"historyBacklog">> & ClientOptions} */
  #opts;
  /** @type {"cookie"|"bearer"|"ticket"|"anonymous"} */
  #mode;
  #base;
  /** @type {typeof fetch} */
  #fetch;
  /** @type {Required<Backoff>} */
  #backoff;
  /** @type {Map<string, Set<(ev: any) => void>>} */
  #listeners = new Map();
  /** @type {ConnectionState} */
  #state = "idle";
  /** @type {WebSocket|null} */
  #ws = null;
  #welcomed = false;
  #openedAt = 0;
  #lastFrameAt = 0;
  /** false while the client should be connected. */
  #stopped = true;
  #generation = 0;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setInterval>|undefined} */
  #heartbeatTimer;
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  #renewTimer;
  #lastRenewAt = 0;
  /** @type {Promise<string|null>|null} */
  #renewing = null;
  /** @type {Map<string, RoomState>} */
  #rooms = new Map();
  /** @type {Map<string, PendingPublish>} insertion order is publish order */
  #pending = new Map();
  #gateUntil = 0;
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  #gateTimer;
  /** @type {Waiter[]} */
  #waiters = [];
  /** @type {User|null} */
  #user = null;
  #anonExpiresAt = 0;
  #anonFailed = false;
  /** @type {{resolve: (u: User) => void, reject: (e: Error) => void}|null} */
  #connecting = null;
  #onOnline = () => this.#retryNow();

  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    const base = options.url ?? globalThis.location?.origin;
    if (!base) throw new TypeError("tollgate: options.url is required outside a browser");
    this.#base = new URL(base);
    if (this.#base.protocol !== "http:" && this.#base.protocol !== "https:") {
      throw new TypeError("tollgate: options.url must be an http: or https: URL");
    }
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("tollgate: no fetch; pass options.fetch");
    // Browsers refuse fetch called with another `this` ("Illegal invocation").
    this.#fetch = options.fetch ? f : f.bind(globalThis);
    this.#mode = options.auth ?? (options.ticket ? "ticket" : options.token ? "bearer" : "cookie");
    if (this.#mode === "bearer" && typeof options.token !== "function") {
      throw new TypeError("tollgate: auth \"bearer\" needs options.token, a function returning the access token");
    }
    if (this.#mode === "ticket" && typeof options.ticket !== "function") {
      throw new TypeError("tollgate: auth \"ticket\" needs options.ticket, a function returning a fresh ticket");
    }
    this.#opts = {
      ackTimeout: 10000,
      maxInFlight: 1,
      requestTimeout: 15000,
      heartbeat: 25000,
      minRenewInterval: 10000,
      historyBacklog: 0,
      ...options,
    };
    this.#backoff = { initial: 500, max: 30000, factor: 2, ...options.backoff };
  }

  // ---- events -------------------------------------------------------------

  /**
   * on adds a listener and returns a function that removes it.
   * @param {"state"|"message"|"joined"|"left"|"error"|"welcome"|"refreshed"} type
   * @param {(ev: any) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /**
   * off removes a listener added with on.
   * @param {string} type
   * @param {(ev: any) => void} fn
   */
  off(type, fn) {
    this.#listeners.get(type)?.delete(fn);
  }

  /** @param {string} type @param {any} ev */
  #emit(type, ev) {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) {
      try {
        fn(ev);
      } catch (err) {
        // A listener's bug must not break the connection; report it.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  /** The connection state. @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  /** The user of the current or last socket, or of the last login check. @returns {User|null} */
  get user() {
    return this.#user;
  }

  /** How the client authenticates. */
  get auth() {
    return this.#mode;
  }

  /** The rooms joined (or to be joined again after a reconnect). @returns {string[]} */
  get rooms() {
    return [...this.#rooms.keys()];
  }

  /**
   * @param {ConnectionState} state
   * @param {Partial<StateEvent>} [extra]
   */
  #setState(state, extra = {}) {
    const previous = this.#state;
    if (previous === state && state !== "reconnecting") return;
    this.#state = state;
    this.#emit("state", { state, previous, ...extra });
  }

  // ---- REST ---------------------------------------------------------------

  /**
   * @param {string} method
   * @param {string} path
   * @param {{body?: any, token?: string|null, noAuth?: boolean}} [o]
   * @returns {Promise<any>} the parsed JSON body of a 2xx answer
   */
  async #call(method, path, o = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json" };
    /** @type {RequestInit} */
    const init = { method, headers, cache: "no-store", credentials: "same-origin" };
    // Every call is bounded: a pooled connection that died silently must not
    // hang a reconnect forever.
    if (typeof AbortSignal.timeout === "function") init.signal = AbortSignal.timeout(this.#opts.requestTimeout);
    if (o.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(o.body);
    }
    if (o.token) {
      headers.Authorization = "Bearer " + o.token;
      // A Bearer call never needs cookies: send none, so one credential decides.
      init.credentials = "omit";
    }
    let res;
    try {
      res = await this.#fetch(new URL(path, this.#base).href, init);
    } catch (err) {
      const timedOut = /** @type {any} */ (err)?.name === "TimeoutError";
      throw new TollgateError("network", `${timedOut ? "No answer from" : "Cannot reach"} the server (${method} ${path}).`, { cause: err });
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      // not JSON: handled below
    }
    if (res.ok && body && body.success !== false) return body;
    const e = body?.error ?? {};
    const ra = Number(res.headers.get("Retry-After"));
    throw new TollgateError(
      typeof e.code === "string" ? e.code : res.status >= 500 ? "unavailable" : "http_" + res.status,
      typeof e.message === "string" ? e.message : `The server answered ${res.status}.`,
      { status: res.status, retryAfter: Number.isFinite(ra) && ra > 0 ? ra : undefined },
    );
  }

  /** The Bearer token to send, or null for cookie auth. */
  async #bearer() {
    if (this.#mode !== "bearer") return null;
    const t = await /** @type {() => string|Promise<string>} */ (this.#opts.token)();
    if (!t) throw new TollgateError("unauthenticated", "No access token.");
    return t;
  }

  /**
   * register creates an account (POST /api/auth/register). It does not log in.
   * @param {string} username
   * @param {string} password
   * @returns {Promise<{id: string, username: string}>}
   */
  async register(username, password) {
    const b = await this.#call("POST", "/api/auth/register", { body: { username, password } });
    return b.user;
  }

  /**
   * login logs in with the server's own accounts (POST /api/auth/login). The
   * server sets the HttpOnly cookies; the tokens in the answer are dropped on
   * purpose, so this page's script never holds them. For same-origin pages
   * (auth "cookie"); an app with its own login uses `token` or `ticket` instead.
   * @param {string} username
   * @param {string} password
   * @returns {Promise<User>}
   */
  async login(username, password) {
    const b = await this.#call("POST", "/api/auth/login", { body: { username, password } });
    if (this.#mode === "anonymous") this.#mode = "cookie";
    this.#user = { id: b.user.id, name: b.user.username };
    return this.#user;
  }

  /**
   * logout stops the client (no reconnect), then revokes the session (POST
   * /api/auth/logout), which also closes its other sockets and clears the
   * cookies. An anonymous client just stops. Rooms and unacknowledged
   * publishes are dropped.
   */
  async logout() {
    const mode = this.#mode;
    this.#stop("logout");
    this.#rooms.clear();
    this.#user = null;
    if (mode === "anonymous") {
      this.#mode = "cookie";
      return;
    }
    if (mode === "ticket") return;
    await this.#call("POST", "/api/auth/logout", { token: await this.#bearer() });
  }

  /**
   * anonymous starts an anonymous session (GET /api/auth/anon; the server
   * must run with --anonymous) and switches the client to it: its sockets are
   * opened with the HttpOnly anon_session cookie and may join only the
   * server's anonymous rooms.
   * @returns {Promise<User>}
   */
  async anonymous() {
    const b = await this.#call("GET", "/api/auth/anon");
    this.#mode = "anonymous";
    this.#anonExpiresAt = Date.now() + (Number(b.expires_in) || 0) * 1000;
    this.#anonFailed = false;
    this.#user = { id: b.user.id, name: b.user.username, anonymous: true };
    return this.#user;
  }

  /**
   * me checks the login state (GET /api/me). When the access credential has
   * expired it renews it once (cookie: POST /api/auth/refresh with the
   * refresh cookie; bearer: renewToken) and asks again. Returns null when not
   * logged in; throws on other failures (network, server down).
   * @returns {Promise<User|null>}
   */
  async me() {
    if (this.#mode === "anonymous") return this.#user;
    if (this.#mode === "ticket") return this.#user;
    for (let i = 0; i < 2; i++) {
      try {
        const b = await this.#call("GET", "/api/me", { token: await this.#bearer() });
        this.#user = { id: b.user.id, name: b.user.username, anonymous: !!b.user.anonymous };
        return this.#user;
      } catch (err) {
        const e = /** @type {TollgateError} */ (err);
        if (e.status !== 401) throw e;
        if (i === 1 || !(await this.#renew())) return null;
      }
    }
    return null;
  }

  /**
   * renew gets a new access token: cookie mode through POST
   * /api/auth/refresh (which also sets the new cookies), bearer and ticket
   * mode from the app. Concurrent calls share one renewal. Returns null when
   * no renewal is possible.
   * @returns {Promise<string|null>}
   */
  #renew() {
    if (!this.#renewing) {
      this.#renewing = this.#doRenew().finally(() => {
        this.#renewing = null;
      });
    }
    return this.#renewing;
  }

  /** @returns {Promise<string|null>} */
  async #doRenew() {
    try {
      switch (this.#mode) {
        case "cookie": {
          const b = await withRefreshLock(() => this.#call("POST", "/api/auth/refresh"));
          this.#lastRenewAt = Date.now();
          return typeof b.access_token === "string" ? b.access_token : null;
        }
        case "bearer":
        case "ticket": {
          const f = this.#opts.renewToken ?? (this.#mode === "bearer" ? this.#opts.token : undefined);
          if (!f) return null;
          const t = await f();
          this.#lastRenewAt = Date.now();
          return t || null;
        }
        default:
          return null;
      }
    } catch (err) {
      const e = /** @type {TollgateError} */ (err);
      if (e.status === 401 || e.status === 403) return null;
      throw e;
    }
  }

  // ---- connecting ---------------------------------------------------------

  /**
   * connect checks the login state, then keeps a socket open until close()
   * or logout(), reconnecting with backoff and a fresh ticket each time.
   * It resolves with the user once the first socket is open, and rejects when
   * the client cannot connect at all (not logged in: code "unauthenticated";
   * blocked; stopped by close()). Network failures do not reject: the client
   * keeps trying, in state "reconnecting". Calling it again while connected
   * returns the current user.
   * @returns {Promise<User>}
   */
  connect() {
    if (!this.#stopped) {
      if (this.#welcomed && this.#user) return Promise.resolve(this.#user);
      return new Promise((resolve, reject) => {
        const prev = this.#connecting;
        this.#connecting = {
          resolve: (u) => (prev?.resolve(u), resolve(u)),
          reject: (e) => (prev?.reject(e), reject(e)),
        };
      });
    }
    this.#stopped = false;
    this.#attempt = 0;
    const gen = ++this.#generation;
    const p = new Promise((resolve, reject) => {
      this.#connecting = { resolve, reject };
    });
    globalThis.addEventListener?.("online", this.#onOnline);
    this.#setState("connecting");
    (async () => {
      if (this.#mode === "cookie" || this.#mode === "bearer") {
        let user;
        try {
          user = await this.me();
        } catch (err) {
          // The server is unreachable or failing: keep trying.
          if (gen === this.#generation) this.#scheduleReconnect(asError(err));
          return;
        }
        if (gen !== this.#generation) return;
        if (!user) {
          this.#fail(new TollgateError("unauthenticated", "Not logged in."));
          return;
        }
      }
      this.#openSocket(gen);
    })();
    return p;
  }

  /**
   * close closes the socket with 1000 and stops reconnecting. Rooms are kept:
   * a later connect() joins them again and resumes them. Unacknowledged
   * publishes are rejected with code "closed".
   */
  close() {
    this.#stop("client");
  }

  /** Retries at once when waiting for a reconnect (the browser went online). */
  #retryNow() {
    if (this.#stopped || this.#ws || this.#retryTimer === undefined) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#openSocket(this.#generation);
  }

  /**
   * The URL of the next socket, with a fresh credential.
   * @returns {Promise<string>}
   */
  async #socketURL() {
    const u = new URL("/ws", this.#base);
    u.protocol = this.#base.protocol === "https:" ? "wss:" : "ws:";
    if (this.#mode === "anonymous") {
      // Anonymous sockets carry the HttpOnly anon_session cookie; there is
      // no ticket for them (POST /api/auth/ws-ticket takes an access
      // credential). A session near its end, or one the last handshake
      // refused, is replaced by a new one.
      if (this.#anonFailed || Date.now() > this.#anonExpiresAt - 60000) await this.anonymous();
      return u.href;
    }
    let ticket;
    if (this.#mode === "ticket") {
      ticket = await /** @type {() => Promise<string>} */ (this.#opts.ticket)();
    } else {
      ticket = await this.#ticket();
    }
    u.searchParams.set("ticket", ticket);
    return u.href;
  }

  /** POST /api/auth/ws-ticket, renewing the credential once when it has expired. */
  async #ticket() {
    for (let i = 0; ; i++) {
      try {
        const b = await this.#call("POST", "/api/auth/ws-ticket", { token: await this.#bearer() });
        return /** @type {string} */ (b.ticket);
      } catch (err) {
        const e = /** @type {TollgateError} */ (err);
        if (e.status !== 401 || i > 0) throw e;
        if (!(await this.#renew())) throw e;
      }
    }
  }

  /** @param {number} gen */
  async #openSocket(gen) {
    this.#retryTimer = undefined;
    let url;
    try {
      url = await this.#socketURL();
    } catch (err) {
      if (gen !== this.#generation) return;
      const e = asError(err);
      if (e.status === 401 || (e.status === 403 && e.code !== "rate_limited")) {
        // Not logged in any more, blocked, or refused by origin: a retry
        // would be refused the same way.
        this.#fail(e);
        return;
      }
      this.#scheduleReconnect(e);
      return;
    }
    if (gen !== this.#generation) return;
    const WS = this.#opts.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") {
      this.#fail(new TollgateError("unsupported", "No WebSocket implementation; pass options.WebSocket."));
      return;
    }
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WS(url, PROTOCOL);
    } catch (err) {
      this.#scheduleReconnect(new TollgateError("network", "Cannot open the socket.", { cause: err }));
      return;
    }
    this.#ws = ws;
    this.#welcomed = false;
    this.#lastFrameAt = Date.now();
    ws.onmessage = (ev) => {
      if (this.#ws !== ws) return;
      this.#lastFrameAt = Date.now();
      let f;
      try {
        f = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data));
      } catch {
        return;
      }
      if (f && typeof f === "object") this.#onFrame(f);
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#onClosed(ev.code, ev.reason || "");
    };
    ws.onerror = () => {
      // onclose follows with the code (1006 for a refused handshake).
    };
    if (this.#opts.heartbeat > 0) {
      clearInterval(this.#heartbeatTimer);
      this.#heartbeatTimer = setInterval(() => this.#beat(ws), this.#opts.heartbeat);
    }
  }

  /** @param {WebSocket} ws */
  #beat(ws) {
    if (this.#ws !== ws) return;
    if (Date.now() - this.#lastFrameAt > 2 * this.#opts.heartbeat) {
      // Silent for two periods: the connection is dead without a FIN.
      this.#drop(ws, 1006, "heartbeat_timeout");
      return;
    }
    if (this.#welcomed) this.#send({ type: "ping" });
  }

  /**
   * drop abandons a socket now instead of waiting for its closing handshake.
   * @param {WebSocket} ws
   * @param {number} code
   * @param {string} reason
   */
  #drop(ws, code, reason) {
    ws.onclose = ws.onmessage = ws.onerror = null;
    try {
      ws.close(4000, reason);
    } catch {
      // already closed
    }
    this.#onClosed(code, reason);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #onClosed(code, reason) {
    const wasWelcomed = this.#welcomed;
    this.#ws = null;
    this.#welcomed = false;
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#renewTimer);
    this.#heartbeatTimer = this.#renewTimer = undefined;
    this.#resetConnectionState(new TollgateError("disconnected", "The connection closed."));
    if (this.#stopped) return;
    if (code === 1008 && FATAL_CLOSE_REASONS.includes(reason)) {
      this.#fail(new TollgateError(reason, closeMessage(reason)), code);
      return;
    }
    if (this.#mode === "anonymous" && !wasWelcomed) this.#anonFailed = true;
    // A socket that stayed up a while starts the backoff afresh; one that
    // died at once (or never opened) keeps growing it.
    if (wasWelcomed && Date.now() - this.#openedAt > 5000) this.#attempt = 0;
    this.#scheduleReconnect(new TollgateError(reason || "disconnected", closeMessage(reason)), code);
  }

  /**
   * The socket is gone: requests waiting for an answer fail, publishes wait
   * for the next socket, rooms must be joined again.
   * @param {TollgateError} err
   */
  #resetConnectionState(err) {
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.timer = undefined;
      p.inFlight = false;
    }
    for (const r of this.#rooms.values()) {
      r.ready = false;
      r.resuming = false;
      r.buffer = [];
    }
  }

  /**
   * @param {TollgateError} err
   * @param {number} [code]
   */
  #scheduleReconnect(err, code) {
    if (this.#stopped) return;
    this.#attempt++;
    const b = this.#backoff;
    const cap = Math.min(b.max, b.initial * Math.pow(b.factor, this.#attempt - 1));
    let delay = Math.random() * cap; // full jitter
    if (err.retryAfter) delay = Math.max(delay, err.retryAfter * 1000);
    // The cause rides on the state event; "error" events are for refusals.
    this.#setState("reconnecting", { attempt: this.#attempt, delay: Math.round(delay), code, reason: err.code, error: err });
    const gen = this.#generation;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      if (gen === this.#generation && !this.#stopped) this.#openSocket(gen);
    }, delay);
  }

  /**
   * fail stops for good after a refusal that a retry cannot fix.
   * @param {TollgateError} err
   * @param {number} [code]
   */
  #fail(err, code) {
    this.#emit("error", err);
    this.#stop(err.code, err, code);
  }

  /**
   * @param {string} reason
   * @param {TollgateError} [err]
   * @param {number} [code]
   */
  #stop(reason, err, code) {
    const wasStopped = this.#stopped;
    this.#stopped = true;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#gateTimer);
    this.#retryTimer = this.#gateTimer = undefined;
    globalThis.removeEventListener?.("online", this.#onOnline);
    const ws = this.#ws;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      try {
        ws.close(1000, reason === "logout" ? "logout" : "");
      } catch {
        // already closed
      }
      this.#onClosed(1000, "");
    }
    const e = err ?? new TollgateError("closed", "The client was closed.");
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.#pending.clear();
    for (const r of this.#rooms.values()) {
      for (const w of r.waiters.splice(0)) w.reject(e);
    }
    const c = this.#connecting;
    this.#connecting = null;
    c?.reject(e);
    if (!wasStopped || this.#state !== "closed") this.#setState("closed", { reason, code, error: err });
  }

  // ---- frames -------------------------------------------------------------

  /** @param {object} f */
  #send(f) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(f));
    return true;
  }

  /**
   * sendRequest sends a frame and waits for its answer.
   * @param {Record<string, any>} frame
   * @param {string} answer
   * @returns {Promise<any>}
   */
  #request(frame, answer) {
    return new Promise((resolve, reject) => {
      if (!this.#welcomed) {
        reject(new TollgateError("disconnected", "Not connected."));
        return;
      }
      const ref = "r-" + randomId().slice(0, 12);
      /** @type {Waiter} */
      const w = { answer, room: frame.room, ref, resolve, reject, timer: undefined };
      w.timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        reject(new TollgateError("timeout", `No answer to ${frame.type} in time.`, { room: frame.room }));
      }, this.#opts.requestTimeout);
      this.#waiters.push(w);
      // client_id is echoed as `ref` by an error frame: it ties a refusal to
      // this request (docs/api.md, "error").
      this.#send({ ...frame, client_id: ref });
    });
  }

  /**
   * @param {string} answer
   * @param {string|undefined} room
   * @param {any} f
   */
  #answer(answer, room, f) {
    const i = this.#waiters.findIndex((w) => w.answer === answer && (room === undefined || w.room === room));
    if (i < 0) return false;
    const [w] = this.#waiters.splice(i, 1);
    clearTimeout(w.timer);
    w.resolve(f);
    return true;
  }

  /** @param {any} f */
  #onFrame(f) {
    switch (f.type) {
      case "welcome":
        this.#onWelcome(f);
        return;
      case "message":
        this.#onMessage(f);
        return;
      case "ack":
        this.#onAck(f);
        return;
      case "error":
        this.#onError(f);
        return;
      case "token_expiring":
        this.#onExpiring(f);
        return;
      case "refreshed":
        this.#answer("refreshed", undefined, f);
        this.#emit("refreshed", { expires_at: f.expires_at });
        return;
      case "joined":
      case "left":
      case "history":
        this.#answer(f.type, f.room, f);
        return;
      case "pong":
        this.#answer("pong", undefined, f);
        return;
    }
  }

  /** @param {any} f */
  #onWelcome(f) {
    this.#welcomed = true;
    this.#openedAt = Date.now();
    this.#anonFailed = false;
    if (f.user) this.#user = { id: f.user.id, name: f.user.name, anonymous: !!f.user.anonymous };
    this.#setState("open");
    this.#emit("welcome", f);
    const c = this.#connecting;
    this.#connecting = null;
    if (c && this.#user) c.resolve(this.#user);
    for (const [name, r] of this.#rooms) this.#joinRoom(name, r);
    this.#pump();
  }

  // ---- rooms --------------------------------------------------------------

  /**
   * @typedef {object} JoinOptions
   * @property {number} [since] replay the messages with ids above this one
   *   (as "message" events) before the live ones.
   * @property {number} [backlog] replay about this many of the newest older
   *   messages (since = last_id − backlog). Ignored when since is given.
   */

  /**
   * join joins a room and keeps it joined across reconnects, resuming from
   * the last id seen. It resolves at the first `joined` (after any replay),
   * also when the client is still connecting.
   * @param {string} room
   * @param {JoinOptions} [options]
   * @returns {Promise<JoinedEvent>}
   */
  join(room, options = {}) {
    if (!ROOM_PATTERN.test(room)) {
      return Promise.reject(new TollgateError("invalid_request", "A room name is 1–64 of a-z, 0-9, _ . -", { room }));
    }
    const existing = this.#rooms.get(room);
    if (existing && existing.lastId !== null && existing.ready) {
      return Promise.resolve({ room, last_id: existing.lastId, resumed: false });
    }
    return new Promise((resolve, reject) => {
      let r = existing;
      if (!r) {
        r = {
          lastId: null,
          ready: false,
          resuming: false,
          buffer: [],
          since: options.since,
          backlog: options.backlog ?? this.#opts.historyBacklog,
          waiters: [],
        };
        this.#rooms.set(room, r);
        if (this.#welcomed) this.#joinRoom(room, r);
      }
      r.waiters.push({ resolve, reject });
    });
  }

  /**
   * joinRoom joins a room on the current socket and catches up: on the first
   * join from options.since/backlog, after a reconnect from the last id
   * delivered. Live messages that arrive meanwhile are held and delivered
   * after the replay, so the app sees every id once and in order.
   * @param {string} name
   * @param {RoomState} r
   */
  async #joinRoom(name, r) {
    const ws = this.#ws;
    let joined;
    try {
      joined = await this.#request({ type: "join", room: name }, "joined");
    } catch (err) {
      this.#roomFailed(name, r, /** @type {TollgateError} */ (err));
      return;
    }
    if (this.#ws !== ws || this.#rooms.get(name) !== r) return;
    const last = Number(joined.last_id) || 0;
    const resumed = r.lastId !== null;
    let since = r.lastId;
    if (since === null) {
      since = r.since ?? (r.backlog > 0 ? Math.max(0, last - r.backlog) : last);
      r.lastId = since;
    }
    if (since < last) {
      r.resuming = true;
      try {
        for (;;) {
          const h = await this.#request({ type: "history", room: name, since, limit: MAX_HISTORY }, "history");
          if (this.#ws !== ws || this.#rooms.get(name) !== r) return;
          /** @type {Message[]} */
          const msgs = Array.isArray(h.messages) ? h.messages : [];
          for (const m of msgs) this.#deliver(r, m);
          if (msgs.length < MAX_HISTORY) break;
          since = msgs[msgs.length - 1].id;
          if (since >= last) break;
        }
      } catch (err) {
        // The socket closed or the server refused: the next socket resumes
        // from what was delivered; a refusal is reported.
        const e = /** @type {TollgateError} */ (err);
        if (e.code !== "disconnected") {
          this.#emit("error", e);
          if (this.#ws === ws) this.#drop(/** @type {WebSocket} */ (ws), 1006, "resume_failed");
        }
        return;
      }
      r.resuming = false;
      const held = r.buffer.sort((a, b) => a.id - b.id);
      r.buffer = [];
      for (const m of held) this.#deliver(r, m);
    }
    r.ready = true;
    /** @type {JoinedEvent} */
    const ev = { room: name, last_id: last, resumed };
    this.#emit("joined", ev);
    for (const w of r.waiters.splice(0)) w.resolve(ev);
    this.#pump();
  }

  /**
   * @param {string} name
   * @param {RoomState} r
   * @param {TollgateError} err
   */
  #roomFailed(name, r, err) {
    if (err.code === "disconnected" || err.code === "timeout") {
      // The next socket tries again; a timeout means the socket is unwell.
      if (err.code === "timeout" && this.#ws) this.#drop(this.#ws, 1006, "timeout");
      return;
    }
    if (this.#rooms.get(name) === r) this.#rooms.delete(name);
    err.room = name;
    this.#emit("error", err);
    for (const w of r.waiters.splice(0)) w.reject(err);
    this.#rejectPublishes(name, err);
  }

  /**
   * @param {RoomState} r
   * @param {Message} m
   */
  #deliver(r, m) {
    if (typeof m.id !== "number" || (r.lastId !== null && m.id <= r.lastId)) return; // seen already
    r.lastId = m.id;
    this.#emit("message", m);
  }

  /** @param {Message} m */
  #onMessage(m) {
    const r = this.#rooms.get(m.room);
    if (!r || r.lastId === null) return; // not (yet) ours
    if (r.resuming) {
      r.buffer.push(m);
      return;
    }
    this.#deliver(r, m);
  }

  /**
   * leave leaves a room; it is no longer joined after a reconnect. Its
   * unacknowledged publishes are rejected with "not_joined".
   * @param {string} room
   * @returns {Promise<void>}
   */
  async leave(room) {
    const r = this.#rooms.get(room);
    this.#rooms.delete(room);
    const e = new TollgateError("not_joined", "The room was left.", { room });
    this.#rejectPublishes(room, e);
    if (r) for (const w of r.waiters.splice(0)) w.reject(e);
    if (!this.#welcomed) return;
    await this.#request({ type: "leave", room }, "left");
    this.#emit("left", { room });
  }

  /**
   * history fetches stored messages of a joined room with ids above since,
   * oldest first (at most limit, ≤ 500). They are returned, not emitted.
   * @param {string} room
   * @param {{since?: number, limit?: number}} [options]
   * @returns {Promise<Message[]>}
   */
  async history(room, options = {}) {
    const f = { type: "history", room, since: options.since ?? 0, limit: Math.min(options.limit ?? 100, MAX_HISTORY) };
    const h = await this.#request(f, "history");
    return Array.isArray(h.messages) ? h.messages : [];
  }

  // ---- publishing ---------------------------------------------------------

  /**
   * publish sends a message and resolves with its id once the server has
   * acknowledged it. It survives reconnects: a publish that was not
   * acknowledged is sent again, with the same client_id, until it is (the
   * server stores it once). While rate limited it waits retry_after seconds
   * (reporting an "error" event). It rejects when the server refuses it for
   * good (forbidden, not_joined, invalid_request, too_long) or the client
   * stops.
   * @param {string} room
   * @param {string} text
   * @param {{clientId?: string}} [options] clientId: your own idempotency key (≤ 128 bytes).
   * @returns {Promise<{id: number, room: string, clientId: string}>}
   */
  publish(room, text, options = {}) {
    if (this.#stopped && this.#state === "closed") {
      return Promise.reject(new TollgateError("closed", "The client is closed."));
    }
    const clientId = options.clientId ?? randomId();
    if (this.#pending.has(clientId)) return Promise.reject(new TollgateError("invalid_request", "clientId is in use."));
    return new Promise((resolve, reject) => {
      this.#pending.set(clientId, { clientId, room, text, inFlight: false, attempts: 0, timer: undefined, resolve, reject });
      this.#pump();
    });
  }

  /** The publishes waiting for an ack, oldest first. */
  get pending() {
    return [...this.#pending.values()].map((p) => ({ clientId: p.clientId, room: p.room, text: p.text, attempts: p.attempts }));
  }

  /** pump sends waiting publishes, up to maxInFlight, in publish order. */
  #pump() {
    if (!this.#welcomed) return;
    const now = Date.now();
    if (now < this.#gateUntil) {
      clearTimeout(this.#gateTimer);
      this.#gateTimer = setTimeout(() => this.#pump(), this.#gateUntil - now);
      return;
    }
    let inFlight = 0;
    for (const p of this.#pending.values()) if (p.inFlight) inFlight++;
    for (const p of this.#pending.values()) {
      if (inFlight >= this.#opts.maxInFlight) break;
      if (p.inFlight) continue;
      const r = this.#rooms.get(p.room);
      // A room being joined again takes its publishes after the resume;
      // keep the order: nothing after it goes first.
      if (r && !r.ready) break;
      if (!this.#send({ type: "publish", room: p.room, text: p.text, client_id: p.clientId })) return;
      p.inFlight = true;
      p.attempts++;
      inFlight++;
      p.timer = setTimeout(() => {
        p.inFlight = false;
        this.#pump();
      }, this.#opts.ackTimeout);
    }
  }

  /** @param {any} f */
  #onAck(f) {
    const p = this.#pending.get(f.client_id);
    if (!p) return; // an answer to a resend that was acknowledged already
    clearTimeout(p.timer);
    this.#pending.delete(p.clientId);
    p.resolve({ id: f.id, room: f.room ?? p.room, clientId: p.clientId });
    this.#pump();
  }

  /**
   * @param {string} room
   * @param {TollgateError} err
   */
  #rejectPublishes(room, err) {
    for (const p of [...this.#pending.values()]) {
      if (p.room !== room) continue;
      clearTimeout(p.timer);
      this.#pending.delete(p.clientId);
      p.reject(err);
    }
  }

  /** @param {any} f */
  #onError(f) {
    const ref = typeof f.ref === "string" ? f.ref : undefined;
    const p = ref ? this.#pending.get(ref) : undefined;
    const w = ref ? this.#waiters.find((x) => x.ref === ref) : undefined;
    const err = new TollgateError(String(f.code), String(f.message ?? f.code), {
      retryAfter: typeof f.retry_after === "number" ? f.retry_after : undefined,
      room: p?.room ?? w?.room,
      clientId: p ? p.clientId : undefined,
    });
    if (p) {
      clearTimeout(p.timer);
      p.inFlight = false;
      if (PERMANENT_PUBLISH_CODES.has(err.code)) {
        this.#pending.delete(p.clientId);
        p.reject(err);
      } else {
        // rate_limited (and anything transient): wait, then send again.
        const wait = (err.retryAfter ?? 1) * 1000;
        this.#gateUntil = Math.max(this.#gateUntil, Date.now() + wait);
      }
      this.#emit("error", err);
      this.#pump();
      return;
    }
    if (w) {
      this.#waiters = this.#waiters.filter((x) => x !== w);
      clearTimeout(w.timer);
      w.reject(err);
      return;
    }
    this.#emit("error", err);
  }

  // ---- token renewal ------------------------------------------------------

  /**
   * token_expiring: renew the access token and send it in a `refresh` frame
   * before the socket's credential expires. Renewals of one socket are at
   * least minRenewInterval apart (a token shorter-lived than the warning
   * would otherwise renew in a loop) and happen at the latest 5 s before expiry.
   * @param {any} f
   */
  #onExpiring(f) {
    if (this.#mode === "anonymous") return;
    const exp = Date.parse(f.expires_at);
    const now = Date.now();
    let delay = Math.max(0, this.#lastRenewAt + this.#opts.minRenewInterval - now);
    if (Number.isFinite(exp)) delay = Math.min(delay, Math.max(0, exp - now - 5000));
    const ws = this.#ws;
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(async () => {
      if (this.#ws !== ws) return;
      let token;
      try {
        token = await this.#renew();
      } catch (err) {
        this.#emit("error", asError(err));
        return; // the socket closes at expiry; the reconnect tries again
      }
      if (!token) {
        // Nothing to renew with: at expiry the socket closes 1008
        // token_expired and the client reconnects with a fresh ticket,
        // or stops if the login is gone.
        return;
      }
      if (this.#ws !== ws) return;
      this.#request({ type: "refresh", token }, "refreshed").catch((err) => {
        if (err.code !== "disconnected") this.#emit("error", err);
      });
    }, delay);
  }
}

/**
 * asError turns anything thrown (by fetch, or by an app's token or ticket
 * callback) into a TollgateError.
 * @param {unknown} err
 * @returns {TollgateError}
 */
function asError(err) {
  if (err instanceof TollgateError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new TollgateError("failed", msg, { cause: err });
}

/** @param {string} reason */
function closeMessage(reason) {
  switch (reason) {
    case "session_revoked":
      return "You were logged out (the session was revoked).";
    case "user_disabled":
      return "This account is disabled.";
    case "blocked":
      return "You are blocked for a while.";
    case "origin_not_allowed":
      return "This page's origin may not connect.";
    case "unauthenticated":
      return "Not logged in.";
    case "token_expired":
      return "The login expired.";
    case "shutting_down":
      return "The server is restarting.";
    case "heartbeat_timeout":
      return "The connection stopped answering.";
    default:
      return "The connection was lost.";
  }
}
