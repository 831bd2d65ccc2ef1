// The provider key vault (issue 4) through the real binary: PUT/GET/DELETE
// /api/v1/users/{user_id}/api-key with masked output only, ownership (404 for other users, manager
// reads, admin writes), Fernet tokens at rest that a standard Fernet implementation opens, deletion
// with the user, the audit trail, `parley vault import` of Python-made tokens, `parley keys rotate`,
// and a final scan of every response body and log line for the keys and any 8-character fragment
// of them. Runs on SQLite and (with PARLEY_TEST_POSTGRES_URL) PostgreSQL.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import readline from 'node:readline';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  startParley, expectErrorEnvelope, collectedLogs, BACKEND, PARLEY_BIN, MOCK_BIN, ROOT, tempDir,
} from './harness.mjs';

// ---- helpers ---------------------------------------------------------------------------------

const bodies = [];
const providerKeys = [];  // every provider key this file handles; none may ever come back
const cliOutputs = [];    // stdout + stderr of every CLI run
const uniq = () => randomBytes(4).toString('hex');
// A provider key with no fixed part longer than "sk-", so any 8-character fragment is specific.
const newProviderKey = () => {
  const k = `sk-${randomBytes(30).toString('base64url')}`;
  providerKeys.push(k);
  return k;
};

async function api(p, method, route, { token, apiKey, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (apiKey) h['X-API-Key'] = apiKey;
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`${p.url}${route}`, { method, headers: h, body: payload });
  const text = await res.text();
  bodies.push({ where: `${method} ${route} → ${res.status}`, text });
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { throw new Error(`not JSON (${res.status}) from ${method} ${route}: ${text}`); }
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

function expectStatus(r, status) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
}

function expectValidation(r, param) {
  expectStatus(r, 422);
  expectErrorEnvelope(assert, r.body, 'VALIDATION_ERROR');
  assert.equal(r.body.error.param, param, `param: ${r.text}`);
}

// The masked form shows at most the first 3 and the last 4 characters of the key, around "…".
function expectMasked(masked, key) {
  assert.equal(typeof masked, 'string');
  const parts = masked.split('…');
  assert.equal(parts.length, 2, `masked form ${masked} has one ellipsis`);
  const [head, tail] = parts;
  assert.ok(head.length <= 3 && key.startsWith(head), `masked head ${head} of ${masked}`);
  assert.ok(tail.length <= 4 && key.endsWith(tail), `masked tail ${tail} of ${masked}`);
  if (key.length >= 21) assert.equal(masked, `${key.slice(0, 3)}…${key.slice(-4)}`);
}

