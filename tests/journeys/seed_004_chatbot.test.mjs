// Journey: seed 004, "OpenAI ChatBot Service" (../shared/seeds/004_*.txt) — OAuth 2.0 accounts
// with admin / manager / user roles, user-scoped resources, conversations and WebSocket chat.
// Walks its README in order through parley's HTTP API, against the real binary and parley-mock:
//
//   public health check
//   → register → log in (OAuth2 password grant, form and JSON) → Bearer token on every request
//   → refresh (rotation, reuse detection) → /users/me → update the user → logout (the refresh
//     token stops working)
//   → roles on /api/v1/users: admin everything, manager reads, user only themself — another
//     user's object is 404 (the seed says 403; PRODUCT.md, which wins, says 404)
//   → conversations and messages (under each credential mode, each with its own parley +
//     parley-mock): start with a title and system message, list (search, status, pages), recent,
//     one, validate, send (plain and streamed, the model gets the system message and the earlier
//     turns), resume a dropped stream with Last-Event-ID, history, stats, end (then 409),
//     reconnect, another user 404 everywhere, a manager reads only, delete (owner or admin)
//   → the WebSocket chat (docs/REALTIME.md), under each credential mode, each with its own parley +
//     parley-mock: a bad token or another user's id refused before the upgrade (401 / 403 with the
//     error envelope), connect with ?token=, the seed's start_conversation {user_id, title,
//     system_message}, send_message streaming `token`s then `message_complete` (the model gets the
//     system message, the earlier turns and the right key; under byok an `error`
//     API_KEY_NOT_CONFIGURED until erin stores a key), a dropped socket resumed with `reconnect` on
//     a new one (token in Sec-WebSocket-Protocol), the conversation listed by the REST routes,
//     end_conversation; then the anonymous /ws/chat (off by default: 403; when enabled it answers
//     with the system key, its conversations are in nobody's history, 20 messages a minute, each
//     error carrying its message's id)
//   → chat (the seed's start_conversation / send_message through POST /api/v1/chat and
//     /api/v1/chat/stream, system message and context included) under each credential mode,
//     each with its own parley + parley-mock, checking which key the mock received.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  startStack, api, expectStatus, signUp, sseEvents, sseRequest, providerKey, expectNoSecretsInLogs, BACKEND, refusedUpgrade,
} from './lib.mjs';
import { mockProviderConfig, startMock, startParley } from '../integration/harness.mjs';

const password = (who) => `pw-${who}-${randomBytes(12).toString('base64url')}`;
const ID = /^[A-Za-z0-9]{22}$/;
const USER_FIELDS = ['created_at', 'email', 'id', 'is_active', 'phone_number', 'role', 'updated_at', 'username'];

function expectValidation(r, param) {
  expectStatus(r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.error.param, param, `param: ${r.text}`);
}

function expectUser(body, { username, email, role }) {
  assert.deepEqual(Object.keys(body).sort(), USER_FIELDS, 'no password or hash in a user record');
  assert.match(body.id, ID, 'opaque 22-character id');
  assert.equal(body.username, username);
  if (email) assert.equal(body.email, email);
  if (role) assert.equal(body.role, role);
  assert.equal(body.is_active, true);
  assert.ok(!Number.isNaN(Date.parse(body.created_at)));
}

const decodeJwt = (token) => {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
};

function expectTokens(r) {
  const body = expectStatus(r, 200);
  assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type']);
  assert.equal(body.token_type, 'bearer');
  assert.equal(body.expires_in, 900);
  assert.match(body.refresh_token, /^rt_[A-Za-z0-9]{48}$/);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const { header, payload } = decodeJwt(body.access_token);
  assert.equal(header.alg, 'HS256');
  assert.equal(payload.exp - payload.iat, body.expires_in);
  assert.equal(payload.iss, 'parley');
  assert.equal(payload.aud, 'parley');
  return body;
}

// ---- accounts, tokens and roles ---------------------------------------------------------------

