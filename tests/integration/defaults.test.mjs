// [defaults] (docs/ASSISTANT.md, "Settings"): the model, temperature and max_tokens of parley's own
// routes when a request names none, and seed 001's OPENAI_* environment checked at start.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, startStack, adminToken, createServiceKey } from './harness.mjs';

async function post(url, route, key, body) {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('[defaults] apply to routes that name no model', () => {
  let s; let key;
  before(async () => {
    s = await startStack({ extraConfig: '\n[defaults]\nmodel = "mock-defaults"\ntemperature = 0.25\nmax_tokens = 77\n' });
    key = (await createServiceKey(s.url, await adminToken(s.url))).key;
  });
  after(async () => { await s.stop(); });

  test('chat without a model goes to the default model with the default temperature and max_tokens', async () => {
    await s.mock.reset();
    const r = await post(s.url, '/api/v1/chat', key, { messages: [{ role: 'user', content: 'hello there' }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model, 'mock-defaults');
    const [sent] = await s.mock.requests();
    const body = JSON.parse(sent.body);
    assert.equal(body.model, 'mock-defaults');
    assert.equal(body.temperature, 0.25);
    assert.equal(body.max_tokens, 77);
  });

  test('what the request names wins over the defaults', async () => {
    await s.mock.reset();
    const r = await post(s.url, '/api/v1/chat', key,
      { model: 'mock-2', temperature: 1.5, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const body = JSON.parse((await s.mock.requests())[0].body);
    assert.deepEqual([body.model, body.temperature, body.max_tokens], ['mock-2', 1.5, 5]);
  });

  test('the assistant turn uses the defaults too', async () => {
    await s.mock.reset();
    const me = await (await fetch(`${s.url}/api/v1/users/me`, { headers: { Authorization: `Bearer ${key}` } })).json();
    const r = await post(s.url, '/api/v1/conversation', key, { user_id: me.id, text: 'what time is it' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model_used, 'mock-defaults');
    const body = JSON.parse((await s.mock.requests())[0].body);
    assert.equal(body.max_tokens, 77);
  });

  test('the OpenAI-compatible /v1 routes are not changed by the defaults', async () => {
    await s.mock.reset();
    const r = await post(s.url, '/v1/chat/completions', key, { model: 'mock-3', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    const body = JSON.parse((await s.mock.requests())[0].body);
    assert.equal(body.temperature, undefined);
    assert.equal(body.max_tokens, undefined);
  });
});

describe('seed 001 environment is checked at start', () => {
  for (const [name, value] of [['OPENAI_TEMPERATURE', '5'], ['OPENAI_MAX_TOKENS', 'lots'], ['OPENAI_TIMEOUT', '0']]) {
    test(`${name}=${value} stops parley with a message naming it`, async () => {
      const p = await startParley({ env: { OPENAI_API_KEY: 'sk-test-not-used', [name]: value }, expectExit: true });
      const { code } = await p.exited;
      assert.notEqual(code, 0);
      assert.match(p.stderr + p.stdout, new RegExp(name));
      assert.ok(!(p.stderr + p.stdout).includes('sk-test-not-used'), 'the key is never logged');
    });
  }

  test('a bad [defaults] temperature is refused', async () => {
    const p = await startParley({ env: { PARLEY_DEFAULTS_TEMPERATURE: '2.5' }, expectExit: true });
    const { code } = await p.exited;
    assert.notEqual(code, 0);
    assert.match(p.stderr + p.stdout, /defaults\.temperature/);
  });
});
