// Realtime chat over WebSocket (docs/REALTIME.md) with a real WebSocket client (`ws`) against the
// built binary: how a socket authenticates and how it is refused, every message type, answers that
// stream as the provider sends them and resume on another socket (or over SSE), the limits and their
// close codes, token expiry, heartbeats and idle sockets, malformed frames, a slow reader and a
// graceful shutdown with an answer in flight.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { startParley, startMock, mockProviderConfig, providerKey, sleep, statusOf, BACKEND, collectedLogs } from './harness.mjs';
import { api, expectStatus, signUp, sseRequest, expectNoSecretsInLogs, refusedUpgrade } from '../journeys/lib.mjs';

const JWT_SECRET = `realtime-test-secret-${randomBytes(16).toString('hex')}`;
const SLOW_CHUNK_MS = 100;

const words = (n) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(' ');
const reply = (content) => `mock reply: ${content}`;
const wsUrl = (httpUrl, route) => `${httpUrl.replace(/^http/, 'ws')}${route}`;

// An HS256 access token as parley mints them, signed with the instance's secret.
function mintToken(sub, { ttl = 600, exp } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = part({ alg: 'HS256', typ: 'JWT' });
  const expires = exp ?? now + ttl;
  const body = part({ sub, iss: 'parley', aud: 'parley', iat: Math.min(now, expires - 1), exp: expires, jti: randomBytes(12).toString('hex') });
  const sig = createHmac('sha256', JWT_SECRET).update(`${head}.${body}`).digest('base64url');
  return { token: `${head}.${body}.${sig}`, exp: expires };
}

const tokenExp = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).exp;
const isoOf = (seconds) => new Date(seconds * 1000).toISOString();

// Every socket opened here, so that none outlives the file.
const peers = new Set();