describe(`seed 004 chatbot: OAuth 2.0 accounts, tokens and roles (${BACKEND})`, () => {
  let s;
  const pw = { root: password('root'), carol: password('carol'), carol2: password('carol2'), mona: password('mona'), dave: password('dave') };
  const root = { username: 'root' };
  const carol = { username: 'carol' };
  let mona; let dave;
  const call = (...args) => api(s.url, ...args);
  const login = (username, pass) => call('POST', '/api/v1/auth/token', { form: { grant_type: 'password', username, password: pass } });

  before(async () => {
    s = await startStack({ credentials: 'system', env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' } });
  });
  after(async () => { await s?.stop(); });

  test('0. the health check is public', async () => {
    const body = expectStatus(await call('GET', '/health'), 200);
    assert.equal(body.status, 'ok');
  });

  test('1. register: the first account becomes admin, later ones plain users; ids are opaque', async () => {
    const r1 = await call('POST', '/api/v1/auth/register', { body: { username: 'root', email: 'root@example.com', password: pw.root } });
    expectUser(expectStatus(r1, 201), { username: 'root', email: 'root@example.com', role: 'admin' });
    root.id = r1.body.id;
    const r2 = await call('POST', '/api/v1/auth/register', { body: { username: 'carol', email: 'Carol@Example.com', password: pw.carol, phone_number: '+14155550123' } });
    const c = expectStatus(r2, 201);
    expectUser(c, { username: 'carol', email: 'carol@example.com', role: 'user' });
    assert.equal(c.phone_number, '+14155550123');
    carol.id = c.id;
    assert.notEqual(carol.id, root.id);
    for (const r of [r1, r2]) assert.ok(!r.text.includes(pw.root) && !r.text.includes(pw.carol));
  });

  test('1a. register refuses a self-chosen role, taken names and weak input with 4xx and `param`', async () => {
    const base = { username: 'eve', email: 'eve@example.com', password: password('eve') };
    expectValidation(await call('POST', '/api/v1/auth/register', { body: { ...base, role: 'admin' } }), 'role');
    const dupName = await call('POST', '/api/v1/auth/register', { body: { ...base, username: 'CAROL' } });
    expectStatus(dupName, 409, 'CONFLICT');
    assert.equal(dupName.body.error.param, 'username');
    const dupMail = await call('POST', '/api/v1/auth/register', { body: { ...base, email: 'carol@example.com' } });
    expectStatus(dupMail, 409, 'CONFLICT');
    assert.equal(dupMail.body.error.param, 'email');
    expectValidation(await call('POST', '/api/v1/auth/register', { body: { ...base, password: 'short' } }), 'password');
    expectValidation(await call('POST', '/api/v1/auth/register', { body: { ...base, email: 'not-an-address' } }), 'email');
    expectValidation(await call('POST', '/api/v1/auth/register', { body: { ...base, username: 'a b' } }), 'username');
    expectValidation(await call('POST', '/api/v1/auth/register', { body: { email: base.email, password: base.password } }), 'username');
    // None of them was created.
    expectStatus(await login('eve', base.password), 401, 'UNAUTHORIZED');
  });

  test('2. log in with the OAuth2 password form: bearer access token (JWT naming the user) and refresh token', async () => {
    const body = expectTokens(await login('root', pw.root));
    assert.equal(decodeJwt(body.access_token).payload.sub, root.id);
    root.token = body.access_token;
    const c = expectTokens(await login('carol', pw.carol));
    assert.equal(decodeJwt(c.access_token).payload.sub, carol.id);
    carol.token = c.access_token;
    carol.refresh = c.refresh_token;
  });

  test('2a. log in with a JSON body too; the username ignores case; failures are one 401 or 422 with param', async () => {
    const json = expectTokens(await call('POST', '/api/v1/auth/token', { body: { grant_type: 'password', username: 'CaRoL', password: pw.carol } }));
    assert.equal(decodeJwt(json.access_token).payload.sub, carol.id);
    expectTokens(await call('POST', '/api/v1/auth/token', { body: { username: 'carol', password: pw.carol } })); // grant_type optional
    const wrong = await login('carol', 'not the password');
    expectStatus(wrong, 401, 'UNAUTHORIZED');
    assert.equal(wrong.body.error.message, 'Incorrect username or password');
    assert.equal(expectStatus(await login('nobody', pw.carol), 401, 'UNAUTHORIZED').error.message, 'Incorrect username or password');
    expectStatus(await login('carol@example.com', pw.carol), 401, 'UNAUTHORIZED'); // no login by e-mail
    expectValidation(await call('POST', '/api/v1/auth/token', { form: { grant_type: 'client_credentials', username: 'carol', password: pw.carol } }), 'grant_type');
    expectValidation(await call('POST', '/api/v1/auth/token', { form: { grant_type: 'password', username: 'carol' } }), 'password');
    expectValidation(await call('POST', '/api/v1/auth/token', { body: { password: pw.carol } }), 'username');
  });

  test('3. the token goes in `Authorization: Bearer`; missing, forged or foreign tokens are 401 with WWW-Authenticate', async () => {
    const me = expectStatus(await call('GET', '/api/v1/users/me', { token: carol.token }), 200);
    expectUser(me, { username: 'carol', role: 'user' });
    assert.equal(me.id, carol.id);
    const lower = await call('GET', '/api/v1/users/me', { headers: { Authorization: `bearer ${carol.token}` } });
    assert.equal(expectStatus(lower, 200).id, carol.id);

    const [h, p, sig] = carol.token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const forged = [
      `${h}.${b64({ ...claims, sub: root.id, role: 'admin' })}.${sig}`, // carol claiming to be root
      `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, sub: root.id })}.${createHmac('sha256', 'a guessed secret').update('x').digest('base64url')}`,
      `${h}.${b64({ ...claims, exp: Math.floor(Date.now() / 1000) - 3600 })}.${sig}`,
      'not-a-jwt',
    ];
    for (const headers of [{}, { Authorization: `Token ${carol.token}` }, ...forged.map((t) => ({ Authorization: `Bearer ${t}` }))]) {
      const r = await call('GET', '/api/v1/users/me', { headers });
      expectStatus(r, 401, 'UNAUTHORIZED');
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      assert.ok(!r.text.includes('root@example.com'));
    }
  });

  test('4. refresh rotates the pair (JSON or form); a reused refresh token revokes the whole login', async () => {
    const first = expectTokens(await login('carol', pw.carol));
    const second = expectTokens(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: first.refresh_token } }));
    assert.notEqual(second.refresh_token, first.refresh_token);
    assert.equal(decodeJwt(second.access_token).payload.sub, carol.id);
    assert.equal(expectStatus(await call('GET', '/api/v1/users/me', { token: second.access_token }), 200).id, carol.id);
    const third = expectTokens(await call('POST', '/api/v1/auth/refresh', { form: { refresh_token: second.refresh_token } }));
    // The old token again: refused, and the family (third included) is revoked.
    const reused = await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: first.refresh_token } });
    expectStatus(reused, 401, 'UNAUTHORIZED');
    assert.equal(reused.body.error.message, 'Refresh token is invalid or expired');
    expectStatus(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: third.refresh_token } }), 401, 'UNAUTHORIZED');
    // Other logins of the same user are not affected.
    const other = expectTokens(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: carol.refresh } }));
    carol.refresh = other.refresh_token;
    expectStatus(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: 'rt_unknown' } }), 401, 'UNAUTHORIZED');
    expectValidation(await call('POST', '/api/v1/auth/refresh', { body: {} }), 'refresh_token');
  });

  test('5. /users/me and /users/{own id} show the same record', async () => {
    const me = expectStatus(await call('GET', '/api/v1/users/me', { token: carol.token }), 200);
    const byId = expectStatus(await call('GET', `/api/v1/users/${carol.id}`, { token: carol.token }), 200);
    assert.deepEqual(byId, me);
    assert.equal(me.email, 'carol@example.com');
  });

  test('6. update the user: profile fields change, role and is_active do not, a password change needs the current one', async () => {
    const before_ = expectStatus(await call('GET', '/api/v1/users/me', { token: carol.token }), 200);
    await new Promise((r) => setTimeout(r, 5));
    const patched = expectStatus(await call('PATCH', `/api/v1/users/${carol.id}`, {
      token: carol.token, body: { email: 'Carol.New@Example.com', phone_number: null },
    }), 200);
    assert.equal(patched.email, 'carol.new@example.com');
    assert.equal(patched.phone_number, null);
    assert.equal(patched.role, 'user');
    assert.equal(patched.created_at, before_.created_at);
    assert.ok(Date.parse(patched.updated_at) > Date.parse(before_.updated_at));
    assert.deepEqual(expectStatus(await call('GET', '/api/v1/users/me', { token: carol.token }), 200), patched);

    expectStatus(await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { role: 'admin' } }), 403, 'FORBIDDEN');
    expectStatus(await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { is_active: false } }), 403, 'FORBIDDEN');
    expectValidation(await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { password: pw.carol2 } }), 'current_password');
    expectValidation(await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { password: pw.carol2, current_password: 'wrong password' } }), 'current_password');
    expectValidation(await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { id: root.id } }), 'id');
    expectStatus(await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { username: 'root' } }), 409, 'CONFLICT');
    assert.equal(expectStatus(await call('GET', '/api/v1/users/me', { token: carol.token }), 200).role, 'user');

    // Changing the password revokes the refresh tokens; the new password logs in.
    const changed = await call('PATCH', `/api/v1/users/${carol.id}`, { token: carol.token, body: { password: pw.carol2, current_password: pw.carol } });
    expectStatus(changed, 200);
    assert.ok(!changed.text.includes(pw.carol2));
    expectStatus(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: carol.refresh } }), 401, 'UNAUTHORIZED');
    expectStatus(await login('carol', pw.carol), 401, 'UNAUTHORIZED');
    const fresh = expectTokens(await login('carol', pw.carol2));
    carol.token = fresh.access_token;
    carol.refresh = fresh.refresh_token;
  });

  test('7. logout revokes the refresh token (204); it no longer refreshes; the access token lives until it expires', async () => {
    const r = await call('POST', '/api/v1/auth/logout', { body: { refresh_token: carol.refresh } });
    expectStatus(r, 204);
    assert.equal(r.text, '');
    expectStatus(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: carol.refresh } }), 401, 'UNAUTHORIZED');
    expectStatus(await call('GET', '/api/v1/users/me', { token: carol.token }), 200);
    // Logging out twice, or an unknown token, is still 204 (holding the token is the proof).
    expectStatus(await call('POST', '/api/v1/auth/logout', { form: { refresh_token: carol.refresh } }), 204);
    expectValidation(await call('POST', '/api/v1/auth/logout', { body: {} }), 'refresh_token');
    // Log in again for the next steps.
    const again = expectTokens(await login('carol', pw.carol2));
    carol.token = again.access_token;
  });

  test('8. admin creates users with any role (POST /api/v1/users); manager and user may not', async () => {
    const m = await call('POST', '/api/v1/users', { token: root.token, body: { username: 'mona', email: 'mona@example.com', password: pw.mona, role: 'manager' } });
    expectUser(expectStatus(m, 201), { username: 'mona', role: 'manager' });
    const d = await call('POST', '/api/v1/users', { token: root.token, body: { username: 'dave', email: 'dave@example.com', password: pw.dave } });
    expectUser(expectStatus(d, 201), { username: 'dave', role: 'user' });
    const monaLogin = expectTokens(await login('mona', pw.mona));
    mona = { ...m.body, token: monaLogin.access_token, refresh: monaLogin.refresh_token };
    dave = { ...d.body, token: expectTokens(await login('dave', pw.dave)).access_token };
    const body = { username: 'mallory', email: 'mallory@example.com', password: password('mallory'), role: 'admin' };
    expectStatus(await call('POST', '/api/v1/users', { token: mona.token, body }), 403, 'FORBIDDEN');
    expectStatus(await call('POST', '/api/v1/users', { token: carol.token, body }), 403, 'FORBIDDEN');
    expectValidation(await call('POST', '/api/v1/users', { token: root.token, body: { ...body, role: 'superuser' } }), 'role');
    expectStatus(await login('mallory', body.password), 401, 'UNAUTHORIZED');
  });

  test('8a. listing users (GET /api/v1/users): admin and manager yes, a user 403; search and pagination', async () => {
    for (const who of [root, mona]) {
      const list = expectStatus(await call('GET', '/api/v1/users?limit=50', { token: who.token }), 200);
      assert.deepEqual(Object.keys(list).sort(), ['items', 'limit', 'offset', 'total']);
      assert.equal(list.total, 4);
      assert.deepEqual(list.items.map((u) => u.username).sort(), ['carol', 'dave', 'mona', 'root']);
      for (const u of list.items) assert.deepEqual(Object.keys(u).sort(), USER_FIELDS);
    }
    const found = expectStatus(await call('GET', '/api/v1/users?search=mon', { token: root.token }), 200);
    assert.deepEqual(found.items.map((u) => u.username), ['mona']);
    const page = expectStatus(await call('GET', '/api/v1/users?limit=2&offset=1', { token: root.token }), 200);
    assert.equal(page.items.length, 2);
    assert.equal(page.total, 4);
    assert.equal(page.limit, 2);
    assert.equal(page.offset, 1);
    const r = await call('GET', '/api/v1/users', { token: carol.token });
    expectStatus(r, 403, 'FORBIDDEN');
    assert.ok(!r.text.includes('dave'));
  });

  test('8b. user-scoped access: a user gets 404 for another user\'s record, a manager may read but not change it', async () => {
    // carol (user) and dave's record: 404 for read, change and delete, exactly like a missing user.
    for (const [method, body] of [['GET'], ['PATCH', { email: 'owned@example.com' }], ['DELETE']]) {
      const r = await call(method, `/api/v1/users/${dave.id}`, { token: carol.token, body });
      expectStatus(r, 404, 'NOT_FOUND');
      assert.ok(!r.text.includes('dave'), 'a 404 never shows the record');
    }
    expectStatus(await call('GET', `/api/v1/users/${'Q'.repeat(22)}`, { token: carol.token }), 404, 'NOT_FOUND');
    // mona (manager) reads everyone, changes nobody else.
    assert.equal(expectStatus(await call('GET', `/api/v1/users/${dave.id}`, { token: mona.token }), 200).username, 'dave');
    expectStatus(await call('PATCH', `/api/v1/users/${dave.id}`, { token: mona.token, body: { email: 'x@example.com' } }), 403, 'FORBIDDEN');
    expectStatus(await call('DELETE', `/api/v1/users/${dave.id}`, { token: mona.token }), 403, 'FORBIDDEN');
    // Nothing changed.
    assert.equal(expectStatus(await call('GET', '/api/v1/users/me', { token: dave.token }), 200).email, 'dave@example.com');
    // root (admin) reads and changes anyone.
    assert.equal(expectStatus(await call('GET', `/api/v1/users/${carol.id}`, { token: root.token }), 200).email, 'carol.new@example.com');
  });

  test('8c. admin changes roles and deactivates; the change applies at the next request whatever the token says', async () => {
    const promoted = expectStatus(await call('PATCH', `/api/v1/users/${dave.id}`, { token: root.token, body: { role: 'manager' } }), 200);
    assert.equal(promoted.role, 'manager');
    // dave's token still says "user"; the database says manager.
    assert.equal(decodeJwt(dave.token).payload.role, 'user');
    expectStatus(await call('GET', '/api/v1/users', { token: dave.token }), 200);
    expectStatus(await call('PATCH', `/api/v1/users/${dave.id}`, { token: root.token, body: { role: 'user' } }), 200);
    expectStatus(await call('GET', '/api/v1/users', { token: dave.token }), 403, 'FORBIDDEN');
    // Deactivated: the access token, the refresh token and the password stop working.
    const off = expectStatus(await call('PATCH', `/api/v1/users/${mona.id}`, { token: root.token, body: { is_active: false } }), 200);
    assert.equal(off.is_active, false);
    const refused = await call('GET', '/api/v1/users/me', { token: mona.token });
    expectStatus(refused, 401, 'UNAUTHORIZED');
    assert.equal(refused.body.error.message, 'This account is deactivated');
    expectStatus(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: mona.refresh } }), 401, 'UNAUTHORIZED');
    expectStatus(await login('mona', pw.mona), 401, 'UNAUTHORIZED');
    // Reactivated: a new login works; the old refresh token stays revoked.
    expectStatus(await call('PATCH', `/api/v1/users/${mona.id}`, { token: root.token, body: { is_active: true } }), 200);
    expectStatus(await call('POST', '/api/v1/auth/refresh', { body: { refresh_token: mona.refresh } }), 401, 'UNAUTHORIZED');
    mona.token = expectTokens(await login('mona', pw.mona)).access_token;
    expectStatus(await call('GET', '/api/v1/users/me', { token: mona.token }), 200);
  });

  test('8d. delete: a user may delete themself, an admin anyone; a deleted user\'s token is refused', async () => {
    expectStatus(await call('DELETE', `/api/v1/users/${dave.id}`, { token: root.token }), 204);
    expectStatus(await call('GET', `/api/v1/users/${dave.id}`, { token: root.token }), 404, 'NOT_FOUND');
    expectStatus(await call('GET', '/api/v1/users/me', { token: dave.token }), 401, 'UNAUTHORIZED');
    expectStatus(await login('dave', pw.dave), 401, 'UNAUTHORIZED');
    const list = expectStatus(await call('GET', '/api/v1/users', { token: root.token }), 200);
    assert.deepEqual(list.items.map((u) => u.username).sort(), ['carol', 'mona', 'root']);
    // carol closes her own account.
    expectStatus(await call('DELETE', `/api/v1/users/${carol.id}`, { token: carol.token }), 204);
    const gone = await call('GET', '/api/v1/users/me', { token: carol.token });
    expectStatus(gone, 401, 'UNAUTHORIZED');
    assert.equal(gone.body.error.message, 'This account no longer exists');
    expectStatus(await login('carol', pw.carol2), 401, 'UNAUTHORIZED');
    const left = expectStatus(await call('GET', '/api/v1/users', { token: mona.token }), 200);
    assert.deepEqual(left.items.map((u) => u.username).sort(), ['mona', 'root']);
  });

  test('9. no password, token or JWT secret reaches a log', async () => {
    const jwtSecret = readFileSync(path.join(s.p.dataDir, 'jwt.secret'), 'utf8').trim();
    assert.ok(jwtSecret.length >= 32);
    expectNoSecretsInLogs([...Object.values(pw), carol.refresh, mona.refresh, carol.token, mona.token, jwtSecret]);
  });
});