function sql(p, statement) {
  if (BACKEND === 'postgres') {
    return execFileSync('psql', [p.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-tAc', statement]).toString().trim();
  }
  return execFileSync('sqlite3', [path.join(p.dataDir, 'parley.db'), statement]).toString().trim();
}

// A Fernet decryption written from the spec (github.com/fernet/spec), independent of parley's.
function fernetDecrypt(keyText, token) {
  const key = Buffer.from(keyText, 'base64url');
  const data = Buffer.from(token, 'base64url');
  assert.equal(data[0], 0x80, 'Fernet version byte');
  const signed = data.subarray(0, data.length - 32);
  const mac = createHmac('sha256', key.subarray(0, 16)).update(signed).digest();
  if (!mac.equals(data.subarray(data.length - 32))) return null;
  const decipher = createDecipheriv('aes-128-cbc', key.subarray(16), signed.subarray(9, 25));
  return Buffer.concat([decipher.update(signed.subarray(25)), decipher.final()]).toString();
}

const fernetKey = () => randomBytes(32).toString('base64url').replace(/$/, '=');

// Runs the parley CLI against an instance's data (its data dir, and its database on PostgreSQL).
function cli(p, args, env = {}) {
  const r = spawnSync(PARLEY_BIN, [...args, '--data-dir', p.dataDir], {
    env: {
      PATH: process.env.PATH,
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=1',
      UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
      PARLEY_JWT_SECRET: JWT_SECRET,
      ...(p.databaseUrl ? { PARLEY_DATABASE_URL: p.databaseUrl } : {}),
      ...env,
    },
    encoding: 'utf8',
    timeout: 60000,
  });
  cliOutputs.push(`${r.stdout}\n${r.stderr}`);
  return r;
}

const JWT_SECRET = `test-jwt-secret-${randomBytes(24).toString('hex')}`;
const KEY_A = fernetKey();
const FIXTURE_OLD_KEY = JSON.parse(readFileSync(path.join(ROOT, 'tests/unit/data/vault/python_tokens.json'), 'utf8')).old_key;

async function bootstrap(p) {
  const adminPw = `pw-${randomBytes(12).toString('base64url')}`;
  expectStatus(await api(p, 'POST', '/api/v1/auth/register', {
    body: { username: 'vault_admin', email: 'vault_admin@example.com', password: adminPw },
  }), 201);
  const adminToken = (await login(p, 'vault_admin', adminPw)).access_token;
  const users = {};
  users.admin = { token: adminToken, id: (await api(p, 'GET', '/api/v1/users/me', { token: adminToken })).body.id };
  return { adminToken, users };
}

async function login(p, username, password) {
  const r = await api(p, 'POST', '/api/v1/auth/token', { body: { grant_type: 'password', username, password } });
  expectStatus(r, 200);
  return r.body;
}

async function createUser(p, adminToken, username, role = 'user') {
  const pw = `pw-${randomBytes(12).toString('base64url')}`;
  const r = await api(p, 'POST', '/api/v1/users', {
    token: adminToken, body: { username, email: `${username.toLowerCase()}@example.com`, password: pw, role },
  });
  expectStatus(r, 201);
  const session = await login(p, username, pw);
  return { id: r.body.id, username, token: session.access_token };
}

const route = (userId, query = '') => `/api/v1/users/${userId}/api-key${query}`;

// ---- the API ---------------------------------------------------------------------------------

describe(`provider key vault API (${BACKEND})`, () => {
  let p;
  let admin;
  let alice;
  let bob;
  let manager;

  before(async () => {
    p = await startParley({ env: { PARLEY_JWT_SECRET: JWT_SECRET, PARLEY_ENCRYPTION_KEYS: KEY_A } });
    const { adminToken, users } = await bootstrap(p);
    admin = users.admin;
    alice = await createUser(p, adminToken, `alice_${uniq()}`);
    bob = await createUser(p, adminToken, `bob_${uniq()}`);
    manager = await createUser(p, adminToken, `mgr_${uniq()}`, 'manager');
  });
  after(async () => { await p.cleanup(); });

  test('PUT stores the key and answers only its masked form', async () => {
    const key = newProviderKey();
    const r = await api(p, 'PUT', route(alice.id), { token: alice.token, body: { api_key: key } });
    expectStatus(r, 200);
    assert.equal(r.body.provider, 'openai', 'provider defaults to openai');
    expectMasked(r.body.api_key_masked, key);
    assert.ok(!Number.isNaN(Date.parse(r.body.updated_at)), 'updated_at is a timestamp');
    assert.ok(!('api_key' in r.body), 'the key is never returned');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.ok(!r.text.includes(key));
  });

  test('GET shows the masked form, provider and updated_at; never the key', async () => {
    const key = newProviderKey();
    expectStatus(await api(p, 'PUT', route(alice.id), { token: alice.token, body: { api_key: key } }), 200);
    const r = await api(p, 'GET', route(alice.id), { token: alice.token });
    expectStatus(r, 200);
    assert.equal(r.body.provider, 'openai');
    expectMasked(r.body.api_key_masked, key);
    assert.ok(!Number.isNaN(Date.parse(r.body.updated_at)));
    assert.ok(!r.text.includes(key));
  });

  test('the database holds a standard Fernet token under the configured key, never the key', async () => {
    const key = newProviderKey();
    expectStatus(await api(p, 'PUT', route(alice.id), { token: alice.token, body: { api_key: key } }), 200);
    const token = sql(p, `SELECT token FROM provider_keys WHERE user_id = '${alice.id}' AND provider = 'openai'`);
    assert.match(token, /^gAAAAA[A-Za-z0-9_-]+=*$/);
    assert.ok(!token.includes(key));
    assert.equal(fernetDecrypt(KEY_A, token), key);
    const all = sql(p, `SELECT user_id || provider || token || key_hint FROM provider_keys`);
    for (let i = 0; i + 8 <= key.length; i++) assert.ok(!all.includes(key.slice(i, i + 8)), 'no key fragment at rest');
  });

  test('keys are per provider; ?provider= selects one', async () => {
    const openai = newProviderKey();
    const mock = newProviderKey();
    expectStatus(await api(p, 'PUT', route(bob.id), { token: bob.token, body: { api_key: openai } }), 200);
    const put = await api(p, 'PUT', route(bob.id), { token: bob.token, body: { api_key: mock, provider: 'mock' } });
    expectStatus(put, 200);
    assert.equal(put.body.provider, 'mock');
    const gotMock = await api(p, 'GET', route(bob.id, '?provider=mock'), { token: bob.token });
    expectStatus(gotMock, 200);
    expectMasked(gotMock.body.api_key_masked, mock);
    const gotOpenai = await api(p, 'GET', route(bob.id), { token: bob.token });
    expectMasked(gotOpenai.body.api_key_masked, openai);
    expectStatus(await api(p, 'DELETE', route(bob.id, '?provider=mock'), { token: bob.token }), 204);
    expectStatus(await api(p, 'GET', route(bob.id, '?provider=mock'), { token: bob.token }), 404);
    expectStatus(await api(p, 'GET', route(bob.id), { token: bob.token }), 200);
  });

  test('input is validated, naming the field, without echoing the key', async () => {
    const cases = [
      [{}, 'api_key'],
      [{ api_key: null }, 'api_key'],
      [{ api_key: 12345678 }, 'api_key'],
      [{ api_key: 'sk-1234' }, 'api_key'],
      [{ api_key: `sk-${'x'.repeat(510)}` }, 'api_key'],
      [{ api_key: 'sk-has space-1234' }, 'api_key'],
      [{ api_key: 'sk-tab\there-1234' }, 'api_key'],
      [{ api_key: 'sk-ключ-12345678' }, 'api_key'],
      [{ api_key: 'sk-valid-key-1234', provider: 'Open AI' }, 'provider'],
      [{ api_key: 'sk-valid-key-1234', provider: '' }, 'provider'],
      [{ api_key: 'sk-valid-key-1234', provider: 'p'.repeat(65) }, 'provider'],
      [{ api_key: 'sk-valid-key-1234', verify: 'yes' }, 'verify'],
      [{ api_key: 'sk-valid-key-1234', user_id: 'someone' }, 'user_id'],
    ];
    for (const [body, param] of cases) {
      const r = await api(p, 'PUT', route(manager.id), { token: manager.token, body });
      expectValidation(r, param);
      if (typeof body.api_key === 'string' && body.api_key.length >= 8) {
        assert.ok(!r.text.includes(body.api_key.slice(3, 11)), `error echoes the key: ${r.text}`);
      }
    }
    expectValidation(await api(p, 'GET', route(manager.id, '?provider=BAD!'), { token: manager.token }), 'provider');
    expectStatus(await api(p, 'PUT', route(manager.id), { token: manager.token, body: 'not json' }), 400);
    expectStatus(await api(p, 'GET', route(manager.id), { token: manager.token }), 404);
  });

  test('another user gets 404 for GET, PUT and DELETE, and nothing changes', async () => {
    const key = newProviderKey();
    expectStatus(await api(p, 'PUT', route(alice.id), { token: alice.token, body: { api_key: key } }), 200);
    for (const [method, body] of [['GET'], ['PUT', { api_key: newProviderKey() }], ['DELETE']]) {
      const r = await api(p, method, route(alice.id), { token: bob.token, body });
      expectStatus(r, 404);
      expectErrorEnvelope(assert, r.body, 'NOT_FOUND');
    }
    // The same answer as for a user that does not exist.
    expectStatus(await api(p, 'GET', route('no-such-user'), { token: bob.token }), 404);
    const still = await api(p, 'GET', route(alice.id), { token: alice.token });
    expectMasked(still.body.api_key_masked, key);
  });

  test('a manager reads the masked form but cannot change it', async () => {
    const key = newProviderKey();
    expectStatus(await api(p, 'PUT', route(alice.id), { token: alice.token, body: { api_key: key } }), 200);
    const read = await api(p, 'GET', route(alice.id), { token: manager.token });
    expectStatus(read, 200);
    expectMasked(read.body.api_key_masked, key);
    const put = await api(p, 'PUT', route(alice.id), { token: manager.token, body: { api_key: newProviderKey() } });
    expectStatus(put, 403);
    expectErrorEnvelope(assert, put.body, 'FORBIDDEN');
    expectStatus(await api(p, 'DELETE', route(alice.id), { token: manager.token }), 403);
    expectMasked((await api(p, 'GET', route(alice.id), { token: alice.token })).body.api_key_masked, key);
  });

  test('an admin sets and deletes anyone\'s key; a missing user is 404', async () => {
    const key = newProviderKey();
    const put = await api(p, 'PUT', route(bob.id), { token: admin.token, body: { api_key: key } });
    expectStatus(put, 200);
    expectMasked((await api(p, 'GET', route(bob.id), { token: bob.token })).body.api_key_masked, key);
    expectStatus(await api(p, 'DELETE', route(bob.id), { token: admin.token }), 204);
    expectStatus(await api(p, 'GET', route(bob.id), { token: bob.token }), 404);
    expectStatus(await api(p, 'PUT', route('no-such-user'), { token: admin.token, body: { api_key: newProviderKey() } }), 404);
  });

  test('DELETE removes the key: 204, then 404', async () => {
    expectStatus(await api(p, 'PUT', route(bob.id), { token: bob.token, body: { api_key: newProviderKey() } }), 200);
    const del = await api(p, 'DELETE', route(bob.id), { token: bob.token });
    expectStatus(del, 204);
    assert.equal(del.text, '');
    const get = await api(p, 'GET', route(bob.id), { token: bob.token });
    expectStatus(get, 404);
    expectErrorEnvelope(assert, get.body, 'NOT_FOUND');
    expectStatus(await api(p, 'DELETE', route(bob.id), { token: bob.token }), 404);
    assert.equal(sql(p, `SELECT COUNT(*) FROM provider_keys WHERE user_id = '${bob.id}' AND provider = 'openai'`), '0');
  });

  test('a service key of the owner works like their access token; no credentials is 401', async () => {
    const created = await api(p, 'POST', '/api/v1/api-keys', { token: alice.token, body: { name: `vault-${uniq()}` } });
    expectStatus(created, 201);
    const key = newProviderKey();
    expectStatus(await api(p, 'PUT', route(alice.id), { apiKey: created.body.key, body: { api_key: key } }), 200);
    expectMasked((await api(p, 'GET', route(alice.id), { apiKey: created.body.key })).body.api_key_masked, key);
    expectStatus(await api(p, 'GET', route(alice.id)), 401);
    expectStatus(await api(p, 'PUT', route(alice.id), { body: { api_key: newProviderKey() } }), 401);
    expectStatus(await api(p, 'DELETE', route(alice.id)), 401);
  });

  test('verify: true stores nothing when the key cannot be verified', async () => {
    const before = sql(p, `SELECT token FROM provider_keys WHERE user_id = '${alice.id}' AND provider = 'openai'`);
    // No provider called "nosuchprovider" exists: refused (422 naming it) or, on a server without
    // a verifier, 503. Either way nothing is stored.
    const r = await api(p, 'PUT', route(alice.id), {
      token: alice.token, body: { api_key: newProviderKey(), provider: 'nosuchprovider', verify: true },
    });
    assert.ok([422, 503].includes(r.status), `status ${r.status}: ${r.text}`);
    if (r.status === 422) assert.equal(r.body.error.param, 'provider');
    assert.equal(sql(p, `SELECT COUNT(*) FROM provider_keys WHERE provider = 'nosuchprovider'`), '0');
    assert.equal(sql(p, `SELECT token FROM provider_keys WHERE user_id = '${alice.id}' AND provider = 'openai'`), before);
  });

  test('deleting a user deletes their keys', async () => {
    const gone = await createUser(p, admin.token, `gone_${uniq()}`);
    expectStatus(await api(p, 'PUT', route(gone.id), { token: gone.token, body: { api_key: newProviderKey() } }), 200);
    expectStatus(await api(p, 'PUT', route(gone.id), { token: gone.token, body: { api_key: newProviderKey(), provider: 'mock' } }), 200);
    assert.equal(sql(p, `SELECT COUNT(*) FROM provider_keys WHERE user_id = '${gone.id}'`), '2');
    expectStatus(await api(p, 'DELETE', `/api/v1/users/${gone.id}`, { token: admin.token }), 204);
    assert.equal(sql(p, `SELECT COUNT(*) FROM provider_keys WHERE user_id = '${gone.id}'`), '0');
    expectStatus(await api(p, 'GET', route(gone.id), { token: admin.token }), 404);
  });

  test('the audit log records setting and deleting a key, without the key', async () => {
    const key = newProviderKey();
    expectStatus(await api(p, 'PUT', route(bob.id), { token: bob.token, body: { api_key: key }, headers: { 'X-Request-ID': 'vault-audit-1' } }), 200);
    expectStatus(await api(p, 'DELETE', route(bob.id), { token: bob.token, headers: { 'X-Request-ID': 'vault-audit-2' } }), 204);
    const set = await api(p, 'GET', '/api/v1/audit?action=provider_key.set&limit=200', { token: admin.token });
    expectStatus(set, 200);
    const mine = set.body.items.find((e) => e.request_id === 'vault-audit-1');
    assert.ok(mine, 'provider_key.set recorded');
    assert.equal(mine.actor_user_id, bob.id);
    assert.equal(mine.target_id, bob.id);
    assert.deepEqual(mine.detail, { provider: 'openai' });
    const deleted = await api(p, 'GET', '/api/v1/audit?action=provider_key.deleted&limit=200', { token: admin.token });
    assert.ok(deleted.body.items.some((e) => e.request_id === 'vault-audit-2'), 'provider_key.deleted recorded');
    assert.ok(!set.text.includes(key) && !deleted.text.includes(key));
  });
});

// ---- verify: true, against parley-mock -----------------------------------------------------------

// Starts parley-mock accepting only `keys` on /v1/*; resolves with its base URL once it listens.
async function startMock(keys) {
  const child = spawn(MOCK_BIN, ['--listen', '127.0.0.1:0', '--require-key', keys.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`parley-mock exited with ${code}: ${stderr}`)));
  });
  const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
  assert.ok(m, `unexpected first line of parley-mock: ${line}`);
  const exited = once(child, 'exit');
  return {
    base: m[1],
    stop: async () => { child.kill('SIGTERM'); await exited; },
  };
}