// One WebSocket client: every frame it received (parsed, with a non-enumerable arrival time `at`),
// the pings it saw, and how it closed.
class Peer {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.pings = 0;
    this.closeInfo = null;
    this.upgrade = null;
    this.seq = 0;
    peers.add(this);
    ws.on('message', (data, isBinary) => {
      const f = isBinary ? { binary: true } : JSON.parse(data.toString('utf8'));
      Object.defineProperty(f, 'at', { value: Date.now(), enumerable: false });
      this.frames.push(f);
    });
    ws.on('ping', () => { this.pings += 1; });
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now(), after: this.frames.length };
        peers.delete(this);
        resolve(this.closeInfo);
      });
    });
  }

  // Resolves once the upgrade succeeded; rejects when it is refused.
  static open(url, { protocols, ...options } = {}) {
    const ws = new WebSocket(url, protocols, options);
    const peer = new Peer(ws);
    return new Promise((resolve, reject) => {
      ws.once('upgrade', (res) => { peer.upgrade = res; });
      ws.once('open', () => resolve(peer));
      ws.once('unexpected-response', (req, res) => {
        req.destroy();
        peers.delete(peer);
        reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { status: res.statusCode }));
      });
      ws.once('error', (e) => { peers.delete(peer); reject(e); });
    });
  }

  get open() { return this.ws.readyState === WebSocket.OPEN; }

  send(message) {
    this.ws.send(typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message));
  }

  // The first frame (from index `from`) for which `pred` holds.
  async waitFor(pred, what = 'a frame', { from = 0, ms = 20000 } = {}) {
    const until = Date.now() + ms;
    for (;;) {
      const f = this.frames.slice(from).find(pred);
      if (f) return f;
      if (this.closeInfo) throw new Error(`closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}; last frames ${JSON.stringify(this.frames.slice(-4))}`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last frames ${JSON.stringify(this.frames.slice(-4))}`);
      await sleep(10);
    }
  }

  // Sends `type` with a fresh id and resolves with the first frame answering it.
  async request(type, data, id = `${type}-${++this.seq}`) {
    const from = this.frames.length;
    this.send(data === undefined ? { type, id } : { type, id, data });
    return this.waitFor((f) => f.id === id, `the answer to ${type} ${id}`, { from });
  }

  // send_message, then everything answering it up to message_complete (or an error).
  async ask(conversationId, content, { id = `ask-${++this.seq}`, model, extra = {} } = {}) {
    const from = this.frames.length;
    this.send({ type: 'send_message', id, data: { conversation_id: conversationId, content, ...(model ? { model } : {}), ...extra } });
    const end = await this.waitFor((f) => f.id === id && (f.type === 'message_complete' || f.type === 'error'), `the end of answer ${id}`, { from });
    const frames = this.frames.slice(from).filter((f) => f.id === id);
    return {
      frames,
      saved: frames.find((f) => f.type === 'message_saved'),
      tokens: frames.filter((f) => f.type === 'token'),
      end,
    };
  }

  async close() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else if (this.ws.readyState === WebSocket.CLOSED) return this.closeInfo;
    const timer = setTimeout(() => this.ws.terminate(), 3000);
    const info = await this.closed;
    clearTimeout(timer);
    return info;
  }
}


// One raw HTTP request on a fresh TCP connection; resolves with the status and the JSON body.
function rawHttp(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    socket.on('connect', () => socket.write(text));
    socket.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const str = data.toString('latin1');
      const i = str.indexOf('\r\n\r\n');
      if (i < 0) return;
      const len = Number(str.match(/content-length: *(\d+)/i)?.[1] ?? 0);
      if (data.length < i + 4 + len) return;
      socket.destroy();
      const bodyText = str.slice(i + 4, i + 4 + len);
      resolve({ status: statusOf(str), head: str.slice(0, i), text: bodyText, body: JSON.parse(bodyText) });
    });
    socket.on('error', reject);
  });
}

async function waitFor(fn, what, ms = 15000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// The error frame's envelope fields, as REST renders them.
function expectErrorFrame(frame, code, { id, param } = {}) {
  assert.equal(frame.type, 'error', `expected an error frame, got ${JSON.stringify(frame)}`);
  assert.equal(frame.data.code, code, JSON.stringify(frame));
  assert.equal(typeof frame.data.message, 'string');
  assert.equal(typeof frame.data.type, 'string');
  assert.ok('param' in frame.data);
  assert.equal(typeof frame.data.request_id, 'string');
  if (id === undefined) assert.equal('id' in frame, false, `an error without a readable id carries none: ${JSON.stringify(frame)}`);
  else assert.equal(frame.id, id);
  if (param !== undefined) assert.equal(frame.data.param, param);
  return frame.data;
}

// An answer's frames are numbered 1..N then N+1, and its text is the tokens in order.
function expectWholeAnswer(answer, text) {
  assert.equal(answer.end.type, 'message_complete', JSON.stringify(answer.end));
  assert.deepEqual(answer.tokens.map((t) => t.data.event), answer.tokens.map((_, i) => i + 1));
  assert.equal(answer.end.data.event, answer.tokens.length + 1);
  assert.equal(answer.end.data.done, true);
  assert.equal(answer.end.data.status, 'complete');
  assert.equal(answer.tokens.map((t) => t.data.token).join(''), answer.end.data.full_text);
  if (text !== undefined) assert.equal(answer.end.data.full_text, text);
  for (const t of answer.tokens) {
    assert.equal(t.data.message_id, answer.end.data.message_id);
    assert.equal(t.data.conversation_id, answer.end.data.conversation_id);
  }
}

// The config: provider "mock" (models gpt-*, mock-*) answers at once, provider "slow" (slow-*) one
// chunk every SLOW_CHUNK_MS.
let fastMock;
let slowMock;
let configFile;
const systemKey = providerKey('system');
const instances = {};

async function instance(env) {
  return startParley({
    args: ['--config', configFile],
    env: { RT_SYSTEM_KEY: systemKey, PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_JWT_SECRET: JWT_SECRET, ...env },
  });
}

before(async () => {
  [fastMock, slowMock] = await Promise.all([startMock([]), startMock(['--chunk-delay-ms', String(SLOW_CHUNK_MS)])]);
  configFile = mockProviderConfig(fastMock.url, {
    keyEnv: 'RT_SYSTEM_KEY',
    extraConfig: `
[[providers]]
name = "slow"
base_url = "${slowMock.url}/v1"
credentials = "system"
api_key_env = "RT_SYSTEM_KEY"
models = ["slow-*"]
[providers.timeouts]
first_byte_ms = 5000
total_ms = 60000
`,
  });
  const started = await Promise.allSettled([
    // The defaults, but a small send queue and finished answers that leave memory at once (resume
    // reads the store), and one allowed cross-site origin.
    instance({ PARLEY_REALTIME_SEND_QUEUE_BYTES: '4096', PARLEY_CONVERSATIONS_STREAM_RETENTION_S: '0', PARLEY_HTTP_CORS_ORIGINS: 'https://app.example' }),
    instance({
      PARLEY_REALTIME_ANONYMOUS: 'true',
      PARLEY_REALTIME_MAX_MESSAGE_BYTES: '1024',
      PARLEY_REALTIME_MESSAGES_PER_MINUTE: '60',
      PARLEY_REALTIME_ANONYMOUS_MESSAGES_PER_MINUTE: '120',
      PARLEY_REALTIME_MAX_GENERATIONS: '1',
      PARLEY_REALTIME_CONNECTIONS_PER_USER: '3',
      PARLEY_REALTIME_ANONYMOUS_PER_ADDRESS: '2',
      PARLEY_REALTIME_ANONYMOUS_MAX_MESSAGES: '6',
    }),
    instance({ PARLEY_REALTIME_HEARTBEAT_MS: '300', PARLEY_REALTIME_IDLE_TIMEOUT_MS: '1500', PARLEY_REALTIME_MAX_CONNECTIONS: '3' }),
    instance({ PARLEY_HTTP_DRAIN_TIMEOUT_MS: '20000' }),
  ]);
  const names = ['main', 'limits', 'timers', 'shutdown'];
  started.forEach((r, i) => { if (r.status === 'fulfilled') instances[names[i]] = r.value; });
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
});

after(async () => {
  for (const p of [...peers]) p.ws.terminate();
  await Promise.all(Object.values(instances).map((p) => p.stop()));
  await Promise.all([fastMock?.stop(), slowMock?.stop()]);
});

describe(`realtime chat (${BACKEND})`, () => {
  let url;
  let main;
  let root;
  let alice;
  let bob;
  const route = () => `/ws/chat/${alice.id}`;
  const connect = (who = alice, options = {}) => Peer.open(wsUrl(url, `/ws/chat/${who.id}?token=${who.token}`), options);
  const createConversation = async (peer, data = {}) => {
    const started = await peer.request('start_conversation', data);
    assert.equal(started.type, 'conversation_started', JSON.stringify(started));
    return started.data.conversation_id;
  };

  before(async () => {
    main = instances.main;
    url = main.url;
    root = await signUp(url, 'root');  // the first user is the admin, who may act on anyone's conversations
    alice = await signUp(url, 'alice');
    bob = await signUp(url, 'bob');
  });

  test('the token by query, subprotocol or header; refusals are HTTP answers with the envelope; the log has the route only', async () => {
    const base = wsUrl(url, route());
    const usedTokens = [alice.token, bob.token];

    // ?token=: the first frame is `connected`.
    const byQuery = await Peer.open(`${base}?token=${alice.token}`);
    const hello = await byQuery.waitFor((f) => f.type === 'connected', 'connected');
    assert.equal(byQuery.frames[0], hello, 'connected is the first frame');
    assert.equal('id' in hello, false);
    assert.deepEqual(Object.keys(hello.data).sort(), ['anonymous', 'connection_id', 'expires_at', 'limits', 'user_id']);
    assert.equal(hello.data.user_id, alice.id);
    assert.equal(hello.data.anonymous, false);
    assert.equal(hello.data.expires_at, isoOf(tokenExp(alice.token)));
    assert.deepEqual(hello.data.limits, { messages_per_minute: 120, max_generations: 2, max_message_bytes: 65536 });
    assert.equal(hello.data.connection_id, byQuery.upgrade.headers['x-request-id']);
    assert.equal(byQuery.ws.protocol, '');

    // The subprotocol: parley answers parley.chat, never the token.
    const bySubprotocol = await Peer.open(base, { protocols: ['parley.chat', `bearer.${alice.token}`] });
    assert.equal(bySubprotocol.ws.protocol, 'parley.chat');
    assert.equal(bySubprotocol.upgrade.headers['sec-websocket-protocol'], 'parley.chat');
    assert.equal((await bySubprotocol.waitFor((f) => f.type === 'connected')).data.user_id, alice.id);
    // parley.chat beside ?token= is answered too.
    const both = await Peer.open(`${base}?token=${alice.token}`, { protocols: ['parley.chat'] });
    assert.equal(both.ws.protocol, 'parley.chat');

    // The Authorization header, which comes first: a bad ?token= beside it does not matter, and a
    // bad header is not rescued by a good ?token=.
    const byHeader = await Peer.open(`${base}?token=not-a-token`, { headers: { Authorization: `Bearer ${alice.token}` } });
    assert.equal((await byHeader.waitFor((f) => f.type === 'connected')).data.user_id, alice.id);
    expectStatus(await refusedUpgrade(`${base}?token=${alice.token}`, { headers: { Authorization: 'Bearer not-a-token' } }), 401, 'UNAUTHORIZED');

    // A service key (X-API-Key) opens a socket with no expiry.
    const key = expectStatus(await api(url, 'POST', '/api/v1/api-keys', { token: alice.token, body: { name: 'realtime' } }), 201);
    usedTokens.push(key.key);
    const byKey = await Peer.open(base, { headers: { 'X-API-Key': key.key } });
    assert.equal((await byKey.waitFor((f) => f.type === 'connected')).data.expires_at, null);

    // Same-origin and listed origins pass; any other origin is refused before the token is looked at.
    const sameOrigin = await Peer.open(`${base}?token=${alice.token}`, { origin: `http://127.0.0.1:${main.port}` });
    const listedOrigin = await Peer.open(`${base}?token=${alice.token}`, { origin: 'https://app.example' });
    for (const p of [byQuery, bySubprotocol, both, byHeader, byKey, sameOrigin, listedOrigin]) {
      assert.equal((await p.request('ping')).type, 'pong');
    }
    await Promise.all([byQuery, bySubprotocol, both, byHeader, byKey, sameOrigin, listedOrigin].map((p) => p.close()));

    // A revoked key and a deactivated user's token open nothing.
    expectStatus(await api(url, 'DELETE', `/api/v1/api-keys/${key.id}`, { token: alice.token }), 204);
    expectStatus(await refusedUpgrade(base, { headers: { 'X-API-Key': key.key } }), 401, 'UNAUTHORIZED');
    expectStatus(await refusedUpgrade(`${base}?token=${key.key}`), 401, 'UNAUTHORIZED');
    const dora = await signUp(url, 'dora');
    usedTokens.push(dora.token);
    await Peer.open(wsUrl(url, `/ws/chat/${dora.id}?token=${dora.token}`)).then((p) => p.close());
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${dora.id}`, { token: root.token, body: { is_active: false } }), 200);
    expectStatus(await refusedUpgrade(wsUrl(url, `/ws/chat/${dora.id}?token=${dora.token}`)), 401, 'UNAUTHORIZED');

    const expired = mintToken(alice.id, { exp: Math.floor(Date.now() / 1000) - 3600 }).token;
    const forged = mintToken(alice.id).token.replace(/.{4}$/, 'AAAA');
    usedTokens.push(expired, forged);
    expectStatus(await refusedUpgrade(base), 401, 'UNAUTHORIZED');
    expectStatus(await refusedUpgrade(`${base}?token=not-a-token`), 401, 'UNAUTHORIZED');
    expectStatus(await refusedUpgrade(`${base}?token=${forged}`), 401, 'UNAUTHORIZED');
    expectStatus(await refusedUpgrade(`${base}?token=${expired}`), 401, 'UNAUTHORIZED');
    expectStatus(await refusedUpgrade(base, { protocols: ['parley.chat', `bearer.${expired}`] }), 401, 'UNAUTHORIZED');
    expectStatus(await refusedUpgrade(`${base}?token=${bob.token}`), 403, 'FORBIDDEN');
    expectStatus(await refusedUpgrade(`${base}?token=${alice.token}`, { origin: 'https://evil.example' }), 403, 'FORBIDDEN');
    expectStatus(await refusedUpgrade(`${base}?token=${alice.token}`, { origin: `http://localhost.evil.example:${main.port}` }), 403, 'FORBIDDEN');
    expectStatus(await refusedUpgrade(`${base}?token=${alice.token}`, { protocols: ['chat.v2'] }), 400, 'BAD_REQUEST');
    expectStatus(await refusedUpgrade(base, { protocols: [`bearer.${alice.token}`] }), 400, 'BAD_REQUEST');
    const oldVersion = await refusedUpgrade(`${base}?token=${alice.token}`, { protocolVersion: 8 });
    expectStatus(oldVersion, 426, 'UPGRADE_REQUIRED');
    assert.equal(oldVersion.headers.get('sec-websocket-version'), '13');
    const plain = await api(url, 'GET', `${route()}?token=${alice.token}`);
    expectStatus(plain, 426, 'UPGRADE_REQUIRED');
    assert.equal(plain.headers.get('upgrade'), 'websocket');
    const badKey = await rawHttp(main.port, `GET ${route()}?token=${alice.token} HTTP/1.1\r\nHost: 127.0.0.1:${main.port}\r\n`
      + 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n');
    expectStatus(badKey, 400, 'BAD_REQUEST');

    // The access log names the route template, with the statuses, and never a token.
    await waitFor(() => main.stderr.includes('route=/ws/chat/{user_id} status=426'), 'the access log lines');
    for (const status of [101, 400, 401, 403, 426]) {
      assert.ok(main.stderr.includes(`route=/ws/chat/{user_id} status=${status}`), `no access log line with status ${status}`);
    }
    assert.ok(!main.stderr.includes('token='), 'a query string reached the log');
    assert.ok(!main.stderr.includes(`/ws/chat/${alice.id}`), 'a path reached the log');
    expectNoSecretsInLogs(usedTokens);
  });

  test('anonymous chat is off by default', async () => {
    expectStatus(await refusedUpgrade(wsUrl(url, '/ws/chat')), 403, 'FORBIDDEN');
    expectStatus(await refusedUpgrade(wsUrl(url, `/ws/chat?token=${alice.token}`)), 403, 'FORBIDDEN');
  });

  test('every message type, each answer carrying the client\'s id', async () => {
    let peer = await connect();
    await peer.waitFor((f) => f.type === 'connected');

    // ping → pong, with a string or an integer id.
    const pong = await peer.request('ping', undefined, 7);
    assert.equal(pong.type, 'pong');
    assert.equal(pong.id, 7);
    assert.equal(new Date(pong.data.time).toISOString(), pong.data.time);
    assert.equal((await peer.request('ping', {}, 'p-1')).id, 'p-1');

    // start_conversation: the conversation as REST renders it, listed by REST.
    const started = await peer.request('start_conversation', { title: 'Over the socket', system_message: 'Be brief.', model: 'mock-1', metadata: { via: 'ws' } }, 'start-1');
    assert.equal(started.type, 'conversation_started');
    const cid = started.data.conversation_id;
    const conv = started.data.conversation;
    assert.equal(conv.id, cid);
    assert.equal(conv.user_id, alice.id);
    assert.equal(conv.title, 'Over the socket');
    assert.equal(conv.system_message, 'Be brief.');
    assert.equal(conv.model, 'mock-1');
    assert.deepEqual(conv.metadata, { via: 'ws' });
    assert.equal(conv.status, 'active');
    const listed = expectStatus(await api(url, 'GET', `/api/v1/users/${alice.id}/conversations`, { token: alice.token }), 200);
    assert.deepEqual(listed.items.find((c) => c.id === cid), conv);
    // Seed 004's user_id: the connection's own is accepted, another's is not.
    const seeded = await peer.request('start_conversation', { user_id: alice.id });
    assert.equal(seeded.type, 'conversation_started');
    assert.equal(seeded.data.conversation.title, 'New conversation');
    expectErrorFrame(await peer.request('start_conversation', { user_id: bob.id }, 's-bob'), 'FORBIDDEN', { id: 's-bob', param: 'user_id' });
    expectErrorFrame(await peer.request('start_conversation', { model: 'no-such-model' }, 's-bad'), 'VALIDATION_ERROR', { id: 's-bad' });

    // send_message → message_saved, token…, message_complete, all with the id.
    const content = 'tell me about websockets';
    const answer = await peer.ask(cid, content, { id: 'm1' });
    assert.deepEqual(answer.frames.map((f) => f.type), ['message_saved', ...answer.tokens.map(() => 'token'), 'message_complete']);
    assert.equal(answer.saved.data.conversation_id, cid);
    assert.equal(answer.saved.data.message.content, content);
    assert.equal(answer.saved.data.message.role, 'user');
    assert.equal(answer.saved.data.message.sender_id, alice.id);
    assert.equal(answer.saved.data.message.is_ai_message, false);
    expectWholeAnswer(answer, reply(content));
    assert.equal(answer.tokens.length, 6);  // "mock", " reply:", then one per word
    assert.equal(answer.end.data.message_id, answer.saved.data.answer_message_id);
    assert.equal(answer.end.data.conversation_id, cid);
    assert.equal(answer.end.data.model, 'mock-1');
    assert.deepEqual(answer.end.data.usage, { prompt_tokens: 6, completion_tokens: 6, total_tokens: 12 });
    assert.equal(typeof answer.end.data.latency_ms, 'number');
    const request = JSON.parse((await fastMock.requests()).findLast((r) => r.body.includes(content)).body);
    assert.deepEqual(request.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content }]);
    const history = expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages`, { token: alice.token }), 200);
    assert.deepEqual(history.items.map((m) => [m.id, m.role, m.content, m.status]), [
      [answer.saved.data.message.id, 'user', content, 'complete'],
      [answer.end.data.message_id, 'assistant', reply(content), 'complete'],
    ]);
    // A message's own model; the second turn carries the history.
    const second = await peer.ask(cid, 'and again', { model: 'gpt-4o-mini' });
    expectWholeAnswer(second, reply('and again'));
    assert.equal(second.end.data.model, 'gpt-4o-mini');

    // Refusals on the open socket, each with the id and the socket still open (on a socket of their
    // own: a burst of messages on one socket meets the rate limit).
    const errs = await connect();
    expectErrorFrame(await errs.request('send_message', { conversation_id: cid }, 'e1'), 'VALIDATION_ERROR', { id: 'e1', param: 'content' });
    expectErrorFrame(await errs.request('send_message', { content: 'hi' }, 'e2'), 'VALIDATION_ERROR', { id: 'e2', param: 'conversation_id' });
    expectErrorFrame(await errs.request('send_message', { conversation_id: cid, content: 'hi', model: 'nope' }, 'e3'), 'VALIDATION_ERROR', { id: 'e3' });
    const bobs = expectStatus(await api(url, 'POST', `/api/v1/users/${bob.id}/conversations`, { token: bob.token, body: {} }), 201);
    const notBobs = expectErrorFrame(await errs.request('send_message', { conversation_id: bobs.id, content: 'hi' }, 'e4'), 'NOT_FOUND', { id: 'e4' });
    assert.equal(notBobs.conversation_id, bobs.id);
    expectErrorFrame(await errs.request('send_message', { conversation_id: 'doesNotExist0000000000', content: 'hi' }, 'e5'), 'NOT_FOUND', { id: 'e5' });
    expectErrorFrame(await errs.request('end_conversation', { conversation_id: bobs.id }, 'e6'), 'NOT_FOUND', { id: 'e6' });
    expectErrorFrame(await errs.request('cancel', { message_id: 'doesNotExist0000000000' }, 'e7'), 'NOT_FOUND', { id: 'e7', param: 'message_id' });
    expectErrorFrame(await errs.request('reconnect', { conversation_id: cid, message_id: answer.saved.data.message.id }, 'e8'), 'NOT_FOUND', { id: 'e8', param: 'message_id' });
    expectErrorFrame(await errs.request('reauth', {}, 'e9'), 'VALIDATION_ERROR', { id: 'e9', param: 'token' });
    assert.ok(errs.open);
    await errs.close();
    const untouched = expectStatus(await api(url, 'GET', `/api/v1/conversations/${bobs.id}/messages`, { token: bob.token }), 200);
    assert.equal(untouched.items.length, 0);

    // end_conversation → conversation_ended; sending is then a CONFLICT; reconnect re-opens it.
    const ended = await peer.request('end_conversation', { conversation_id: cid }, 'end-1');
    assert.equal(ended.type, 'conversation_ended');
    assert.equal(ended.data.conversation_id, cid);
    assert.equal(ended.data.conversation.status, 'ended');
    assert.equal(typeof ended.data.conversation.ended_at, 'string');
    const refused = await peer.ask(cid, 'anyone there?', { id: 'after-end' });
    assert.deepEqual(refused.frames.map((f) => f.type), ['error']);
    expectErrorFrame(refused.end, 'CONFLICT', { id: 'after-end' });
    assert.equal(expectStatus(await api(url, 'GET', `/api/v1/users/${alice.id}/conversations/${cid}`, { token: alice.token }), 200).status, 'ended');
    const back = await peer.request('reconnect', { conversation_id: cid }, 'rc-1');
    assert.equal(back.type, 'reconnected');
    assert.equal(back.data.conversation_id, cid);
    assert.equal(back.data.conversation.status, 'active');
    assert.equal(back.data.message_id, null);
    assert.equal(back.data.last_event, 0);
    expectWholeAnswer(await peer.ask(cid, 'back again'), reply('back again'));

    for (const f of peer.frames.slice(1)) assert.ok('id' in f, `a frame without the id: ${JSON.stringify(f)}`);
    await peer.close();

    // cancel: the answer ends "cancelled" with the text so far, for the cancel and for the feed.
    peer = await connect();
    const slow = await createConversation(peer, { model: 'slow-1' });
    const long = words(30);
    const from = peer.frames.length;
    peer.send({ type: 'send_message', id: 'slow-m', data: { conversation_id: slow, content: long } });
    const saved = await peer.waitFor((f) => f.id === 'slow-m' && f.type === 'message_saved', 'message_saved', { from });
    const mid = saved.data.answer_message_id;
    await peer.waitFor((f) => f.id === 'slow-m' && f.type === 'token' && f.data.event === 2, 'two tokens', { from });
    const cancelled = await peer.request('cancel', { message_id: mid }, 'cancel-1');
    assert.equal(cancelled.type, 'message_complete', JSON.stringify(cancelled));
    assert.equal(cancelled.data.status, 'cancelled');
    assert.equal(cancelled.data.message_id, mid);
    assert.equal(cancelled.data.conversation_id, slow);
    assert.ok(cancelled.data.full_text.startsWith('mock reply:'), cancelled.data.full_text);
    assert.ok(cancelled.data.full_text.length < reply(long).length, 'the cancel stopped the answer');
    const feedEnd = await peer.waitFor((f) => f.id === 'slow-m' && f.type === 'message_complete', 'the feed\'s end', { from });
    assert.equal(feedEnd.data.status, 'cancelled');
    assert.equal(feedEnd.data.full_text, cancelled.data.full_text);
    const feedTokens = peer.frames.slice(from).filter((f) => f.id === 'slow-m' && f.type === 'token');
    assert.equal(feedTokens.map((t) => t.data.token).join(''), cancelled.data.full_text);
    assert.equal(feedEnd.data.event, feedTokens.length + 1);
    assert.equal(peer.frames.filter((f) => f.id === 'cancel-1').length, 1, 'the cancel gets the end only, no tokens');
    const stored = expectStatus(await api(url, 'GET', `/api/v1/conversations/${slow}/messages/${mid}`, { token: alice.token }), 200);
    assert.equal(stored.status, 'cancelled');
    assert.equal(stored.content, cancelled.data.full_text);
    // The answer is over (and, with no retention, forgotten): nothing to cancel.
    expectErrorFrame(await peer.request('cancel', { message_id: mid }, 'cancel-2'), 'NOT_FOUND', { id: 'cancel-2' });

    // reauth: a fresh token of the same user moves expires_at; another user's is refused.
    const fresh = mintToken(alice.id, { ttl: 1200 });
    const reauthed = await peer.request('reauth', { token: fresh.token }, 'ra-1');
    assert.equal(reauthed.type, 'reauthenticated');
    assert.deepEqual(reauthed.data, { expires_at: isoOf(fresh.exp) });
    expectErrorFrame(await peer.request('reauth', { token: bob.token }, 'ra-2'), 'FORBIDDEN', { id: 'ra-2' });
    expectErrorFrame(await peer.request('reauth', { token: 'not-a-token' }, 'ra-3'), 'UNAUTHORIZED', { id: 'ra-3' });
    assert.equal((await peer.request('ping')).type, 'pong');

    // Every frame after `connected` answers a message and carries its id.
    for (const f of peer.frames.slice(1)) assert.ok('id' in f, `a frame without the id: ${JSON.stringify(f)}`);
    assert.ok(peer.open);
    assert.equal((await peer.close()).code, 1000, 'the client\'s close is echoed');
  });

  test('tokens are sent as the provider sends them, not at the end', async () => {
    const peer = await connect();
    const cid = await createConversation(peer, { model: 'slow-1' });
    const from = peer.frames.length;
    const content = words(8);
    peer.send({ type: 'send_message', id: 'paced', data: { conversation_id: cid, content } });
    const second = await peer.waitFor((f) => f.id === 'paced' && f.type === 'token' && f.data.event === 2, 'the second token', { from });
    // The answer is still being generated when its first tokens arrive.
    const midway = expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages/${second.data.message_id}`, { token: alice.token }), 200);
    assert.equal(midway.status, 'generating');
    const end = await peer.waitFor((f) => f.id === 'paced' && f.type === 'message_complete', 'the end', { from });
    const tokens = peer.frames.slice(from).filter((f) => f.type === 'token');
    assert.equal(tokens.length, 10);
    assert.equal(end.data.full_text, reply(content));
    // Ten chunks a pace apart arrive spread over the answer: at least half the pace per gap on average.
    const spread = tokens.at(-1).at - tokens[0].at;
    assert.ok(spread >= (tokens.length - 1) * SLOW_CHUNK_MS * 0.5, `the tokens came in a burst (${spread} ms)`);
    assert.ok(end.at >= tokens.at(-1).at);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i].at >= tokens[i - 1].at);
    await peer.close();
  });

  test('a dropped socket resumes on another: the rest once each, live or from the store', async () => {
    const a = await connect();
    const cid = await createConversation(a, { model: 'slow-1' });
    const content = words(15);
    const from = a.frames.length;
    a.send({ type: 'send_message', id: 'long', data: { conversation_id: cid, content } });
    await a.waitFor((f) => f.type === 'token' && f.data.event === 3, 'three tokens', { from });
    a.ws.terminate();  // no closing handshake: the connection just drops
    const seen = a.frames.slice(from).filter((f) => f.type === 'token');
    const k = seen.length;
    const mid = seen[0].data.message_id;
    assert.deepEqual(seen.map((t) => t.data.event), Array.from({ length: k }, (_, i) => i + 1));
    assert.ok(k < 17, 'the answer was still being generated');

    const b = await connect();
    const resumed = await b.request('reconnect', { conversation_id: cid, message_id: mid, last_event: k }, 'resume');
    assert.equal(resumed.type, 'reconnected');
    assert.equal(resumed.data.message_id, mid);
    assert.equal(resumed.data.last_event, k);
    assert.equal(resumed.data.conversation.id, cid);
    const bEnd = await b.waitFor((f) => f.id === 'resume' && f.type === 'message_complete', 'the resumed end');
    const rest = b.frames.filter((f) => f.id === 'resume' && f.type === 'token');
    assert.deepEqual(rest.map((t) => t.data.event), Array.from({ length: 17 - k }, (_, i) => k + 1 + i));
    assert.equal(bEnd.data.event, 18);
    assert.equal(bEnd.data.status, 'complete');
    assert.equal([...seen, ...rest].map((t) => t.data.token).join(''), reply(content));
    assert.equal(bEnd.data.full_text, reply(content));
    assert.equal(b.frames.filter((f) => f.type === 'message_complete').length, 1);
    const stored = expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages/${mid}`, { token: alice.token }), 200);
    assert.equal(stored.status, 'complete');
    assert.equal(stored.content, reply(content));
    await b.close();

    // After the answer finished: the same events, replayed from the store.
    const c = await connect();
    const later = await c.request('reconnect', { conversation_id: cid, message_id: mid, last_event: 10 }, 'later');
    assert.equal(later.type, 'reconnected');
    const cEnd = await c.waitFor((f) => f.id === 'later' && f.type === 'message_complete', 'the replayed end');
    const replayed = c.frames.filter((f) => f.id === 'later' && f.type === 'token');
    const fromB = (f) => ({ ...f, id: 'later' });
    assert.deepEqual(replayed, rest.filter((t) => t.data.event > 10).map(fromB));
    assert.deepEqual(cEnd, fromB(bEnd));
    // last_event in the SSE id form, and everything already seen: only the end.
    const sseForm = await c.request('reconnect', { conversation_id: cid, message_id: mid, last_event: `${mid}:17` }, 'sse-form');
    assert.equal(sseForm.data.last_event, 17);
    const onlyEnd = await c.waitFor((f) => f.id === 'sse-form' && f.type === 'message_complete', 'the end');
    assert.deepEqual(onlyEnd, { ...bEnd, id: 'sse-form' });
    assert.equal(c.frames.filter((f) => f.id === 'sse-form' && f.type === 'token').length, 0);
    // The whole answer from the start, and a resume point of another message.
    await c.request('reconnect', { conversation_id: cid, message_id: mid }, 'whole');
    await c.waitFor((f) => f.id === 'whole' && f.type === 'message_complete', 'the whole answer');
    assert.deepEqual(c.frames.filter((f) => f.id === 'whole' && f.type === 'token').map((t) => t.data.token), [...seen, ...rest].map((t) => t.data.token));
    expectErrorFrame(await c.request('reconnect', { conversation_id: cid, message_id: mid, last_event: 'someoneElse:3' }, 'bad-point'), 'VALIDATION_ERROR', { id: 'bad-point', param: 'last_event' });
    expectErrorFrame(await c.request('reconnect', { conversation_id: cid, last_event: -1 }, 'neg-point'), 'VALIDATION_ERROR', { id: 'neg-point', param: 'last_event' });
    await c.close();
  });

  test('an answer started on a socket resumes over SSE with the same events, and the other way round', async () => {
    const peer = await connect();
    const cid = await createConversation(peer, { model: 'slow-1' });
    const content = words(8);
    const from = peer.frames.length;
    peer.send({ type: 'send_message', id: 'to-sse', data: { conversation_id: cid, content } });
    const second = await peer.waitFor((f) => f.id === 'to-sse' && f.type === 'token' && f.data.event === 2, 'two tokens', { from });
    const mid = second.data.message_id;
    const sse = await sseRequest(url, 'GET', `/api/v1/conversations/${cid}/messages/${mid}/stream`, { token: alice.token, headers: { 'Last-Event-ID': `${mid}:2` } });
    assert.equal(sse.status, 200);
    const wsEnd = await peer.waitFor((f) => f.id === 'to-sse' && f.type === 'message_complete', 'the end', { from });
    const wsTokens = peer.frames.slice(from).filter((f) => f.id === 'to-sse' && f.type === 'token');
    assert.equal(wsTokens.length, 10);
    assert.deepEqual(sse.events.map((e) => e.id), Array.from({ length: 9 }, (_, i) => `${mid}:${i + 3}`));
    assert.deepEqual(sse.events.slice(0, -1).map((e) => e.data), wsTokens.slice(2).map((t) => ({ token: t.data.token })));
    const { conversation_id: _c, event: _e, ...terminal } = wsEnd.data;
    assert.deepEqual(sse.events.at(-1).data, terminal);
    // From the start, after it finished: every event, as the socket numbered them.
    const whole = await sseRequest(url, 'GET', `/api/v1/conversations/${cid}/messages/${mid}/stream`, { token: alice.token });
    assert.deepEqual(whole.events.map((e) => [e.id, e.data.token ?? e.data.full_text]),
      [...wsTokens, wsEnd].map((f) => [`${mid}:${f.data.event}`, f.data.token ?? f.data.full_text]));

    // An answer asked over SSE, resumed on the socket without naming it (the one being generated).
    const asked = words(12);
    const first = await sseRequest(url, 'POST', `/api/v1/conversations/${cid}/messages`, { token: alice.token, body: { content: asked, stream: true }, stopAfter: 2 });
    const sseMid = first.headers.get('x-message-id');
    const sseTokens = first.events.filter((e) => e.data.token !== undefined);
    assert.equal(sseTokens.length, 2);
    const resumed = await peer.request('reconnect', { conversation_id: cid, last_event: 2 }, 'from-sse');
    assert.equal(resumed.type, 'reconnected');
    assert.equal(resumed.data.message_id, sseMid);
    const end = await peer.waitFor((f) => f.id === 'from-sse' && f.type === 'message_complete', 'the end');
    const rest = peer.frames.filter((f) => f.id === 'from-sse' && f.type === 'token');
    assert.deepEqual(rest.map((t) => t.data.event), Array.from({ length: 12 }, (_, i) => i + 3));
    assert.equal([...sseTokens.map((e) => e.data.token), ...rest.map((t) => t.data.token)].join(''), reply(asked));
    assert.equal(end.data.full_text, reply(asked));
    assert.equal(end.data.event, 15);
    await peer.close();
  });

  test('a token that expires closes its socket with 4001 unless reauth moved the deadline', async () => {
    const short = mintToken(alice.id, { ttl: 3 });
    const expiring = await Peer.open(wsUrl(url, `${route()}?token=${short.token}`));
    const renewed = await Peer.open(wsUrl(url, route()), { protocols: ['parley.chat', `bearer.${short.token}`] });
    const wrongReauth = await Peer.open(wsUrl(url, route()), { headers: { Authorization: `Bearer ${short.token}` } });
    for (const p of [expiring, renewed, wrongReauth]) {
      assert.equal((await p.waitFor((f) => f.type === 'connected')).data.expires_at, isoOf(short.exp));
    }
    const longer = mintToken(alice.id, { ttl: 120 });
    const moved = await renewed.request('reauth', { token: longer.token });
    assert.equal(moved.type, 'reauthenticated');
    assert.equal(moved.data.expires_at, isoOf(longer.exp));
    expectErrorFrame(await wrongReauth.request('reauth', { token: bob.token }, 'other-user'), 'FORBIDDEN', { id: 'other-user' });
    assert.equal((await expiring.request('ping')).type, 'pong', 'open until the token expires');

    const [closed, closedToo] = await Promise.all([expiring.closed, wrongReauth.closed]);
    for (const c of [closed, closedToo]) {
      assert.equal(c.code, 4001);
      assert.ok(c.at >= short.exp * 1000 - 250, `closed ${short.exp * 1000 - c.at} ms before the token's exp`);
    }
    // Past the first token's expiry, the renewed socket is open and answers.
    await sleep(Math.max(0, short.exp * 1000 + 1200 - Date.now()));
    assert.ok(renewed.open);
    assert.equal((await renewed.request('ping')).type, 'pong');
    await renewed.close();
  });

  test('credentials are checked again before each message: deactivation and revocation close with 4004, a role change applies', async () => {
    const erin = await signUp(url, 'erin');
    const erinKey = expectStatus(await api(url, 'POST', '/api/v1/api-keys', { token: erin.token, body: { name: 'erin-ws' } }), 201);
    const byToken = await Peer.open(wsUrl(url, `/ws/chat/${erin.id}?token=${erin.token}`));
    const byKey = await Peer.open(wsUrl(url, `/ws/chat/${erin.id}`), { headers: { 'X-API-Key': erinKey.key } });
    const cid = (await byToken.request('start_conversation', { model: 'mock-1' })).data.conversation_id;

    // A role change applies at the next message: as an admin, erin may write to alice's conversation.
    const alices = expectStatus(await api(url, 'POST', `/api/v1/users/${alice.id}/conversations`, { token: alice.token, body: { model: 'mock-1' } }), 201);
    expectErrorFrame((await byToken.ask(alices.id, 'may I?', { id: 'before' })).end, 'NOT_FOUND', { id: 'before' });
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${erin.id}`, { token: root.token, body: { role: 'admin' } }), 200);
    expectWholeAnswer(await byToken.ask(alices.id, 'may I now?'), reply('may I now?'));

    // A revoked key: the next message gets an error and the socket closes with 4004.
    expectStatus(await api(url, 'DELETE', `/api/v1/api-keys/${erinKey.id}`, { token: erin.token }), 204);
    assert.equal((await byKey.request('ping')).type, 'pong', 'ping is not checked');
    expectErrorFrame(await byKey.request('start_conversation', {}, 'revoked'), 'UNAUTHORIZED', { id: 'revoked' });
    assert.equal((await byKey.closed).code, 4004);

    // A deactivated user: the same.
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${erin.id}`, { token: root.token, body: { is_active: false } }), 200);
    assert.equal((await byToken.request('ping')).type, 'pong');
    const refused = await byToken.ask(cid, 'still me', { id: 'deactivated' });
    assert.deepEqual(refused.frames.map((f) => f.type), ['error']);
    expectErrorFrame(refused.end, 'UNAUTHORIZED', { id: 'deactivated' });
    assert.equal((await byToken.closed).code, 4004);
    const messages = expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages`, { token: root.token }), 200);
    assert.equal(messages.items.length, 0, 'nothing was stored for the refused message');
  });

  test('a provider failure ends the answer with an error frame: status failed, the partial text, the next event', async () => {
    const peer = await connect();
    const cid = await createConversation(peer, { model: 'mock-1' });
    await fastMock.faults([{ status: 400, body: { error: { message: 'bad request', type: 'invalid_request_error' } } }]);
    const refused = await peer.ask(cid, words(6), { id: 'f1' });
    assert.deepEqual(refused.frames.map((f) => f.type), ['message_saved', 'error']);
    await fastMock.faults([{ drop_after_chunks: 4 }]);  // the role chunk and three tokens, then the stream breaks
    const cut = await peer.ask(cid, words(6), { id: 'f2' });
    assert.deepEqual(cut.frames.map((f) => f.type), ['message_saved', 'token', 'token', 'token', 'error']);
    for (const [answer, tokens] of [[refused, 0], [cut, 3]]) {
      const e = answer.end.data;
      assert.equal(e.status, 'failed');
      assert.equal(e.message_id, answer.saved.data.answer_message_id);
      assert.equal(e.conversation_id, cid);
      assert.equal(e.event, tokens + 1);
      assert.equal(e.partial_text, answer.tokens.map((t) => t.data.token).join(''));
      const stored = expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages/${e.message_id}`, { token: alice.token }), 200);
      assert.equal(stored.status, 'failed');
      assert.equal(stored.error_code, e.code);
      assert.equal(stored.content, e.partial_text);
      const replay = await sseRequest(url, 'GET', `/api/v1/conversations/${cid}/messages/${e.message_id}/stream`, { token: alice.token });
      assert.equal(replay.events.length, tokens + 1);
      assert.equal(replay.events.at(-1).data.error.code, e.code);
      assert.equal(replay.events.at(-1).data.partial_text, e.partial_text);
      assert.match(e.request_id, /\.\d+$/);
    }
    assert.equal(cut.end.data.partial_text, 'mock reply: w1');
    // The conversation goes on.
    expectWholeAnswer(await peer.ask(cid, 'after the failures'), reply('after the failures'));
    // The error frame has the envelope's fields, as every error does.
    expectErrorFrame(refused.end, refused.end.data.code, { id: 'f1' });
    expectErrorFrame(cut.end, cut.end.data.code, { id: 'f2' });
    await peer.close();
  });

  test('a client that reads promptly is never closed with 4002, however large one frame is', async () => {
    // The send queue is 4096 bytes here (the least allowed); a message of 3990 characters is allowed
    // (max_message_chars 4000), and its message_saved frame and the answer's message_complete are
    // each larger than the queue.
    const peer = await connect();
    const cid = await createConversation(peer, { model: 'mock-1' });
    const content = `${words(700)} ${'x'.repeat(3990 - words(700).length - 1)}`;
    assert.equal(content.length, 3990);
    const answer = await peer.ask(cid, content, { id: 'large' }).catch((e) => assert.fail(`${e.message} (close ${JSON.stringify(peer.closeInfo)})`));
    assert.equal(answer.saved.data.message.content, content);
    expectWholeAnswer(answer, reply(content));
    assert.ok(peer.open);
    await peer.close();
  });

  test('malformed frames get an error and the socket stays; invalid UTF-8 closes with 1007', async () => {
    const peer = await connect();
    const hello = await peer.waitFor((f) => f.type === 'connected');
    const errorsSoFar = () => peer.frames.filter((f) => f.type === 'error').length;
    const expectNextError = async (send, code, options = {}) => {
      const n = errorsSoFar();
      send();
      await peer.waitFor(() => errorsSoFar() > n, `the error for ${code}`);
      return expectErrorFrame(peer.frames.filter((f) => f.type === 'error')[n], code, options);
    };
    // Each message has a request id of its own: `<connection_id>.<n>`.
    const binary = await expectNextError(() => peer.ws.send(Buffer.from([1, 2, 3]), { binary: true }), 'BAD_REQUEST');
    assert.equal(binary.request_id, `${hello.data.connection_id}.1`);
    assert.equal((await expectNextError(() => peer.send('not json'), 'INVALID_JSON')).request_id, `${hello.data.connection_id}.2`);
    await expectNextError(() => peer.send('{"type":"ping","type":"ping"}'), 'INVALID_JSON');
    await expectNextError(() => peer.send('{"type":"ping"'), 'INVALID_JSON');
    await expectNextError(() => peer.send('[1,2]'), 'BAD_REQUEST');
    await expectNextError(() => peer.send('"ping"'), 'BAD_REQUEST');
    await expectNextError(() => peer.send({ type: 'dance', id: 'x' }), 'BAD_REQUEST', { id: 'x', param: 'type' });
    await expectNextError(() => peer.send({ id: 'y' }), 'VALIDATION_ERROR', { id: 'y', param: 'type' });
    await expectNextError(() => peer.send({ type: 'ping', id: '' }), 'VALIDATION_ERROR', { param: 'id' });
    await expectNextError(() => peer.send({ type: 'ping', id: 'z'.repeat(129) }), 'VALIDATION_ERROR', { param: 'id' });
    await expectNextError(() => peer.send({ type: 'ping', id: { a: 1 } }), 'VALIDATION_ERROR', { param: 'id' });
    await expectNextError(() => peer.send({ type: 'ping', id: 'w', data: 5 }), 'VALIDATION_ERROR', { id: 'w', param: 'data' });
    await expectNextError(() => peer.send({ type: 'ping', id: 'v', extra: true }), 'VALIDATION_ERROR', { id: 'v', param: 'extra' });
    assert.equal((await peer.request('ping', undefined, 'z'.repeat(128))).type, 'pong', 'an id of 128 characters is fine');

    // A fragmented message is joined.
    const from = peer.frames.length;
    peer.ws.send('{"type":"pi', { fin: false });
    peer.ws.send('ng","id":"frag', { fin: false });
    peer.ws.send('mented"}', { fin: true });
    const joined = await peer.waitFor((f) => f.id === 'fragmented', 'the fragmented ping', { from });
    assert.equal(joined.type, 'pong');
    assert.ok(peer.open);

    // A text frame that is not UTF-8: close 1007.
    peer.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    const closed = await peer.closed;
    assert.equal(closed.code, 1007);

    // Another socket and the REST API still work.
    const other = await connect();
    const cid = await createConversation(other, { model: 'mock-1' });
    expectWholeAnswer(await other.ask(cid, 'still fine'), reply('still fine'));
    await other.close();
    expectStatus(await api(url, 'GET', `/api/v1/users/${alice.id}/conversations/${cid}`, { token: alice.token }), 200);
  });

  test('a reader that pauses does not stop the answers; afterwards it gets them all or a 4002 close', async () => {
    const peer = await connect();
    const cid = await createConversation(peer, { model: 'mock-1' });
    // 702 token frames; no frame is larger than half the send queue.
    const content = Array(700).fill('a').join(' ');
    const from = peer.frames.length;
    peer.ws._socket.pause();
    peer.send({ type: 'send_message', id: 'big', data: { conversation_id: cid, content } });
    // The answer is generated and stored while the client reads nothing.
    const stored = await waitFor(async () => {
      const list = await api(url, 'GET', `/api/v1/conversations/${cid}/messages`, { token: alice.token });
      const answer = list.body.items.find((m) => m.role === 'assistant');
      return answer?.status === 'complete' ? answer : null;
    }, 'the answer to be stored');
    assert.equal(stored.content, reply(content));
    // Megabytes more than the client reads: the whole answer again and again, each frame with a long id.
    const replays = Array.from({ length: 18 }, (_, i) => `replay-${i}-`.padEnd(128, 'x'));
    for (const id of replays) peer.send({ type: 'reconnect', id, data: { conversation_id: cid, message_id: stored.id } });
    await sleep(1000);
    peer.ws._socket.resume();
    const ids = ['big', ...replays];
    const outcome = await Promise.race([
      peer.closed.then((c) => ({ closed: c })),
      (async () => {
        for (const id of ids) await peer.waitFor((f) => f.id === id && f.type === 'message_complete', `the end of ${id}`, { from, ms: 30000 });
        return { complete: true };
      })().catch((e) => (peer.closeInfo ? { closed: peer.closeInfo } : Promise.reject(e))),
    ]);
    if (outcome.closed) {
      assert.equal(outcome.closed.code, 4002, `closed with ${outcome.closed.code} ${outcome.closed.reason}`);
    } else {
      for (const id of ids) {
        const frames = peer.frames.slice(from).filter((f) => f.id === id);
        expectWholeAnswer({ tokens: frames.filter((f) => f.type === 'token'), end: frames.find((f) => f.type === 'message_complete') }, reply(content));
      }
      await peer.close();
    }
    // The server is fine, and the stored answer too.
    const other = await connect();
    assert.equal((await other.request('ping')).type, 'pong');
    await other.close();
    assert.equal(expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages/${stored.id}`, { token: alice.token }), 200).content, reply(content));
  });
});

describe(`realtime limits and anonymous chat (${BACKEND})`, () => {
  let p;
  let url;
  let admin;
  let user;
  before(async () => {
    p = instances.limits;
    url = p.url;
    admin = await signUp(url, 'root');
    user = await signUp(url, 'carol');
  });
  const connect = (who = user) => Peer.open(wsUrl(url, `/ws/chat/${who.id}?token=${who.token}`));

  test('anonymous: a whole conversation in memory, never in anyone\'s history, on the deployment\'s model', async () => {
    const guest = await Peer.open(wsUrl(url, '/ws/chat'));
    const hello = await guest.waitFor((f) => f.type === 'connected');
    assert.equal(hello.data.user_id, null);
    assert.equal(hello.data.anonymous, true);
    assert.equal(hello.data.expires_at, null);
    assert.deepEqual(hello.data.limits, { messages_per_minute: 120, max_generations: 1, max_message_bytes: 1024 });

    expectErrorFrame(await guest.request('start_conversation', { model: 'mock-1' }, 'pick'), 'VALIDATION_ERROR', { id: 'pick', param: 'model' });
    const started = await guest.request('start_conversation', { title: 'Guest chat' }, 'start');
    assert.equal(started.type, 'conversation_started');
    const cid = started.data.conversation_id;
    assert.equal(started.data.conversation.title, 'Guest chat');
    assert.equal(started.data.conversation.status, 'active');
    const refusedModel = await guest.ask(cid, 'hello', { id: 'pick2', model: 'mock-1' });
    expectErrorFrame(refusedModel.end, 'VALIDATION_ERROR', { id: 'pick2', param: 'model' });

    const content = 'hello from nowhere';
    const first = await guest.ask(cid, content, { id: 'g1' });
    assert.equal(first.saved.data.message.content, content);
    expectWholeAnswer(first);
    assert.ok(first.end.data.full_text.endsWith(content), first.end.data.full_text);
    const second = await guest.ask(cid, 'and once more', { id: 'g2' });
    expectWholeAnswer(second);
    assert.ok(second.end.data.full_text.endsWith('and once more'));

    expectWholeAnswer(await guest.ask(cid, 'a third time'));
    // Six messages at most in an anonymous conversation.
    expectErrorFrame((await guest.ask(cid, 'a fourth time', { id: 'full' })).end, 'CONFLICT', { id: 'full' });

    // reconnect replays an answer from memory; end and reconnect work as for users.
    await guest.request('reconnect', { conversation_id: cid, message_id: first.end.data.message_id, last_event: 2 }, 'replay');
    const replayEnd = await guest.waitFor((f) => f.id === 'replay' && f.type === 'message_complete', 'the replay');
    assert.deepEqual(guest.frames.filter((f) => f.id === 'replay' && f.type === 'token').map((t) => t.data.token), first.tokens.slice(2).map((t) => t.data.token));
    assert.deepEqual(replayEnd.data, first.end.data);
    assert.equal((await guest.request('end_conversation', { conversation_id: cid })).data.conversation.status, 'ended');
    expectErrorFrame((await guest.ask(cid, 'still there?', { id: 'ended' })).end, 'CONFLICT', { id: 'ended' });
    assert.equal((await guest.request('reconnect', { conversation_id: cid })).data.conversation.status, 'active');
    expectErrorFrame(await guest.request('reauth', { token: user.token }, 'ra'), 'BAD_REQUEST', { id: 'ra' });

    // Not visible to any user, over REST or a user's socket.
    for (const who of [admin, user]) {
      expectStatus(await api(url, 'GET', `/api/v1/conversations/${cid}/messages`, { token: who.token }), 404, 'NOT_FOUND');
      expectStatus(await api(url, 'GET', `/api/v1/users/${who.id}/conversations/${cid}`, { token: who.token }), 404, 'NOT_FOUND');
      const list = expectStatus(await api(url, 'GET', `/api/v1/users/${who.id}/conversations`, { token: who.token }), 200);
      assert.ok(!list.items.some((c) => c.id === cid));
      const found = expectStatus(await api(url, 'GET', `/api/v1/users/${who.id}/conversations?q=nowhere`, { token: who.token }), 200);
      assert.equal(found.total, 0);
    }
    const userSocket = await connect();
    expectErrorFrame((await userSocket.ask(cid, 'mine now?', { id: 'steal' })).end, 'NOT_FOUND', { id: 'steal' });
    expectErrorFrame(await userSocket.request('reconnect', { conversation_id: cid }, 'steal2'), 'NOT_FOUND', { id: 'steal2' });
    await Promise.all([guest.close(), userSocket.close()]);
  });

  test('a message over max_message_bytes closes with 1009, fragmented or not', async () => {
    const peer = await connect();
    // Exactly at the limit is fine.
    const atLimit = '{"type":"ping","id":"full"}';
    peer.send(atLimit + ' '.repeat(1024 - atLimit.length));
    assert.equal((await peer.waitFor((f) => f.id === 'full', 'the pong')).type, 'pong');
    peer.send(JSON.stringify({ type: 'ping', id: 'big', data: {} }).replace('{}', `{"pad":"${'x'.repeat(1024)}"}`));
    assert.equal((await peer.closed).code, 1009);
    assert.equal(peer.frames.some((f) => f.id === 'big'), false);

    const fragmented = await connect();
    fragmented.ws.send(`{"type":"ping","id":"frag","pad":"${'x'.repeat(600)}`, { fin: false });
    fragmented.ws.send(`${'x'.repeat(600)}"}`, { fin: true });
    assert.equal((await fragmented.closed).code, 1009);
  });

  test('over messages_per_minute: RATE_LIMIT_EXCEEDED with retry_after_ms and the id; a flood is closed with 1008', async () => {
    // 60 a minute: a minute's allowance at once, then one a second.
    const polite = await connect();
    await polite.waitFor((f) => f.type === 'connected');
    for (let i = 1; i <= 61; i++) polite.send({ type: 'ping', id: i });
    const refused = await polite.waitFor((f) => f.type === 'error', 'the refusal');
    const data = expectErrorFrame(refused, 'RATE_LIMIT_EXCEEDED', { id: 61 });
    assert.ok(Number.isInteger(data.retry_after_ms) && data.retry_after_ms > 0 && data.retry_after_ms <= 1000, JSON.stringify(data));
    assert.deepEqual(polite.frames.filter((f) => f.type === 'pong').map((f) => f.id), Array.from({ length: 60 }, (_, i) => i + 1));
    await sleep(data.retry_after_ms + 50);
    assert.equal((await polite.request('ping')).type, 'pong', 'allowed again after retry_after_ms');
    await polite.close();

    // Sixty refusals in a row are answered, the sixty-first closes the socket.
    const flood = await connect();
    await flood.waitFor((f) => f.type === 'connected');
    for (let i = 1; i <= 130; i++) flood.send({ type: 'ping', id: i });
    const closed = await flood.closed;
    assert.equal(closed.code, 1008);
    assert.equal(flood.frames.filter((f) => f.type === 'pong').length, 60);
    const errors = flood.frames.filter((f) => f.type === 'error');
    assert.deepEqual(errors.map((e) => [e.id, e.data.code]), Array.from({ length: 60 }, (_, i) => [61 + i, 'RATE_LIMIT_EXCEEDED']));
  });

  test('max_generations: one more answer streaming to the socket is refused', async () => {
    const peer = await connect();
    const [one, two] = [await peer.request('start_conversation', { model: 'slow-1' }), await peer.request('start_conversation', { model: 'slow-1' })]
      .map((f) => f.data.conversation_id);
    const from = peer.frames.length;
    peer.send({ type: 'send_message', id: 'first', data: { conversation_id: one, content: words(6) } });
    await peer.waitFor((f) => f.id === 'first' && f.type === 'message_saved', 'message_saved', { from });
    const refused = await peer.ask(two, 'me too', { id: 'second' });
    assert.deepEqual(refused.frames.map((f) => f.type), ['error']);
    expectErrorFrame(refused.end, 'RATE_LIMIT_EXCEEDED', { id: 'second' });
    assert.equal(refused.end.data.conversation_id, two);
    const firstEnd = await peer.waitFor((f) => f.id === 'first' && f.type === 'message_complete', 'the first answer', { from });
    assert.equal(firstEnd.data.full_text, reply(words(6)));
    // Nothing was stored for the refused one; once the first is over the second goes through.
    const listed = expectStatus(await api(url, 'GET', `/api/v1/conversations/${two}/messages`, { token: user.token }), 200);
    assert.equal(listed.items.length, 0);
    expectWholeAnswer(await peer.ask(two, 'me too'), reply('me too'));
    await peer.close();
  });

  test('connections_per_user and anonymous_per_address: the next upgrade is a 429', async () => {
    const dave = await signUp(url, 'dave');
    const openRetrying = async (target) => waitFor(() => Peer.open(target).catch((e) => (e.status === 429 ? null : Promise.reject(e))), 'a free slot', 5000);
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await openRetrying(wsUrl(url, `/ws/chat/${dave.id}?token=${dave.token}`)));
    const refused = await refusedUpgrade(wsUrl(url, `/ws/chat/${dave.id}?token=${dave.token}`));
    expectStatus(refused, 429, 'RATE_LIMIT_EXCEEDED');
    assert.equal(refused.headers.get('retry-after'), '5');
    // Other users are not affected; a closed socket frees its slot.
    const other = await connect();
    await mine[0].close();
    mine[0] = await openRetrying(wsUrl(url, `/ws/chat/${dave.id}?token=${dave.token}`));
    assert.equal((await mine[0].request('ping')).type, 'pong');

    const guests = [];
    for (let i = 0; i < 2; i++) guests.push(await openRetrying(wsUrl(url, '/ws/chat')));
    const guestRefused = await refusedUpgrade(wsUrl(url, '/ws/chat'));
    expectStatus(guestRefused, 429, 'RATE_LIMIT_EXCEEDED');
    assert.equal(guestRefused.headers.get('retry-after'), '5');
    await Promise.all([...mine, ...guests, other].map((s) => s.close()));
  });
});

