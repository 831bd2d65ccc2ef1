// Limits, budgets and usage (docs/LIMITS.md) against the built binary and parley-mock: requests- and
// tokens-per-minute limits per service key and per user on every AI route, the sliding-window log's
// boundary (N calls pass, call N+1 is refused), token reservations settled to the real usage and
// released on failure, all-or-none admission, token and spend budgets (402), the headers every AI
// answer carries, the limit fields of keys and users (validation, visibility, who may set them), the
// configuration defaults, and the limiter over Redis (shared by two instances; fail_closed/fail_open).
//
// Nothing here waits for a window to pass: every test makes a fresh key or user, reaches its limit
// at once and checks what is refused and what the headers say.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import { startParley, startMock, startRedis, providerKey, tempDir, sleep, BACKEND, mockProviderConfig } from './harness.mjs';
import { api, expectStatus, signUp, sseEvents } from '../journeys/lib.mjs';

const PRICE_IN = 2.5; // USD per 1M input tokens of the priced models
const PRICE_OUT = 10.0; // USD per 1M output tokens

// The mock provider (harness mockProviderConfig) with model prices: "mock-gpt" exactly and every
// model starting with "mock-pre"; fast retries (3, base 20 ms).
function limitsConfig(mockUrl, keyEnv, extra = '') {
  return mockProviderConfig(mockUrl, {
    keyEnv,
    extraConfig: extra,
    providerLines: `prices = { "mock-gpt" = [${PRICE_IN}, ${PRICE_OUT}], "mock-pre*" = [${PRICE_IN}, ${PRICE_OUT}] }`,
    retry: { base_delay_ms: 20, max_delay_ms: 100, retry_after_cap_ms: 100 },
    timeouts: { first_byte_ms: 5000 },
  });
}

// ---- rate-limit headers -----------------------------------------------------------------------

// Milliseconds of an OpenAI reset value: `1s`, `6m0s`, `120ms`, `1h2m3.5s`.
function resetMs(value, what) {
  assert.equal(typeof value, 'string', `${what} is missing`);
  const ms = value.match(/^(\d+(?:\.\d+)?)ms$/);
  if (ms) return Number(ms[1]);
  const m = value.match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/);
  assert.ok(m && value !== '', `${what} is not written as OpenAI writes it (1s, 6m0s, 120ms): ${JSON.stringify(value)}`);
  return (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000;
}

const intHeader = (h, name) => {
  const v = h.get(name);
  assert.match(v ?? '', /^\d+$/, `${name}: ${JSON.stringify(v)}`);
  return Number(v);
};

// The request headers of an answer admitted or refused under a requests-per-minute limit `limit`
// with `remaining` left.
function expectRequestHeaders(r, limit, remaining, what = '') {
  const h = r.headers;
  const ctx = `${what} (status ${r.status})`;
  assert.equal(h.get('x-ratelimit-limit'), String(limit), `X-RateLimit-Limit ${ctx}`);
  assert.equal(h.get('x-ratelimit-remaining'), String(remaining), `X-RateLimit-Remaining ${ctx}`);
  const reset = intHeader(h, 'x-ratelimit-reset');
  if (remaining > 0) assert.equal(reset, 0, `X-RateLimit-Reset is 0 while requests are left ${ctx}`);
  else assert.ok(reset >= 1 && reset <= 60, `X-RateLimit-Reset ${reset} ${ctx}`);
  assert.equal(h.get('x-ratelimit-limit-requests'), String(limit), `x-ratelimit-limit-requests ${ctx}`);
  assert.equal(h.get('x-ratelimit-remaining-requests'), String(remaining), `x-ratelimit-remaining-requests ${ctx}`);
  const resetRequests = resetMs(h.get('x-ratelimit-reset-requests'), `x-ratelimit-reset-requests ${ctx}`);
  assert.ok(resetRequests >= 0 && resetRequests <= 60000, `x-ratelimit-reset-requests ${resetRequests} ms ${ctx}`);
  if (remaining === 0) assert.ok(resetRequests > 0, `x-ratelimit-reset-requests is 0 with nothing left ${ctx}`);
}

// The token headers of an answer under a tokens-per-minute limit `limit`; returns what is left.
function tokenHeaders(r, limit, what = '') {
  const h = r.headers;
  assert.equal(h.get('x-ratelimit-limit-tokens'), String(limit), `x-ratelimit-limit-tokens ${what} (status ${r.status})`);
  const left = intHeader(h, 'x-ratelimit-remaining-tokens');
  assert.ok(left <= limit, `x-ratelimit-remaining-tokens ${left} > ${limit}`);
  const reset = resetMs(h.get('x-ratelimit-reset-tokens'), `x-ratelimit-reset-tokens ${what}`);
  assert.ok(reset >= 0 && reset <= 60000, `x-ratelimit-reset-tokens ${reset} ms`);
  return left;
}

// A refusal by a requests-per-minute limit of `limit`: 429 RATE_LIMIT_EXCEEDED naming the scope
// (`scope`: a RegExp) and the limit, Retry-After in whole seconds (1–60) and every header.
function expect429(r, limit, scope, what = '') {
  const body = expectStatus(r, 429, 'RATE_LIMIT_EXCEEDED');
  assert.equal(body.error.type, 'rate_limit_error');
  assert.match(body.error.message, new RegExp(`\\b${limit}\\b`), `the message names the limit: ${body.error.message}`);
  if (scope) assert.match(body.error.message, scope, `the message names the scope: ${body.error.message}`);
  const retryAfter = r.headers.get('retry-after');
  assert.match(retryAfter ?? '', /^\d+$/, `Retry-After in whole seconds ${what}: ${JSON.stringify(retryAfter)}`);
  assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `Retry-After ${retryAfter} ${what}`);
  expectRequestHeaders(r, limit, 0, what);
  return body;
}

// ---- a small WebSocket client -----------------------------------------------------------------