describe(`verify: true against the provider (${BACKEND})`, () => {
  const goodKey = newProviderKey();
  let mock;
  let p;
  let user;

  before(async () => {
    mock = await startMock([goodKey]);
    const dir = tempDir('parley-vault-config-');
    const configFile = path.join(dir, 'parley.toml');
    writeFileSync(configFile, [
      '[[providers]]',
      'name = "mock"',
      `base_url = "${mock.base}/v1"`,
      'credentials = "byok"',
      'models = ["mock-*"]',
      '[providers.retry]',
      'max_retries = 0',
      '',
    ].join('\n'));
    p = await startParley({ args: ['--config', configFile], env: { PARLEY_JWT_SECRET: JWT_SECRET, PARLEY_ENCRYPTION_KEYS: KEY_A } });
    const { adminToken } = await bootstrap(p);
    user = await createUser(p, adminToken, `verifier_${uniq()}`);
  });
  after(async () => {
    await p?.cleanup();
    await mock?.stop();
  });

  const requests = async () => (await (await fetch(`${mock.base}/_mock/requests`)).json());
  const reset = () => fetch(`${mock.base}/_mock/reset`, { method: 'POST' });

  test('a key the provider accepts is tried once with GET /v1/models, then stored', async () => {
    await reset();
    const r = await api(p, 'PUT', route(user.id), { token: user.token, body: { api_key: goodKey, provider: 'mock', verify: true } });
    expectStatus(r, 200);
    expectMasked(r.body.api_key_masked, goodKey);
    const seen = await requests();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].method, 'GET');
    assert.equal(seen[0].path, '/v1/models');
    assert.equal(seen[0].authorization, `Bearer ${goodKey}`);
  });

  test('a key the provider refuses is 400 INVALID_API_KEY and is not stored', async () => {
    const before = sql(p, `SELECT token FROM provider_keys WHERE user_id = '${user.id}' AND provider = 'mock'`);
    const bad = newProviderKey();
    const r = await api(p, 'PUT', route(user.id), { token: user.token, body: { api_key: bad, provider: 'mock', verify: true } });
    expectStatus(r, 400);
    expectErrorEnvelope(assert, r.body, 'INVALID_API_KEY');
    assert.equal(sql(p, `SELECT token FROM provider_keys WHERE user_id = '${user.id}' AND provider = 'mock'`), before);
    expectMasked((await api(p, 'GET', route(user.id, '?provider=mock'), { token: user.token })).body.api_key_masked, goodKey);
  });

  test('without verify the key is stored without asking the provider', async () => {
    await reset();
    const unchecked = newProviderKey();
    expectStatus(await api(p, 'PUT', route(user.id), { token: user.token, body: { api_key: unchecked, provider: 'mock' } }), 200);
    assert.equal((await requests()).length, 0);
  });

  test('GET /api/v1/providers names the providers and whether they take the user\'s key; /provider-keys lists the user\'s keys', async () => {
    const r = await api(p, 'GET', '/api/v1/providers', { token: user.token });
    expectStatus(r, 200);
    const mockEntry = r.body.data.find((x) => x.name === 'mock');
    assert.deepEqual(mockEntry, { name: 'mock', credentials: 'byok', models: ['mock-*'], user_key: 'required' });
    assert.doesNotMatch(r.text, new RegExp(mock.base.replace(/[.:/]/g, '\\$&')), 'no provider address');
    expectStatus(await api(p, 'GET', '/api/v1/providers'), 401);
    const keys = await api(p, 'GET', `/api/v1/users/${user.id}/provider-keys`, { token: user.token });
    expectStatus(keys, 200);
    assert.equal(keys.headers.get('cache-control'), 'no-store');
    assert.deepEqual(keys.body.data.map((k) => k.provider), ['mock']);
    assert.match(keys.body.data[0].api_key_masked, /^sk-…/, 'masked');
    assert.ok(keys.body.data[0].api_key_masked.length < 12, 'only a few characters of the key');
  });

  test('an unknown provider is 422 naming it; nothing is stored', async () => {
    const r = await api(p, 'PUT', route(user.id), {
      token: user.token, body: { api_key: newProviderKey(), provider: 'nosuchprovider', verify: true },
    });
    expectValidation(r, 'provider');
    assert.equal(sql(p, `SELECT COUNT(*) FROM provider_keys WHERE provider = 'nosuchprovider'`), '0');
  });

  test('verification is refused before the provider sees the key when the caller may not write', async () => {
    await reset();
    const other = await api(p, 'PUT', route('someone-else'), { token: user.token, body: { api_key: newProviderKey(), provider: 'mock', verify: true } });
    expectStatus(other, 404);
    assert.equal((await requests()).length, 0);
  });
});