// ---- conversations and messages, under every credential mode ----------------------------------
// The seed's "Conversation Endpoints" (lines 395-406) and "Message Endpoints" (408-413), walked in
// the flow its features list gives (lines 42-46: start, end and reconnect; message history;
// search, pagination and filtering). The chatbot seed answers with the server's OpenAI key
// (OPENAI_API_KEY, line 104): credentials "system"; parley also lets a user bring their own key
// ("byok"), or uses theirs when stored and the server's otherwise ("byok_or_system", walked before
// and after erin stores one). The mock checks which key each answer was asked with.

const MODEL = 'gpt-4o-mini';
const SYSTEM = 'You are a helpful assistant';
const CONVERSATION_FIELDS = ['created_at', 'ended_at', 'id', 'last_message_at', 'message_count', 'metadata', 'model',
  'status', 'system_message', 'title', 'updated_at', 'user_id'];
const MESSAGE_FIELDS = ['active', 'ai_model', 'content', 'conversation_id', 'created_at', 'error_code', 'id', 'is_ai_message',
  'latency_ms', 'message_type', 'parent_id', 'role', 'sender_id', 'seq', 'status', 'timestamp', 'updated_at', 'usage'];
const wordCount = (text) => text.split(/\s+/).filter(Boolean).length;
const numbered = (n) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(' ');