describe(`realtime heartbeats and idle sockets (${BACKEND})`, () => {
  test('a peer that does not answer pings is dropped; one that does is kept until idle (4003); a streaming answer is not idle', async () => {
    const p = instances.timers;
    const u = await signUp(p.url, 'erin');
    const target = wsUrl(p.url, `/ws/chat/${u.id}?token=${u.token}`);
    const streaming = await Peer.open(target);
    const cid = (await streaming.request('start_conversation', { model: 'slow-1' })).data.conversation_id;
    const content = words(16);  // 18 chunks: longer than the idle timeout
    const normal = await Peer.open(target);
    const silent = await Peer.open(target, { autoPong: false });
    // realtime.max_connections is 3 here: the next upgrade is refused with 503.
    const full = await refusedUpgrade(target);
    expectStatus(full, 503, 'SERVICE_UNAVAILABLE');
    assert.equal(full.headers.get('retry-after'), '5');
    streaming.send({ type: 'send_message', id: 'long', data: { conversation_id: cid, content } });

    const silentClosed = await silent.closed;
    assert.ok(silent.pings >= 1, 'the silent peer was pinged');
    assert.equal(silentClosed.code, 1006, 'dropped (no closing handshake) for not answering pings, before the idle timeout');
    assert.ok(normal.open, 'a peer that answers pings stays');
    assert.ok(normal.pings >= 1);

    const normalClosed = await normal.closed;
    assert.equal(normalClosed.code, 4003);
    assert.ok(normal.pings >= 2, `pinged while silent (${normal.pings})`);
    assert.ok(normalClosed.at > silentClosed.at);

    const end = await streaming.waitFor((f) => f.id === 'long' && f.type === 'message_complete', 'the long answer');
    assert.equal(end.data.full_text, reply(content));
    const streamingClosed = await streaming.closed;
    assert.equal(streamingClosed.code, 4003, 'idle once the answer is over');
    assert.ok(streamingClosed.at > normalClosed.at, 'the answer kept the socket busy past the idle timeout');
    assert.equal(streamingClosed.after, streaming.frames.length);
  });
});

