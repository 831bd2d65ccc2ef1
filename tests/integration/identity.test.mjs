// Identity and access (issue 3) through the real binary: registration, users, passwords and
// tokens, refresh rotation, failed-login limits, service API keys, preferences, the audit log, and
// a final scan of every response body and log line for secrets. Runs on SQLite and (with
// PARLEY_TEST_POSTGRES_URL) PostgreSQL.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { startParley, expectErrorEnvelope, collectedLogs, BACKEND, PARLEY_BIN, sleep } from './harness.mjs';

// ---- helpers ---------------------------------------------------------------------------------

// Every response body this file receives, and every secret it handles with the one body (by
// index) allowed to contain it (-1: none). The last test checks the two against each other.
const bodies = [];
const secrets = [];
function secret(value, label, allowedIn = -1) {
  secrets.push({ value, label, allowedIn });
  return value;
}
const uniq = () => randomBytes(4).toString('hex');
const password = (name) => secret(`pw-${name}-${randomBytes(9).toString('base64url')}`, `password of ${name}`);

async function api(p, method, route, { token, apiKey, body, form, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (apiKey) h['X-API-Key'] = apiKey;
  let payload;
  if (form) {
    h['Content-Type'] = 'application/x-www-form-urlencoded';
    payload = new URLSearchParams(form).toString();
  } else if (body !== undefined) {
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
  return { status: res.status, body: parsed, text, headers: res.headers, index: bodies.length - 1 };
}

function expectStatus(r, status) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
}

function expectValidation(r, param) {
  expectStatus(r, 422);
  expectErrorEnvelope(assert, r.body, 'VALIDATION_ERROR');
  assert.equal(r.body.error.param, param, `param: ${r.text}`);
}

async function login(p, username, pw, extra = {}) {
  const r = await api(p, 'POST', '/api/v1/auth/token', { form: { grant_type: 'password', username, password: pw }, ...extra });
  if (r.status === 200) secret(r.body.refresh_token, `refresh token of ${username}`, r.index);
  return r;
}

async function loginOk(p, username, pw) {
  const r = await login(p, username, pw);
  expectStatus(r, 200);
  return r.body;
}

// POST /api/v1/users as `adminToken`; returns {id, username, password, ...record}.
async function createUser(p, adminToken, name, fields = {}) {
  const pw = password(name);
  const r = await api(p, 'POST', '/api/v1/users', {
    token: adminToken,
    body: { username: name, email: `${name}@example.com`, password: pw, ...fields },
  });
  expectStatus(r, 201);
  return { ...r.body, password: pw };
}

async function createKey(p, auth, body = {}) {
  const r = await api(p, 'POST', '/api/v1/api-keys', { ...auth, body: { name: `key-${uniq()}`, ...body } });
  expectStatus(r, 201);
  secret(r.body.key, `service key ${r.body.id}`, r.index);
  return r.body;
}

const b64json = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function signJwt(payload, key, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${b64json(header)}.${b64json(payload)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}
function decodeJwt(token) {
  const [h, pl] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(pl, 'base64url')) };
}
const nowS = () => Math.floor(Date.now() / 1000);

