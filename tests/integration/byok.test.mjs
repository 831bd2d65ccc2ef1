// The user's own provider key ("bring your own key") through every AI route, for providers with
// `credentials = "byok"` and `"byok_or_system"`, against parley-mock, which records the
// Authorization header of every call it gets. Runs on SQLite and (with PARLEY_TEST_POSTGRES_URL)
// PostgreSQL, on whichever build PARLEY_BIN names.
//
// These paths once crashed the server (a GCC 12 double free of a lambda's captures inside a
// co_await; docs/ARCHITECTURE.md, "Coroutines"): each test ends by checking the server still runs.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startParley, startMock, json, expectErrorEnvelope, mockProviderConfig, tempDir, BACKEND, collectedLogs,
} from './harness.mjs';

const SYSTEM_KEY = `sk-system-${randomBytes(12).toString('hex')}`;
const ownKey = (who) => `sk-${who}-${randomBytes(16).toString('hex')}`;
const FERNET_A = randomBytes(32).toString('base64url') + '=';
const FERNET_B = randomBytes(32).toString('base64url') + '=';

const configFile = (mockUrl, credentials) => mockProviderConfig(mockUrl, { credentials });

async function call(p, method, route, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${p.url}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* SSE */ }
  return { status: res.status, text, body: parsed, headers: res.headers };
}