const sockets = new Set();
class Peer {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.seq = 0;
    this.closeInfo = null;
    sockets.add(this);
    ws.on('message', (data) => this.frames.push(JSON.parse(data.toString('utf8'))));
    ws.on('error', () => {});
    ws.on('close', (code) => { this.closeInfo = { code }; sockets.delete(this); });
  }

  static open(url, options = {}) {
    const ws = new WebSocket(url, options);
    const peer = new Peer(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(peer));
      ws.once('unexpected-response', (req, res) => { req.destroy(); reject(new Error(`upgrade refused with ${res.statusCode}`)); });
      ws.once('error', reject);
    });
  }

  async waitFor(pred, what, from = 0, ms = 20000) {
    const until = Date.now() + ms;
    for (;;) {
      const f = this.frames.slice(from).find(pred);
      if (f) return f;
      if (this.closeInfo) throw new Error(`socket closed (${this.closeInfo.code}) waiting for ${what}`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.frames.slice(-3))}`);
      await sleep(10);
    }
  }

  async request(type, data) {
    const id = `${type}-${++this.seq}`;
    const from = this.frames.length;
    this.ws.send(JSON.stringify(data === undefined ? { type, id } : { type, id, data }));
    return this.waitFor((f) => f.id === id, `the answer to ${type}`, from);
  }

  // send_message; resolves with the frame that ends it (message_complete or error).
  async ask(conversationId, content) {
    const id = `ask-${++this.seq}`;
    const from = this.frames.length;
    this.ws.send(JSON.stringify({ type: 'send_message', id, data: { conversation_id: conversationId, content } }));
    return this.waitFor((f) => f.id === id && (f.type === 'message_complete' || f.type === 'error'), `the end of ${id}`, from);
  }

  close() { this.ws.terminate(); }
}

// ---- the main instance ------------------------------------------------------------------------

describe(`limits, budgets and rate-limit headers (${BACKEND})`, () => {
  const systemKey = providerKey('system');
  let mock; let p; let url; let admin; let owner;
  let n = 0;

  before(async () => {
    mock = await startMock([]);
    p = await startParley({
      args: ['--config', limitsConfig(mock.url, 'LIM_SYSTEM_KEY')],
      env: { LIM_SYSTEM_KEY: systemKey, PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
    });
    url = p.url;
    admin = await signUp(url, 'admin'); // the first account is the admin
    owner = await signUp(url, 'owner');
  });
  after(async () => {
    for (const s of [...sockets]) s.close();
    await p?.stop();
    await mock?.stop();
  });

  // A fresh service key of `who` with `fields` (rate_limit_per_minute, tokens_per_minute, …).
  const newKey = async (who, fields = {}) =>
    expectStatus(await api(url, 'POST', '/api/v1/api-keys', { token: who.token, body: { name: `k${++n}`, ...fields } }), 201);
  const newUser = () => signUp(url, `user${++n}`);
  const setUserLimits = async (who, limits) =>
    expectStatus(await api(url, 'PUT', `/api/v1/users/${who.id}/limits`, { token: admin.token, body: limits }), 200);
  const conversation = async (who) =>
    expectStatus(await api(url, 'POST', `/api/v1/users/${who.id}/conversations`, { token: who.token, body: { model: 'mock-1' } }), 201);
  const msg = (content = 'hi') => [{ role: 'user', content }];

  // One call of each AI route for `auth` ({ apiKey } or { token }) of user `who`. `prepare` runs
  // once before the calls (with the user's JWT, which the key limits do not count).
  const ROUTES = [
    { name: '/v1/chat/completions', call: (a) => api(url, 'POST', '/v1/chat/completions', { ...a, body: { model: 'gpt-4o-mini', messages: msg() } }) },
    { name: '/v1/chat/completions (stream)', call: (a) => api(url, 'POST', '/v1/chat/completions', { ...a, body: { model: 'gpt-4o-mini', messages: msg(), stream: true } }) },
    { name: '/v1/embeddings', call: (a) => api(url, 'POST', '/v1/embeddings', { ...a, body: { model: 'text-embedding-3-small', input: 'hello world' } }) },
    { name: '/api/v1/chat', call: (a) => api(url, 'POST', '/api/v1/chat', { ...a, body: { model: 'gpt-3.5-turbo', messages: msg() } }) },
    { name: '/api/v1/chat/stream', call: (a) => api(url, 'POST', '/api/v1/chat/stream', { ...a, body: { model: 'gpt-3.5-turbo', messages: msg() } }) },
    { name: '/api/v1/summarize', call: (a) => api(url, 'POST', '/api/v1/summarize', { ...a, body: { model: 'gpt-3.5-turbo', text: 'a text long enough to be summarized by the model' } }) },
    { name: '/api/v1/translate', call: (a) => api(url, 'POST', '/api/v1/translate', { ...a, body: { model: 'gpt-3.5-turbo', text: 'Hello', target_language: 'Spanish' } }) },
    {
      name: 'POST /api/v1/conversations/{id}/messages',
      prepare: async (who) => ({ c: await conversation(who) }),
      call: (a, s) => api(url, 'POST', `/api/v1/conversations/${s.c.id}/messages`, { ...a, body: { content: 'hello there' } }),
      stored: (who, s) => api(url, 'GET', `/api/v1/conversations/${s.c.id}/messages?include_superseded=true`, { token: who.token }),
    },
    {
      name: 'POST /api/v1/conversations/{id}/messages (stream)',
      prepare: async (who) => ({ c: await conversation(who) }),
      call: (a, s) => api(url, 'POST', `/api/v1/conversations/${s.c.id}/messages`, { ...a, body: { content: 'hello there', stream: true } }),
      stored: (who, s) => api(url, 'GET', `/api/v1/conversations/${s.c.id}/messages?include_superseded=true`, { token: who.token }),
    },
    {
      name: 'POST /api/v1/conversations/{id}/messages/{message_id}/regenerate',
      prepare: async (who) => {
        const c = await conversation(who);
        const first = expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: who.token, body: { content: 'pick a number' } }), 201);
        return { c, question: first.user_message.id };
      },
      call: (a, s) => api(url, 'POST', `/api/v1/conversations/${s.c.id}/messages/${s.question}/regenerate`, { ...a, body: {} }),
      stored: (who, s) => api(url, 'GET', `/api/v1/conversations/${s.c.id}/messages?include_superseded=true`, { token: who.token }),
    },
  ];
  const ok = (r, what) => assert.ok(r.status === 200 || r.status === 201, `${what}: expected 200/201, got ${r.status}: ${r.text.slice(0, 300)}`);

  test('boundary, per key, /v1/chat/completions: 5 calls pass (remaining 4…0), the 6th is 429 with the envelope, Retry-After and every header', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 5 });
    await mock.reset();
    for (let i = 1; i <= 5; i++) {
      const r = await api(url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg(`call ${i}`) } });
      expectStatus(r, 200);
      // parley's limit is stricter than the provider's relayed 10000/9999, so it is the one sent.
      expectRequestHeaders(r, 5, 5 - i, `call ${i}`);
    }
    for (const extra of [6, 7]) {
      const r = await api(url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg(`call ${extra}`) } });
      expect429(r, 5, /key/i, `call ${extra}`);
      assert.equal(r.headers.get('x-ratelimit-limit-tokens'), null, 'no token headers without a token limit');
    }
    assert.equal((await mock.requests()).length, 5, 'refused calls never reach the provider');
    // X-API-Key and Bearer are the same key: refused either way.
    expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 5, /key/i);
  });

  test('sliding window: the refusal\'s reset counts from the oldest call in the window, not from the newest', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 3 });
    const ask = () => api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } });
    expectStatus(await ask(), 200);
    await sleep(2000);
    expectStatus(await ask(), 200);
    expectStatus(await ask(), 200);
    const r = await ask();
    expect429(r, 3, /key/i);
    // The oldest call is more than 2 s old: one more request is available in under 58 s.
    const reset = resetMs(r.headers.get('x-ratelimit-reset-requests'), 'x-ratelimit-reset-requests');
    assert.ok(reset <= 58000, `x-ratelimit-reset-requests ${r.headers.get('x-ratelimit-reset-requests')} after the oldest call aged 2 s`);
    assert.ok(Number(r.headers.get('retry-after')) <= 58, `Retry-After ${r.headers.get('retry-after')}`);
    assert.ok(Number(r.headers.get('x-ratelimit-reset')) <= 58, `X-RateLimit-Reset ${r.headers.get('x-ratelimit-reset')}`);
  });

  test('the same per-key limit on every AI route, streamed ones included: 2 pass, the 3rd is 429; a refused message is not stored', async () => {
    for (const route of ROUTES) {
      const k = await newKey(owner, { rate_limit_per_minute: 2 });
      const state = route.prepare ? await route.prepare(owner) : {};
      const before = route.stored ? expectStatus(await route.stored(owner, state), 200).items.length : 0;
      for (let i = 1; i <= 2; i++) {
        const r = await route.call({ apiKey: k.key }, state);
        ok(r, `${route.name} call ${i}`);
        expectRequestHeaders(r, 2, 2 - i, route.name);
      }
      await mock.reset();
      const refused = await route.call({ apiKey: k.key }, state);
      expect429(refused, 2, /key/i, route.name);
      assert.match(refused.headers.get('content-type') ?? '', /^application\/json/, `${route.name}: a refused stream is a JSON error, not SSE`);
      assert.deepEqual(await mock.requests(), [], `${route.name}: the refused call reached the provider`);
      if (route.stored) {
        const after = expectStatus(await route.stored(owner, state), 200).items.length;
        assert.equal(after, before + (route.name.includes('regenerate') ? 2 : 4), `${route.name}: the refused call left a message behind`);
      }
    }
  });

  test('WebSocket send_message over the key\'s limit: an error frame RATE_LIMIT_EXCEEDED with retry_after_ms; the socket stays open', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 2 });
    const peer = await Peer.open(`${url.replace(/^http/, 'ws')}/ws/chat/${owner.id}`, { headers: { 'X-API-Key': k.key } });
    await peer.waitFor((f) => f.type === 'connected', 'connected');
    const started = await peer.request('start_conversation', { model: 'mock-1' });
    assert.equal(started.type, 'conversation_started', JSON.stringify(started));
    const cid = started.data.conversation_id;
    for (let i = 1; i <= 2; i++) {
      const end = await peer.ask(cid, `question ${i}`);
      assert.equal(end.type, 'message_complete', JSON.stringify(end));
    }
    await mock.reset();
    const refused = await peer.ask(cid, 'one too many');
    assert.equal(refused.type, 'error', JSON.stringify(refused));
    assert.equal(refused.data.code, 'RATE_LIMIT_EXCEEDED', JSON.stringify(refused));
    assert.equal(refused.data.type, 'rate_limit_error');
    assert.equal(typeof refused.data.message, 'string');
    assert.equal(typeof refused.data.request_id, 'string');
    const wait = refused.data.retry_after_ms;
    assert.ok(Number.isInteger(wait) && wait > 0 && wait <= 60000, `retry_after_ms: ${JSON.stringify(refused.data)}`);
    assert.deepEqual(await mock.requests(), []);
    assert.equal((await peer.request('ping')).type, 'pong', 'the socket stays open');
    // The same key over HTTP is refused as well: the socket's calls are in the key's log.
    expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 2, /key/i);
    peer.close();
  });

  test('every AI route\'s answer carries X-RateLimit-* and x-ratelimit-*-{requests,tokens}; other routes do not count', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 50, tokens_per_minute: 100000 });
    let left = 50;
    const notCounted = [
      () => api(url, 'GET', '/v1/models', { token: k.key }),
      () => api(url, 'GET', '/api/v1/api-keys', { apiKey: k.key }),
      () => api(url, 'GET', `/api/v1/api-keys/${k.id}`, { apiKey: k.key }),
      () => api(url, 'GET', '/api/v1/users/me', { apiKey: k.key }),
      () => api(url, 'GET', '/health'),
    ];
    for (const route of ROUTES) {
      const state = route.prepare ? await route.prepare(owner) : {};
      const r = await route.call({ apiKey: k.key }, state);
      ok(r, route.name);
      left -= 1;
      expectRequestHeaders(r, 50, left, route.name);
      const tokensLeft = tokenHeaders(r, 100000, route.name);
      assert.ok(tokensLeft < 100000, `${route.name}: the call's tokens are in the window (${tokensLeft} left)`);
      if (route.stored) {
        // Reading the conversation is not an AI call.
        expectStatus(await api(url, 'GET', `/api/v1/conversations/${state.c.id}/messages`, { apiKey: k.key }), 200);
      }
      for (const read of notCounted) expectStatus(await read(), 200);
    }
    // The reads in between did not count: the next AI call has exactly one fewer.
    const r = await ROUTES[3].call({ apiKey: k.key }, {});
    expectRequestHeaders(r, 50, left - 1, 'after the reads');
  });

  test('a key without limits gets no *-requests or *-tokens headers of its own (the provider\'s are relayed on /v1)', async () => {
    const k = await newKey(owner);
    const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } });
    expectStatus(r, 200);
    for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens']) {
      assert.equal(r.headers.get(h), null, `${h} without a limit`);
    }
    const v1 = await api(url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg() } });
    expectStatus(v1, 200);
    assert.equal(v1.headers.get('x-ratelimit-limit-requests'), '10000', 'the provider\'s header is relayed');
    assert.equal(v1.headers.get('x-ratelimit-remaining-requests'), '9999');
  });

  test('per user: the user\'s limit counts both of their keys and their JWT calls together', async () => {
    const u = await newUser();
    const other = await newUser();
    await setUserLimits(u, { rate_limit_per_minute: 4 });
    const k1 = await newKey(u);
    const k2 = await newKey(u);
    const calls = [
      () => api(url, 'POST', '/api/v1/chat', { apiKey: k1.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }),
      () => api(url, 'POST', '/api/v1/summarize', { apiKey: k2.key, body: { model: 'gpt-3.5-turbo', text: 'something to summarize here' } }),
      () => api(url, 'POST', '/api/v1/translate', { token: u.token, body: { model: 'gpt-3.5-turbo', text: 'Hello', target_language: 'German' } }),
      () => api(url, 'POST', '/v1/chat/completions', { token: k1.key, body: { model: 'gpt-4o-mini', messages: msg() } }),
    ];
    for (let i = 0; i < calls.length; i++) {
      const r = await calls[i]();
      expectStatus(r, 200);
      expectRequestHeaders(r, 4, 3 - i, `user call ${i + 1}`);
    }
    expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k2.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 4, /user|account/i, 'key 2');
    expect429(await api(url, 'POST', '/api/v1/chat', { token: u.token, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 4, /user|account/i, 'JWT');
    expect429(await api(url, 'POST', '/v1/embeddings', { token: k1.key, body: { model: 'text-embedding-3-small', input: 'x' } }), 4, /user|account/i, 'key 1');
    // Another user is not affected.
    expectStatus(await api(url, 'POST', '/api/v1/chat', { token: other.token, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 200);
    // What is in use shows in the user's limits.
    const seen = expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`, { token: u.token }), 200);
    assert.equal(seen.rate_limit_per_minute, 4);
  });

  test('GET /api/v1/users/{id}/limits also shows what is in use now', async () => {
    const u = await newUser();
    await setUserLimits(u, { rate_limit_per_minute: 10, token_budget: 100000 });
    const before = expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`, { token: u.token }), 200);
    for (let i = 0; i < 3; i++) expectStatus(await api(url, 'POST', '/api/v1/chat', { token: u.token, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 200);
    const after = expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`, { token: u.token }), 200);
    const settings = ['rate_limit_per_minute', 'tokens_per_minute', 'token_budget', 'spend_budget_usd', 'budget_period', 'user_id'];
    const inUse = (b) => Object.fromEntries(Object.entries(b).filter(([f]) => !settings.includes(f)));
    assert.ok(Object.keys(inUse(after)).length > 0, `no in-use fields beside the settings (docs/LIMITS.md): ${JSON.stringify(after)}`);
    assert.notDeepEqual(inUse(after), inUse(before), 'three calls later, what is in use has changed');
  });

  test('all or none: a call refused by the user\'s limit leaves nothing in the key\'s log', async () => {
    const u = await newUser();
    const k = await newKey(u, { rate_limit_per_minute: 10 });
    await setUserLimits(u, { rate_limit_per_minute: 3 });
    for (let i = 0; i < 3; i++) expectStatus(await api(url, 'POST', '/api/v1/chat', { token: u.token, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 200);
    // The user has used their 3: the key's calls are refused by the user's limit …
    for (let i = 0; i < 3; i++) {
      expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 3, /user|account/i);
    }
    // … and left nothing in the key's log: with the user's limit raised the key has 9 of 10 left
    // after its first admitted call (the key is then the binding scope: 9 < 1000 - 4).
    await setUserLimits(u, { rate_limit_per_minute: 1000 });
    const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } });
    expectStatus(r, 200);
    expectRequestHeaders(r, 10, 9, 'the key after refusals by the user limit');
  });

  test('concurrent: with a limit of 20, exactly 20 of 60 simultaneous calls pass', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 20 });
    await mock.reset();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) =>
      api(url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg(`c${i}`) } })));
    const statuses = results.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 20, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 40, JSON.stringify(statuses));
    for (const r of results.filter((x) => x.status === 429)) expect429(r, 20, /key/i);
    const remaining = results.filter((r) => r.status === 200).map((r) => Number(r.headers.get('x-ratelimit-remaining'))).sort((a, b) => a - b);
    assert.deepEqual(remaining, Array.from({ length: 20 }, (_, i) => i), 'each admitted call saw its own place in the window');
    assert.equal((await mock.requests()).length, 20);
  });

  test('failed provider calls count as requests: 3 calls failing with 500 use a limit of 3', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 3 });
    await mock.reset();
    await mock.faults(Array.from({ length: 12 }, () => ({ status: 500 }))); // 1 attempt + 3 retries each
    for (let i = 1; i <= 3; i++) {
      const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } });
      assert.ok(r.status >= 500, `call ${i}: expected a provider failure, got ${r.status}: ${r.text}`);
      assert.match(r.body?.error?.code ?? '', /^OPENAI_/);
      expectRequestHeaders(r, 3, 3 - i, `failed call ${i}`);
    }
    assert.equal((await mock.requests()).length, 12, 'every fault was used');
    await mock.reset();
    expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 3, /key/i);
    expect429(await api(url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg() } }), 3, /key/i);
    assert.deepEqual(await mock.requests(), []);
  });

  test('TPM: max_tokens is reserved while the call runs and settled to the real usage after it', async () => {
    const TPM = 5000;
    const MAX = 2000;
    const k = await newKey(owner, { tokens_per_minute: TPM });
    await mock.reset();
    await mock.faults([{ delay_ms: 2000 }]); // the first call takes 2 s at the provider
    const slow = api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg('slow one'), max_tokens: MAX } });
    for (let i = 0; i < 100 && (await mock.requests()).length === 0; i++) await sleep(20);
    assert.equal((await mock.requests()).length, 1, 'the slow call reached the provider');
    // While it runs, its whole reservation (prompt estimate + max_tokens) is in the window.
    const during = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 10 } });
    expectStatus(during, 200);
    const leftDuring = tokenHeaders(during, TPM, 'during');
    assert.ok(leftDuring <= TPM - MAX, `${leftDuring} tokens left while ${MAX} are reserved`);
    const done = await slow;
    const used = expectStatus(done, 200).usage.total_tokens;
    assert.ok(used < 20, `the mock's usage is small (${used})`);
    // Settled: the 2000 reserved went back; only the real usage of the calls stays in the window.
    const after = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 10 } });
    expectStatus(after, 200);
    const leftAfter = tokenHeaders(after, TPM, 'after');
    assert.ok(leftAfter > leftDuring, `remaining tokens went back up after the call (${leftDuring} → ${leftAfter})`);
    assert.ok(leftAfter >= TPM - 100, `${leftAfter} tokens left once the reservation of ${MAX} was settled to ${used}`);
  });

  test('TPM: while two calls hold their reservations a third that does not fit is 429 naming tokens; once they settle it fits', async () => {
    const TPM = 1000;
    const MAX = 450;
    const k = await newKey(owner, { tokens_per_minute: TPM });
    await mock.reset();
    await mock.faults([{ delay_ms: 2000 }, { delay_ms: 2000 }]);
    const ask = () => api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: MAX } });
    const held = [ask(), ask()];
    for (let i = 0; i < 100 && (await mock.requests()).length < 2; i++) await sleep(20);
    assert.equal((await mock.requests()).length, 2, 'both calls reached the provider');
    const r = await ask();
    const body = expectStatus(r, 429, 'RATE_LIMIT_EXCEEDED');
    assert.equal(body.error.type, 'rate_limit_error');
    assert.match(body.error.message, /token/i, body.error.message);
    assert.match(body.error.message, new RegExp(`\\b${TPM}\\b`), body.error.message);
    const retryAfter = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${r.headers.get('retry-after')}`);
    assert.ok(tokenHeaders(r, TPM, 'refused') < MAX, 'fewer tokens left than the call reserves');
    for (const h of await Promise.all(held)) expectStatus(h, 200);
    // Settled to their real usage: the same call fits now.
    const again = await ask();
    expectStatus(again, 200);
    assert.equal((await mock.requests()).length, 3, 'the refused call never reached the provider');
  });

  test('TPM: a call whose reservation alone exceeds the limit is 422 VALIDATION_ERROR naming max_tokens', async () => {
    const k = await newKey(owner, { tokens_per_minute: 1000 });
    await mock.reset();
    const cases = [
      ['/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 5000 } }],
      ['/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg(), max_tokens: 5000 } }],
      ['/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg(), max_completion_tokens: 5000 } }],
    ];
    for (const [route, opts] of cases) {
      const r = await api(url, 'POST', route, opts);
      const body = expectStatus(r, 422, 'VALIDATION_ERROR');
      assert.equal(body.error.param, 'max_tokens', `${route} ${JSON.stringify(opts.body)}`);
      assert.equal(body.error.type, 'invalid_request_error');
      assert.equal(r.headers.get('retry-after'), null, 'waiting never helps: no Retry-After');
    }
    assert.deepEqual(await mock.requests(), []);
    // A call that fits passes, with the token headers.
    const fits = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 500 } });
    expectStatus(fits, 200);
    tokenHeaders(fits, 1000, 'fits');
  });

  test('TPM: a call that fails releases its tokens; failures in a row never exhaust a tight limit', async () => {
    const k = await newKey(owner, { tokens_per_minute: 1000 });
    await mock.reset();
    // Each call reserves > 400 tokens: without release the third would be refused.
    const CALLS = 6;
    await mock.faults(Array.from({ length: 4 * CALLS }, () => ({ status: 500 })));
    for (let i = 1; i <= CALLS; i++) {
      const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 400 } });
      assert.ok(r.status >= 500, `failed call ${i}: expected the provider's failure, got ${r.status}: ${r.text.slice(0, 300)}`);
    }
    const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 400 } });
    expectStatus(r, 200);
    assert.ok(tokenHeaders(r, 1000, 'after failures') >= 500, 'the failed calls hold no tokens');
    // The same for a stream that fails before its first token.
    await mock.faults(Array.from({ length: 4 * CALLS }, () => ({ status: 500 })));
    for (let i = 1; i <= CALLS; i++) {
      const s = await api(url, 'POST', '/api/v1/chat/stream', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 400 } });
      assert.ok(s.status >= 500, `failed stream ${i}: got ${s.status}: ${s.text.slice(0, 300)}`);
    }
    expectStatus(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 400 } }), 200);
  });

  test('token budget: calls pass while the budget holds their reservation, then 402 BUDGET_EXCEEDED (insufficient_quota)', async () => {
    const BUDGET = 60;
    const MAX = 5;
    const k = await newKey(owner, { token_budget: BUDGET, budget_period: 'day' });
    let used = 0;
    let refused = null;
    let passed = 0;
    for (let i = 0; i < 40 && !refused; i++) {
      const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: MAX } });
      if (r.status === 402) refused = r;
      else { used += expectStatus(r, 200).usage.total_tokens; passed += 1; }
    }
    assert.ok(refused, 'the budget was never reached');
    assert.ok(passed >= 2, `only ${passed} calls passed`);
    assert.ok(used <= BUDGET, `${used} tokens used of a budget of ${BUDGET}`);
    // Refused only when the next reservation (max_tokens + a small prompt estimate) no longer fits.
    assert.ok(used + MAX + 20 > BUDGET, `refused with ${used} of ${BUDGET} used`);
    const body = expectStatus(refused, 402, 'BUDGET_EXCEEDED');
    assert.equal(body.error.type, 'insufficient_quota');
    assert.match(body.error.message, /token/i, body.error.message);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 86400, `Retry-After until the UTC day ends: ${refused.headers.get('retry-after')}`);
    // Every AI route is refused now, and another key of the same user is not affected.
    await mock.reset();
    expectStatus(await api(url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: msg(), max_tokens: MAX } }), 402, 'BUDGET_EXCEEDED');
    expectStatus(await api(url, 'POST', '/api/v1/summarize', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', text: 'something to summarize' } }), 402, 'BUDGET_EXCEEDED');
    assert.deepEqual(await mock.requests(), []);
    const other = await newKey(owner);
    expectStatus(await api(url, 'POST', '/api/v1/chat', { apiKey: other.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 200);
  });

  test('token budget under concurrency: waves of simultaneous calls never overrun it by more than one reservation', async () => {
    const BUDGET = 200;
    const MAX = 5;
    const k = await newKey(owner, { token_budget: BUDGET, budget_period: 'total' });
    let used = 0;
    let refusedTotal = 0;
    for (let wave = 0; wave < 20; wave++) {
      const results = await Promise.all(Array.from({ length: 20 }, () =>
        api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg('hello world'), max_tokens: MAX } })));
      for (const r of results) {
        if (r.status === 200) used += r.body.usage.total_tokens;
        else { expectStatus(r, 402, 'BUDGET_EXCEEDED'); refusedTotal += 1; }
      }
      if (results.every((r) => r.status === 402)) break;
    }
    assert.ok(refusedTotal > 0, 'the budget was never reached');
    assert.ok(used <= BUDGET + MAX + 20, `${used} tokens used of a budget of ${BUDGET}`);
    const last = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg('hello world'), max_tokens: MAX } });
    expectStatus(last, 402, 'BUDGET_EXCEEDED');
    assert.equal(last.headers.get('retry-after'), null, 'a total budget never resets: no Retry-After');
  });

  test('spend budget with model prices: 402 BUDGET_EXCEEDED naming spend; a model without a price costs nothing', async () => {
    const BUDGET = 0.0032; // USD; a call below costs 100 × 2.5/1M + 100 × 10/1M = 0.00125
    const question = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    for (const model of ['mock-gpt', 'mock-pre-1']) {
      const k = await newKey(owner, { spend_budget_usd: BUDGET, budget_period: 'month' });
      let spent = 0;
      let refused = null;
      let passed = 0;
      for (let i = 0; i < 10 && !refused; i++) {
        const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model, messages: msg(question), max_tokens: 100 } });
        if (r.status === 402) { refused = r; break; }
        const u = expectStatus(r, 200).usage;
        assert.equal(u.prompt_tokens, 100);
        spent += (u.prompt_tokens * PRICE_IN + u.completion_tokens * PRICE_OUT) / 1e6;
        passed += 1;
      }
      assert.ok(refused, `${model}: the spend budget was never reached`);
      assert.ok(passed >= 1, `${model}: no call passed`);
      assert.ok(spent <= BUDGET + 1e-9, `${model}: spent ${spent} of ${BUDGET}`);
      const body = expectStatus(refused, 402, 'BUDGET_EXCEEDED');
      assert.equal(body.error.type, 'insufficient_quota');
      assert.match(body.error.message, /spend|\$|usd/i, body.error.message);
      const retryAfter = Number(refused.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 31 * 86400, `Retry-After until the month ends: ${refused.headers.get('retry-after')}`);
    }
    // A model with no price: the same budget never runs out.
    const free = await newKey(owner, { spend_budget_usd: BUDGET });
    for (let i = 0; i < 6; i++) {
      expectStatus(await api(url, 'POST', '/api/v1/chat', { apiKey: free.key, body: { model: 'mock-free', messages: msg(question), max_tokens: 100 } }), 200);
    }
  });

  test('user budgets: a user\'s token budget refuses their JWT calls and every key of theirs', async () => {
    const u = await newUser();
    const k = await newKey(u);
    await setUserLimits(u, { token_budget: 30, budget_period: 'total' });
    let refused = null;
    for (let i = 0; i < 20 && !refused; i++) {
      const r = await api(url, 'POST', '/api/v1/chat', { ...(i % 2 ? { apiKey: k.key } : { token: u.token }), body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 3 } });
      if (r.status === 402) refused = r;
      else expectStatus(r, 200);
    }
    assert.ok(refused, 'the user budget was never reached');
    assert.equal(expectStatus(refused, 402, 'BUDGET_EXCEEDED').error.type, 'insufficient_quota');
    expectStatus(await api(url, 'POST', '/api/v1/chat', { token: u.token, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 3 } }), 402, 'BUDGET_EXCEEDED');
    expectStatus(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg(), max_tokens: 3 } }), 402, 'BUDGET_EXCEEDED');
  });

  test('validation: negative or non-integer limits and an unknown budget_period are 422 naming the field', async () => {
    const bad = [
      ['rate_limit_per_minute', -1], ['rate_limit_per_minute', 1.5], ['rate_limit_per_minute', '10'], ['rate_limit_per_minute', true],
      ['tokens_per_minute', -5], ['tokens_per_minute', 2.5], ['tokens_per_minute', '100'],
      ['token_budget', -1], ['token_budget', 0.5], ['token_budget', 'lots'],
      ['spend_budget_usd', -0.01], ['spend_budget_usd', '5'], ['spend_budget_usd', false],
      ['budget_period', 'week'], ['budget_period', 'year'], ['budget_period', ''], ['budget_period', 5],
    ];
    const k = await newKey(owner);
    const u = await newUser();
    for (const [field, value] of bad) {
      const what = `${field} = ${JSON.stringify(value)}`;
      const post = await api(url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'bad', [field]: value } });
      assert.equal(expectStatus(post, 422, 'VALIDATION_ERROR').error.param, field, `POST ${what}`);
      const patch = await api(url, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { [field]: value } });
      assert.equal(expectStatus(patch, 422, 'VALIDATION_ERROR').error.param, field, `PATCH ${what}`);
      const put = await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { token: admin.token, body: { [field]: value } });
      assert.equal(expectStatus(put, 422, 'VALIDATION_ERROR').error.param, field, `PUT limits ${what}`);
    }
    const unknown = await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { token: admin.token, body: { requests_per_hour: 5 } });
    assert.equal(expectStatus(unknown, 422, 'VALIDATION_ERROR').error.param, 'requests_per_hour');
    // Nothing was changed by the refused writes.
    const got = expectStatus(await api(url, 'GET', `/api/v1/api-keys/${k.id}`, { token: owner.token }), 200);
    for (const f of ['rate_limit_per_minute', 'tokens_per_minute', 'token_budget', 'spend_budget_usd']) assert.equal(got[f], null, f);
    // Good values, the three periods included, are accepted.
    for (const period of ['day', 'month', 'total']) {
      expectStatus(await api(url, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { budget_period: period } }), 200);
      expectStatus(await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { token: admin.token, body: { budget_period: period } }), 200);
    }
    expectStatus(await api(url, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { spend_budget_usd: 12.5, token_budget: 1000000, tokens_per_minute: 90000 } }), 200);
  });

  test('limits are visible: on the key (POST, GET, list, PATCH) and in GET /api/v1/users/{id}/limits', async () => {
    const fields = { rate_limit_per_minute: 7, tokens_per_minute: 12000, token_budget: 500000, spend_budget_usd: 25.5, budget_period: 'day' };
    const created = await newKey(owner, fields);
    for (const [f, v] of Object.entries(fields)) assert.equal(created[f], v, `POST ${f}`);
    const got = expectStatus(await api(url, 'GET', `/api/v1/api-keys/${created.id}`, { token: owner.token }), 200);
    for (const [f, v] of Object.entries(fields)) assert.equal(got[f], v, `GET ${f}`);
    const listed = expectStatus(await api(url, 'GET', '/api/v1/api-keys', { token: owner.token }), 200).items.find((x) => x.id === created.id);
    for (const [f, v] of Object.entries(fields)) assert.equal(listed[f], v, `list ${f}`);
    // PATCH changes one field; null returns it to no limit (or the deployment's default).
    const patched = expectStatus(await api(url, 'PATCH', `/api/v1/api-keys/${created.id}`, { token: owner.token, body: { tokens_per_minute: null, budget_period: 'total' } }), 200);
    assert.equal(patched.tokens_per_minute, null);
    assert.equal(patched.budget_period, 'total');
    assert.equal(patched.rate_limit_per_minute, 7);
    // An admin may change another user's key.
    expectStatus(await api(url, 'PATCH', `/api/v1/api-keys/${created.id}`, { token: admin.token, body: { rate_limit_per_minute: 9 } }), 200);
    assert.equal(expectStatus(await api(url, 'GET', `/api/v1/api-keys/${created.id}`, { token: owner.token }), 200).rate_limit_per_minute, 9);
    // A key without budget_period reads the default, month.
    assert.equal((await newKey(owner, { token_budget: 5 })).budget_period, 'month');

    // User limits: set by the admin, read back by the user, a manager and the admin.
    const u = await newUser();
    const userLimits = { rate_limit_per_minute: 30, tokens_per_minute: 40000, token_budget: 1000000, spend_budget_usd: 100, budget_period: 'month' };
    const put = await setUserLimits(u, userLimits);
    for (const [f, v] of Object.entries(userLimits)) assert.equal(put[f], v, `PUT ${f}`);
    const mgr = await newUser();
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${mgr.id}`, { token: admin.token, body: { role: 'manager' } }), 200);
    mgr.token = (await api(url, 'POST', '/api/v1/auth/token', { form: { grant_type: 'password', username: mgr.username, password: mgr.password } })).body.access_token;
    const uKey = await newKey(u);
    for (const [who, auth] of [['the user', { token: u.token }], ['the user\'s key', { apiKey: uKey.key }], ['a manager', { token: mgr.token }], ['the admin', { token: admin.token }]]) {
      const seen = expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`, auth), 200);
      for (const [f, v] of Object.entries(userLimits)) assert.equal(seen[f], v, `${who} reads ${f}`);
    }
    // Nobody else sees them; nobody but an admin sets them.
    const stranger = await newUser();
    expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`, { token: stranger.token }), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`), 401, 'UNAUTHORIZED');
    const change = { rate_limit_per_minute: 100000 };
    expectStatus(await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { token: u.token, body: change }), 403, 'FORBIDDEN');
    expectStatus(await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { apiKey: uKey.key, body: change }), 403, 'FORBIDDEN');
    expectStatus(await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { token: mgr.token, body: change }), 403, 'FORBIDDEN');
    expectStatus(await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { token: stranger.token, body: change }), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'PUT', `/api/v1/users/${u.id}/limits`, { body: change }), 401, 'UNAUTHORIZED');
    expectStatus(await api(url, 'PUT', '/api/v1/users/NoSuchUserId0000000000/limits', { token: admin.token, body: change }), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'GET', '/api/v1/users/NoSuchUserId0000000000/limits', { token: admin.token }), 404, 'NOT_FOUND');
    assert.equal(expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/limits`, { token: admin.token }), 200).rate_limit_per_minute, 30, 'the refused writes changed nothing');
    // A user without limits reads nulls.
    const fresh = expectStatus(await api(url, 'GET', `/api/v1/users/${stranger.id}/limits`, { token: stranger.token }), 200);
    for (const f of ['rate_limit_per_minute', 'tokens_per_minute', 'token_budget', 'spend_budget_usd']) assert.ok(fresh[f] === null || fresh[f] === 0, `${f}: ${fresh[f]}`);
  });

  test('a limit of 0 or null is no limit', async () => {
    for (const value of [0, null]) {
      const k = await newKey(owner, { rate_limit_per_minute: value, tokens_per_minute: value, token_budget: value, spend_budget_usd: value });
      for (let i = 0; i < 3; i++) {
        const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'mock-gpt', messages: msg(), max_tokens: 50 } });
        expectStatus(r, 200);
        assert.equal(r.headers.get('x-ratelimit-limit-requests'), null);
        assert.equal(r.headers.get('x-ratelimit-limit-tokens'), null);
      }
    }
  });

  test('changing a key\'s limit applies to the next call', async () => {
    const k = await newKey(owner, { rate_limit_per_minute: 2 });
    for (let i = 0; i < 2; i++) expectStatus(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 200);
    expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } }), 2, /key/i);
    expectStatus(await api(url, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { rate_limit_per_minute: 4 } }), 200);
    const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: msg() } });
    expectStatus(r, 200);
    expectRequestHeaders(r, 4, 1, 'after raising the limit to 4');
  });

  test('the limiter\'s metrics: decisions by scope and outcome, no key or user ids as labels', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const lines = text.split('\n').filter((l) => l.startsWith('parley_limiter_decisions_total{'));
    assert.ok(lines.some((l) => /scope="key"/.test(l) && /decision="allowed"/.test(l)), text.slice(0, 2000));
    assert.ok(lines.some((l) => /scope="key"/.test(l) && /decision="limited"/.test(l)));
    assert.ok(lines.some((l) => /scope="user"/.test(l) && /decision="limited"/.test(l)));
    assert.ok(lines.some((l) => /decision="budget"/.test(l)));
    assert.match(text, /^parley_limiter_seconds/m);
    assert.ok(!text.includes(owner.id) && !text.includes(admin.id), 'a user id is a label');
  });
});

// ---- configuration defaults -------------------------------------------------------------------

describe(`limits configuration (${BACKEND})`, () => {
  let mock; let p; let url; let owner;
  before(async () => {
    mock = await startMock([]);
    // default_rpm from the environment, default_tpm and default_max_tokens from the file.
    const config = limitsConfig(mock.url, 'LIM_SYSTEM_KEY', `
[limits]
default_tpm = 3000
default_max_tokens = 4000
reservation_ttl_s = 120
`);
    p = await startParley({ args: ['--config', config], env: { LIM_SYSTEM_KEY: providerKey('system'), PARLEY_LIMITS_DEFAULT_RPM: '4' } });
    url = p.url;
    owner = await signUp(url, 'admin');
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  const newKey = async (fields = {}) =>
    expectStatus(await api(url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'cfg', ...fields } }), 201);

  test('limits.default_rpm (PARLEY_LIMITS_DEFAULT_RPM=4) applies to a key without its own limit', async () => {
    const k = await newKey();
    assert.equal(k.rate_limit_per_minute, null, 'the key shows its own setting, not the default');
    for (let i = 1; i <= 4; i++) {
      const r = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });
      expectStatus(r, 200);
      expectRequestHeaders(r, 4, 4 - i, `default call ${i}`);
    }
    expect429(await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } }), 4, /key/i);
    // A key's own limit wins over the default.
    const own = await newKey({ rate_limit_per_minute: 6 });
    const r = await api(url, 'POST', '/api/v1/chat', { apiKey: own.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });
    expectStatus(r, 200);
    expectRequestHeaders(r, 6, 5, 'own limit');
  });

  test('limits.default_tpm and limits.default_max_tokens: a call naming no max_tokens reserves the default, which alone exceeds the limit', async () => {
    const k = await newKey({ rate_limit_per_minute: 100 });
    const none = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(expectStatus(none, 422, 'VALIDATION_ERROR').error.param, 'max_tokens');
    const named = await api(url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100 } });
    expectStatus(named, 200);
    tokenHeaders(named, 3000, 'default tpm');
  });
});

// ---- Redis: two instances share one limit; Redis away ------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

let hasRedis = true;
try { execFileSync('redis-server', ['--version'], { stdio: 'pipe' }); } catch { hasRedis = false; }

describe(`limits over Redis (${BACKEND})`, { skip: hasRedis ? false : 'redis-server is not installed' }, () => {
  let mock; let redis; let a; let b; let owner; let config; let env;
  const dataDir = tempDir('parley-limits-shared-');
  const jwtSecret = `limits-redis-${providerKey('x')}`;
  const RESERVATION_TTL_S = 10; // the smallest allowed
  before(async () => {
    mock = await startMock([]);
    redis = await startRedis();
    config = limitsConfig(mock.url, 'LIM_SYSTEM_KEY');
    env = {
      LIM_SYSTEM_KEY: providerKey('system'), PARLEY_REDIS_URL: redis.url, PARLEY_REDIS_TIMEOUT_MS: '300',
      PARLEY_JWT_SECRET: jwtSecret, PARLEY_LIMITS_RESERVATION_TTL_S: String(RESERVATION_TTL_S),
    };
    // Two instances on one database (the same PostgreSQL database, or the same SQLite data dir).
    a = await startParley({ args: ['--config', config], env, dataDir });
    b = await startParley({ args: ['--config', config], env, dataDir, databaseUrl: a.databaseUrl });
    owner = await signUp(a.url, 'admin');
  });
  after(async () => {
    await mock?.reset(); // no call left hanging at the provider
    await a?.stop(); await b?.stop();
    await redis?.stop(); await mock?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('one key\'s limit holds across two instances sharing Redis', async () => {
    const k = expectStatus(await api(a.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'shared', rate_limit_per_minute: 4 } }), 201);
    const call = (inst) => api(inst.url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }] } });
    const order = [a, b, a, b];
    for (let i = 0; i < order.length; i++) {
      const r = await call(order[i]);
      expectStatus(r, 200);
      expectRequestHeaders(r, 4, 3 - i, `instance ${i % 2 ? 'b' : 'a'}`);
    }
    expect429(await call(a), 4, /key/i, 'a');
    expect429(await call(b), 4, /key/i, 'b');
  });

  test('concurrent calls spread over two instances: exactly the limit passes', async () => {
    const k = expectStatus(await api(a.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'shared2', rate_limit_per_minute: 10 } }), 201);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      api((i % 2 ? b : a).url, 'POST', '/v1/chat/completions', { token: k.key, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] } })));
    assert.equal(results.filter((r) => r.status === 200).length, 10, JSON.stringify(results.map((r) => r.status)));
    assert.equal(results.filter((r) => r.status === 429).length, 30);
  });

  test('one key\'s token budget holds across two instances sharing Redis, and is settled to the real usage', async () => {
    const BUDGET = 60;
    const k = expectStatus(await api(a.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'budget', token_budget: BUDGET, budget_period: 'total' } }), 201);
    let used = 0;
    let refused = null;
    for (let i = 0; i < 40 && !refused; i++) {
      const r = await api((i % 2 ? b : a).url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 } });
      if (r.status === 402) refused = r;
      else used += expectStatus(r, 200).usage.total_tokens;
      // A settlement leaves on its loop's Redis connection before the answer does (docs/LIMITS.md);
      // Redis may still read the other instance's connection first when both are ready at once,
      // hence a short pause.
      await sleep(20);
    }
    assert.ok(refused, `the budget of ${BUDGET} tokens was never reached (${used} used)`);
    expectStatus(refused, 402, 'BUDGET_EXCEEDED');
    assert.ok(used <= BUDGET && used + 25 > BUDGET, `refused with ${used} of ${BUDGET} used`);
    for (const inst of [a, b]) {
      expectStatus(await api(inst.url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 } }), 402, 'BUDGET_EXCEEDED');
    }
  });

  test('an instance that dies mid-call leaves a reservation that is released after limits.reservation_ttl_s', async () => {
    const k = expectStatus(await api(a.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'ttl', token_budget: 1000, budget_period: 'total' } }), 201);
    const ask = (inst, max) => api(inst.url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }], max_tokens: max } });
    // A third instance reserves 900 of the 1000 tokens, its provider call hangs, and it is killed.
    const doomed = await startParley({ args: ['--config', config], env, dataDir, databaseUrl: a.databaseUrl });
    await mock.reset();
    await mock.faults([{ hang: true }]);
    const pending = ask(doomed, 900).catch(() => null);
    for (let i = 0; i < 100 && (await mock.requests()).length === 0; i++) await sleep(20);
    assert.equal((await mock.requests()).length, 1, 'the call reached the provider');
    doomed.proc.kill('SIGKILL');
    await doomed.exited;
    await pending;
    await mock.reset();
    // Held: 900 reserved + 200 does not fit in 1000 …
    expectStatus(await ask(b, 200), 402, 'BUDGET_EXCEEDED');
    // … until the reservation's time to live has passed; then nothing is in flight and it fits.
    await sleep(RESERVATION_TTL_S * 1000 + 500);
    let r;
    for (let i = 0; i < 20; i++) {
      r = await ask(b, 200);
      if (r.status === 200) break;
      await sleep(250);
    }
    expectStatus(r, 200);
  });

  test('Redis stops answering: calls are refused with 503 and Retry-After: 1 (fail_closed), and admitted again once it is back', async () => {
    const k = expectStatus(await api(a.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'paused', rate_limit_per_minute: 100 } }), 201);
    const call = () => api(a.url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }] } });
    expectStatus(await call(), 200);
    redis.pause();
    try {
      const started = Date.now();
      const r = await call();
      expectStatus(r, 503, 'SERVICE_UNAVAILABLE');
      assert.equal(r.headers.get('retry-after'), '1');
      assert.ok(Date.now() - started < 5000, 'the call waited on Redis far longer than redis.timeout_ms');
    } finally {
      redis.resume();
    }
    let last;
    for (let i = 0; i < 100; i++) {
      last = await call();
      if (last.status === 200) break;
      await sleep(100);
    }
    expectStatus(last, 200);
  });
});

describe(`limits with Redis unreachable (${BACKEND})`, () => {
  let mock; let closed; let open; let closedPort;
  before(async () => {
    mock = await startMock([]);
    closedPort = await freePort(); // nothing listens there
    const config = limitsConfig(mock.url, 'LIM_SYSTEM_KEY');
    const env = { LIM_SYSTEM_KEY: providerKey('system'), PARLEY_REDIS_URL: `redis://127.0.0.1:${closedPort}/0`, PARLEY_REDIS_TIMEOUT_MS: '200' };
    [closed, open] = await Promise.all([
      startParley({ args: ['--config', config], env }),
      startParley({ args: ['--config', config], env: { ...env, PARLEY_LIMITS_REDIS_FAILURE: 'fail_open' } }),
    ]);
  });
  after(async () => { await closed?.stop(); await open?.stop(); await mock?.stop(); });

  const limitedCall = async (inst) => {
    const admin = await signUp(inst.url, 'admin');
    const k = expectStatus(await api(inst.url, 'POST', '/api/v1/api-keys', { token: admin.token, body: { name: 'r', rate_limit_per_minute: 5 } }), 201);
    return api(inst.url, 'POST', '/api/v1/chat', { apiKey: k.key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }] } });
  };

  test('fail_closed (the default): 503 SERVICE_UNAVAILABLE with Retry-After: 1; non-AI routes still work', async () => {
    await mock.reset();
    const r = await limitedCall(closed);
    expectStatus(r, 503, 'SERVICE_UNAVAILABLE');
    assert.equal(r.headers.get('retry-after'), '1');
    assert.deepEqual(await mock.requests(), []);
    expectStatus(await api(closed.url, 'GET', '/health'), 200);
    assert.match(closed.stdout + closed.stderr, /redis/i, 'the log says where the limits live');
  });

  test('fail_open: the call is admitted without limits', async () => {
    const r = await limitedCall(open);
    expectStatus(r, 200);
  });
});