// ---- the command line ------------------------------------------------------------------------

describe(`vault import and key rotation (${BACKEND})`, () => {
  // Tokens that Python's cryptography.fernet made (tests/unit/data/vault/python_tokens.json).
  const fixture = JSON.parse(readFileSync(path.join(ROOT, 'tests/unit/data/vault/python_tokens.json'), 'utf8'));
  const row = (name) => fixture.rows.find((r) => r.username === name);
  for (const r of fixture.rows) providerKeys.push(r.plaintext);
  let p;
  let adminToken;
  const ids = {};

  before(async () => {
    p = await startParley({ env: { PARLEY_JWT_SECRET: JWT_SECRET, PARLEY_ENCRYPTION_KEYS: KEY_A } });
    ({ adminToken } = await bootstrap(p));
    for (const name of ['alice', 'Bob', 'carol']) ids[name] = (await createUser(p, adminToken, name)).id;
  });
  after(async () => { await p.cleanup(); });

  const tokenOf = (name, provider = 'openai') =>
    sql(p, `SELECT token FROM provider_keys WHERE user_id = '${ids[name]}' AND provider = '${provider}'`);

  test('vault import stores Python-made keys under the first key and reports every row', async () => {
    const dir = tempDir('parley-vault-import-');
    const file = path.join(dir, 'export.csv');
    writeFileSync(file, [
      'username,fernet_token',
      `alice,${row('alice').token}`,
      '',
      `"bob","${row('Bob').token}"`,
      `nobody,${row('alice').token}`,
      `carol,${row('carol').token}`,
      'broken,row,with,columns',
    ].join('\r\n') + '\r\n');
    const r = cli(p, ['vault', 'import', file], { PARLEY_ENCRYPTION_KEYS: `${KEY_A},${fixture.old_key}` });
    assert.equal(r.status, 1, `exit status (some rows failed): ${r.stderr}`);
    assert.match(r.stdout, /imported 2, skipped 2, failed 2/);
    assert.match(r.stderr, /line 3: skipped.*blank/);
    assert.match(r.stderr, /line 5: skipped \(user nobody\).*unknown user/);
    assert.match(r.stderr, /line 6: failed \(user carol\).*cannot be decrypted/);
    assert.match(r.stderr, /line 7: failed.*2 columns/);

    assert.equal(fernetDecrypt(KEY_A, tokenOf('alice')), row('alice').plaintext, 're-encrypted under the first key');
    assert.equal(fernetDecrypt(KEY_A, tokenOf('Bob')), row('Bob').plaintext);
    assert.equal(tokenOf('carol'), '');
    const masked = await api(p, 'GET', route(ids.alice), { token: adminToken });
    expectStatus(masked, 200);
    expectMasked(masked.body.api_key_masked, row('alice').plaintext);

    // Again: everything already there is skipped; --overwrite replaces.
    const again = cli(p, ['vault', 'import', file], { PARLEY_ENCRYPTION_KEYS: `${KEY_A},${fixture.old_key}` });
    assert.match(again.stdout, /imported 0, skipped 4, failed 2/);
    const other = path.join(dir, 'mock.csv');
    writeFileSync(other, `alice,${row('alice').token}\n`);
    const mock = cli(p, ['vault', 'import', other, '--provider', 'mock'], { PARLEY_ENCRYPTION_KEYS: `${KEY_A},${fixture.old_key}` });
    assert.equal(mock.status, 0, mock.stderr);
    assert.match(mock.stdout, /imported 1, skipped 0, failed 0/);
    assert.equal(fernetDecrypt(KEY_A, tokenOf('alice', 'mock')), row('alice').plaintext);
    const overwrite = cli(p, ['vault', 'import', other, '--provider', 'mock', '--overwrite'], {
      PARLEY_ENCRYPTION_KEYS: `${KEY_A},${fixture.old_key}`,
    });
    assert.match(overwrite.stdout, /imported 1, skipped 0, failed 0/);

    const missing = cli(p, ['vault', 'import', path.join(dir, 'missing.csv')], { PARLEY_ENCRYPTION_KEYS: KEY_A });
    assert.notEqual(missing.status, 0);
  });

  test('keys rotate re-encrypts under the first key, is idempotent, and reports what it cannot open', async () => {
    const KEY_B = fernetKey();
    const before = { alice: tokenOf('alice'), Bob: tokenOf('Bob') };
    const first = cli(p, ['keys', 'rotate'], { PARLEY_ENCRYPTION_KEYS: `${KEY_B},${KEY_A}` });
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /rotated 3, already current 0, failed 0/);
    for (const name of ['alice', 'Bob']) {
      assert.notEqual(tokenOf(name), before[name]);
      assert.equal(fernetDecrypt(KEY_B, tokenOf(name)), row(name).plaintext);
      assert.equal(fernetDecrypt(KEY_A, tokenOf(name)), null, 'no longer under the old key');
    }
    assert.equal(fernetDecrypt(KEY_B, tokenOf('alice', 'mock')), row('alice').plaintext);

    const second = cli(p, ['keys', 'rotate'], { PARLEY_ENCRYPTION_KEYS: `${KEY_B},${KEY_A}` });
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stdout, /rotated 0, already current 3, failed 0/);

    // With keys that open nothing: every row fails, nothing changes, exit status 1.
    const after = tokenOf('alice');
    const wrong = cli(p, ['keys', 'rotate'], { PARLEY_ENCRYPTION_KEYS: fernetKey() });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stdout, /rotated 0, already current 0, failed 3/);
    assert.match(wrong.stderr, new RegExp(`failed: user ${ids.alice}, provider openai`));
    assert.equal(tokenOf('alice'), after);
  });
});

