// A real tollgate server for the tests: the binary that TestJavaScript built
// (TOLLGATE_BIN), run as a child process on 127.0.0.1 with a fresh data dir.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LISTENING = /msg="tollgate listening" addr=(\S+)/;

/** The tollgate binary under test. */
export function binary() {
  const bin = process.env.TOLLGATE_BIN;
  if (!bin) throw new Error("TOLLGATE_BIN is not set: run these tests through `go test ./web/` (TestJavaScript)");
  return bin;
}

/**
 * Server is one tollgate process; restart() runs a new one on the same
 * address and data dir (the signing key, accounts and history survive).
 */
export class Server {
  /** @param {{flags?: string[], dataDir?: string}} [o] */
  constructor(o = {}) {
    this.flags = o.flags ?? [];
    this.ownDir = !o.dataDir;
    this.dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), "tollgate-web-"));
    this.addr = "127.0.0.1:0";
    this.proc = null;
    this.log = "";
  }

  /** http://host:port */
  get url() {
    return "http://" + this.addr;
  }

  /** Starts the server and resolves once it listens. */
  async start() {
    const args = ["serve", "--addr", this.addr, "--data-dir", this.dataDir, "--log-level", "debug", ...this.flags];
    const proc = spawn(binary(), args, { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    this.exited = exited;
    await new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("tollgate did not start within 30s:\n" + buf)), 30000);
      proc.stderr.setEncoding("utf8");
      proc.stderr.on("data", (chunk) => {
        this.log += chunk;
        buf += chunk;
        const m = LISTENING.exec(buf);
        if (m) {
          clearTimeout(timer);
          this.addr = m[1];
          buf = "";
          resolve(undefined);
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`tollgate exited (${code ?? signal}) before listening:\n${this.log}`));
      });
    });
    return this;
  }

  /**
   * Stops the server: SIGTERM is a graceful shutdown (sockets closed 1001),
   * SIGKILL a crash (clients see 1006).
   * @param {"SIGTERM"|"SIGKILL"} [signal]
   */
  async stop(signal = "SIGTERM") {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const { code, signal: sig } = await this.exited;
    if (signal === "SIGTERM" && code !== 0) throw new Error(`tollgate exited ${code ?? sig} on SIGTERM:\n${this.log}`);
  }

  /** Stops (gracefully unless told) and starts again on the same address. */
  async restart(signal = "SIGTERM") {
    await this.stop(signal);
    await this.start();
  }

  /** Stops the server and removes its data dir. */
  async close() {
    await this.stop("SIGKILL").catch(() => {});
    if (this.ownDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Flags that keep the abuse limits out of the way of tests that are not about them. */
export const RELAXED = [
  "--login-rate", "1000",
  "--handshake-rate", "1000",
  "--failed-auth-block", "1000",
  "--publish-rate", "1000",
];

/**
 * api calls the REST API as a plain client (no cookies, no Origin).
 * @param {string} base
 * @param {string} method
 * @param {string} path
 * @param {{body?: any, token?: string}} [o]
 */
export async function api(base, method, path, o = {}) {
  /** @type {Record<string,string>} */
  const headers = {};
  if (o.body !== undefined) headers["Content-Type"] = "application/json";
  if (o.token) headers.Authorization = "Bearer " + o.token;
  const res = await fetch(base + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const body = await res.json().catch(() => null);
  return { status: res.status, body, headers: res.headers };
}

/**
 * account registers name and logs it in; it returns the tokens.
 * @param {string} base
 * @param {string} name
 */
export async function account(base, name) {
  const password = "pw-" + name + "-0123456789";
  const r = await api(base, "POST", "/api/auth/register", { body: { username: name, password } });
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return login(base, name, password);
}

/**
 * @param {string} base
 * @param {string} name
 * @param {string} password
 */
export async function login(base, name, password) {
  const r = await api(base, "POST", "/api/auth/login", { body: { username: name, password } });
  if (r.status !== 200) throw new Error(`login ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return { name, password, access: r.body.access_token, refresh: r.body.refresh_token, user: r.body.user };
}

/**
 * waitFor polls cond until it is truthy or the time is up.
 * @template T
 * @param {() => T | Promise<T>} cond
 * @param {string} what
 * @param {number} [ms]
 * @returns {Promise<T>}
 */
export async function waitFor(cond, what, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 25));
  }
}
