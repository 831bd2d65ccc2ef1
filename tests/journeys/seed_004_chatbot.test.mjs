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
//   → the WebSocket chat: not in parley yet, test.todo entries naming the routes PRODUCT.md promises
//   → chat (the seed's start_conversation / send_message through POST /api/v1/chat and
//     /api/v1/chat/stream, system message and context included) under each credential mode,
//     each with its own parley + parley-mock, checking which key the mock received.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startStack, api, expectStatus, signUp, sseEvents, sseRequest, providerKey, expectNoSecretsInLogs, BACKEND,
} from './lib.mjs';

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

// ---- the WebSocket chat: not in parley yet ------------------------------------------------------

describe('seed 004 chatbot: WebSocket chat (not in parley yet)', () => {
  test.todo('GET /ws/chat/{user_id}?token=… — authenticated WebSocket; a bad token or a user_id that is not the token\'s is refused; route missing');
  test.todo('GET /ws/chat — anonymous WebSocket, off unless enabled; route missing');
  test.todo('WebSocket start_conversation {user_id, title, system_message} → a conversation id; route /ws/chat/{user_id} missing');
  test.todo('WebSocket send_message {conversation_id, content} → tokens stream back, reply stored; route /ws/chat/{user_id} missing');
  test.todo('WebSocket end_conversation {conversation_id} → the conversation is ended; route /ws/chat/{user_id} missing');
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
