// Hostile clients on the unauthenticated routes: a flood of registrations must not stall the
// server (duplicates are refused before any password is hashed; hashing has its own threads and a
// bounded queue, 503 with Retry-After past it).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, BACKEND } from '../integration/harness.mjs';

async function post(url, route, body) {
  const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

describe(`registration flood (${BACKEND})`, () => {
  let p;
  before(async () => {
    p = await startParley({ env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_BLOCKING_THREADS: '2' } });
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
