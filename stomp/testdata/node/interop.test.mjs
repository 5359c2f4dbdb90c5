// Interoperability of tollgate's STOMP endpoint with @stomp/stompjs on
// Node 20 (the `ws` package stands in for the browser's WebSocket).
//
// Run by the Go test TestNodeStompJS, which starts two servers and passes
// their base URLs: TOLLGATE_URL (heart-beat 200 ms) and TOLLGATE_SECURE_URL
// (--stomp-send-token=required). Every test registers its own users through
// the HTTP API, asks for a one-time ticket, puts the ticket in the URL and
// the JWT in connectHeaders, as a browser would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const BASE = process.env.TOLLGATE_URL;
const SECURE = process.env.TOLLGATE_SECURE_URL;
const PASS = 'correct horse battery';
const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
let seq = 0;

async function post(base, path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(base + path, {
    method: 'POST',
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok && res.status !== 409) {
    throw new Error(`${path}: ${res.status} ${json.error && json.error.code}`);
  }
  return json;
}

// user registers a fresh user on base and returns its access JWT.
async function user(base, prefix) {
  const name = `${prefix}${process.pid}x${seq++}`;
  await post(base, '/api/auth/register', { username: name, password: PASS });
  const login = await post(base, '/api/auth/login', { username: name, password: PASS });
  return { name, token: login.access_token };
}

async function ticketURL(base, token) {
  const { ticket } = await post(base, '/api/auth/ws-ticket', null, token);
  return `${base.replace(/^http/, 'ws')}/ws?ticket=${encodeURIComponent(ticket)}`;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// connect activates a stompjs client and resolves with it and its CONNECTED
// frame; it rejects on an ERROR frame or a closed socket.
function connect(url, connectHeaders, options = {}) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, SUBPROTOCOLS),
    connectHeaders,
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
    ...options,
  });
  const done = new Promise((resolve, reject) => {
    client.onConnect = (frame) => resolve({ client, frame });
    client.onStompError = (frame) => {
      reject(Object.assign(new Error('ERROR frame'), { frame }));
    };
    client.onWebSocketClose = (ev) => {
      if (options.onWebSocketClose) options.onWebSocketClose(ev);
      reject(Object.assign(new Error('socket closed'), { code: ev.code }));
      client.deactivate(); // no reconnect, no timers left behind
    };
  });
  client.activate();
  return withTimeout(done, 5000, 'CONNECT');
}

// queue collects the messages of one subscription.
function queue() {
  const items = [];
  const waiters = [];
  return {
    push(m) {
      const w = waiters.shift();
      if (w) w(m);
      else items.push(m);
    },
    next(what = 'MESSAGE') {
      if (items.length) return Promise.resolve(items.shift());
      return withTimeout(new Promise((resolve) => waiters.push(resolve)), 5000, what);
    },
  };
}

function receipt(client, id) {
  return withTimeout(new Promise((resolve) => client.watchForReceipt(id, resolve)), 5000, `receipt ${id}`);
}

// jsonClient opens a tollgate.v1 socket with a Bearer header.
async function jsonClient(base, token) {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, 'tollgate.v1', {
    headers: { Authorization: `Bearer ${token}` },
  });
  const frames = queue();
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 5000, 'JSON open');
  const expect = async (type) => {
    const f = await frames.next(type);
    assert.equal(f.type, type, JSON.stringify(f));
    return f;
  };
  await expect('welcome');
  return { ws, expect, send: (v) => ws.send(JSON.stringify(v)) };
}

test('ticket in the URL and JWT in connectHeaders', async () => {
  const u = await user(BASE, 'ann');
  const { client, frame } = await connect(await ticketURL(BASE, u.token), {
    Authorization: `Bearer ${u.token}`,
  });
  assert.equal(frame.headers.version, '1.2');
  assert.equal(frame.headers['user-name'], u.name);
  await client.deactivate();
});

test('a CONNECT JWT of another user gets ERROR and the socket closes', async () => {
  const a = await user(BASE, 'bob');
  const b = await user(BASE, 'cyd');
  let closeCode;
  await assert.rejects(
    connect(await ticketURL(BASE, a.token), { Authorization: `Bearer ${b.token}` }, {
      onWebSocketClose: (ev) => { closeCode = ev.code; },
    }),
    (err) => {
      assert.equal(err.frame && err.frame.headers.code, 'unauthenticated');
      assert.ok(!err.frame.body.includes(b.token));
      return true;
    },
  );
  await withTimeout((async () => { while (closeCode === undefined) await new Promise((r) => setTimeout(r, 10)); })(), 5000, 'close');
  assert.equal(closeCode, 1008);
});

