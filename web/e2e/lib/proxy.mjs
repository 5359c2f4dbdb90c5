// A TCP proxy between an SDK client and the server, so that a test can cut
// or silence the client's connections without touching the server.
import net from "node:net";

export class Proxy {
  /** @param {() => {host: string, port: number}} target where to connect, asked per connection */
  constructor(target) {
    this.target = target;
    /** @type {Set<{client: net.Socket, upstream: net.Socket}>} */
    this.pairs = new Set();
    this.held = false;
    this.accepted = 0;
    /** @type {string[]} the head (request line and headers) of each connection's first request */
    this.heads = [];
    this.server = net.createServer((client) => this.#accept(client));
  }

  /** @param {net.Socket} client */
  #accept(client) {
    this.accepted++;
    if (this.held) {
      client.destroy();
      return;
    }
    client.once("data", (b) => this.heads.push(b.toString("latin1").split("\r\n\r\n")[0]));
    const t = this.target();
    const upstream = net.connect(t.port, t.host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => resolve(undefined)));
    const a = /** @type {net.AddressInfo} */ (this.server.address());
    this.url = `http://127.0.0.1:${a.port}`;
    return this;
  }

  /** Stops forwarding what the server sends on the open connections (acks get lost). */
  pauseDownstream() {
    for (const { client, upstream } of this.pairs) {
      upstream.unpipe(client);
      upstream.pause();
    }
  }

  /** Stops forwarding both ways on the open connections, without closing them. */
  blackhole() {
    for (const { client, upstream } of this.pairs) {
      upstream.unpipe(client);
      client.unpipe(upstream);
      upstream.pause();
      client.pause();
    }
  }

  /** Cuts every open connection (the client sees 1006). */
  killAll() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** @param {boolean} on while on, new connections are refused */
  hold(on) {
    this.held = on;
  }

  async close() {
    this.killAll();
    await new Promise((resolve) => this.server.close(() => resolve(undefined)));
  }
}