function sql(p, statement) {
  if (BACKEND === 'postgres') {
    return execFileSync('psql', [p.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-tAc', statement]).toString().trim();
  }
  return execFileSync('sqlite3', [path.join(p.dataDir, 'parley.db'), statement]).toString().trim();
}

async function auditEvents(p, adminToken, query = '') {
  const r = await api(p, 'GET', `/api/v1/audit?limit=200${query}`, { token: adminToken });
  expectStatus(r, 200);
  return r.body.items;
}

const JWT_SECRET = `test-jwt-secret-${randomBytes(24).toString('hex')}`;
secret(JWT_SECRET, 'the JWT secret');

// ---- the main instance -----------------------------------------------------------------------

describe(`identity (${BACKEND})`, () => {
  let p;
  const admin = { username: 'root_admin', email: 'root@example.com' };
  let adminToken;

  before(async () => {
    p = await startParley({ env: { PARLEY_JWT_SECRET: JWT_SECRET } });
  });
  after(async () => { await p.cleanup(); });

  describe('registration', () => {
    test('the first registration becomes admin and returns no secret', async () => {
      admin.password = password(admin.username);
      const r = await api(p, 'POST', '/api/v1/auth/register', {
        body: { username: admin.username, email: 'Root@Example.com', password: admin.password, phone_number: '+14155550123' },
      });
      expectStatus(r, 201);
      assert.equal(r.body.role, 'admin');
      assert.equal(r.body.is_active, true);
      assert.equal(r.body.username, admin.username);
      assert.equal(r.body.email, 'root@example.com', 'e-mail is stored lower-cased');
      assert.equal(r.body.phone_number, '+14155550123');
      assert.match(r.body.id, /^[A-Za-z0-9_-]{16,}$/);
      assert.doesNotMatch(r.body.id, /^\d+$/, 'ids are opaque, not sequential integers');
      for (const f of ['created_at', 'updated_at']) assert.ok(!Number.isNaN(Date.parse(r.body[f])), f);
      for (const f of ['password', 'password_hash']) assert.ok(!(f in r.body), `${f} must not be returned`);
      admin.id = r.body.id;
      adminToken = (await loginOk(p, admin.username, admin.password)).access_token;
    });

    test('a later registration is refused while registration is closed', async () => {
      const r = await api(p, 'POST', '/api/v1/auth/register', {
        body: { username: 'latecomer', email: 'late@example.com', password: password('latecomer') },
      });
      expectStatus(r, 403);
      expectErrorEnvelope(assert, r.body, 'FORBIDDEN');
    });

    test('username must be 3-32 characters of [A-Za-z0-9_.-]', async () => {
      for (const username of ['ab', 'x'.repeat(33), 'has space', 'bad!name', 'ümlaut', 'semi;colon', '', '   ']) {
        const r = await api(p, 'POST', '/api/v1/auth/register', {
          body: { username, email: `u${uniq()}@example.com`, password: 'long-enough-pw' },
        });
        expectValidation(r, 'username');
      }
    });

    test('email must be a valid address', async () => {
      for (const email of ['not-an-email', 'a@b', 'a@@b.com', 'a b@c.com', '@example.com', 'a@example', 'a@.com',
        'a..b@example.com', `${'x'.repeat(250)}@e.co`]) {
        const r = await api(p, 'POST', '/api/v1/auth/register', {
          body: { username: `u_${uniq()}`, email, password: 'long-enough-pw' },
        });
        expectValidation(r, 'email');
      }
    });

    test('phone_number must be E.164', async () => {
      for (const phone_number of ['4155550123', '+0123456', '+1', '+1234567890123456', '+1 415 555 0123', '+1-415', 'abc']) {
        const r = await api(p, 'POST', '/api/v1/auth/register', {
          body: { username: `u_${uniq()}`, email: `u${uniq()}@example.com`, password: 'long-enough-pw', phone_number },
        });
        expectValidation(r, 'phone_number');
      }
    });

    test('password must be 8-1024 characters, and is never echoed', async () => {
      const short = secret('sh0rt-7', 'short password');
      const long = secret(`L${randomBytes(768).toString('hex')}`.slice(0, 1025), 'over-long password');
      for (const pw of [short, long, '']) {
        const r = await api(p, 'POST', '/api/v1/auth/register', {
          body: { username: `u_${uniq()}`, email: `u${uniq()}@example.com`, password: pw },
        });
        expectValidation(r, 'password');
      }
    });

    test('unknown and read-only fields are rejected naming the field (no mass assignment)', async () => {
      for (const [field, value] of [['role', 'admin'], ['is_active', false], ['id', 'chosen-id'], ['created_at', '2020-01-01T00:00:00Z'],
        ['password_hash', 'x'], ['nickname', 'nick']]) {
        const r = await api(p, 'POST', '/api/v1/auth/register', {
          body: { username: `u_${uniq()}`, email: `u${uniq()}@example.com`, password: 'long-enough-pw', [field]: value },
        });
        expectValidation(r, field);
      }
    });

    test('wrong types and a non-object body are rejected', async () => {
      expectValidation(await api(p, 'POST', '/api/v1/auth/register', { body: { username: 5, email: 'a@example.com', password: 'long-enough-pw' } }), 'username');
      const arr = await api(p, 'POST', '/api/v1/auth/register', { body: [] });
      expectStatus(arr, 422);
      const bad = await api(p, 'POST', '/api/v1/auth/register', { body: '{"username":' });
      expectStatus(bad, 400);
    });
  });

  describe('admin-created users and uniqueness', () => {
    test('admin creates users with a role; boundaries 3 and 32 characters and 8 and 1024 are accepted', async () => {
      const three = await createUser(p, adminToken, 'abc', { role: 'manager' });
      assert.equal(three.role, 'manager');
      const r = await api(p, 'POST', '/api/v1/users', {
        token: adminToken,
        body: { username: `A.b-_${'z'.repeat(27)}`, email: `b32@example.com`, password: secret('p'.repeat(1024), '1024 password') },
      });
      expectStatus(r, 201);
      assert.equal(r.body.username.length, 32);
      assert.equal(r.body.role, 'user', 'role defaults to user');
      const eight = await createUser(p, adminToken, 'eightpw', { password: secret('8chars!!', 'eight chars') });
      assert.equal(eight.is_active, true);
      const inactive = await createUser(p, adminToken, 'born_inactive', { is_active: false });
      assert.equal(inactive.is_active, false);
    });

    test('POST /users rejects an unknown role and read-only fields', async () => {
      expectValidation(await api(p, 'POST', '/api/v1/users', {
        token: adminToken, body: { username: 'rolebad', email: 'rolebad@example.com', password: 'long-enough-pw', role: 'root' },
      }), 'role');
      expectValidation(await api(p, 'POST', '/api/v1/users', {
        token: adminToken, body: { username: 'idbad', email: 'idbad@example.com', password: 'long-enough-pw', id: 'x' },
      }), 'id');
    });

    test('usernames are unique ignoring case, e-mail addresses too (409 naming the field)', async () => {
      const dupName = await api(p, 'POST', '/api/v1/users', {
        token: adminToken, body: { username: 'ROOT_Admin', email: 'other1@example.com', password: 'long-enough-pw' },
      });
      expectStatus(dupName, 409);
      expectErrorEnvelope(assert, dupName.body, 'CONFLICT');
      assert.equal(dupName.body.error.param, 'username');
      const dupEmail = await api(p, 'POST', '/api/v1/users', {
        token: adminToken, body: { username: 'other_two', email: 'ROOT@example.COM', password: 'long-enough-pw' },
      });
      expectStatus(dupEmail, 409);
      assert.equal(dupEmail.body.error.param, 'email');
    });
  });

  describe('tokens', () => {
    test('the token endpoint takes a form and JSON and answers an OAuth2 token response', async () => {
      const viaForm = await login(p, admin.username, admin.password);
      expectStatus(viaForm, 200);
      assert.equal(viaForm.body.token_type, 'bearer');
      assert.equal(viaForm.body.expires_in, 900);
      assert.equal(typeof viaForm.body.access_token, 'string');
      assert.match(viaForm.body.refresh_token, /^[A-Za-z0-9_-]{32,}$/);
      assert.equal(viaForm.headers.get('cache-control'), 'no-store');
      const viaJson = await api(p, 'POST', '/api/v1/auth/token', {
        body: { grant_type: 'password', username: admin.username.toUpperCase(), password: admin.password },
      });
      expectStatus(viaJson, 200);
      secret(viaJson.body.refresh_token, 'refresh token (json login)', viaJson.index);
      assert.notEqual(viaJson.body.access_token, viaForm.body.access_token);
      const me = await api(p, 'GET', '/api/v1/users/me', { token: viaJson.body.access_token });
      expectStatus(me, 200);
      assert.equal(me.body.id, admin.id);
    });

    test('wrong password and unknown user answer the same 401', async () => {
      const wrong = await login(p, admin.username, 'not-the-password');
      const unknown = await login(p, 'no_such_user', 'not-the-password');
      expectStatus(wrong, 401);
      expectStatus(unknown, 401);
      expectErrorEnvelope(assert, wrong.body, 'UNAUTHORIZED');
      assert.equal(wrong.body.error.code, unknown.body.error.code);
      assert.equal(wrong.body.error.message, unknown.body.error.message);
      assert.equal(wrong.body.error.param, unknown.body.error.param);
      assert.equal(wrong.headers.get('www-authenticate'), unknown.headers.get('www-authenticate'));
    });

    test('the token endpoint validates its input', async () => {
      expectValidation(await api(p, 'POST', '/api/v1/auth/token', {
        form: { grant_type: 'client_credentials', username: admin.username, password: admin.password },
      }), 'grant_type');
      expectValidation(await api(p, 'POST', '/api/v1/auth/token', { form: { grant_type: 'password', password: 'x' } }), 'username');
      expectValidation(await api(p, 'POST', '/api/v1/auth/token', { body: { username: 'someone' } }), 'password');
    });

    test('access token claims: sub, role, iat, exp (15 min), jti, iss, aud', async () => {
      const t1 = (await loginOk(p, admin.username, admin.password)).access_token;
      const t2 = (await loginOk(p, admin.username, admin.password)).access_token;
      const { header, payload } = decodeJwt(t1);
      assert.equal(header.alg, 'HS256');
      assert.equal(payload.sub, admin.id);
      assert.equal(payload.role, 'admin');
      assert.ok(Number.isInteger(payload.iat) && Math.abs(payload.iat - nowS()) < 60, `iat ${payload.iat}`);
      assert.equal(payload.exp - payload.iat, 900);
      assert.equal(typeof payload.jti, 'string');
      assert.ok(payload.jti.length >= 16);
      assert.notEqual(decodeJwt(t2).payload.jti, payload.jti, 'jti is unique per token');
      assert.equal(payload.iss, 'parley');
      assert.equal(payload.aud, 'parley');
      for (const k of Object.keys(payload)) assert.ok(!/pass|hash|email/i.test(k), `claim ${k}`);
    });

    test('tokens with another secret, alg none, another alg, expired, or tampered are refused', async () => {
      const base = { sub: admin.id, role: 'admin', iat: nowS(), exp: nowS() + 600, iss: 'parley', aud: 'parley' };
      const good = signJwt(base, JWT_SECRET);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: good }), 200);
      const [h, pl] = good.split('.');
      const cases = {
        'another secret': signJwt(base, 'a-completely-different-secret-of-some-length'),
        'alg none': `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(base)}.`,
        'alg none with signature': `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(base)}.${good.split('.')[2]}`,
        'alg HS512': signJwt(base, JWT_SECRET, { alg: 'HS512', typ: 'JWT' }),
        expired: signJwt({ ...base, iat: nowS() - 3600, exp: nowS() - 120 }, JWT_SECRET),
        'no exp': signJwt({ sub: admin.id, iss: 'parley', aud: 'parley' }, JWT_SECRET),
        'wrong audience': signJwt({ ...base, aud: 'someone-else' }, JWT_SECRET),
        'wrong issuer': signJwt({ ...base, iss: 'someone-else' }, JWT_SECRET),
        'payload swapped': `${h}.${b64json({ ...base, sub: 'x' })}.${good.split('.')[2]}`,
        'two segments': `${h}.${pl}`,
        garbage: 'not.a.jwt',
        'unknown subject': signJwt({ ...base, sub: 'no-such-user-id' }, JWT_SECRET),
        'not yet valid': signJwt({ ...base, nbf: nowS() + 600 }, JWT_SECRET),
        'issued in the future': signJwt({ ...base, iat: nowS() + 600 }, JWT_SECRET),
        'numeric subject': signJwt({ ...base, sub: 1 }, JWT_SECRET),
      };
      for (const [name, token] of Object.entries(cases)) {
        const r = await api(p, 'GET', '/api/v1/users/me', { token });
        assert.equal(r.status, 401, `${name}: ${r.text}`);
        expectErrorEnvelope(assert, r.body, 'UNAUTHORIZED');
        assert.equal(r.headers.get('www-authenticate'), 'Bearer', name);
      }
      // A small clock skew is tolerated (auth.jwt_leeway_s, 30 s by default).
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: signJwt({ ...base, exp: nowS() - 5 }, JWT_SECRET) }), 200);
      // The scheme name is case-insensitive.
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { headers: { Authorization: `BEARER ${good}` } }), 200);
      const basic = await api(p, 'GET', '/api/v1/users/me', { headers: { Authorization: 'Basic YWRtaW46YWRtaW4=' } });
      expectStatus(basic, 401);
      expectStatus(await api(p, 'GET', '/api/v1/users/me'), 401);
    });

    test('a token from an external auth server signed with PARLEY_JWT_SECRET is accepted', async () => {
      const token = signJwt({ sub: admin.id, exp: nowS() + 300, iss: 'parley', aud: 'parley' }, JWT_SECRET);
      const r = await api(p, 'GET', '/api/v1/users/me', { token });
      expectStatus(r, 200);
      assert.equal(r.body.id, admin.id);
      // Seed 004's auth server names the user in `user_id`.
      const legacy = signJwt({ user_id: admin.id, exp: nowS() + 300, iss: 'parley', aud: 'parley' }, JWT_SECRET);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: legacy }), 200);
      // The role claim is informative: the stored role decides.
      const bob = await createUser(p, adminToken, 'ext_bob');
      const claimsAdmin = signJwt({ sub: bob.id, role: 'admin', exp: nowS() + 300, iss: 'parley', aud: 'parley' }, JWT_SECRET);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: claimsAdmin }), 200);
      expectStatus(await api(p, 'GET', '/api/v1/users', { token: claimsAdmin }), 403);
    });

    test('refresh rotates; reusing a rotated token revokes the whole family', async () => {
      const first = await loginOk(p, admin.username, admin.password);
      const r2 = await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: first.refresh_token } });
      expectStatus(r2, 200);
      secret(r2.body.refresh_token, 'rotated refresh token', r2.index);
      assert.notEqual(r2.body.refresh_token, first.refresh_token);
      assert.equal(r2.body.token_type, 'bearer');
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: r2.body.access_token }), 200);
      // The form works too.
      const r3 = await api(p, 'POST', '/api/v1/auth/refresh', { form: { grant_type: 'refresh_token', refresh_token: r2.body.refresh_token } });
      expectStatus(r3, 200);
      secret(r3.body.refresh_token, 'rotated refresh token 2', r3.index);
      // r2 was rotated: presenting it again fails and ends the family, so r3 (the newest) fails too.
      const replay = await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: r2.body.refresh_token } });
      expectStatus(replay, 401);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: r3.body.refresh_token } }), 401);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: first.refresh_token } }), 401);
      // Another login's family is unaffected.
      const other = await loginOk(p, admin.username, admin.password);
      const ok = await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: other.refresh_token } });
      expectStatus(ok, 200);
      secret(ok.body.refresh_token, 'refresh token', ok.index);
    });

    test('refresh rejects garbage and a missing token', async () => {
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: 'rt_nonsense' } }), 401);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: 'x'.repeat(5000) } }), 401);
      expectValidation(await api(p, 'POST', '/api/v1/auth/refresh', { body: {} }), 'refresh_token');
    });

    test('logout revokes the refresh token', async () => {
      const s = await loginOk(p, admin.username, admin.password);
      const out = await api(p, 'POST', '/api/v1/auth/logout', { body: { refresh_token: s.refresh_token } });
      expectStatus(out, 204);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401);
      // Idempotent for unknown tokens.
      expectStatus(await api(p, 'POST', '/api/v1/auth/logout', { body: { refresh_token: 'rt_unknown' } }), 204);
    });
  });

  describe('users', () => {
    const made = {};
    before(async () => {
      for (const [name, email] of [['pg_alpha', 'alpha@corp.test'], ['pg_beta', 'beta@example.com'],
        ['pgXgamma', 'gamma@example.com'], ['Pg_Delta', 'delta@example.com']]) {
        made[name] = await createUser(p, adminToken, name, { email });
      }
    });

    test('GET /users/me and GET /users/{id}', async () => {
      const t = (await loginOk(p, 'pg_alpha', made.pg_alpha.password)).access_token;
      made.pg_alpha.token = t;
      const me = await api(p, 'GET', '/api/v1/users/me', { token: t });
      expectStatus(me, 200);
      assert.equal(me.body.username, 'pg_alpha');
      assert.equal(me.body.role, 'user');
      assert.ok(!('password_hash' in me.body));
      const byId = await api(p, 'GET', `/api/v1/users/${made.pg_alpha.id}`, { token: t });
      assert.deepEqual(byId.body, me.body);
      expectStatus(await api(p, 'GET', `/api/v1/users/${made.pg_beta.id}`, { token: t }), 404);
      expectStatus(await api(p, 'GET', '/api/v1/users/does-not-exist', { token: adminToken }), 404);
    });

    test('the user list paginates with limit, offset and total', async () => {
      const all = await api(p, 'GET', '/api/v1/users?limit=200', { token: adminToken });
      expectStatus(all, 200);
      const total = all.body.total;
      assert.equal(all.body.items.length, total);
      assert.ok(total >= 9, `total ${total}`);
      const seen = new Set();
      for (let offset = 0; offset < total; offset += 3) {
        const page = await api(p, 'GET', `/api/v1/users?limit=3&offset=${offset}`, { token: adminToken });
        expectStatus(page, 200);
        assert.equal(page.body.total, total);
        assert.equal(page.body.limit, 3);
        assert.equal(page.body.offset, offset);
        assert.equal(page.body.items.length, Math.min(3, total - offset));
        for (const u of page.body.items) {
          assert.ok(!seen.has(u.id), 'pages do not overlap');
          seen.add(u.id);
          assert.ok(!('password_hash' in u));
        }
      }
      assert.equal(seen.size, total);
      const beyond = await api(p, 'GET', `/api/v1/users?offset=${total + 5}`, { token: adminToken });
      assert.equal(beyond.body.items.length, 0);
      assert.equal(beyond.body.total, total);
      for (const q of ['limit=0', 'limit=201', 'limit=abc', 'offset=-1', 'limit=1.5']) {
        expectValidation(await api(p, 'GET', `/api/v1/users?${q}`, { token: adminToken }), q.split('=')[0]);
      }
    });

    test('the user list searches username and e-mail ignoring case; _ and % are literal', async () => {
      const names = async (q) => {
        const r = await api(p, 'GET', `/api/v1/users?search=${encodeURIComponent(q)}`, { token: adminToken });
        expectStatus(r, 200);
        assert.equal(r.body.total, r.body.items.length);
        return r.body.items.map((u) => u.username).sort();
      };
      assert.deepEqual(await names('PG_'), ['Pg_Delta', 'pg_alpha', 'pg_beta']);
      assert.deepEqual(await names('corp.TEST'), ['pg_alpha']);
      assert.deepEqual(await names('gamma'), ['pgXgamma']);
      assert.deepEqual(await names('%'), []);
      assert.deepEqual(await names('zzz-nobody'), []);
    });

    test('a user cannot change their own role or active state; unknown and read-only fields are 422', async () => {
      const t = made.pg_alpha.token;
      const id = made.pg_alpha.id;
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { role: 'admin' } }), 403);
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { is_active: false } }), 403);
      for (const [field, value] of [['id', 'new-id'], ['created_at', '2020-01-01T00:00:00Z'], ['updated_at', '2020-01-01T00:00:00Z'],
        ['password_hash', 'x'], ['favourite_colour', 'blue']]) {
        expectValidation(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { [field]: value } }), field);
      }
      const me = await api(p, 'GET', '/api/v1/users/me', { token: t });
      assert.equal(me.body.role, 'user');
      assert.equal(me.body.is_active, true);
      assert.equal(me.body.id, id);
    });

    test('a user changes their own e-mail, phone and username, validated', async () => {
      const t = made.pg_alpha.token;
      const id = made.pg_alpha.id;
      const r = await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { email: 'Alpha2@Corp.test', phone_number: '+442071838750' } });
      expectStatus(r, 200);
      assert.equal(r.body.email, 'alpha2@corp.test');
      assert.equal(r.body.phone_number, '+442071838750');
      assert.ok(Date.parse(r.body.updated_at) >= Date.parse(r.body.created_at));
      const cleared = await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { phone_number: null } });
      assert.equal(cleared.body.phone_number, null);
      expectValidation(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { email: 'nope' } }), 'email');
      expectValidation(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { phone_number: '12' } }), 'phone_number');
      expectValidation(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { username: 'x' } }), 'username');
      const taken = await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { username: 'PG_BETA' } });
      expectStatus(taken, 409);
      assert.equal(taken.body.error.param, 'username');
      const takenEmail = await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { email: 'BETA@example.com' } });
      expectStatus(takenEmail, 409);
      assert.equal(takenEmail.body.error.param, 'email');
      // Changing one's own password needs the current one.
      expectValidation(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: t, body: { password: 'a-brand-new-password' } }),
        'current_password');
    });

    test('changing one\'s own password needs the current one and ends other sessions', async () => {
      const u = await createUser(p, adminToken, `pwchange_${uniq()}`);
      const s = await loginOk(p, u.username, u.password);
      const next = password(`${u.username}-new`);
      const wrong = await api(p, 'PATCH', `/api/v1/users/${u.id}`, { token: s.access_token, body: { password: next, current_password: 'not-my-password' } });
      expectValidation(wrong, 'current_password');
      expectValidation(await api(p, 'PATCH', `/api/v1/users/${u.id}`, { token: s.access_token, body: { password: 'short', current_password: u.password } }), 'password');
      const ok = await api(p, 'PATCH', `/api/v1/users/${u.id}`, { token: s.access_token, body: { password: next, current_password: u.password } });
      expectStatus(ok, 200);
      expectStatus(await login(p, u.username, u.password), 401);
      expectStatus(await login(p, u.username, next), 200);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401);
      // An admin resets it without knowing it.
      const reset = password(`${u.username}-reset`);
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${u.id}`, { token: adminToken, body: { password: reset } }), 200);
      expectStatus(await login(p, u.username, reset), 200);
    });

    test('admin changes role and active state of another user; not of themselves', async () => {
      const id = made.pg_beta.id;
      const promoted = await api(p, 'PATCH', `/api/v1/users/${id}`, {
        token: adminToken, body: { role: 'manager' }, headers: { 'X-Request-ID': 'it-role-change-1' },
      });
      expectStatus(promoted, 200);
      assert.equal(promoted.body.role, 'manager');
      expectValidation(await api(p, 'PATCH', `/api/v1/users/${id}`, { token: adminToken, body: { role: 'root' } }), 'role');
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${admin.id}`, { token: adminToken, body: { role: 'user' } }), 403);
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${admin.id}`, { token: adminToken, body: { is_active: false } }), 403);
      // The new role applies to the next request with an existing token.
      const t = (await loginOk(p, 'pg_beta', made.pg_beta.password)).access_token;
      expectStatus(await api(p, 'GET', '/api/v1/users', { token: t }), 200);
      const demoted = await api(p, 'PATCH', `/api/v1/users/${id}`, { token: adminToken, body: { role: 'user' } });
      assert.equal(demoted.body.role, 'user');
      expectStatus(await api(p, 'GET', '/api/v1/users', { token: t }), 403);
    });

    test('a deactivated user is refused at once with their token and their service key', async () => {
      const u = await createUser(p, adminToken, `deact_${uniq()}`);
      const s = await loginOk(p, u.username, u.password);
      const key = await createKey(p, { token: s.access_token });
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: s.access_token }), 200);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: key.key }), 200);
      const off = await api(p, 'PATCH', `/api/v1/users/${u.id}`, {
        token: adminToken, body: { is_active: false }, headers: { 'X-Request-ID': 'it-deactivate-1' },
      });
      expectStatus(off, 200);
      assert.equal(off.body.is_active, false);
      for (const auth of [{ token: s.access_token }, { apiKey: key.key }, { token: key.key }]) {
        const r = await api(p, 'GET', '/api/v1/users/me', auth);
        expectStatus(r, 401);
        expectErrorEnvelope(assert, r.body, 'UNAUTHORIZED');
      }
      // No new session either, and refresh tokens were revoked.
      const again = await login(p, u.username, u.password);
      expectStatus(again, 401);
      assert.equal(again.body.error.message, 'Incorrect username or password');
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401);
      // Reactivation applies at once too.
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${u.id}`, { token: adminToken, body: { is_active: true } }), 200);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: s.access_token }), 200);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: key.key }), 200);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401);
    });

    test('a deleted user is refused at once; their keys, preferences and sessions are gone', async () => {
      const u = await createUser(p, adminToken, `gone_${uniq()}`);
      const s = await loginOk(p, u.username, u.password);
      const key = await createKey(p, { token: s.access_token });
      expectStatus(await api(p, 'PATCH', `/api/v1/users/${u.id}/preferences`, { token: s.access_token, body: { tts_voice: 'echo' } }), 200);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: key.key }), 200);
      const del = await api(p, 'DELETE', `/api/v1/users/${u.id}`, { token: adminToken });
      expectStatus(del, 204);
      assert.equal(del.text, '');
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: s.access_token }), 401);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: key.key }), 401);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: key.key }), 401);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401);
      expectStatus(await login(p, u.username, u.password), 401);
      expectStatus(await api(p, 'GET', `/api/v1/users/${u.id}`, { token: adminToken }), 404);
      expectStatus(await api(p, 'GET', `/api/v1/api-keys/${key.id}`, { token: adminToken }), 404);
      expectStatus(await api(p, 'GET', `/api/v1/users/${u.id}/preferences`, { token: adminToken }), 404);
      expectStatus(await api(p, 'DELETE', `/api/v1/users/${u.id}`, { token: adminToken }), 404);
      const keys = await api(p, 'GET', '/api/v1/api-keys?all=true&limit=200', { token: adminToken });
      assert.ok(!keys.body.items.some((k) => k.user_id === u.id));
      for (const table of ['api_keys', 'user_preferences', 'refresh_tokens']) {
        assert.equal(sql(p, `SELECT COUNT(*) FROM ${table} WHERE user_id = '${u.id}'`), '0', table);
      }
    });

    test('a user may delete their own account', async () => {
      const u = await createUser(p, adminToken, `selfdel_${uniq()}`);
      const s = await loginOk(p, u.username, u.password);
      expectStatus(await api(p, 'DELETE', `/api/v1/users/${u.id}`, { token: s.access_token }), 204);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: s.access_token }), 401);
    });
  });

  describe('service API keys', () => {
    let owner;
    before(async () => {
      owner = await createUser(p, adminToken, 'key_owner');
      owner.token = (await loginOk(p, owner.username, owner.password)).access_token;
    });

    test('creation returns ai_ + at least 32 base62 characters once; reads show only the prefix', async () => {
      const r = await api(p, 'POST', '/api/v1/api-keys', {
        token: owner.token, body: { name: 'ci', rate_limit_per_minute: 60 }, headers: { 'X-Request-ID': 'it-key-create-1' },
      });
      expectStatus(r, 201);
      secret(r.body.key, 'service key ci', r.index);
      assert.match(r.body.key, /^ai_[A-Za-z0-9]{32,}$/);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.equal(r.body.name, 'ci');
      assert.equal(r.body.user_id, owner.id);
      assert.equal(r.body.rate_limit_per_minute, 60);
      assert.equal(r.body.is_active, true);
      assert.equal(r.body.last_used_at, null);
      assert.ok(r.body.key.startsWith(r.body.key_prefix));
      assert.ok(r.body.key_prefix.length < r.body.key.length - 20, 'the prefix reveals only a little');
      owner.key = r.body;
      const one = await api(p, 'GET', `/api/v1/api-keys/${r.body.id}`, { token: owner.token });
      expectStatus(one, 200);
      assert.equal(one.body.key_prefix, r.body.key_prefix);
      assert.ok(!('key' in one.body));
      assert.ok(!('key_hash' in one.body));
      const list = await api(p, 'GET', '/api/v1/api-keys', { token: owner.token });
      expectStatus(list, 200);
      assert.equal(list.body.total, 1);
      assert.ok(!('key' in list.body.items[0]));
      assert.equal(list.body.items[0].id, r.body.id);
      // Two keys never collide.
      const other = await createKey(p, { token: owner.token });
      assert.notEqual(other.key, r.body.key);
      expectStatus(await api(p, 'DELETE', `/api/v1/api-keys/${other.id}`, { token: owner.token }), 204);
    });

    test('Bearer ai_… and X-API-Key both authenticate as the owner', async () => {
      const viaBearer = await api(p, 'GET', '/api/v1/users/me', { token: owner.key.key });
      expectStatus(viaBearer, 200);
      assert.equal(viaBearer.body.id, owner.id);
      const viaHeader = await api(p, 'GET', '/api/v1/users/me', { apiKey: owner.key.key });
      expectStatus(viaHeader, 200);
      assert.equal(viaHeader.body.id, owner.id);
      // The key acts with the owner's role: no admin routes.
      expectStatus(await api(p, 'GET', '/api/v1/users', { apiKey: owner.key.key }), 403);
      for (const bogus of [`ai_${'A'.repeat(40)}`, owner.key.key.slice(0, -1), `${owner.key.key}x`, 'ai_', owner.key.key_prefix]) {
        expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: bogus }), 401);
        expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: bogus }), 401);
      }
    });

    test('creation validates name, rate limit and expiry', async () => {
      const t = owner.token;
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: {} }), 'name');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: '  ' } }), 'name');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: 'x', rate_limit_per_minute: -1 } }), 'rate_limit_per_minute');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: 'x', rate_limit_per_minute: 'ten' } }), 'rate_limit_per_minute');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: 'x', expires_at: '2001-01-01T00:00:00Z' } }), 'expires_at');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: 'x', expires_at: 'tomorrow' } }), 'expires_at');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: 'x', key: `ai_${'a'.repeat(40)}` } }), 'key');
      expectValidation(await api(p, 'POST', '/api/v1/api-keys', { token: t, body: { name: 'x', is_active: false } }), 'is_active');
    });

    test('PATCH changes name, rate limit and active state; an inactive key is refused', async () => {
      const k = owner.key;
      const r = await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { name: 'renamed', rate_limit_per_minute: 120 } });
      expectStatus(r, 200);
      assert.equal(r.body.name, 'renamed');
      assert.equal(r.body.rate_limit_per_minute, 120);
      const cleared = await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { rate_limit_per_minute: null } });
      assert.equal(cleared.body.rate_limit_per_minute, null);
      const off = await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { is_active: false } });
      expectStatus(off, 200);
      assert.equal(off.body.is_active, false);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key }), 401);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: k.key }), 401);
      const on = await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { is_active: true } });
      assert.equal(on.body.is_active, true);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key }), 200);
      for (const field of ['key_prefix', 'user_id', 'expires_at', 'id', 'created_at']) {
        expectValidation(await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { [field]: 'x' } }), field);
      }
      expectValidation(await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { name: '' } }), 'name');
    });

    test('an expired key is refused; last_used_at is recorded without a write per request', async () => {
      const soon = new Date(Date.now() + 2500).toISOString();
      const expiring = await createKey(p, { token: owner.token }, { expires_at: soon });
      assert.equal(Date.parse(expiring.expires_at), Date.parse(soon));
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: expiring.key }), 200);
      const used = await createKey(p, { token: owner.token });
      for (let i = 0; i < 3; i++) expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: used.key }), 200);
      const deadline = Date.now() + 8000;
      let lastUsed = null;
      while (Date.now() < deadline) {
        const r = await api(p, 'GET', `/api/v1/api-keys/${used.id}`, { token: owner.token });
        lastUsed = r.body.last_used_at;
        if (lastUsed) break;
        await sleep(250);
      }
      assert.ok(lastUsed, 'last_used_at was not recorded within 8 s');
      assert.ok(Math.abs(Date.parse(lastUsed) - Date.now()) < 15000, lastUsed);
      const wait = Date.parse(soon) + 300 - Date.now();
      if (wait > 0) await sleep(wait);
      const r = await api(p, 'GET', '/api/v1/users/me', { apiKey: expiring.key });
      expectStatus(r, 401);
      expectErrorEnvelope(assert, r.body, 'UNAUTHORIZED');
      const shown = await api(p, 'GET', `/api/v1/api-keys/${expiring.id}`, { token: owner.token });
      assert.equal(shown.body.status, 'expired');
    });

    test('DELETE revokes at once; a revoked key cannot be re-activated', async () => {
      const k = await createKey(p, { token: owner.token });
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key }), 200);
      const del = await api(p, 'DELETE', `/api/v1/api-keys/${k.id}`, { token: owner.token, headers: { 'X-Request-ID': 'it-key-revoke-1' } });
      expectStatus(del, 204);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key }), 401);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { token: k.key }), 401);
      const shown = await api(p, 'GET', `/api/v1/api-keys/${k.id}`, { token: owner.token });
      expectStatus(shown, 200);
      assert.equal(shown.body.status, 'revoked');
      assert.equal(shown.body.is_active, false);
      assert.ok(shown.body.revoked_at);
      const reactivate = await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: owner.token, body: { is_active: true } });
      expectStatus(reactivate, 409);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key }), 401);
    });

    test('admin manages another user\'s keys; ?all=true lists every key for admin only', async () => {
      const k = await createKey(p, { token: adminToken }, { user_id: owner.id });
      assert.equal(k.user_id, owner.id);
      const viaKey = await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key });
      assert.equal(viaKey.body.id, owner.id);
      const all = await api(p, 'GET', '/api/v1/api-keys?all=true&limit=200', { token: adminToken });
      expectStatus(all, 200);
      assert.ok(all.body.items.some((x) => x.id === k.id));
      expectStatus(await api(p, 'GET', '/api/v1/api-keys?all=true', { token: owner.token }), 403);
      expectStatus(await api(p, 'PATCH', `/api/v1/api-keys/${k.id}`, { token: adminToken, body: { name: 'by-admin' } }), 200);
      expectStatus(await api(p, 'DELETE', `/api/v1/api-keys/${k.id}`, { token: adminToken }), 204);
      expectStatus(await api(p, 'GET', '/api/v1/users/me', { apiKey: k.key }), 401);
      const missing = await api(p, 'POST', '/api/v1/api-keys', { token: adminToken, body: { name: 'x', user_id: 'no-such-user' } });
      expectStatus(missing, 404);
    });
  });

  describe('preferences', () => {
    let u;
    before(async () => {
      u = await createUser(p, adminToken, 'prefs_user');
      u.token = (await loginOk(p, u.username, u.password)).access_token;
    });
    const url = () => `/api/v1/users/${u.id}/preferences`;

    test('defaults for a user who never saved any', async () => {
      const r = await api(p, 'GET', url(), { token: u.token });
      expectStatus(r, 200);
      assert.equal(r.body.user_id, u.id);
      assert.equal(r.body.language, 'en');
      assert.equal(r.body.tts_voice, 'alloy');
      assert.equal(r.body.auto_reply_enabled, false);
      assert.equal(r.body.conversation_timeout, 300);
      assert.equal(r.body.notifications, true);
      assert.equal(r.body.default_model, null);
      assert.equal(r.body.system_prompt, null);
    });

    test('PATCH merges, PUT replaces (omitted fields return to defaults)', async () => {
      let r = await api(p, 'PATCH', url(), { token: u.token, body: { tts_voice: 'nova', default_model: 'demo', system_prompt: 'Be brief.' } });
      expectStatus(r, 200);
      r = await api(p, 'PATCH', url(), { token: u.token, body: { language: 'pt-BR', auto_reply_enabled: true } });
      assert.equal(r.body.tts_voice, 'nova');
      assert.equal(r.body.language, 'pt-BR');
      assert.equal(r.body.auto_reply_enabled, true);
      assert.equal(r.body.default_model, 'demo');
      const got = await api(p, 'GET', url(), { token: u.token });
      assert.deepEqual(got.body, r.body);
      r = await api(p, 'PATCH', url(), { token: u.token, body: { default_model: null } });
      assert.equal(r.body.default_model, null);
      assert.equal(r.body.system_prompt, 'Be brief.');
      r = await api(p, 'PUT', url(), { token: u.token, body: { conversation_timeout: 600, notifications: false } });
      expectStatus(r, 200);
      assert.equal(r.body.conversation_timeout, 600);
      assert.equal(r.body.notifications, false);
      assert.equal(r.body.tts_voice, 'alloy');
      assert.equal(r.body.language, 'en');
      assert.equal(r.body.auto_reply_enabled, false);
      assert.equal(r.body.system_prompt, null);
      assert.deepEqual((await api(p, 'GET', url(), { token: u.token })).body, r.body);
    });

    test('validation: tts_voice, conversation_timeout 30-86400, types and unknown fields', async () => {
      for (const voice of ['alloy', 'echo', 'fable', 'onyx', 'nova', 'shimmer']) {
        expectStatus(await api(p, 'PATCH', url(), { token: u.token, body: { tts_voice: voice } }), 200);
      }
      for (const t of [30, 86400]) {
        const r = await api(p, 'PATCH', url(), { token: u.token, body: { conversation_timeout: t } });
        expectStatus(r, 200);
        assert.equal(r.body.conversation_timeout, t);
      }
      const bad = [
        ['tts_voice', 'robot'], ['tts_voice', 'ALLOY'], ['tts_voice', 7],
        ['conversation_timeout', 29], ['conversation_timeout', 86401], ['conversation_timeout', '300'], ['conversation_timeout', 45.5],
        ['auto_reply_enabled', 'yes'], ['notifications', 1], ['language', 'x'], ['language', 'en us!'],
        ['user_id', 'someone'], ['updated_at', 'x'], ['theme', 'dark'],
      ];
      for (const method of ['PATCH', 'PUT']) {
        for (const [field, value] of bad) {
          expectValidation(await api(p, method, url(), { token: u.token, body: { [field]: value } }), field);
        }
      }
      const after = await api(p, 'GET', url(), { token: u.token });
      assert.equal(after.body.conversation_timeout, 86400, 'failed writes changed nothing');
    });
  });

  describe('audit', () => {
    test('admin reads login, key, role and activity events with actor, target and request id', async () => {
      // A login success and a failure with known request ids.
      const ok = await login(p, admin.username, admin.password, { headers: { 'X-Request-ID': 'it-login-ok-1' } });
      expectStatus(ok, 200);
      expectStatus(await login(p, admin.username, 'wrong-password', { headers: { 'X-Request-ID': 'it-login-bad-1' } }), 401);
      const byRequest = async (id, action) => {
        const events = await auditEvents(p, adminToken, `&action=${action}`);
        const e = events.find((x) => x.request_id === id);
        assert.ok(e, `no ${action} event with request id ${id} in ${JSON.stringify(events.map((x) => x.request_id))}`);
        assert.equal(e.action, action);
        assert.ok(!Number.isNaN(Date.parse(e.created_at)));
        assert.equal(typeof e.id, 'string');
        return e;
      };
      const loginOkEvent = await byRequest('it-login-ok-1', 'auth.login.succeeded');
      assert.equal(loginOkEvent.actor_user_id, admin.id);
      assert.equal(loginOkEvent.target_id, admin.id);
      assert.equal(loginOkEvent.ip, '127.0.0.1');
      const failed = await byRequest('it-login-bad-1', 'auth.login.failed');
      assert.equal(failed.target_id, admin.id);
      const created = await byRequest('it-key-create-1', 'api_key.created');
      assert.ok(created.actor_user_id);
      assert.equal(created.target_type, 'api_key');
      assert.ok(created.target_id);
      const revoked = await byRequest('it-key-revoke-1', 'api_key.revoked');
      assert.equal(revoked.target_type, 'api_key');
      const role = await byRequest('it-role-change-1', 'user.role_changed');
      assert.equal(role.actor_user_id, admin.id);
      assert.equal(role.target_type, 'user');
      assert.deepEqual(role.detail, { from: 'user', to: 'manager' });
      const deact = await byRequest('it-deactivate-1', 'user.deactivated');
      assert.equal(deact.actor_user_id, admin.id);
      assert.ok(deact.target_id && deact.target_id !== admin.id);
      assert.ok((await auditEvents(p, adminToken, '&action=user.activated')).length >= 1);
      const deleted = await auditEvents(p, adminToken, '&action=user.deleted');
      assert.ok(deleted.length >= 2);
      assert.ok(deleted.every((e) => e.target_type === 'user' && e.target_id));
      // Newest first.
      const events = await auditEvents(p, adminToken);
      const times = events.map((e) => Date.parse(e.created_at));
      for (let i = 1; i < times.length; i++) assert.ok(times[i - 1] >= times[i], 'newest first');
    });

    test('the audit log paginates and filters', async () => {
      const all = await api(p, 'GET', '/api/v1/audit?limit=1', { token: adminToken });
      expectStatus(all, 200);
      assert.equal(all.body.items.length, 1);
      assert.ok(all.body.total > 10);
      const second = await api(p, 'GET', '/api/v1/audit?limit=1&offset=1', { token: adminToken });
      assert.notEqual(second.body.items[0].id, all.body.items[0].id);
      const filtered = await auditEvents(p, adminToken, '&action=api_key.revoked');
      assert.ok(filtered.length >= 1);
      assert.ok(filtered.every((e) => e.action === 'api_key.revoked'));
      const byActor = await auditEvents(p, adminToken, `&actor_user_id=${admin.id}`);
      assert.ok(byActor.length >= 1);
      assert.ok(byActor.every((e) => e.actor_user_id === admin.id));
      // A time range: since is inclusive, until exclusive.
      const newest = all.body.items[0];
      const at = Date.parse(newest.created_at);
      const since = await auditEvents(p, adminToken, `&since=${new Date(at).toISOString()}`);
      assert.ok(since.some((e) => e.id === newest.id));
      assert.ok(since.every((e) => Date.parse(e.created_at) >= at));
      const until = await auditEvents(p, adminToken, `&until=${new Date(at).toISOString()}`);
      assert.ok(until.every((e) => Date.parse(e.created_at) < at));
      assert.equal(until.length + since.length, Math.min(200, all.body.total));
      expectValidation(await api(p, 'GET', '/api/v1/audit?since=yesterday', { token: adminToken }), 'since');
    });

    test('admins and managers read the audit log; users do not', async () => {
      const u = await createUser(p, adminToken, 'audit_peeker', { role: 'manager' });
      const t = (await loginOk(p, u.username, u.password)).access_token;
      expectStatus(await api(p, 'GET', '/api/v1/audit', { token: t }), 200);
      const plain = await createUser(p, adminToken, 'audit_user', { role: 'user' });
      const r = await api(p, 'GET', '/api/v1/audit', { token: (await loginOk(p, plain.username, plain.password)).access_token });
      expectStatus(r, 403);
      expectErrorEnvelope(assert, r.body, 'FORBIDDEN');
      expectStatus(await api(p, 'GET', '/api/v1/audit'), 401);
    });
  });
});