test('STOMP and JSON clients chat in the same room, with receipts', async () => {
  const s = await user(BASE, 'dee');
  const j = await user(BASE, 'eve');
  const room = `room${process.pid}`;
  const { client } = await connect(await ticketURL(BASE, s.token), { Authorization: `Bearer ${s.token}` });
  const got = queue();
  client.subscribe(`/topic/${room}`, (m) => got.push(m), { receipt: 'sub-r' });
  await receipt(client, 'sub-r');
  const json = await jsonClient(BASE, j.token);
  json.send({ type: 'join', room });
  await json.expect('joined');

  const r = receipt(client, 'send-r');
  client.publish({ destination: `/app/${room}`, body: 'hello from stompjs', headers: { receipt: 'send-r' } });
  const rf = await r;
  const m1 = await got.next();
  assert.equal(m1.body, 'hello from stompjs');
  assert.equal(rf.headers['message-id'], m1.headers['message-id']);
  const jm = await json.expect('message');
  assert.equal(jm.text, 'hello from stompjs');
  assert.equal(jm.from.name, s.name);
  assert.equal(String(jm.id), m1.headers['message-id']);

  json.send({ type: 'publish', room, text: 'hello from json' });
  const m2 = await got.next();
  assert.equal(m2.body, 'hello from json');
  assert.equal(m2.headers['sender-name'], j.name);
  assert.equal(m2.headers.destination, `/topic/${room}`);
  assert.equal(Number(m2.headers['message-id']), Number(m1.headers['message-id']) + 1);
  json.ws.close();
  await client.deactivate();
});

test('since-id replays what was missed, then live, without a gap', async () => {
  const u = await user(BASE, 'fay');
  const room = `replay${process.pid}`;
  const { client: pub } = await connect(await ticketURL(BASE, u.token), {});
  const own = queue();
  pub.subscribe(`/topic/${room}`, (m) => own.push(m));
  for (let i = 1; i <= 8; i++) {
    pub.publish({ destination: `/topic/${room}`, body: `m${i}` });
    await own.next();
  }
  const { client } = await connect(await ticketURL(BASE, u.token), {});
  const got = queue();
  client.subscribe(`/topic/${room}`, (m) => got.push(m), { 'since-id': '3' });
  for (let want = 4; want <= 8; want++) {
    const m = await got.next();
    assert.equal(m.headers['message-id'], String(want));
    assert.equal(m.body, `m${want}`);
  }
  pub.publish({ destination: `/topic/${room}`, body: 'm9' });
  assert.equal((await got.next()).headers['message-id'], '9');
  await client.deactivate();
  await pub.deactivate();
});

test('heart-beats keep an idle connection alive', async () => {
  const u = await user(BASE, 'gus');
  const { client, frame } = await connect(await ticketURL(BASE, u.token), {}, {
    heartbeatIncoming: 200,
    heartbeatOutgoing: 200,
  });
  assert.equal(frame.headers['heart-beat'], '200,200');
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(client.connected);
  const r = receipt(client, 'idle');
  client.publish({ destination: '/topic/idle', body: 'still here', headers: { receipt: 'idle' } });
  await r; // not_joined arrives on /user/queue/errors; the receipt still comes
  await client.deactivate();
});

test('a silent peer is cut with ERROR', async () => {
  const u = await user(BASE, 'hal');
  const ws = new WebSocket(await ticketURL(BASE, u.token), SUBPROTOCOLS);
  const messages = [];
  ws.on('message', (d) => messages.push(d.toString()));
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send('CONNECT\naccept-version:1.2\nheart-beat:200,0\n\n\0');
  const started = Date.now();
  const code = await withTimeout(new Promise((resolve) => ws.once('close', resolve)), 5000, 'cut');
  assert.ok(messages[0].startsWith('CONNECTED\n'), messages[0]);
  assert.ok(messages.some((m) => m.startsWith('ERROR\n') && m.includes('Heart-beat')), messages.join('|'));
  assert.equal(code, 1008);
  assert.ok(Date.now() - started < 3000);
});

test('--stomp-send-token=required: SEND without a token gets ERROR', async () => {
  const u = await user(SECURE, 'ida');
  const { client } = await connect(await ticketURL(SECURE, u.token), { Authorization: `Bearer ${u.token}` });
  const got = queue();
  client.subscribe('/topic/secure', (m) => got.push(m));
  const r = receipt(client, 'with-token');
  client.publish({
    destination: '/topic/secure',
    body: 'signed',
    headers: { Authorization: `Bearer ${u.token}`, receipt: 'with-token' },
  });
  await r;
  assert.equal((await got.next()).body, 'signed');
  const error = withTimeout(new Promise((resolve) => { client.onStompError = resolve; }), 5000, 'ERROR');
  client.publish({ destination: '/topic/secure', body: 'unsigned' });
  const e = await error;
  assert.equal(e.headers.code, 'unauthenticated');
  await client.deactivate();
});
