// The authorization matrix (authz_matrix.json): every identity and conversation route × every kind of caller ×
// the expected status, run against the real binary. Data-driven: later issues add rows, not code.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startParley, PARLEY_BIN, BACKEND } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const matrix = JSON.parse(readFileSync(path.join(here, 'authz_matrix.json'), 'utf8'));
const uniq = () => randomBytes(5).toString('hex');

async function call(p, method, route, { token, apiKey, body, extraHeaders = {} } = {}) {
  const headers = { ...extraHeaders };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (apiKey) headers['X-API-Key'] = apiKey;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${p.url}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; } // SSE answers are not JSON
  return { status: res.status, text, body: parsed };
}

async function must(p, status, method, route, options) {
  const r = await call(p, method, route, options);
  assert.equal(r.status, status, `${method} ${route}: ${r.text}`);
  return r.body;
}

// Replaces {name} placeholders in every string of a path or body.
function substitute(value, vars) {
  if (typeof value === 'string') {
    return value.replace(/\{(\w+)\}/g, (whole, name) => {
      if (!(name in vars)) throw new Error(`unknown placeholder ${whole}`);
      return typeof vars[name] === 'function' ? vars[name]() : vars[name];
    });
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, vars)]));
  }
  return value;
}

describe('authorization matrix (data)', () => {
  test('every row names the required callers, known callers only, and valid statuses', () => {
    const callers = Object.keys(matrix.callers);
    for (const row of matrix.rows) {
      const name = `${row.method} ${row.path}`;
      assert.match(row.method, /^(GET|POST|PUT|PATCH|DELETE)$/, name);
      for (const c of matrix.required_callers) assert.ok(c in row.expect, `${name} has no expectation for ${c}`);
      for (const [c, status] of Object.entries(row.expect)) {
        assert.ok(callers.includes(c), `${name}: unknown caller ${c}`);
        assert.ok(Number.isInteger(status) && status >= 200 && status < 600, `${name}: ${c} → ${status}`);
      }
      for (const f of row.fresh ?? []) assert.ok(['owner', 'key', 'conversation'].includes(f), `${name}: fresh ${f}`);
    }
  });

  test('every identity and conversation route of the binary has a row', (t) => {
    const r = spawnSync(PARLEY_BIN, ['routes'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const identity = /^\/api\/v1\/(auth\/[^/]+|users(\/me|\/\{user_id\}(\/preferences)?)?|api-keys(\/\{key_id\})?|audit)$/;
    const conversation = /^\/(api\/v1\/(users\/\{user_id\}\/)?conversations|v1\/conversations|v1\/responses)(\/|$)/;
    // The matrix names a /v1/conversations item by {message_id} (items are messages); the route says {item_id}.
    const template = (p) => p.split('?')[0]
      .replace(/\{missing_id\}/, (m, off, s) => (s.startsWith('/api/v1/api-keys') ? '{key_id}' : '{user_id}'))
      .replace(/^(\/v1\/conversations\/\{conversation_id\}\/items\/)\{message_id\}$/, '$1{item_id}')
      // The /v1/responses rows name an id no one owns (ownership itself: responses.test.mjs).
      .replace(/^\/v1\/responses\/resp_\{unique\}/, '/v1/responses/{id}');
    const covered = new Set(matrix.rows.map((row) => `${row.method} ${template(row.path)}`));
    const routes = r.stdout.trim().split('\n').map((l) => l.trim()).filter(Boolean);
    const identityRoutes = routes.filter((l) => identity.test(l.split(' ')[1]));
    assert.ok(identityRoutes.length >= 17, `identity routes found: ${identityRoutes.join(', ')}`);
    const missing = identityRoutes.filter((l) => !covered.has(l));
    assert.deepEqual(missing, [], 'identity routes without a row in authz_matrix.json');
    const conversationRoutes = routes.filter((l) => conversation.test(l.split(' ')[1]));
    assert.ok(conversationRoutes.length >= 17, `conversation routes found: ${conversationRoutes.join(', ')}`);
    assert.deepEqual(conversationRoutes.filter((l) => !covered.has(l)), [], 'conversation routes without a row in authz_matrix.json');
    const others = routes.filter((l) => /^\S+ \/(api\/)?v1\//.test(l) && !identity.test(l.split(' ')[1]) && !covered.has(l));
    if (others.length) t.diagnostic(`routes of later issues without a row yet: ${others.join(', ')}`);
  });
});

describe(`authorization matrix (${BACKEND})`, () => {
  let p;
  const people = {}; // caller name → { id, token?, apiKey?, password }
  let adminToken;
  let ownerKeyId;
  let sharedConversation; // { id, messageId } of people.owner, for rows without "fresh": ["conversation"]

  async function makeUser(role) {
    const username = `${role}_${uniq()}`;
    const password = `pw-${uniq()}-${uniq()}`;
    const user = await must(p, 201, 'POST', '/api/v1/users', {
      token: adminToken, body: { username, email: `${username}@example.com`, password, role },
    });
    return { ...user, password };
  }

  async function tokenFor(user) {
    const r = await fetch(`${p.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: user.username, password: user.password }),
    });
    assert.equal(r.status, 200);
    return (await r.json()).access_token;
  }

  async function keyFor(userId) {
    return must(p, 201, 'POST', '/api/v1/api-keys', { token: adminToken, body: { name: `k_${uniq()}`, user_id: userId } });
  }

  // A new conversation of `owner`, created by the owner; with an answer (the demo model's reply to
  // a message the owner posts) when `withAnswer`.
  async function conversationOf(owner, withAnswer) {
    const token = owner.token ?? (owner.token = await tokenFor(owner));
    const c = await must(p, 201, 'POST', `/api/v1/users/${owner.id}/conversations`, { token, body: { title: `matrix ${uniq()}` } });
    if (!withAnswer) return { id: c.id };
    const sent = await must(p, 201, 'POST', `/api/v1/conversations/${c.id}/messages`, { token, body: { content: 'hello' } });
    return { id: c.id, messageId: sent.assistant_message.id };
  }

  before(async () => {
    p = await startParley();
    const adminPassword = `pw-admin-${uniq()}`;
    const admin = await must(p, 201, 'POST', '/api/v1/auth/register', {
      body: { username: 'matrix_admin', email: 'matrix_admin@example.com', password: adminPassword },
    });
    assert.equal(admin.role, 'admin');
    adminToken = await tokenFor({ username: 'matrix_admin', password: adminPassword });
    people.admin = { ...admin, token: adminToken };
    for (const [name, spec] of Object.entries(matrix.callers)) {
      if (!spec.role || name === 'admin') continue;
      const user = await makeUser(spec.role);
      people[name] = { ...user, token: await tokenFor(user) };
    }
    for (const [name, spec] of Object.entries(matrix.callers)) {
      if (spec.via === 'service_key') people[name] = { apiKey: (await keyFor(people[spec.as].id)).key, as: spec.as };
    }
    ownerKeyId = (await keyFor(people.owner.id)).id;
  });
  after(async () => { await p.cleanup(); });

  // The credentials `caller` presents in a cell whose owner is `owner`.
  async function credentials(caller, owner) {
    const spec = matrix.callers[caller];
    if (caller === 'anonymous') return {};
    const target = spec.as ?? caller;
    if (target === 'owner' && owner !== people.owner) {
      if (spec.via === 'service_key') return { apiKey: (await keyFor(owner.id)).key };
      return { token: owner.token ?? (owner.token = await tokenFor(owner)) };
    }
    const who = people[caller];
    return who.apiKey ? { apiKey: who.apiKey } : { token: who.token };
  }

  for (const row of matrix.rows) {
    for (const [caller, expected] of Object.entries(row.expect)) {
      test(`${row.method} ${row.path}${row.body ? ` ${JSON.stringify(row.body)}` : ''} as ${caller} → ${expected}`, async () => {
        const fresh = new Set(row.fresh ?? []);
        const owner = fresh.has('owner') ? await makeUser('user') : people.owner;
        let keyId = ownerKeyId;
        if (fresh.has('key') || owner !== people.owner) keyId = (await keyFor(owner.id)).id;
        const vars = { user_id: owner.id, key_id: keyId, missing_id: `missing${uniq()}`, unique: uniq };
        const named = JSON.stringify([row.path, row.body ?? null]);
        if (named.includes('{conversation_id}') || named.includes('{message_id}')) {
          const withAnswer = named.includes('{message_id}');
          const conversation = fresh.has('conversation') || owner !== people.owner
            ? await conversationOf(owner, withAnswer)
            : (sharedConversation ??= await conversationOf(owner, true));
          vars.conversation_id = conversation.id;
          if (withAnswer) vars.message_id = conversation.messageId;
        }
        if (named.includes('{call_id}')) {
          const token = owner.token ?? (owner.token = await tokenFor(owner));
          vars.call_id = (await must(p, 201, 'POST', '/api/v1/calls', {
            token,
            body: { user_id: owner.id, direction: 'outbound', from_number: '+14155550100', to_number: '+14155550101', status: 'missed', started_at: new Date().toISOString() },
          })).id;
        }
        const route = substitute(row.path, vars);
        const body = row.body === undefined ? undefined : substitute(row.body, vars);
        const r = await call(p, row.method, route, { ...(await credentials(caller, owner)), body, extraHeaders: row.headers });
        assert.equal(r.status, expected, `${row.method} ${route} as ${caller}: ${r.text}`);
        if (r.status >= 400 && row.envelope === 'anthropic') {
          // Anthropic's routes answer in Anthropic's shape: {type: "error", error: {type, message}}.
          assert.equal(r.body?.type, 'error', `error shape: ${r.text}`);
          assert.equal(typeof r.body?.error?.type, 'string', `error shape: ${r.text}`);
        } else if (r.status >= 400) {
          assert.equal(typeof r.body?.error?.code, 'string', `error envelope: ${r.text}`);
        }
        if (r.status === 404 && caller !== 'anonymous' && row.envelope !== 'anthropic') {
          // Another user's object answers exactly like one that does not exist.
          assert.equal(r.body.error.code, 'NOT_FOUND');
          assert.ok(!r.text.includes(owner.username) && !r.text.includes(owner.email), `a 404 reveals nothing: ${r.text}`);
        }
      });
    }
  }
});