// ---- open registration -----------------------------------------------------------------------

describe(`open registration (${BACKEND})`, () => {
  test('with auth.open_registration the first user is admin and later ones are users', async () => {
    const p = await startParley({ env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' } });
    try {
      const pw = {};
      const reg = (username) => api(p, 'POST', '/api/v1/auth/register', {
        body: { username, email: `${username}-${uniq()}@example.com`, password: (pw[username] = password(username)) },
      });
      const first = await reg('first_one');
      expectStatus(first, 201);
      assert.equal(first.body.role, 'admin');
      const second = await reg('second_one');
      expectStatus(second, 201);
      assert.equal(second.body.role, 'user');
      const dup = await reg('SECOND_one');
      expectStatus(dup, 409);
      assert.equal(dup.body.error.param, 'username');
      const sneaky = await api(p, 'POST', '/api/v1/auth/register', {
        body: { username: 'sneaky', email: 'sneaky@example.com', password: 'long-enough-pw', role: 'admin' },
      });
      expectValidation(sneaky, 'role');
      const list = await api(p, 'GET', '/api/v1/users', { token: (await loginOk(p, 'first_one', pw.first_one)).access_token });
      assert.equal(list.body.total, 2);
    } finally {
      await p.cleanup();
    }
  });
});

describe(`browser sessions (${BACKEND})`, () => {
  // The console's mode: X-Parley-Session: cookie puts the refresh token in an HttpOnly cookie.
  const cookieOf = (r) => {
    const c = r.headers.get('set-cookie');
    return c ? c.match(/parley_refresh=([^;]*)/)?.[1] ?? null : null;
  };

  test('GET /api/v1/auth/options says who may register', async () => {
    const open = await startParley({ env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' } });
    const closed = await startParley();
    try {
      assert.deepEqual((await api(open, 'GET', '/api/v1/auth/options')).body, { registration: 'open' });
      assert.deepEqual((await api(closed, 'GET', '/api/v1/auth/options')).body, { registration: 'first_user' });
      const pw = password('opts_admin');
      expectStatus(await api(closed, 'POST', '/api/v1/auth/register', {
        body: { username: 'opts_admin', email: 'opts_admin@example.com', password: pw },
      }), 201);
      assert.deepEqual((await api(closed, 'GET', '/api/v1/auth/options')).body, { registration: 'closed' });
    } finally {
      await open.cleanup();
      await closed.cleanup();
    }
  });

  test('the refresh token travels only in an HttpOnly SameSite=Strict cookie scoped to /auth/refresh', async () => {
    const p = await startParley();
    try {
      const pw = password('cookie_admin');
      expectStatus(await api(p, 'POST', '/api/v1/auth/register', {
        body: { username: 'cookie_admin', email: 'cookie_admin@example.com', password: pw },
      }), 201);
      const session = { 'X-Parley-Session': 'cookie' };
      const t = await login(p, 'cookie_admin', pw, { headers: { ...session, Origin: p.url } });
      expectStatus(t, 200);
      assert.equal(t.body.refresh_token, undefined, 'no refresh token in the body');
      assert.equal(typeof t.body.access_token, 'string');
      const setCookie = t.headers.get('set-cookie');
      assert.match(setCookie, /; Path=\/api\/v1\/auth\/refresh; Max-Age=2592000; HttpOnly; SameSite=Strict$/);
      const rt = secret(cookieOf(t), 'refresh token in a cookie');
      assert.match(rt, /^rt_/);

      // Secure when the page came over HTTPS (its Origin) or a proxy says so.
      const viaTls = await login(p, 'cookie_admin', pw, { headers: { ...session, 'X-Forwarded-Proto': 'https' } });
      assert.match(viaTls.headers.get('set-cookie'), /; Secure$/);
      secret(cookieOf(viaTls), 'refresh token in a cookie (tls)');

      // Refresh: the cookie is read only with the session header, rotated, and a replay is refused.
      const noHeader = await api(p, 'POST', '/api/v1/auth/refresh', { headers: { Cookie: `parley_refresh=${rt}` } });
      assert.ok(noHeader.status === 400 || noHeader.status === 422, noHeader.text);
      const noCookie = await api(p, 'POST', '/api/v1/auth/refresh', { headers: session });
      expectStatus(noCookie, 401);
      const crossSite = await api(p, 'POST', '/api/v1/auth/refresh', {
        headers: { ...session, Cookie: `parley_refresh=${rt}`, Origin: 'http://evil.example' },
      });
      expectStatus(crossSite, 403);
      const fetchSite = await api(p, 'POST', '/api/v1/auth/refresh', {
        headers: { ...session, Cookie: `parley_refresh=${rt}`, 'Sec-Fetch-Site': 'same-site' },
      });
      expectStatus(fetchSite, 403);
      const r1 = await api(p, 'POST', '/api/v1/auth/refresh', {
        headers: { ...session, Cookie: `other=1; parley_refresh=${rt}; more=2`, 'Sec-Fetch-Site': 'same-origin' },
      });
      expectStatus(r1, 200);
      assert.equal(r1.body.refresh_token, undefined);
      const rt2 = secret(cookieOf(r1), 'rotated refresh token in a cookie');
      assert.notEqual(rt2, rt);
      const replay = await api(p, 'POST', '/api/v1/auth/refresh', { headers: { ...session, Cookie: `parley_refresh=${rt}` } });
      expectStatus(replay, 401);
      assert.match(replay.headers.get('set-cookie'), /parley_refresh=; Path=\/api\/v1\/auth\/refresh; Max-Age=0/);

      // Sign out: DELETE revokes the family and clears the cookie; idempotent without one.
      const t2 = await login(p, 'cookie_admin', pw, { headers: session });
      const rt3 = secret(cookieOf(t2), 'refresh token in a cookie (2)');
      const out = await api(p, 'DELETE', '/api/v1/auth/refresh', { headers: { ...session, Cookie: `parley_refresh=${rt3}` } });
      expectStatus(out, 204);
      assert.match(out.headers.get('set-cookie'), /Max-Age=0/);
      expectStatus(await api(p, 'POST', '/api/v1/auth/refresh', { headers: { ...session, Cookie: `parley_refresh=${rt3}` } }), 401);
      expectStatus(await api(p, 'DELETE', '/api/v1/auth/refresh', { headers: session }), 204);
      expectStatus(await api(p, 'DELETE', '/api/v1/auth/refresh', {}), 400);
      // API clients keep the JSON form.
      const plain = await login(p, 'cookie_admin', pw);
      expectStatus(plain, 200);
      assert.equal(typeof plain.body.refresh_token, 'string');
      assert.equal(plain.headers.get('set-cookie'), null);
    } finally {
      await p.cleanup();
    }
  });
});

describe(`closed registration under concurrency (${BACKEND})`, () => {
  test('concurrent first registrations create exactly one account, the admin', async () => {
    const p = await startParley();
    try {
      const pw = {};
      const names = ['race_a', 'race_b', 'race_c', 'race_d'];
      const results = await Promise.all(names.map((username) => api(p, 'POST', '/api/v1/auth/register', {
        body: { username, email: `${username}@example.com`, password: (pw[username] = password(username)) },
      })));
      const created = results.filter((r) => r.status === 201);
      assert.equal(created.length, 1, results.map((r) => `${r.status} ${r.text}`).join('\n'));
      assert.equal(created[0].body.role, 'admin');
      for (const r of results.filter((x) => x.status !== 201)) expectStatus(r, 403);
      const token = (await loginOk(p, created[0].body.username, pw[created[0].body.username])).access_token;
      const list = await api(p, 'GET', '/api/v1/users', { token });
      assert.equal(list.body.total, 1);
    } finally {
      await p.cleanup();
    }
  });
});

// ---- bootstrap from the command line --------------------------------------------------------

describe(`parley admin create (${BACKEND})`, () => {
  test('creates the first admin from stdin or with a generated password; registration is then closed', async () => {
    const first = await startParley();
    await first.stop();
    const env = { PATH: process.env.PATH, ...(first.databaseUrl ? { PARLEY_DATABASE_URL: first.databaseUrl } : {}) };
    const run = (args, input) => spawnSync(PARLEY_BIN, ['admin', 'create', '--data-dir', first.dataDir, ...args],
      { input, encoding: 'utf8', env });
    const typed = password('ops_admin');
    const a = run(['--username', 'ops_admin', '--email', 'ops@example.com'], `${typed}\n`);
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stdout, /created admin ops_admin \(id [A-Za-z0-9_-]+\)/);
    assert.ok(!a.stdout.includes(typed) && !a.stderr.includes(typed), 'a typed password is not echoed');
    const g = run(['--username', 'ops_helper', '--email', 'helper@example.com', '--role', 'manager', '--generate-password'], '');
    assert.equal(g.status, 0, g.stderr);
    const generated = g.stdout.match(/password: (\S+)/)?.[1];
    assert.ok(generated && generated.length >= 16, g.stdout);
    const bad = run(['--username', 'x', '--email', 'x@example.com'], 'long-enough-pw\n');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /username/);
    const dup = run(['--username', 'OPS_ADMIN', '--email', 'other@example.com'], 'long-enough-pw\n');
    assert.notEqual(dup.status, 0);
    const p = await startParley({ dataDir: first.dataDir, databaseUrl: first.databaseUrl });
    try {
      const s = await loginOk(p, 'ops_admin', typed);
      const me = await api(p, 'GET', '/api/v1/users/me', { token: s.access_token });
      assert.equal(me.body.role, 'admin');
      const helper = await loginOk(p, 'ops_helper', secret(generated, 'generated password'));
      assert.equal(decodeJwt(helper.access_token).payload.role, 'manager');
      expectStatus(await api(p, 'POST', '/api/v1/auth/register', {
        body: { username: 'too_late', email: 'late@example.com', password: 'long-enough-pw' },
      }), 403);
    } finally {
      await p.cleanup();
    }
  });
});

// ---- two instances on one database -----------------------------------------------------------

describe(`changes made on another instance (${BACKEND})`, () => {
  test('deactivation, role changes and key revocation apply within auth.principal_cache_ttl_ms', async () => {
    const env = { PARLEY_JWT_SECRET: JWT_SECRET, PARLEY_AUTH_PRINCIPAL_CACHE_TTL_MS: '1000' };
    const a = await startParley({ env });
    const b = await startParley({ env, dataDir: a.dataDir, databaseUrl: a.databaseUrl });
    try {
      const apw = password('twin_admin');
      expectStatus(await api(a, 'POST', '/api/v1/auth/register', { body: { username: 'twin_admin', email: 'twin@example.com', password: apw } }), 201);
      const adminTok = (await loginOk(a, 'twin_admin', apw)).access_token;
      const u = await createUser(a, adminTok, 'twin_user', { role: 'manager' });
      const t = (await loginOk(a, u.username, u.password)).access_token;
      const key = await createKey(a, { token: t });
      // Warm b's caches.
      expectStatus(await api(b, 'GET', '/api/v1/users', { token: t }), 200);
      expectStatus(await api(b, 'GET', '/api/v1/users/me', { apiKey: key.key }), 200);
      // Within the bound (1 s here; poll up to 4 s), b sees what a changed.
      const eventually = async (what, check) => {
        const start = Date.now();
        while (Date.now() - start < 4000) {
          if (await check()) return Date.now() - start;
          await sleep(100);
        }
        assert.fail(`${what} did not reach the other instance within 4 s`);
      };
      expectStatus(await api(a, 'PATCH', `/api/v1/users/${u.id}`, { token: adminTok, body: { role: 'user' } }), 200);
      await eventually('the role change', async () => (await api(b, 'GET', '/api/v1/users', { token: t })).status === 403);
      expectStatus(await api(a, 'PATCH', `/api/v1/users/${u.id}`, { token: adminTok, body: { is_active: false } }), 200);
      await eventually('the deactivation', async () => (await api(b, 'GET', '/api/v1/users/me', { token: t })).status === 401);
      expectStatus(await api(b, 'GET', '/api/v1/users/me', { apiKey: key.key }), 401);
      expectStatus(await api(a, 'PATCH', `/api/v1/users/${u.id}`, { token: adminTok, body: { is_active: true } }), 200);
      await eventually('the reactivation', async () => (await api(b, 'GET', '/api/v1/users/me', { token: t })).status === 200);
      expectStatus(await api(b, 'GET', '/api/v1/users/me', { apiKey: key.key }), 200);
      expectStatus(await api(a, 'DELETE', `/api/v1/api-keys/${key.id}`, { token: t }), 204);
      await eventually('the key revocation', async () => (await api(b, 'GET', '/api/v1/users/me', { apiKey: key.key })).status === 401);
      expectStatus(await api(a, 'DELETE', `/api/v1/users/${u.id}`, { token: adminTok }), 204);
      await eventually('the deletion', async () => (await api(b, 'GET', '/api/v1/users/me', { token: t })).status === 401);
    } finally {
      await b.stop();
      await a.cleanup();
    }
  });
});

// ---- failed-login limits ---------------------------------------------------------------------

describe(`failed-login limits (${BACKEND})`, () => {
  test('failed logins are limited per username and per client address (429 with Retry-After)', async () => {
    const p = await startParley({
      env: {
        PARLEY_AUTH_LOGIN_MAX_FAILURES_PER_USER: '3',
        PARLEY_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS: '6',
        PARLEY_AUTH_LOGIN_WINDOW_S: '120',
      },
    });
    try {
      const apw = password('lim_admin');
      expectStatus(await api(p, 'POST', '/api/v1/auth/register', { body: { username: 'lim_admin', email: 'lim@example.com', password: apw } }), 201);
      const token = (await loginOk(p, 'lim_admin', apw)).access_token;
      const victim = await createUser(p, token, 'lim_victim');
      // Per username: three failures, then even the right password is refused for a while.
      for (let i = 0; i < 3; i++) expectStatus(await login(p, 'lim_victim', `wrong-${i}-password`), 401);
      const blocked = await login(p, 'LIM_VICTIM', victim.password);
      expectStatus(blocked, 429);
      expectErrorEnvelope(assert, blocked.body, 'RATE_LIMIT_EXCEEDED');
      const retry = Number(blocked.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 120, `Retry-After ${blocked.headers.get('retry-after')}`);
      assert.equal(blocked.headers.get('x-ratelimit-limit'), '3');
      assert.equal(blocked.headers.get('x-ratelimit-remaining'), '0');
      assert.ok(Number(blocked.headers.get('x-ratelimit-reset')) >= 1);
      // Other usernames are not affected by that counter.
      expectStatus(await login(p, 'lim_admin', apw), 200);
      // Per address: three more failures (6 in all from 127.0.0.1), each with a new name.
      for (let i = 0; i < 3; i++) expectStatus(await login(p, `ghost_${i}`, 'some-password'), 401);
      const byAddress = await login(p, 'lim_admin', apw);
      expectStatus(byAddress, 429);
      assert.ok(Number(byAddress.headers.get('retry-after')) >= 1);
      assert.equal(byAddress.headers.get('x-ratelimit-limit'), '6');
      const limited = await auditEvents(p, token, '&action=auth.login.limited');
      assert.ok(limited.length >= 2);
    } finally {
      await p.cleanup();
    }
  });
});

// ---- secrets ---------------------------------------------------------------------------------

describe('secrets', () => {
  test('no response body or log line contains a password, a service key after creation, or a refresh token', () => {
    assert.ok(secrets.length > 20, 'the scan has secrets to look for');
    assert.ok(bodies.length > 100, 'the scan has bodies to look in');
    for (const s of secrets) {
      for (let i = 0; i < bodies.length; i++) {
        if (i === s.allowedIn) continue;
        assert.ok(!bodies[i].text.includes(s.value), `${s.label} appears in the body of ${bodies[i].where}`);
      }
      for (const instance of collectedLogs) {
        assert.ok(!instance.stderr.includes(s.value), `${s.label} appears in the log`);
        assert.ok(!instance.stdout.includes(s.value), `${s.label} appears on stdout`);
      }
    }
    // The scan is meaningful only if the logs were captured.
    assert.ok(collectedLogs.some((i) => /request_id=/.test(i.stderr)), 'no log lines captured');
  });
});