// ---- secrets ---------------------------------------------------------------------------------

describe('vault secrets', () => {
  test('no response body, log line or CLI output contains a provider key or any 8-character fragment of one', () => {
    assert.ok(providerKeys.length > 15, 'the scan has keys to look for');
    assert.ok(bodies.length > 60, 'the scan has bodies to look in');
    const haystacks = [
      ...bodies.map((b) => [b.where, b.text]),
      ...collectedLogs.flatMap((i, n) => [[`log of instance ${n}`, i.stderr], [`stdout of instance ${n}`, i.stdout]]),
      ...cliOutputs.map((o, n) => [`CLI run ${n}`, o]),
    ];
    for (const key of providerKeys) {
      for (let i = 0; i + 8 <= key.length; i++) {
        const fragment = key.slice(i, i + 8);
        for (const [where, text] of haystacks) {
          assert.ok(!text.includes(fragment), `a fragment of a provider key appears in ${where}`);
        }
      }
    }
    for (const [label, value] of [['encryption key A', KEY_A], ['the Python service key', FIXTURE_OLD_KEY]]) {
      for (const [where, text] of haystacks) assert.ok(!text.includes(value), `${label} appears in ${where}`);
    }
    assert.ok(collectedLogs.some((i) => /provider_key\.set/.test(i.stderr)), 'no audit log lines captured');
  });
});