for (const mode of ['system', 'byok', 'byok_or_system']) {
  describe(`seed 004 chatbot: conversations and messages, credentials = "${mode}" (${BACKEND})`, () => {
    let s; let root; let erin; let mona; let dave;
    let trip; let byAdmin; let groceries; // erin's conversations
    const erinKey = providerKey('erin');
    const pw = { root: password('root'), erin: password('erin'), mona: password('mona'), dave: password('dave') };
    const call = (...args) => api(s.url, ...args);
    const conversations = (rest = '', user = erin) => `/api/v1/users/${user.id}/conversations${rest}`;
    const messages = (c, rest = '') => `/api/v1/conversations/${c.id}/messages${rest}`;
    const send = (who, c, content, extra = {}) => call('POST', messages(c), { token: who.token, body: { content, ...extra } });
    const stored = async (c, who = erin) => expectStatus(await call('GET', messages(c, '?limit=200'), { token: who.token }), 200).items;
    const seenAuth = async () => (await s.mock.requests()).map((q) => q.authorization);
    // Which key the provider must see for erin; null: nothing may reach it.
    const expectedKey = (ownStored) => {
      if (mode === 'system') return s.systemKey;
      if (ownStored) return erinKey;
      return mode === 'byok' ? null : s.systemKey;
    };
    // The model context of `trip` so far (what the provider must receive before the next question).
    const context = [{ role: 'system', content: SYSTEM }];

    function expectConversation(c, fields) {
      assert.deepEqual(Object.keys(c).filter((k) => k !== 'generating_message_id').sort(), CONVERSATION_FIELDS);
      assert.match(c.id, ID, 'opaque 22-character id');
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(c[k], v, k);
      assert.ok(!Number.isNaN(Date.parse(c.created_at)) && !Number.isNaN(Date.parse(c.updated_at)));
    }

    // A stored exchange as POST …/messages answers it: the question and the model's answer.
    function expectExchange(body, question) {
      assert.deepEqual(Object.keys(body).sort(), ['assistant_message', 'user_message']);
      const { user_message: u, assistant_message: a } = body;
      for (const m of [u, a]) {
        assert.deepEqual(Object.keys(m).sort(), MESSAGE_FIELDS);
        assert.equal(m.conversation_id, trip.id);
        assert.equal(m.message_type, 'text');
        assert.equal(m.status, 'complete');
        assert.equal(m.active, true);
        assert.equal(m.timestamp, m.created_at);
      }
      assert.equal(u.role, 'user');
      assert.equal(u.content, question);
      assert.equal(u.sender_id, erin.id);
      assert.equal(u.is_ai_message, false);
      assert.equal(u.ai_model, null);
      assert.equal(u.usage, null);
      assert.equal(a.role, 'assistant');
      assert.equal(a.content, `mock reply: ${question}`);
      assert.equal(a.is_ai_message, true);
      assert.equal(a.ai_model, MODEL);
      assert.equal(a.sender_id, null);
      assert.equal(a.parent_id, u.id);
      assert.ok(a.seq > u.seq);
      assert.equal(typeof a.latency_ms, 'number');
      // The mock counts words: the prompt is the whole context, the completion the reply.
      const sent = [...context, { role: 'user', content: question }];
      const prompt = sent.reduce((n, m) => n + wordCount(m.content), 0);
      const completion = wordCount(a.content);
      assert.deepEqual(a.usage, { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
    }

    // The provider's one request: the conversation's system message, the previous turns in order,
    // then the question, asked with `key`. Records the exchange in `context`.
    async function expectProviderSaw(question, key) {
      const seen = await s.mock.requests();
      assert.equal(seen.length, 1, JSON.stringify(seen.map((q) => q.path)));
      assert.equal(seen[0].path, '/v1/chat/completions');
      assert.equal(seen[0].authorization, `Bearer ${key}`);
      const body = JSON.parse(seen[0].body);
      assert.equal(body.model, MODEL);
      assert.deepEqual(body.messages, [...context, { role: 'user', content: question }]);
      context.push({ role: 'user', content: question }, { role: 'assistant', content: `mock reply: ${question}` });
    }

    before(async () => {
      s = await startStack({
        credentials: mode, mockKeys: [erinKey], mockArgs: ['--chunk-delay-ms', '15'],
        env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
      });
      root = await signUp(s.url, 'root', pw.root); // the first account: admin
      erin = await signUp(s.url, 'erin', pw.erin);
      mona = await signUp(s.url, 'mona', pw.mona);
      dave = await signUp(s.url, 'dave', pw.dave);
      expectStatus(await call('PATCH', `/api/v1/users/${mona.id}`, { token: root.token, body: { role: 'manager' } }), 200);
    });
    after(async () => { await s?.stop(); });

    // Seed line 399 (create, "own or admin") and lines 489-497 (title, system_message).
    test('1. erin starts a conversation with a title and a system message; an admin may start one for her', async () => {
      const r = await call('POST', conversations(), { token: erin.token, body: { title: 'Trip planning', system_message: SYSTEM, model: MODEL } });
      trip = expectStatus(r, 201);
      expectConversation(trip, {
        user_id: erin.id, title: 'Trip planning', system_message: SYSTEM, model: MODEL, status: 'active',
        message_count: 0, last_message_at: null, ended_at: null, metadata: {},
      });
      await new Promise((r) => setTimeout(r, 5)); // distinct updated_at: lists are newest first
      byAdmin = expectStatus(await call('POST', conversations(), { token: root.token, body: { title: 'Opened by the admin', model: MODEL } }), 201);
      expectConversation(byAdmin, { user_id: erin.id, title: 'Opened by the admin', system_message: null, status: 'active' });
      assert.notEqual(byAdmin.id, trip.id);
      // Nobody else: another user as for a missing user (404), a manager changes nothing of others.
      expectStatus(await call('POST', conversations(), { token: dave.token, body: { title: 'not mine' } }), 404, 'NOT_FOUND');
      expectStatus(await call('POST', conversations(), { token: mona.token, body: { title: 'not mine' } }), 403, 'FORBIDDEN');
      expectStatus(await call('POST', conversations(), { body: { title: 'anonymous' } }), 401, 'UNAUTHORIZED');
      // Bad input names the field.
      expectValidation(await call('POST', conversations(), { token: erin.token, body: { title: '' } }), 'title');
      expectValidation(await call('POST', conversations(), { token: erin.token, body: { title: 'x'.repeat(201) } }), 'title');
      expectValidation(await call('POST', conversations(), { token: erin.token, body: { title: 'x', model: 'no-such-model' } }), 'model');
      expectValidation(await call('POST', conversations(), { token: erin.token, body: { user_id: 123, title: 'the seed\'s WebSocket shape' } }), 'user_id');
    });

    // Seed line 400 (list, "own or admin") and line 46 (search, pagination and filtering).
    test('2. list erin\'s conversations: newest first, search by title, status filter, pages', async () => {
      await new Promise((r) => setTimeout(r, 5));
      groceries = expectStatus(await call('POST', conversations(), { token: erin.token, body: { title: 'Grocery list', model: MODEL } }), 201);
      const all = expectStatus(await call('GET', conversations(), { token: erin.token }), 200);
      assert.deepEqual(Object.keys(all).sort(), ['items', 'limit', 'next_cursor', 'offset', 'total']);
      assert.equal(all.total, 3);
      assert.deepEqual(all.items.map((c) => c.id), [groceries.id, byAdmin.id, trip.id]);
      for (const c of all.items) expectConversation(c, { user_id: erin.id });
      assert.equal(all.next_cursor, null);
      // q searches the titles (and, below, the messages' text); every word must match.
      const q = async (text, extra = '') => expectStatus(await call('GET', conversations(`?q=${encodeURIComponent(text)}${extra}`), { token: erin.token }), 200);
      assert.deepEqual((await q('trip')).items.map((c) => c.id), [trip.id]);
      assert.deepEqual((await q('GROCERY')).items.map((c) => c.id), [groceries.id]);
      assert.equal((await q('trip grocery')).total, 0);
      // Status filter.
      assert.equal(expectStatus(await call('GET', conversations('?status=active'), { token: erin.token }), 200).total, 3);
      assert.equal(expectStatus(await call('GET', conversations('?status=ended'), { token: erin.token }), 200).total, 0);
      expectValidation(await call('GET', conversations('?status=open'), { token: erin.token }), 'status');
      // Pages: limit and offset, or the cursor of the previous page.
      const first = expectStatus(await call('GET', conversations('?limit=2'), { token: erin.token }), 200);
      assert.deepEqual([first.items.length, first.total, first.limit, first.offset], [2, 3, 2, 0]);
      assert.deepEqual(first.items.map((c) => c.id), [groceries.id, byAdmin.id]);
      const byOffset = expectStatus(await call('GET', conversations('?limit=2&offset=2'), { token: erin.token }), 200);
      assert.deepEqual(byOffset.items.map((c) => c.id), [trip.id]);
      assert.equal(typeof first.next_cursor, 'string');
      const byCursor = expectStatus(await call('GET', conversations(`?limit=2&cursor=${encodeURIComponent(first.next_cursor)}`), { token: erin.token }), 200);
      assert.deepEqual(byCursor.items.map((c) => c.id), [trip.id]);
      assert.equal(byCursor.next_cursor, null);
      // The admin lists erin's conversations; another user's list of erin's is 404.
      assert.equal(expectStatus(await call('GET', conversations(), { token: root.token }), 200).total, 3);
      expectStatus(await call('GET', conversations(), { token: dave.token }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await call('GET', conversations('', dave), { token: dave.token }), 200).total, 0);
    });

    // Seed line 403.
    test('3. recent conversations: the newest, as many as asked for', async () => {
      const recent = expectStatus(await call('GET', conversations('/recent?limit=2'), { token: erin.token }), 200);
      assert.deepEqual(Object.keys(recent), ['items']);
      assert.deepEqual(recent.items.map((c) => c.id), [groceries.id, byAdmin.id]);
      assert.equal(expectStatus(await call('GET', conversations('/recent'), { token: erin.token }), 200).items.length, 3);
      expectStatus(await call('GET', conversations('/recent'), { token: dave.token }), 404, 'NOT_FOUND');
    });

    // Seed line 44 ("Conversation Management"): one conversation.
    test('4. one conversation: the record as created, and no answer being generated', async () => {
      const got = expectStatus(await call('GET', conversations(`/${trip.id}`), { token: erin.token }), 200);
      assert.equal(got.generating_message_id, null);
      const { generating_message_id: _, ...record } = got;
      assert.deepEqual(record, trip);
      expectStatus(await call('GET', conversations(`/${'Q'.repeat(22)}`), { token: erin.token }), 404, 'NOT_FOUND');
    });

    // Seed line 402.
    test('5. validate access: the owner may send, the admin too; a manager may read only; another user 404', async () => {
      const v = expectStatus(await call('GET', conversations(`/${trip.id}/validate`), { token: erin.token }), 200);
      assert.deepEqual(v, { valid: true, conversation_id: trip.id, user_id: erin.id, status: 'active', can_send: true });
      assert.equal(expectStatus(await call('GET', conversations(`/${trip.id}/validate`), { token: root.token }), 200).can_send, true);
      const m = expectStatus(await call('GET', conversations(`/${trip.id}/validate`), { token: mona.token }), 200);
      assert.equal(m.valid, true);
      assert.equal(m.can_send, false);
      expectStatus(await call('GET', conversations(`/${trip.id}/validate`), { token: dave.token }), 404, 'NOT_FOUND');
    });

    // Seed line 412 with the server's key (line 104): before erin has a key of her own.
    test('6. the first message before erin stores a key: answered with the system key, or 400 API_KEY_NOT_CONFIGURED under byok with nothing stored', async () => {
      await s.mock.reset();
      const question = 'Hello, how are you?';
      const r = await send(erin, trip, question);
      if (expectedKey(false) === null) {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        const st = await call('POST', messages(trip), { token: erin.token, body: { content: question, stream: true } });
        expectStatus(st, 400, 'API_KEY_NOT_CONFIGURED'); // before any byte of a stream: a JSON error
        assert.deepEqual(await seenAuth(), []);
        assert.deepEqual(await stored(trip), []);
        assert.equal(expectStatus(await call('GET', conversations(`/${trip.id}`), { token: erin.token }), 200).message_count, 0);
      } else {
        expectExchange(expectStatus(r, 201), question);
        await expectProviderSaw(question, expectedKey(false));
      }
    });

    // Seed line 412 and line 51 ("Context Preservation"): the model gets the system message and
    // every earlier turn.
    test('7. erin stores her own key; each message reaches the model with the system message and the previous turns', async () => {
      const put = await call('PUT', `/api/v1/users/${erin.id}/api-key`, { token: erin.token, body: { api_key: erinKey, provider: 'mock' } });
      assert.equal(expectStatus(put, 200).api_key_masked, `sk-…${erinKey.slice(-4)}`);
      const questions = context.length === 1 ? ['Hello, how are you?', 'Tell me a joke'] : ['Tell me a joke'];
      for (const question of questions) {
        await s.mock.reset();
        expectExchange(expectStatus(await send(erin, trip, question), 201), question);
        await expectProviderSaw(question, expectedKey(true));
      }
      assert.equal(context.length, 5, 'system message and two exchanges');
      // Bad messages are refused before anything is stored or sent.
      await s.mock.reset();
      expectValidation(await send(erin, trip, ''), 'content');
      expectValidation(await send(erin, trip, '   '), 'content');
      expectValidation(await send(erin, trip, 'x'.repeat(4001)), 'content');
      expectValidation(await send(erin, trip, 'hi', { model: 'no-such-model' }), 'model');
      expectValidation(await call('POST', messages(trip), { token: erin.token, body: { type: 'send_message', data: { conversation_id: trip.id, content: 'Hello' } } }), 'type');
      assert.deepEqual(await seenAuth(), []);
      assert.equal((await stored(trip)).length, 4);
    });

    // Seed line 412 (and line 49, real-time answers): stream: true.
    test('8. stream: true answers token events with ids <message_id>:<n>, then one done event; the answer is stored', async () => {
      await s.mock.reset();
      const question = 'What is the capital of Portugal?';
      const r = await sseRequest(s.url, 'POST', messages(trip), { token: erin.token, body: { content: question, stream: true } });
      expectStatus(r, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
      const id = r.headers.get('x-message-id');
      const userId = r.headers.get('x-user-message-id');
      assert.match(id, ID);
      assert.match(userId, ID);
      const tokens = r.events.slice(0, -1);
      const done = r.events.at(-1);
      assert.ok(tokens.length >= 2, r.text);
      assert.deepEqual(r.events.map((e) => e.id), r.events.map((_, i) => `${id}:${i + 1}`));
      for (const t of tokens) assert.deepEqual(Object.keys(t.data), ['token']);
      assert.equal(r.events.filter((e) => e.data.done || e.data.error).length, 1, 'one terminal event');
      assert.equal(done.data.done, true);
      assert.equal(done.data.status, 'complete');
      assert.equal(done.data.message_id, id);
      assert.equal(done.data.full_text, tokens.map((t) => t.data.token).join(''));
      assert.equal(done.data.full_text, `mock reply: ${question}`);
      assert.equal(done.data.model, MODEL);
      const prompt = [...context, { role: 'user', content: question }].reduce((n, m) => n + wordCount(m.content), 0);
      const completion = wordCount(done.data.full_text);
      assert.deepEqual(done.data.usage, { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
      await expectProviderSaw(question, expectedKey(true));
      const answer = expectStatus(await call('GET', messages(trip, `/${id}`), { token: erin.token }), 200);
      assert.equal(answer.content, done.data.full_text);
      assert.equal(answer.parent_id, userId);
      assert.equal(expectStatus(await call('GET', messages(trip, `/${userId}`), { token: erin.token }), 200).content, question);
    });

    // PRODUCT.md "Resumable streams", for the seed's reconnect (line 44): a client that drops
    // mid-answer comes back with Last-Event-ID (or ?after=N) and receives the rest exactly once.
    test('9. a stream dropped mid-answer resumes with Last-Event-ID and gets the rest once; the whole answer is stored', async () => {
      await s.mock.reset();
      const question = `Count for me ${numbered(12)}`;
      const first = await sseRequest(s.url, 'POST', messages(trip), { token: erin.token, body: { content: question, stream: true }, stopAfter: 3 });
      expectStatus(first, 200);
      const id = first.headers.get('x-message-id');
      const had = first.events;
      assert.ok(had.length >= 3 && had.every((e) => 'token' in e.data), first.text);
      assert.deepEqual(had.map((e) => e.id), had.map((_, i) => `${id}:${i + 1}`));
      const rest = await sseRequest(s.url, 'GET', messages(trip, `/${id}/stream`), { token: erin.token, headers: { 'Last-Event-ID': had.at(-1).id } });
      expectStatus(rest, 200);
      assert.equal(rest.headers.get('x-message-id'), id);
      assert.deepEqual(rest.events.map((e) => e.id), rest.events.map((_, i) => `${id}:${had.length + i + 1}`), 'the events after the last one seen, once each');
      const done = rest.events.at(-1).data;
      assert.equal(done.done, true);
      assert.equal(done.status, 'complete');
      const text = [...had, ...rest.events.slice(0, -1)].map((e) => e.data.token).join('');
      assert.equal(text, `mock reply: ${question}`);
      assert.equal(done.full_text, text);
      // ?after=N replays the same events from the store; the stored answer is the whole text.
      const again = await sseRequest(s.url, 'GET', messages(trip, `/${id}/stream?after=${had.length}`), { token: erin.token });
      assert.deepEqual(again.events, rest.events);
      assert.equal(expectStatus(await call('GET', messages(trip, `/${id}`), { token: erin.token }), 200).content, text);
      expectStatus(await call('GET', messages(trip, `/${id}/stream`), { token: erin.token, headers: { 'Last-Event-ID': `${'Q'.repeat(22)}:3` } }), 422, 'VALIDATION_ERROR');
      await expectProviderSaw(question, expectedKey(true));
    });

    // Seed line 413 (messages, owner) and line 45 ("Message History - Complete conversation persistence").
    test('10. the history: every question and answer, oldest first, paged; search also finds the messages\' text', async () => {
      const items = await stored(trip);
      const turns = context.slice(1);
      assert.equal(items.length, turns.length);
      assert.deepEqual(items.map((m) => ({ role: m.role, content: m.content })), turns);
      for (const m of items) {
        assert.deepEqual(Object.keys(m).sort(), MESSAGE_FIELDS);
        assert.equal(m.status, 'complete');
        assert.equal(m.is_ai_message, m.role === 'assistant');
        assert.equal(m.sender_id, m.role === 'user' ? erin.id : null, 'answers have no sender');
      }
      for (let i = 1; i < items.length; i++) {
        assert.ok(items[i].seq > items[i - 1].seq);
        assert.ok(Date.parse(items[i].timestamp) >= Date.parse(items[i - 1].timestamp));
      }
      const page1 = expectStatus(await call('GET', messages(trip, '?limit=4'), { token: erin.token }), 200);
      assert.deepEqual(Object.keys(page1).sort(), ['first_seq', 'has_more', 'items', 'last_seq', 'limit']);
      assert.equal(page1.has_more, true);
      const page2 = expectStatus(await call('GET', messages(trip, `?limit=4&after=${page1.last_seq}`), { token: erin.token }), 200);
      assert.deepEqual([...page1.items, ...page2.items].map((m) => m.id), items.slice(0, 8).map((m) => m.id));
      const conv = expectStatus(await call('GET', conversations(`/${trip.id}`), { token: erin.token }), 200);
      assert.equal(conv.message_count, items.length);
      // When the last message was last written: the newest answer's end.
      assert.equal(conv.last_message_at, items.at(-1).updated_at);
      // q searches the messages' text too (line 46).
      const found = expectStatus(await call('GET', conversations('?q=portugal'), { token: erin.token }), 200);
      assert.deepEqual(found.items.map((c) => c.id), [trip.id]);
      // The admin reads it; the conversation's other readers are checked in step 14.
      assert.equal(expectStatus(await call('GET', messages(trip), { token: root.token }), 200).items.length, items.length);
    });

    // Seed line 405 (and line 57, conversation metrics).
    test('11. stats: messages by role and the tokens of every answer', async () => {
      const items = await stored(trip);
      const answers = items.filter((m) => m.role === 'assistant');
      const stats = expectStatus(await call('GET', conversations(`/${trip.id}/stats`), { token: erin.token }), 200);
      assert.equal(stats.conversation_id, trip.id);
      assert.deepEqual(stats.messages, { user: answers.length, assistant: answers.length, system: 0 });
      assert.equal(stats.total_messages, items.length);
      assert.equal(stats.failed_answers, 0);
      const sum = (k) => answers.reduce((n, m) => n + m.usage[k], 0);
      assert.deepEqual(stats.tokens, { prompt: sum('prompt_tokens'), completion: sum('completion_tokens'), total: sum('total_tokens') });
      assert.equal(stats.first_message_at, items[0].created_at);
      assert.equal(stats.last_message_at, items.at(-1).created_at);
      assert.equal(typeof stats.average_latency_ms, 'number');
      const empty = expectStatus(await call('GET', conversations(`/${groceries.id}/stats`), { token: erin.token }), 200);
      assert.equal(empty.total_messages, 0);
      assert.deepEqual(empty.tokens, { prompt: 0, completion: 0, total: 0 });
    });

    // Seed line 404 and line 44 ("end").
    test('12. end the conversation: it stops taking messages (409) and the status filter finds it ended', async () => {
      const ended = expectStatus(await call('POST', conversations(`/${trip.id}/end`), { token: erin.token }), 200);
      expectConversation(ended, { id: trip.id, status: 'ended' });
      assert.ok(!Number.isNaN(Date.parse(ended.ended_at)));
      await s.mock.reset();
      expectStatus(await send(erin, trip, 'anyone there?'), 409, 'CONFLICT');
      expectStatus(await send(erin, trip, 'anyone there?', { stream: true }), 409, 'CONFLICT');
      assert.deepEqual(await seenAuth(), []);
      assert.equal((await stored(trip)).length, context.length - 1, 'nothing stored');
      const v = expectStatus(await call('GET', conversations(`/${trip.id}/validate`), { token: erin.token }), 200);
      assert.equal(v.status, 'ended');
      assert.equal(v.can_send, false);
      assert.deepEqual(expectStatus(await call('GET', conversations('?status=ended'), { token: erin.token }), 200).items.map((c) => c.id), [trip.id]);
      assert.deepEqual(expectStatus(await call('GET', conversations('?status=active'), { token: erin.token }), 200).items.map((c) => c.id).sort(), [byAdmin.id, groceries.id].sort());
    });

    // Seed line 401 and line 44 ("reconnect").
    test('13. reconnect: the conversation is active again and returns its last messages; sending works again', async () => {
      const items = await stored(trip);
      const back = expectStatus(await call('POST', conversations(`/${trip.id}/reconnect`), { token: erin.token }), 200);
      assert.deepEqual(Object.keys(back).sort(), ['conversation', 'generating', 'has_more', 'messages']);
      expectConversation(back.conversation, { id: trip.id, status: 'active', message_count: items.length });
      assert.deepEqual(back.messages, items);
      assert.equal(back.has_more, false);
      assert.equal(back.generating, null);
      await s.mock.reset();
      const question = 'I am back';
      expectExchange(expectStatus(await send(erin, trip, question), 201), question);
      await expectProviderSaw(question, expectedKey(true));
    });

    // Seed lines 423-434 (user-scoped and owner-only; PRODUCT.md: another user's resource is 404,
    // a manager reads and changes nothing of others).
    test('14. another user gets 404 on every route of erin\'s conversation; a manager reads it but may not write', async () => {
      const items = await stored(trip);
      const answer = items.at(-1);
      const base = conversations(`/${trip.id}`);
      await s.mock.reset();
      for (const [method, route, body] of [
        ['GET', base], ['PATCH', base, { title: 'x' }], ['DELETE', base], ['POST', `${base}/end`], ['POST', `${base}/reconnect`],
        ['GET', `${base}/validate`], ['GET', `${base}/stats`], ['GET', conversations()], ['GET', conversations('/recent')],
        ['POST', conversations(), { title: 'x' }], ['GET', messages(trip)], ['POST', messages(trip), { content: 'hi' }],
        ['GET', messages(trip, `/${answer.id}`)], ['GET', messages(trip, `/${answer.id}/stream`)],
        ['GET', `/api/v1/users/${dave.id}/conversations/${trip.id}`],
      ]) {
        const r = await call(method, route, { token: dave.token, body });
        expectStatus(r, 404, 'NOT_FOUND');
        assert.ok(!r.text.includes('Trip planning') && !r.text.includes('mock reply'), `${method} ${route} shows the conversation`);
      }
      // The manager reads…
      expectStatus(await call('GET', base, { token: mona.token }), 200);
      assert.equal(expectStatus(await call('GET', messages(trip), { token: mona.token }), 200).items.length, items.length);
      expectStatus(await call('GET', `${base}/stats`, { token: mona.token }), 200);
      // …and changes nothing.
      expectStatus(await call('POST', messages(trip), { token: mona.token, body: { content: 'hi' } }), 403, 'FORBIDDEN');
      expectStatus(await call('POST', `${base}/end`, { token: mona.token }), 403, 'FORBIDDEN');
      assert.deepEqual(await seenAuth(), []);
      assert.deepEqual(await stored(trip), items);
      assert.equal(expectStatus(await call('GET', base, { token: erin.token }), 200).status, 'active');
    });

    // Seed line 406 ("owner or admin").
    test('15. delete: a manager may not (403), the admin deletes erin\'s other conversation, erin her own; nothing is left', async () => {
      expectStatus(await call('DELETE', conversations(`/${trip.id}`), { token: mona.token }), 403, 'FORBIDDEN');
      const byRoot = await call('DELETE', conversations(`/${byAdmin.id}`), { token: root.token });
      expectStatus(byRoot, 204);
      assert.equal(byRoot.text, '');
      expectStatus(await call('GET', conversations(`/${byAdmin.id}`), { token: erin.token }), 404, 'NOT_FOUND');
      const answer = (await stored(trip)).at(-1);
      expectStatus(await call('DELETE', conversations(`/${trip.id}`), { token: erin.token }), 204);
      for (const route of [conversations(`/${trip.id}`), conversations(`/${trip.id}/stats`), messages(trip), messages(trip, `/${answer.id}`)]) {
        expectStatus(await call('GET', route, { token: erin.token }), 404, 'NOT_FOUND');
      }
      expectStatus(await call('DELETE', conversations(`/${trip.id}`), { token: erin.token }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await call('GET', conversations('?q=portugal'), { token: erin.token }), 200).total, 0);
      const left = expectStatus(await call('GET', conversations(), { token: erin.token }), 200);
      assert.deepEqual(left.items.map((c) => c.id), [groceries.id]);
    });

    test('16. no key or password reaches a log', async () => {
      expectNoSecretsInLogs([erinKey, erinKey.slice(-12), s.systemKey, s.systemKey.slice(-12), ...Object.values(pw)]);
    });
  });
}

// ---- the WebSocket chat, under every credential mode ------------------------------------------
// The seed's "WebSocket Chat Endpoints" and "WebSocket Message Format" (lines 437-520), as
// docs/REALTIME.md gives them: GET /ws/chat/{user_id} with the token in ?token= (or in the
// subprotocol), checked before the upgrade; the seed's start_conversation / send_message /
// end_conversation messages over the same stored conversations as the REST routes; answers
// streamed as `token` messages then `message_complete`, resumable after a drop with `reconnect`.
// Each credential mode gets its own parley + parley-mock, which checks the key of every answer.

const wsUrl = (s, route) => `${s.url.replace(/^http/, 'ws')}${route}`;

// A WebSocket client that keeps every message it receives (parsed) and waits for the one it needs.
function socketClient(ws) {
  const frames = [];
  let waiters = [];
  ws.on('message', (data, binary) => {
    // parley sends JSON text frames; anything else is kept so that the waiting test fails on it.
    let f;
    try { f = binary ? { type: '(binary frame)' } : JSON.parse(String(data)); } catch { f = { type: '(not JSON)', text: String(data) }; }
    frames.push(f);
    waiters = waiters.filter((w) => {
      if (!w.pred(f)) return true;
      clearTimeout(w.timer);
      w.resolve(f);
      return false;
    });
  });
  ws.on('close', (code) => {
    for (const w of waiters) { clearTimeout(w.timer); w.reject(new Error(`socket closed (${code}); got ${JSON.stringify(frames).slice(-1500)}`)); }
    waiters = [];
  });
  return {
    ws, frames,
    send: (type, data, id) => ws.send(JSON.stringify({ type, ...(id === undefined ? {} : { id }), ...(data === undefined ? {} : { data }) })),
    // The first message received (or to come) that `pred` accepts.
    next: (pred, ms = 8000) => {
      const found = frames.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve, reject };
        w.timer = setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          reject(new Error(`no such message in ${ms} ms; got ${JSON.stringify(frames).slice(-1500)}`));
        }, ms);
        waiters.push(w);
      });
    },
    // Every message that answered the client message with this `id`, in order.
    of: (id) => frames.filter((f) => f.id === id),
  };
}