describe(`realtime shutdown (${BACKEND})`, () => {
  test('SIGTERM: an answer in flight is finished before 1001; idle sockets get 1001; new answers are refused', async () => {
    const p = instances.shutdown;
    const u = await signUp(p.url, 'frank');
    const target = wsUrl(p.url, `/ws/chat/${u.id}?token=${u.token}`);
    const idle = await Peer.open(target);
    const busy = await Peer.open(target);
    const cid = (await busy.request('start_conversation', { model: 'slow-1' })).data.conversation_id;
    const other = (await busy.request('start_conversation', { model: 'mock-1' })).data.conversation_id;
    const content = words(14);
    const from = busy.frames.length;
    busy.send({ type: 'send_message', id: 'inflight', data: { conversation_id: cid, content } });
    const second = await busy.waitFor((f) => f.id === 'inflight' && f.type === 'token' && f.data.event === 2, 'two tokens', { from });
    p.proc.kill('SIGTERM');

    assert.equal((await idle.closed).code, 1001);
    await sleep(200);  // the drain reached every worker
    const refused = await busy.ask(other, 'one more?', { id: 'late' });
    expectErrorFrame(refused.end, 'SERVICE_UNAVAILABLE', { id: 'late' });

    const closed = await busy.closed;
    assert.equal(closed.code, 1001);
    const frames = busy.frames.slice(from).filter((f) => f.id === 'inflight');
    const tokens = frames.filter((f) => f.type === 'token');
    const end = frames.find((f) => f.type === 'message_complete');
    assert.ok(end, 'the answer ended before the close');
    assert.deepEqual(tokens.map((t) => t.data.event), Array.from({ length: 16 }, (_, i) => i + 1));
    assert.equal(end.data.full_text, reply(content));
    assert.equal(end.data.status, 'complete');
    assert.equal(busy.frames.at(-1), end, 'message_complete is the last frame before the close');
    const exit = await p.exited;
    assert.equal(exit.code, 0, p.stderr.slice(-2000));

    // The answer is stored: a restart on the same data finds it complete.
    const again = await startParley({ args: ['--config', configFile], env: { RT_SYSTEM_KEY: systemKey, PARLEY_JWT_SECRET: JWT_SECRET }, dataDir: p.dataDir, databaseUrl: p.databaseUrl });
    instances.restarted = again;
    const m = expectStatus(await api(again.url, 'GET', `/api/v1/conversations/${cid}/messages/${second.data.message_id}`, { token: mintToken(u.id).token }), 200);
    assert.equal(m.status, 'complete');
    assert.equal(m.content, reply(content));
  });
});

describe('every instance', () => {
  test('stops cleanly: exit 0, no sanitizer report, no token in any log', async () => {
    for (const peer of [...peers]) await peer.close();
    const results = await Promise.all(Object.values(instances).map((p) => p.stop()));
    for (const [i, r] of results.entries()) {
      const inst = Object.values(instances)[i];
      assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${inst.stderr.slice(-3000)}`);
    }
    for (const inst of collectedLogs) {
      assert.ok(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(inst.stderr), inst.stderr.slice(-3000));
    }
    expectNoSecretsInLogs([JWT_SECRET, systemKey]);
    for (const inst of collectedLogs) assert.ok(!/[?&]token=/.test(inst.stderr), 'a query token reached a log');
  });
});