async function register(p, username) {
  const password = 'correct horse battery';
  const reg = await call(p, 'POST', '/api/v1/auth/register', { body: { username, email: `${username}@example.com`, password } });
  assert.equal(reg.status, 201, reg.text);
  const res = await fetch(`${p.url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  const token = (await json(res)).access_token;
  const me = await call(p, 'GET', '/api/v1/users/me', { token });
  return { token, id: me.body.id, username };
}

const setKey = (p, user, key) => call(p, 'PUT', `/api/v1/users/${user.id}/api-key`, { token: user.token, body: { api_key: key, provider: 'mock' } });
const deleteKey = (p, user) => call(p, 'DELETE', `/api/v1/users/${user.id}/api-key?provider=mock`, { token: user.token });

// One call of each AI route; `marker` goes into the user text so the mock's record can be matched.
const routes = {
  chat: (p, u, marker) => call(p, 'POST', '/api/v1/chat', { token: u.token, body: { model: 'mock-1', messages: [{ role: 'user', content: `hello ${marker}` }] } }),
  stream: (p, u, marker) => call(p, 'POST', '/api/v1/chat/stream', { token: u.token, body: { model: 'mock-1', messages: [{ role: 'user', content: `hello ${marker}` }] } }),
  summarize: (p, u, marker) => call(p, 'POST', '/api/v1/summarize', { token: u.token, body: { model: 'mock-1', text: `a long text ${marker}` } }),
  translate: (p, u, marker) => call(p, 'POST', '/api/v1/translate', { token: u.token, body: { model: 'mock-1', text: `bonjour ${marker}`, target_language: 'en' } }),
  v1: (p, u, marker) => call(p, 'POST', '/v1/chat/completions', { token: u.token, body: { model: 'mock-1', messages: [{ role: 'user', content: `hello ${marker}` }] } }),
};

function succeeded(r, name) {
  assert.equal(r.status, 200, `${name}: ${r.text}`);
  if (name === 'stream') {
    assert.match(r.text, /"done":\s*true/, `stream did not finish: ${r.text}`);
    assert.doesNotMatch(r.text, /"error"/);
  }
}

function failedWith(r, name, status, code) {
  if (name === 'stream' && r.status === 200) {
    // A stream that had started reports the error as its one terminal event.
    assert.match(r.text, new RegExp(`"code":"${code}"`), `${name}: ${r.text}`);
    return;
  }
  assert.equal(r.status, status, `${name}: ${r.text}`);
  expectErrorEnvelope(assert, r.body, code);
}

async function alive(p) {
  const h = await fetch(`${p.url}/health`);
  assert.equal(h.status, 200);
  assert.equal(p.proc.exitCode, null, 'parley exited');
}

describe(`own provider keys, credentials = "byok" (${BACKEND})`, () => {
  let p; let mock; let alice; let bob; let dataDir; let databaseUrl; let config;
  const aliceKey = ownKey('alice');
  const bobKey = ownKey('bob');
  before(async () => {
    mock = await startMock(['--require-key', `${aliceKey},${bobKey}`]);
    config = configFile(mock.url, 'byok');
    dataDir = tempDir();
    p = await startParley({ dataDir, args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY, PARLEY_ENCRYPTION_KEYS: FERNET_A, PARLEY_AUTH_OPEN_REGISTRATION: "true" } });
    databaseUrl = p.databaseUrl;
    alice = await register(p, 'alice');
    bob = await register(p, 'bob');
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  test('without a stored key every AI route answers 400 API_KEY_NOT_CONFIGURED and nothing reaches the provider', async () => {
    await mock.reset();
    for (const [name, send] of Object.entries(routes)) {
      failedWith(await send(p, alice, 'nokey'), name, 400, 'API_KEY_NOT_CONFIGURED');
    }
    assert.equal((await mock.requests()).length, 0);
    await alive(p);
  });

  test('with a stored key every AI route reaches the provider with exactly that key', async () => {
    assert.equal((await setKey(p, alice, aliceKey)).status, 200);
    await mock.reset();
    for (const [name, send] of Object.entries(routes)) succeeded(await send(p, alice, `k-${name}`), name);
    const seen = await mock.requests();
    assert.equal(seen.length, Object.keys(routes).length);
    for (const r of seen) assert.equal(r.authorization, `Bearer ${aliceKey}`);
    await alive(p);
  });

  test('a service key of the user uses the user\'s own key on /v1', async () => {
    const created = await call(p, 'POST', '/api/v1/api-keys', { token: alice.token, body: { name: 'app' } });
    assert.equal(created.status, 201, created.text);
    await mock.reset();
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${created.body.key}` },
      body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'via service key' }] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const seen = await mock.requests();
    assert.deepEqual(seen.map((r) => r.authorization), [`Bearer ${aliceKey}`]);
  });

  test('two users with two keys, 50 concurrent interleaved requests each, never get each other\'s key', async () => {
    assert.equal((await setKey(p, bob, bobKey)).status, 200);
    await mock.reset();
    const names = Object.keys(routes);
    const jobs = [];
    for (let i = 0; i < 50; i++) {
      for (const u of [alice, bob]) {
        const name = names[i % names.length];
        jobs.push(routes[name](p, u, `${u.username}-${i}`).then((r) => succeeded(r, name)));
      }
    }
    await Promise.all(jobs);
    const seen = await mock.requests();
    assert.equal(seen.length, 100);
    for (const r of seen) {
      const owner = /alice-\d+/.test(r.body) ? 'alice' : /bob-\d+/.test(r.body) ? 'bob' : null;
      assert.ok(owner, `unattributed request: ${r.body}`);
      assert.equal(r.authorization, `Bearer ${owner === 'alice' ? aliceKey : bobKey}`, `${owner}'s request carried the wrong key`);
    }
    await alive(p);
  });

  test('retries on 429 and 5xx go out with the user\'s key, with growing delays', async () => {
    await mock.reset();
    await mock.faults([{ status: 429 }, { status: 500 }, { status: 503 }]);
    succeeded(await routes.chat(p, alice, 'retry'), 'chat');
    const seen = await mock.requests();
    assert.equal(seen.length, 4);
    for (const r of seen) assert.equal(r.authorization, `Bearer ${aliceKey}`);
    const gaps = seen.slice(1).map((r, i) => r.received_at_ms - seen[i].received_at_ms);
    // Back-off of 40 ms doubling, ±20 % jitter: at least 32, 64 and 128 ms (less 2 ms of clock
    // rounding). Each floor is above the previous delay's ceiling (48, 96), so meeting them shows
    // the delays grow; a loaded machine only adds to a gap, so only floors are checked.
    assert.ok(gaps[0] >= 30 && gaps[1] >= 62 && gaps[2] >= 126, `delays do not grow: ${gaps}`);
  });

  test('the provider refusing the key (401 or 403) is 400 INVALID_API_KEY, never retried', async () => {
    for (const status of [401, 403]) {
      await mock.reset();
      await mock.faults([{ status }]);
      failedWith(await routes.chat(p, alice, `refused-${status}`), 'chat', 400, 'INVALID_API_KEY');
      assert.equal((await mock.requests()).length, 1);
    }
    await mock.reset();
    await mock.faults([{ status: 401 }]);
    failedWith(await routes.stream(p, alice, 'refused-stream'), 'stream', 400, 'INVALID_API_KEY');
    await alive(p);
  });

  test('after the key is deleted the routes answer 400 API_KEY_NOT_CONFIGURED again', async () => {
    assert.equal((await deleteKey(p, alice)).status, 204);
    await mock.reset();
    for (const [name, send] of Object.entries(routes)) {
      failedWith(await send(p, alice, 'deleted'), name, 400, 'API_KEY_NOT_CONFIGURED');
    }
    succeeded(await routes.chat(p, bob, 'bob-still'), 'chat');
    assert.deepEqual((await mock.requests()).map((r) => r.authorization), [`Bearer ${bobKey}`]);
  });

  test('a stored key that no longer decrypts is 500 API_KEY_DECRYPTION_FAILED asking to set it again', async () => {
    await p.stop();
    // Same database, a different encryption key: bob's stored key cannot be opened.
    p = await startParley({ dataDir, databaseUrl, args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY, PARLEY_ENCRYPTION_KEYS: FERNET_B, PARLEY_AUTH_OPEN_REGISTRATION: "true" } });
    await mock.reset();
    for (const [name, send] of Object.entries(routes)) {
      const r = await send(p, bob, 'undecryptable');
      failedWith(r, name, 500, 'API_KEY_DECRYPTION_FAILED');
      if (r.body?.error) assert.match(r.body.error.message, /set your API key again/i);
    }
    assert.equal((await mock.requests()).length, 0);
    // Setting it again under the new key works.
    assert.equal((await setKey(p, bob, bobKey)).status, 200);
    succeeded(await routes.chat(p, bob, 'reset'), 'chat');
    await alive(p);
  });

  test('no log line and no response holds either key', async () => {
    for (const inst of collectedLogs) {
      for (const k of [aliceKey, bobKey]) {
        assert.ok(!inst.stderr.includes(k) && !inst.stdout.includes(k), 'a provider key reached a log');
        assert.ok(!inst.stderr.includes(k.slice(-12)), 'a key fragment reached a log');
      }
    }
  });
});

