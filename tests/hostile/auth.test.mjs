// Hostile clients on the unauthenticated routes: a flood of registrations must not stall the
// server (duplicates are refused before any password is hashed; hashing has its own threads and a
// bounded queue, 503 with Retry-After past it), and each client address has an allowance of
// registration attempts per window (429 with Retry-After past it).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, BACKEND } from '../integration/harness.mjs';

async function post(url, route, body, headers = {}) {
  const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

describe(`registration flood (${BACKEND})`, () => {
  let p;
  before(async () => {
    p = await startParley({
      env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_BLOCKING_THREADS: '2', PARLEY_AUTH_REGISTRATIONS_PER_ADDRESS: '100000' },
    });
    const first = await post(p.url, '/api/v1/auth/register', { username: 'taken', email: 'taken@example.com', password: 'correct horse battery' });
    assert.equal(first.status, 201);
  });
  after(async () => { await p.cleanup(); });

  test('500 duplicate registrations are each 409 naming the field, and the server keeps answering', async () => {
    const jobs = [];
    for (let i = 0; i < 500; i++) {
      const dupName = i % 2 === 0;
      jobs.push(post(p.url, '/api/v1/auth/register', {
        username: dupName ? 'taken' : `fresh${i}`,
        email: dupName ? `other${i}@example.com` : 'taken@example.com',
        password: 'correct horse battery',
      }).then((r) => ({ r, dupName })));
    }
    const ready = fetch(`${p.url}/health/ready`).then((r) => r.status);
    const results = await Promise.all(jobs);
    assert.equal(await ready, 200);
    for (const { r, dupName } of results) {
      if (r.status === 503) {
        assert.equal(r.headers.get('retry-after'), '1');
        continue;
      }
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'CONFLICT');
      assert.equal(r.body.error.param, dupName ? 'username' : 'email');
    }
  });

  test('past the hashing queue, registrations get 503 with Retry-After, the rest succeed, none is lost', async () => {
    const jobs = [];
    for (let i = 0; i < 60; i++) {
      jobs.push(post(p.url, '/api/v1/auth/register', { username: `burst${i}`, email: `burst${i}@example.com`, password: 'correct horse battery' }));
    }
    const ready = fetch(`${p.url}/health/ready`).then((r) => r.status);
    const results = await Promise.all(jobs);
    assert.equal(await ready, 200);
    const busy = results.filter((r) => r.status === 503);
    const created = results.filter((r) => r.status === 201);
    assert.equal(busy.length + created.length, 60, results.map((r) => r.status).join(','));
    assert.ok(busy.length > 0, 'no request was refused: the queue is not bounded');
    assert.ok(created.length >= 16, `only ${created.length} created`);
    for (const r of busy) {
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.body.error.code, 'SERVICE_UNAVAILABLE');
    }
    // A refused registration did not happen: the name is still free.
    const again = results.findIndex((r) => r.status === 503);
    const retry = await post(p.url, '/api/v1/auth/register', { username: `burst${again}`, email: `burst${again}@example.com`, password: 'correct horse battery' });
    assert.equal(retry.status, 201);
  });
});

describe(`registrations per client address (${BACKEND})`, () => {
  let p;
  const user = (name) => ({ username: name, email: `${name}@example.com`, password: 'correct horse battery' });
  before(async () => {
    // This test's client is its own trusted proxy, so X-Forwarded-For picks the client address.
    p = await startParley({
      env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_AUTH_REGISTRATIONS_PER_ADDRESS: '3', PARLEY_HTTP_TRUSTED_PROXIES: '127.0.0.1' },
    });
  });
  after(async () => { await p.cleanup(); });

  test('past the allowance an address gets 429 with Retry-After; taken names count; other addresses are served', async () => {
    const from = { 'X-Forwarded-For': '203.0.113.20' };
    assert.equal((await post(p.url, '/api/v1/auth/register', user('first'), from)).status, 201);
    assert.equal((await post(p.url, '/api/v1/auth/register', user('first'), from)).status, 409);
    assert.equal((await post(p.url, '/api/v1/auth/register', user('second'), from)).status, 201);
    const refused = await post(p.url, '/api/v1/auth/register', user('third'), from);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'RATE_LIMIT_EXCEEDED');
    const wait = Number(refused.headers.get('retry-after'));
    assert.ok(wait > 3500 && wait <= 3600, `Retry-After ${wait}`);
    assert.equal(refused.headers.get('x-ratelimit-limit'), '3');
    assert.equal(refused.headers.get('x-ratelimit-remaining'), '0');
    // Refused attempts are not counted against anything else: the name is free, another address
    // registers it, and accounts made from the limited address still log in.
    const other = await post(p.url, '/api/v1/auth/register', user('third'), { 'X-Forwarded-For': '198.51.100.20' });
    assert.equal(other.status, 201);
    const login = await fetch(`${p.url}/api/v1/auth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...from },
      body: new URLSearchParams({ username: 'second', password: 'correct horse battery' }).toString(),
    });
    assert.equal(login.status, 200);
    // Malformed registrations are refused before the allowance is looked at: still 422, not 429.
    const bad = await post(p.url, '/api/v1/auth/register', { username: 'x' }, from);
    assert.equal(bad.status, 422);
  });
});