// Opens a socket (`protocols`: the subprotocols offered) and waits for its `connected` message.
async function connectSocket(url, { protocols, sockets } = {}) {
  const ws = new WebSocket(url, protocols);
  sockets?.add(ws);
  const c = socketClient(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => { req.destroy(); reject(new Error(`upgrade refused: ${res.statusCode}`)); });
  });
  c.connected = await c.next((f) => f.type === 'connected');
  return c;
}


// The messages answering one send_message (or reconnect) up to its end: `message_complete` or
// `error`.
async function answerOf(c, id) {
  await c.next((f) => f.id === id && (f.type === 'message_complete' || f.type === 'error'));
  return c.of(id);
}

// Tokens numbered first…N, then message_complete N+1 with full_text their text: returns the text.
function expectStreamed(frames, { conversationId, messageId, first = 1 }) {
  const tokens = frames.filter((f) => f.type === 'token');
  const done = frames.at(-1);
  assert.equal(done.type, 'message_complete', JSON.stringify(done));
  assert.equal(frames.filter((f) => f.type === 'message_complete' || f.type === 'error').length, 1, 'one end');
  for (const t of tokens) {
    assert.deepEqual(Object.keys(t.data).sort(), ['conversation_id', 'event', 'message_id', 'token']);
    assert.equal(t.data.conversation_id, conversationId);
    assert.equal(t.data.message_id, messageId);
    assert.equal(typeof t.data.token, 'string');
  }
  assert.deepEqual(tokens.map((t) => t.data.event), tokens.map((_, i) => first + i), 'events in order, each once');
  const d = done.data;
  assert.equal(d.conversation_id, conversationId);
  assert.equal(d.message_id, messageId);
  assert.equal(d.event, first + tokens.length);
  assert.equal(d.done, true);
  assert.equal(d.status, 'complete');
  assert.equal(d.model, MODEL);
  assert.equal(typeof d.latency_ms, 'number');
  return tokens.map((t) => t.data.token).join('');
}