describe(`own provider keys, credentials = "byok_or_system" (${BACKEND})`, () => {
  let p; let mock; let carol; let dave;
  const carolKey = ownKey('carol');
  before(async () => {
    mock = await startMock(['--require-key', `${carolKey},${SYSTEM_KEY}`]);
    p = await startParley({ args: ['--config', configFile(mock.url, 'byok_or_system')], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY, PARLEY_AUTH_OPEN_REGISTRATION: "true" } });
    carol = await register(p, 'carol');
    dave = await register(p, 'dave');
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  test('a user with no stored key is served with the system key on every route', async () => {
    await mock.reset();
    for (const [name, send] of Object.entries(routes)) succeeded(await send(p, dave, `sys-${name}`), name);
    const seen = await mock.requests();
    assert.equal(seen.length, Object.keys(routes).length);
    for (const r of seen) assert.equal(r.authorization, `Bearer ${SYSTEM_KEY}`);
    await alive(p);
  });

  test('a user with a stored key is served with their own key, the others still with the system key', async () => {
    assert.equal((await setKey(p, carol, carolKey)).status, 200);
    await mock.reset();
    const jobs = [];
    for (let i = 0; i < 50; i++) {
      jobs.push(routes.chat(p, carol, `carol-${i}`).then((r) => succeeded(r, 'chat')));
      jobs.push(routes.v1(p, dave, `dave-${i}`).then((r) => succeeded(r, 'v1')));
    }
    await Promise.all(jobs);
    const seen = await mock.requests();
    assert.equal(seen.length, 100);
    for (const r of seen) {
      const expected = /carol-\d+/.test(r.body) ? carolKey : SYSTEM_KEY;
      assert.equal(r.authorization, `Bearer ${expected}`);
    }
  });

  test('after the key is deleted the user falls back to the system key', async () => {
    assert.equal((await deleteKey(p, carol)).status, 204);
    await mock.reset();
    succeeded(await routes.stream(p, carol, 'back-to-system'), 'stream');
    assert.deepEqual((await mock.requests()).map((r) => r.authorization), [`Bearer ${SYSTEM_KEY}`]);
    await alive(p);
  });
});

describe(`own provider keys under load (${BACKEND})`, () => {
  let p; let mock; const users = [];
  before(async () => {
    mock = await startMock(['--record-limit', '0']);
    p = await startParley({ args: ['--config', configFile(mock.url, 'byok_or_system')], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY, PARLEY_AUTH_OPEN_REGISTRATION: "true" } });
    for (let i = 0; i < 4; i++) users.push(await register(p, `load${i}`));
    assert.equal((await setKey(p, users[0], ownKey('load0'))).status, 200);
    assert.equal((await setKey(p, users[1], ownKey('load1'))).status, 200);
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  test('1,000 concurrent mixed own-key and system-key chats: every answer 2xx, the server keeps running', async () => {
    const names = Object.keys(routes);
    const statuses = new Map();
    const jobs = [];
    for (let i = 0; i < 1000; i++) {
      const u = users[i % users.length];
      const name = names[i % names.length];
      jobs.push(routes[name](p, u, `load-${i}`).then((r) => {
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        succeeded(r, name);
      }));
    }
    await Promise.all(jobs);
    assert.deepEqual([...statuses.keys()], [200]);
    await alive(p);
  });
});
