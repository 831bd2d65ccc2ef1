// Loose input that was accepted: impossible timestamps, control characters in names, JSON bodies
// that repeat a key (parley read the last occurrence while the provider may read the first).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND, adminToken, startStack } from '../integration/harness.mjs';

describe(`strict input (${BACKEND})`, () => {
  let stack; let p; let mock; let token;
  before(async () => {
    stack = await startStack({ mockArgs: [] });
    ({ p, mock } = stack);
    token = await adminToken(p.url);
  });
  after(async () => { await stack.stop(); });

  const send = async (route, text, { method = 'POST' } = {}) => {
    const res = await fetch(`${p.url}${route}`, { method, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: text });
    const body = await res.text();
    return { status: res.status, body: body ? JSON.parse(body) : null };
  };

  for (const expires of ['2030-02-31T00:00:00Z', '2031-02-29T00:00:00Z', '2030-04-31T12:00:00Z', '2030-01-01T00:00:00+99:99',
    '2030-01-01T00:00:00+24:00', '9999-12-31T23:59:60Z', '2030-01-01T00:00:00']) {
    test(`expires_at "${expires}" is refused with 422`, async () => {
      const r = await send('/api/v1/api-keys', JSON.stringify({ name: 'k', expires_at: expires }));
      assert.equal(r.status, 422, JSON.stringify(r.body));
      assert.equal(r.body.error.param, 'expires_at');
    });
  }

  test('a real date such as 29 February of a leap year is accepted and kept as written', async () => {
    const r = await send('/api/v1/api-keys', JSON.stringify({ name: 'leap', expires_at: '2032-02-29T10:00:00Z' }));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.match(r.body.expires_at, /^2032-02-29T10:00:00/);
  });

  for (const [label, name] of [['NUL', 'a\u0000b'], ['a newline', 'line\nbreak'], ['an escape', 'x\u001b[31m'], ['DEL', 'a\u007f']]) {
    test(`a key name with ${label} is refused with 422`, async () => {
      const created = await send('/api/v1/api-keys', JSON.stringify({ name }));
      assert.equal(created.status, 422, JSON.stringify(created.body));
      assert.equal(created.body.error.param, 'name');
    });
  }

  test('a body with "model" twice is refused on /v1 and reaches no provider', async () => {
    await mock.reset();
    const r = await send('/v1/chat/completions', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"model":"gpt-4o"}');
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal((await mock.requests()).length, 0);
  });

  test('parley\'s own routes refuse a body that repeats a key, also in a nested object', async () => {
    for (const text of [
      '{"messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}',
      '{"messages":[{"role":"user","content":"a","content":"b"}]}',
    ]) {
      const r = await send('/api/v1/chat', text);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'INVALID_JSON');
    }
    const ok = await send('/api/v1/chat', '{"messages":[{"role":"user","content":"same name in two objects"},{"role":"user","content":"fine"}]}');
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});