for (const mode of ['system', 'byok', 'byok_or_system']) {
  describe(`seed 004 chatbot: WebSocket chat, credentials = "${mode}" (${BACKEND})`, () => {
    let s; let erin; let dave;
    let chat; // the conversation erin starts over the socket
    let sock; // erin's socket, opened with ?token=
    let resumed; // the answer resumed after a drop: { id, text }
    const sockets = new Set();
    const erinKey = providerKey('erin');
    const pw = { root: password('root'), erin: password('erin'), dave: password('dave') };
    const badTokens = [];
    const call = (...args) => api(s.url, ...args);
    const byToken = (who, user = who) => wsUrl(s, `/ws/chat/${user.id}?token=${encodeURIComponent(who.token)}`);
    const stored = async (c) => expectStatus(await call('GET', `/api/v1/conversations/${c.id}/messages?limit=200`, { token: erin.token }), 200).items;
    const seenAuth = async () => (await s.mock.requests()).map((q) => q.authorization);
    // Which key the provider must see for erin; null: nothing may reach it.
    const expectedKey = (ownStored) => {
      if (mode === 'system') return s.systemKey;
      if (ownStored) return erinKey;
      return mode === 'byok' ? null : s.systemKey;
    };
    const context = [{ role: 'system', content: SYSTEM }];

    // The provider's one request: the system message, the previous turns, the question, with `key`.
    async function expectProviderSaw(question, key) {
      const seen = await s.mock.requests();
      assert.equal(seen.length, 1, JSON.stringify(seen.map((q) => q.path)));
      assert.equal(seen[0].authorization, `Bearer ${key}`);
      const body = JSON.parse(seen[0].body);
      assert.equal(body.model, MODEL);
      assert.deepEqual(body.messages, [...context, { role: 'user', content: question }]);
      context.push({ role: 'user', content: question }, { role: 'assistant', content: `mock reply: ${question}` });
    }

    // send_message {conversation_id, content} (the seed's shape): message_saved, the tokens, then
    // message_complete with "mock reply: <question>". Returns the answer's id.
    async function askOverSocket(c, id, question) {
      c.send('send_message', { conversation_id: chat.id, content: question }, id);
      const frames = await answerOf(c, id);
      const [saved, ...rest] = frames;
      assert.equal(saved.type, 'message_saved', JSON.stringify(frames));
      assert.deepEqual(Object.keys(saved.data).sort(), ['answer_message_id', 'conversation_id', 'message']);
      assert.equal(saved.data.conversation_id, chat.id);
      assert.match(saved.data.answer_message_id, ID);
      const m = saved.data.message;
      assert.deepEqual(Object.keys(m).sort(), MESSAGE_FIELDS);
      assert.deepEqual([m.role, m.content, m.sender_id, m.conversation_id, m.status], ['user', question, erin.id, chat.id, 'complete']);
      const text = expectStreamed(rest, { conversationId: chat.id, messageId: saved.data.answer_message_id });
      assert.ok(rest.length >= 3, 'streamed in several tokens');
      assert.equal(text, `mock reply: ${question}`);
      assert.equal(rest.at(-1).data.full_text, text);
      const prompt = [...context, { role: 'user', content: question }].reduce((n, x) => n + wordCount(x.content), 0);
      assert.deepEqual(rest.at(-1).data.usage, { prompt_tokens: prompt, completion_tokens: wordCount(text), total_tokens: prompt + wordCount(text) });
      return saved.data.answer_message_id;
    }

    before(async () => {
      s = await startStack({
        credentials: mode, mockKeys: [erinKey], mockArgs: ['--chunk-delay-ms', '15'],
        env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
      });
      await signUp(s.url, 'root', pw.root); // the deployment's admin
      erin = await signUp(s.url, 'erin', pw.erin);
      dave = await signUp(s.url, 'dave', pw.dave);
      // The seed's start_conversation names no model: erin's default model is the mock's.
      expectStatus(await call('PATCH', `/api/v1/users/${erin.id}/preferences`, { token: erin.token, body: { default_model: MODEL } }), 200);
    });
    after(async () => {
      for (const ws of sockets) ws.terminate();
      await s?.stop();
    });

    // Seed lines 448-451 and 461-464: "Token validation before connection", "User ID must match
    // token payload" — refused with an HTTP answer, never an open-then-close.
    test('1. a missing or bad token is 401 and another user\'s id 403, before the upgrade, with the error envelope', async () => {
      const [h, p, sig] = erin.token.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url'));
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      badTokens.push(
        `${h}.${b64({ ...claims, sub: dave.id })}.${sig}`, // erin's signature, dave's id
        `${h}.${b64({ ...claims, exp: Math.floor(Date.now() / 1000) - 3600 })}.${sig}`,
        `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      );
      await s.mock.reset();
      const noToken = await refusedUpgrade(wsUrl(s, `/ws/chat/${erin.id}`));
      expectStatus(noToken, 401, 'UNAUTHORIZED');
      for (const bad of ['not-a-jwt', ...badTokens]) {
        expectStatus(await refusedUpgrade(wsUrl(s, `/ws/chat/${erin.id}?token=${encodeURIComponent(bad)}`)), 401, 'UNAUTHORIZED');
        expectStatus(await refusedUpgrade(wsUrl(s, `/ws/chat/${erin.id}`), { protocols: ['parley.chat', `bearer.${bad}`] }), 401, 'UNAUTHORIZED');
      }
      // erin's valid token on dave's path, or on an id nobody has: 403.
      for (const route of [`/ws/chat/${dave.id}`, `/ws/chat/${'Q'.repeat(22)}`]) {
        const r = await refusedUpgrade(wsUrl(s, `${route}?token=${encodeURIComponent(erin.token)}`));
        expectStatus(r, 403, 'FORBIDDEN');
        assert.ok(!r.text.includes('dave'));
        expectStatus(await refusedUpgrade(wsUrl(s, route), { protocols: ['parley.chat', `bearer.${erin.token}`] }), 403, 'FORBIDDEN');
      }
      // Subprotocols offered without parley.chat.
      expectStatus(await refusedUpgrade(wsUrl(s, `/ws/chat/${erin.id}`), { protocols: [`bearer.${erin.token}`] }), 400, 'BAD_REQUEST');
      // The anonymous socket is off unless enabled.
      expectStatus(await refusedUpgrade(wsUrl(s, '/ws/chat')), 403, 'FORBIDDEN');
      // A plain GET is not an upgrade.
      expectStatus(await call('GET', `/ws/chat/${erin.id}?token=${encodeURIComponent(erin.token)}`), 426, 'UPGRADE_REQUIRED');
      assert.deepEqual(await seenAuth(), []);
    });

    // Seed lines 453-465 (the authenticated example) and docs/REALTIME.md "Server → client".
    test('2. erin connects with ?token=: `connected` names her and the token\'s expiry; ping → pong with the id back', async () => {
      sock = await connectSocket(byToken(erin), { sockets });
      const d = sock.connected.data;
      assert.equal(sock.connected.id, undefined);
      assert.deepEqual(Object.keys(d).sort(), ['anonymous', 'connection_id', 'expires_at', 'limits', 'user_id']);
      assert.equal(d.user_id, erin.id);
      assert.equal(d.anonymous, false);
      assert.equal(Date.parse(d.expires_at), decodeJwt(erin.token).payload.exp * 1000);
      assert.equal(typeof d.connection_id, 'string');
      assert.deepEqual(Object.keys(d.limits).sort(), ['max_generations', 'max_message_bytes', 'messages_per_minute']);
      sock.send('ping', undefined, 'p1');
      const pong = await sock.next((f) => f.id === 'p1');
      assert.equal(pong.type, 'pong');
      assert.ok(!Number.isNaN(Date.parse(pong.data.time)));
    });

    // Seed lines 485-496: start_conversation {user_id, title, system_message}.
    test('3. start_conversation in the seed\'s shape → conversation_started; a user_id that is not hers is refused on the open socket', async () => {
      sock.send('start_conversation', { user_id: erin.id, title: 'Socket chat', system_message: SYSTEM }, 'c1');
      const started = await sock.next((f) => f.id === 'c1');
      assert.equal(started.type, 'conversation_started', JSON.stringify(started));
      chat = started.data.conversation;
      assert.equal(started.data.conversation_id, chat.id);
      assert.deepEqual(Object.keys(chat).sort(), CONVERSATION_FIELDS);
      assert.match(chat.id, ID);
      assert.deepEqual([chat.user_id, chat.title, chat.system_message, chat.status, chat.message_count], [erin.id, 'Socket chat', SYSTEM, 'active', 0]);
      // The seed's example user_id (123), or dave's: an error, and the socket stays open.
      for (const [id, userId] of [['c2', 123], ['c3', dave.id]]) {
        sock.send('start_conversation', { user_id: userId, title: 'not mine', system_message: SYSTEM }, id);
        const e = await sock.next((f) => f.id === id);
        assert.equal(e.type, 'error', JSON.stringify(e));
        assert.equal(e.data.code, 'FORBIDDEN');
        assert.equal(e.data.param, 'user_id');
        assert.ok(e.data.request_id.startsWith(`${sock.connected.data.connection_id}.`), e.data.request_id);
      }
      sock.send('start_conversation', { title: '' }, 'c4');
      const invalid = await sock.next((f) => f.id === 'c4');
      assert.deepEqual([invalid.type, invalid.data.code, invalid.data.param], ['error', 'VALIDATION_ERROR', 'title']);
      const list = expectStatus(await call('GET', `/api/v1/users/${erin.id}/conversations`, { token: erin.token }), 200);
      assert.deepEqual(list.items.map((c) => c.id), [chat.id], 'only the one conversation was created');
    });

    // Seed lines 499-507 with the server's key (line 104): before erin stores a key of her own.
    test('4. the first send_message before erin stores a key: streamed with the system key, or an error API_KEY_NOT_CONFIGURED under byok with nothing stored', async () => {
      await s.mock.reset();
      const question = 'Hello, how are you?';
      if (expectedKey(false) === null) {
        sock.send('send_message', { conversation_id: chat.id, content: question }, 'm0');
        const frames = await answerOf(sock, 'm0');
        assert.deepEqual(frames.map((f) => f.type), ['error'], JSON.stringify(frames));
        const e = frames[0].data;
        assert.equal(e.code, 'API_KEY_NOT_CONFIGURED');
        assert.equal(e.conversation_id, chat.id);
        assert.equal(typeof e.message, 'string');
        assert.ok('param' in e && typeof e.type === 'string');
        assert.deepEqual(await seenAuth(), []);
        assert.deepEqual(await stored(chat), []);
      } else {
        await askOverSocket(sock, 'm0', question);
        await expectProviderSaw(question, expectedKey(false));
      }
    });

    // Seed lines 499-507 and line 51 ("Context Preservation").
    test('5. erin stores her own key; each socket message reaches the model with the system message, the previous turns and the right key', async () => {
      const put = await call('PUT', `/api/v1/users/${erin.id}/api-key`, { token: erin.token, body: { api_key: erinKey, provider: 'mock' } });
      assert.equal(expectStatus(put, 200).api_key_masked, `sk-…${erinKey.slice(-4)}`);
      const questions = context.length === 1 ? ['Hello, how are you?', 'Tell me a joke'] : ['Tell me a joke'];
      for (const [i, question] of questions.entries()) {
        await s.mock.reset();
        await askOverSocket(sock, `m${i + 1}`, question);
        await expectProviderSaw(question, expectedKey(true));
      }
      assert.equal(context.length, 5, 'system message and two exchanges');
      // A message without content is refused before anything reaches the provider.
      await s.mock.reset();
      sock.send('send_message', { conversation_id: chat.id, content: '' }, 'bad');
      const e = await sock.next((f) => f.id === 'bad');
      assert.deepEqual([e.type, e.data.code, e.data.param], ['error', 'VALIDATION_ERROR', 'content']);
      assert.deepEqual(await seenAuth(), []);
    });

    // docs/REALTIME.md "Events and resuming": a socket that drops mid-answer; a new one (token in
    // the subprotocol this time) sends reconnect and gets the rest of the answer, once.
    test('6. a socket dropped mid-answer; a new one (Sec-WebSocket-Protocol: parley.chat, bearer.<token>) resumes it with reconnect and gets the rest once', async () => {
      await s.mock.reset();
      const question = `Count for me ${numbered(12)}`;
      const first = await connectSocket(byToken(erin), { sockets });
      first.send('send_message', { conversation_id: chat.id, content: question }, 'long');
      const saved = await first.next((f) => f.id === 'long' && f.type === 'message_saved');
      const messageId = saved.data.answer_message_id;
      await first.next((f) => f.id === 'long' && f.type === 'token' && f.data.event === 3);
      first.ws.terminate(); // no close frame: the connection just drops
      const had = first.of('long').filter((f) => f.type === 'token');
      assert.ok(had.length >= 3 && !first.of('long').some((f) => f.type === 'message_complete'), 'dropped mid-answer');
      const lastEvent = had.at(-1).data.event;

      const second = await connectSocket(wsUrl(s, `/ws/chat/${erin.id}`), { protocols: ['parley.chat', `bearer.${erin.token}`], sockets });
      assert.equal(second.ws.protocol, 'parley.chat', 'parley answers parley.chat, never the token');
      assert.equal(second.connected.data.user_id, erin.id);
      second.send('reconnect', { conversation_id: chat.id, message_id: messageId, last_event: lastEvent }, 'r1');
      const frames = await answerOf(second, 'r1');
      const [back, ...rest] = frames;
      assert.equal(back.type, 'reconnected', JSON.stringify(frames));
      assert.equal(back.data.conversation_id, chat.id);
      assert.equal(back.data.message_id, messageId);
      assert.equal(back.data.last_event, lastEvent);
      assert.equal(back.data.conversation.id, chat.id);
      assert.equal(back.data.conversation.status, 'active');
      const restText = expectStreamed(rest, { conversationId: chat.id, messageId, first: lastEvent + 1 });
      const text = expectStreamed([...had, ...rest], { conversationId: chat.id, messageId });
      assert.equal(text, had.map((t) => t.data.token).join('') + restText);
      assert.equal(text, `mock reply: ${question}`);
      assert.equal(rest.at(-1).data.full_text, text);
      // The provider was asked once; the whole answer is stored.
      await expectProviderSaw(question, expectedKey(true));
      const answer = expectStatus(await call('GET', `/api/v1/conversations/${chat.id}/messages/${messageId}`, { token: erin.token }), 200);
      assert.equal(answer.content, text);
      assert.equal(answer.status, 'complete');
      resumed = { id: messageId, text, events: had.length + rest.length };
      second.ws.close(1000);
    });

    // Seed line 45 ("Message History") and docs/REALTIME.md: a socket is one more way into the
    // same conversations.
    test('7. the REST routes list the socket\'s conversation with every message; its answers replay over SSE too', async () => {
      const list = expectStatus(await call('GET', `/api/v1/users/${erin.id}/conversations`, { token: erin.token }), 200);
      assert.deepEqual(list.items.map((c) => c.id), [chat.id]);
      const items = await stored(chat);
      assert.deepEqual(items.map((m) => ({ role: m.role, content: m.content })), context.slice(1));
      for (const m of items) {
        assert.equal(m.status, 'complete');
        assert.equal(m.sender_id, m.role === 'user' ? erin.id : null);
      }
      const one = expectStatus(await call('GET', `/api/v1/users/${erin.id}/conversations/${chat.id}`, { token: erin.token }), 200);
      assert.equal(one.message_count, items.length);
      assert.equal(one.title, 'Socket chat');
      assert.equal(one.system_message, SYSTEM);
      const replay = await sseRequest(s.url, 'GET', `/api/v1/conversations/${chat.id}/messages/${resumed.id}/stream?after=0`, { token: erin.token });
      expectStatus(replay, 200);
      assert.equal(replay.events.length, resumed.events);
      assert.equal(replay.events.at(-1).data.full_text, resumed.text);
      // dave's socket reaches none of it.
      await s.mock.reset();
      const daves = await connectSocket(byToken(dave), { sockets });
      for (const [type, data, id] of [
        ['send_message', { conversation_id: chat.id, content: 'hi' }, 'd1'],
        ['end_conversation', { conversation_id: chat.id }, 'd2'],
        ['reconnect', { conversation_id: chat.id, message_id: resumed.id, last_event: 0 }, 'd3'],
      ]) {
        daves.send(type, data, id);
        const e = await daves.next((f) => f.id === id);
        assert.deepEqual([e.type, e.data.code], ['error', 'NOT_FOUND'], JSON.stringify(e));
        assert.ok(!JSON.stringify(e).includes('mock reply'));
      }
      assert.deepEqual(await seenAuth(), []);
      assert.equal((await stored(chat)).length, items.length);
      daves.ws.close(1000);
    });

    // Seed lines 510-519: end_conversation {conversation_id}.
    test('8. end_conversation → conversation_ended; the socket then refuses messages in it (CONFLICT) and REST shows it ended', async () => {
      sock.send('end_conversation', { conversation_id: chat.id }, 'e1');
      const ended = await sock.next((f) => f.id === 'e1');
      assert.equal(ended.type, 'conversation_ended', JSON.stringify(ended));
      assert.equal(ended.data.conversation_id, chat.id);
      assert.equal(ended.data.conversation.status, 'ended');
      assert.ok(!Number.isNaN(Date.parse(ended.data.conversation.ended_at)));
      await s.mock.reset();
      sock.send('send_message', { conversation_id: chat.id, content: 'anyone there?' }, 'e2');
      const refused = await answerOf(sock, 'e2');
      assert.deepEqual(refused.map((f) => [f.type, f.data.code]), [['error', 'CONFLICT']]);
      assert.deepEqual(await seenAuth(), []);
      const got = expectStatus(await call('GET', `/api/v1/users/${erin.id}/conversations/${chat.id}`, { token: erin.token }), 200);
      assert.equal(got.status, 'ended');
      assert.equal((await stored(chat)).length, context.length - 1, 'nothing stored');
      const closed = new Promise((resolve) => sock.ws.once('close', (code) => resolve(code)));
      sock.ws.close(1000);
      assert.equal(await closed, 1000, 'the client\'s close, echoed');
    });

    test('9. no token used on a socket, key or password reaches a log (a JWT in ?token= included)', async () => {
      expectNoSecretsInLogs([erin.token, dave.token, ...badTokens, erinKey, erinKey.slice(-12), s.systemKey, s.systemKey.slice(-12), ...Object.values(pw)]);
      assert.ok(!s.p.stderr.includes('token=') && !s.p.stdout.includes('token='), 'no query string in the log');
    });
  });
}

// ---- the anonymous WebSocket ------------------------------------------------------------------
// Seed lines 467-481: ws://host/ws/chat, "no authentication required", "conversations not saved to
// user profile". Off unless PARLEY_REALTIME_ANONYMOUS=true (403 above). Anonymous sockets cannot
// pick a model: the deployment's default answers, with the system key — here a deployment without
// the demo models, whose default model is the mock's.

describe(`seed 004 chatbot: anonymous WebSocket chat, PARLEY_REALTIME_ANONYMOUS=true (${BACKEND})`, () => {
  let mock; let p; let systemKey; let root;
  let anon; let other; let talk;
  const sockets = new Set();
  const pw = { root: password('root') };
  const call = (...args) => api(p.url, ...args);
  const context = [{ role: 'system', content: SYSTEM }];

  before(async () => {
    systemKey = providerKey('system');
    mock = await startMock(['--require-key', systemKey, '--chunk-delay-ms', '5']);
    const config = mockProviderConfig(mock.url, { credentials: 'system', keyEnv: 'JOURNEY_SYSTEM_KEY' });
    // The first exact model name is the deployment's default.
    writeFileSync(config, readFileSync(config, 'utf8').replace('models = ["gpt-*"', `models = ["${MODEL}", "gpt-*"`));
    try {
      p = await startParley({
        args: ['--config', config],
        env: { JOURNEY_SYSTEM_KEY: systemKey, PARLEY_REALTIME_ANONYMOUS: 'true', PARLEY_DEMO_PROVIDER: 'false' },
      });
    } catch (e) {
      await mock.stop();
      throw e;
    }
    root = await signUp(p.url, 'root', pw.root);
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    await p?.stop();
    await mock?.stop();
  });

  test('1. anyone connects to /ws/chat without a token: `connected` says anonymous, no user, no expiry', async () => {
    anon = await connectSocket(wsUrl(p, '/ws/chat'), { sockets });
    const d = anon.connected.data;
    assert.equal(d.user_id, null);
    assert.equal(d.anonymous, true);
    assert.equal(d.expires_at, null);
    assert.equal(d.limits.max_generations, 1, 'anonymous sockets stream one answer at a time');
  });

  test('2. start_conversation and send_message: streamed answers from the default model with the system key, the previous turns included', async () => {
    anon.send('start_conversation', { title: 'Demo chat', system_message: SYSTEM }, 1);
    const started = await anon.next((f) => f.id === 1);
    assert.equal(started.type, 'conversation_started', JSON.stringify(started));
    talk = started.data.conversation;
    assert.equal(started.data.conversation_id, talk.id);
    assert.deepEqual([talk.title, talk.system_message, talk.status], ['Demo chat', SYSTEM, 'active']);
    for (const [i, question] of ['Hello, how are you?', 'Tell me a joke'].entries()) {
      await mock.reset();
      const id = 10 + i;
      anon.send('send_message', { conversation_id: talk.id, content: question }, id);
      const [saved, ...rest] = await answerOf(anon, id);
      assert.equal(saved.type, 'message_saved', JSON.stringify(rest.at(-1)));
      const text = expectStreamed(rest, { conversationId: talk.id, messageId: saved.data.answer_message_id });
      assert.equal(text, `mock reply: ${question}`);
      assert.equal(rest.at(-1).data.full_text, text);
      const seen = await mock.requests();
      assert.equal(seen.length, 1);
      assert.equal(seen[0].authorization, `Bearer ${systemKey}`);
      const body = JSON.parse(seen[0].body);
      assert.equal(body.model, MODEL);
      assert.deepEqual(body.messages, [...context, { role: 'user', content: question }]);
      context.push({ role: 'user', content: question }, { role: 'assistant', content: text });
    }
  });

  test('3. the anonymous conversation is in nobody\'s history: not the admin\'s, not readable by id, not reachable from a user\'s socket', async () => {
    expectStatus(await call('POST', `/api/v1/users/${root.id}/conversations`, { token: root.token, body: { title: 'Mine', model: MODEL } }), 201);
    const list = expectStatus(await call('GET', `/api/v1/users/${root.id}/conversations`, { token: root.token }), 200);
    assert.deepEqual(list.items.map((c) => c.title), ['Mine']);
    assert.equal(expectStatus(await call('GET', `/api/v1/users/${root.id}/conversations?q=joke`, { token: root.token }), 200).total, 0);
    expectStatus(await call('GET', `/api/v1/conversations/${talk.id}/messages`, { token: root.token }), 404, 'NOT_FOUND');
    expectStatus(await call('GET', `/api/v1/users/${root.id}/conversations/${talk.id}`, { token: root.token }), 404, 'NOT_FOUND');
    expectStatus(await call('GET', '/api/v1/users/anonymous/conversations', { token: root.token }), 404, 'NOT_FOUND');
    // The admin's socket cannot reach it, nor the anonymous socket the admin's conversations.
    await mock.reset();
    const admin = await connectSocket(wsUrl(p, `/ws/chat/${root.id}?token=${encodeURIComponent(root.token)}`), { sockets });
    admin.send('send_message', { conversation_id: talk.id, content: 'hi' }, 'a1');
    const e = await admin.next((f) => f.id === 'a1');
    assert.deepEqual([e.type, e.data.code], ['error', 'NOT_FOUND']);
    admin.ws.close(1000);
    other = await connectSocket(wsUrl(p, '/ws/chat'), { sockets });
    other.send('send_message', { conversation_id: list.items[0].id, content: 'hi' }, 'x1');
    const e2 = await other.next((f) => f.id === 'x1');
    assert.deepEqual([e2.type, e2.data.code], ['error', 'NOT_FOUND']);
    assert.deepEqual(await mock.requests(), []);
  });

  test('4. end_conversation ends it; no message after that', async () => {
    anon.send('end_conversation', { conversation_id: talk.id }, 4);
    const ended = await anon.next((f) => f.id === 4);
    assert.equal(ended.type, 'conversation_ended', JSON.stringify(ended));
    assert.equal(ended.data.conversation.status, 'ended');
    anon.send('send_message', { conversation_id: talk.id, content: 'still there?' }, 5);
    const e = await anon.next((f) => f.id === 5);
    assert.deepEqual([e.type, e.data.code], ['error', 'CONFLICT']);
    const closed = new Promise((resolve) => anon.ws.once('close', (code) => resolve(code)));
    anon.ws.close(1000);
    assert.equal(await closed, 1000);
  });

  // docs/REALTIME.md: anonymous sockets cannot choose a model; realtime.anonymous_messages_per_minute
  // (20) bounds a demo client ("over" it: RATE_LIMIT_EXCEEDED with retry_after_ms, the socket stays
  // open), and every error answering a message carries that message's `id` back.
  test('5. an anonymous socket may not pick a model; the 21st message within a minute is refused with RATE_LIMIT_EXCEEDED and its id', async () => {
    other.send('start_conversation', { title: 'x', model: MODEL }, 'x2');
    const e = await other.next((f) => f.id === 'x2');
    assert.deepEqual([e.type, e.data.code, e.data.param], ['error', 'VALIDATION_ERROR', 'model']);
    let sent = 2; // x1 and x2
    let refused = null;
    while (!refused && sent < 25) {
      const id = `q${++sent}`;
      other.send('ping', undefined, id);
      const f = await other.next((x) => x.id === id || (x.type === 'error' && x.data.code === 'RATE_LIMIT_EXCEEDED'));
      if (f.type === 'error') refused = { frame: f, id, nth: sent };
      else assert.equal(f.type, 'pong');
    }
    assert.ok(refused, 'more than 20 messages at once are refused');
    assert.equal(typeof refused.frame.data.retry_after_ms, 'number');
    assert.equal(other.ws.readyState, WebSocket.OPEN, 'the socket stays open');
    assert.deepEqual(
      { firstRefused: refused.nth > 20 ? 'after the 20th' : `the ${refused.nth}th`, id: refused.frame.id },
      { firstRefused: 'after the 20th', id: refused.id },
      `20 messages a minute are accepted; the refusal carries the refused message's id: ${JSON.stringify(refused.frame)}`,
    );
  });

  test('6. no key, token or password reaches a log', async () => {
    expectNoSecretsInLogs([systemKey, systemKey.slice(-12), root.token, ...Object.values(pw)]);
  });
});

// ---- chat, under every credential mode --------------------------------------------------------

for (const mode of ['system', 'byok', 'byok_or_system']) {
  describe(`seed 004 chatbot: chat, credentials = "${mode}" (${BACKEND})`, () => {
    let s; let erin;
    const erinKey = providerKey('erin');
    const pw = { root: password('root'), erin: password('erin') };
    const call = (...args) => api(s.url, ...args);
    // Which key the provider must see for erin; null: nothing may reach it.
    const expectedKey = (ownStored) => {
      if (mode === 'system') return s.systemKey;
      if (ownStored) return erinKey;
      return mode === 'byok' ? null : s.systemKey;
    };
    const turn1 = [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Hello, how are you?' }];

    before(async () => {
      s = await startStack({ credentials: mode, mockKeys: [erinKey], env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' } });
      await signUp(s.url, 'root', pw.root); // the deployment's admin
      erin = await signUp(s.url, 'erin', pw.erin);
    });
    after(async () => { await s?.stop(); });

    test('a. before erin stores a key of her own: served with the system key, or 400 API_KEY_NOT_CONFIGURED under byok', async () => {
      await s.mock.reset();
      const r = await call('POST', '/api/v1/chat', { token: erin.token, body: { model: MODEL, messages: turn1 } });
      const st = await call('POST', '/api/v1/chat/stream', { token: erin.token, body: { model: MODEL, messages: turn1 } });
      const seen = (await s.mock.requests()).map((q) => q.authorization);
      if (expectedKey(false) === null) {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        expectStatus(st, 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(seen, []);
      } else {
        assert.equal(expectStatus(r, 200).content, 'mock reply: Hello, how are you?');
        assert.equal(sseEvents(st.text).at(-1).done, true, st.text);
        assert.deepEqual(seen, [`Bearer ${s.systemKey}`, `Bearer ${s.systemKey}`]);
      }
    });

    test('b. start a conversation: the system message and the first message reach the model with the right key', async () => {
      const put = await call('PUT', `/api/v1/users/${erin.id}/api-key`, { token: erin.token, body: { api_key: erinKey, provider: 'mock' } });
      assert.equal(expectStatus(put, 200).api_key_masked, `sk-…${erinKey.slice(-4)}`);
      await s.mock.reset();
      const r = await call('POST', '/api/v1/chat', { token: erin.token, body: { model: MODEL, messages: turn1, temperature: 0.7, max_tokens: 200 } });
      const body = expectStatus(r, 200);
      assert.equal(body.content, 'mock reply: Hello, how are you?');
      assert.equal(body.model, MODEL);
      assert.deepEqual(body.usage, { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 });
      const [q] = await s.mock.requests();
      assert.equal(q.authorization, `Bearer ${expectedKey(true)}`);
      const sent = JSON.parse(q.body);
      assert.deepEqual(sent.messages, turn1);
      assert.equal(sent.model, MODEL);
      assert.equal(sent.temperature, 0.7);
      assert.equal(sent.max_tokens, 200);
    });

    test('c. send the next message with the context: the model sees the whole history in order', async () => {
      const history = [...turn1, { role: 'assistant', content: 'mock reply: Hello, how are you?' }, { role: 'user', content: 'Tell me a joke' }];
      await s.mock.reset();
      const body = expectStatus(await call('POST', '/api/v1/chat', { token: erin.token, body: { model: MODEL, messages: history } }), 200);
      assert.equal(body.content, 'mock reply: Tell me a joke');
      assert.deepEqual(body.usage, { prompt_tokens: 19, completion_tokens: 6, total_tokens: 25 });
      const seen = await s.mock.requests();
      assert.equal(seen.length, 1);
      assert.deepEqual(JSON.parse(seen[0].body).messages, history);
      assert.equal(seen[0].authorization, `Bearer ${expectedKey(true)}`);
    });

    test('d. the reply streams back token by token, then one done event with full_text and usage', async () => {
      await s.mock.reset();
      const r = await call('POST', '/api/v1/chat/stream', { token: erin.token, body: { model: MODEL, messages: turn1 } });
      expectStatus(r, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
      const events = sseEvents(r.text);
      const tokens = events.slice(0, -1);
      const done = events.at(-1);
      assert.ok(tokens.length >= 2 && tokens.every((e) => typeof e.token === 'string' && Object.keys(e).length === 1), r.text);
      assert.equal(done.done, true, r.text);
      assert.equal(events.filter((e) => e.done || e.error).length, 1);
      assert.equal(done.full_text, tokens.map((e) => e.token).join(''));
      assert.equal(done.full_text, 'mock reply: Hello, how are you?');
      assert.deepEqual(done.usage, { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 });
      assert.deepEqual((await s.mock.requests()).map((q) => q.authorization), [`Bearer ${expectedKey(true)}`]);
    });

    test('e. chat needs a valid token (the seed validates the token before any chat) and valid messages', async () => {
      await s.mock.reset();
      for (const route of ['/api/v1/chat', '/api/v1/chat/stream']) {
        const r = await call('POST', route, { body: { model: MODEL, messages: turn1 } });
        expectStatus(r, 401, 'UNAUTHORIZED');
        assert.equal(r.headers.get('www-authenticate'), 'Bearer');
        // The seed's WebSocket payload is not a chat body.
        const wsShape = await call('POST', route, { token: erin.token, body: { type: 'send_message', data: { conversation_id: 456, content: 'Hello' } } });
        expectValidation(wsShape, 'type');
        expectValidation(await call('POST', route, { token: erin.token, body: { model: MODEL, messages: [{ role: 'system', content: SYSTEM }] } }), 'messages');
      }
      assert.deepEqual(await s.mock.requests(), []);
    });

    test('f. after erin deletes her key: byok refuses again, the other modes use the system key', async () => {
      expectStatus(await call('DELETE', `/api/v1/users/${erin.id}/api-key?provider=mock`, { token: erin.token }), 204);
      await s.mock.reset();
      const r = await call('POST', '/api/v1/chat', { token: erin.token, body: { model: MODEL, messages: turn1 } });
      if (expectedKey(false) === null) {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await s.mock.requests(), []);
      } else {
        expectStatus(r, 200);
        assert.deepEqual((await s.mock.requests()).map((q) => q.authorization), [`Bearer ${s.systemKey}`]);
      }
    });

    test('g. no key or password reaches a log', async () => {
      expectNoSecretsInLogs([erinKey, erinKey.slice(-12), s.systemKey, s.systemKey.slice(-12), ...Object.values(pw)]);
    });
  });
}
