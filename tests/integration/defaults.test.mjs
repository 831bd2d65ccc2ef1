// [defaults] (docs/ASSISTANT.md, "Settings"): the model, temperature and max_tokens of parley's own
// routes when a request names none, and seed 001's OPENAI_* environment checked at start.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, startStack, startMock, adminToken, createServiceKey, providerKey } from './harness.mjs';

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

describe('seed 001 environment: the provider made from OPENAI_API_KEY', () => {
  let mock; let p; let key;
  const openaiKey = providerKey('openai');
  before(async () => {
    mock = await startMock();
    p = await startParley({
      env: {
        OPENAI_API_KEY: openaiKey, OPENAI_BASE_URL: `${mock.url}/v1`, OPENAI_MODEL: 'gpt-4o',
        OPENAI_TEMPERATURE: '0.3', OPENAI_MAX_TOKENS: '50', OPENAI_TIMEOUT: '1',
      },
    });
    key = (await createServiceKey(p.url, await adminToken(p.url))).key;
  });
  after(async () => { await p.cleanup(); await mock.stop(); });

  test('OPENAI_MODEL is the default model; OPENAI_TEMPERATURE and OPENAI_MAX_TOKENS the defaults', async () => {
    await mock.reset();
    const r = await post(p.url, '/api/v1/chat', key, { messages: [{ role: 'user', content: 'hello' }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model, 'gpt-4o');
    const [sent] = await mock.requests();
    assert.equal(sent.authorization, `Bearer ${openaiKey}`);
    const body = JSON.parse(sent.body);
    assert.deepEqual([body.model, body.temperature, body.max_tokens], ['gpt-4o', 0.3, 50]);
    const me = await (await fetch(`${p.url}/api/v1/users/me`, { headers: { Authorization: `Bearer ${key}` } })).json();
    const turn = await post(p.url, '/api/v1/conversation', key, { user_id: me.id, text: 'and you?' });
    assert.equal(turn.status, 200, JSON.stringify(turn.body));
    assert.equal(turn.body.model_used, 'gpt-4o');
  });

  test('the demo model is still there beside it', async () => {
    const r = await post(p.url, '/api/v1/chat', key, { model: 'demo', messages: [{ role: 'user', content: 'hello' }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.model, 'demo');
  });

  test('OPENAI_TIMEOUT bounds the whole call: a provider slower than it is OPENAI_TIMEOUT', async () => {
    await mock.reset();
    await mock.faults([{ delay_ms: 3000 }]);
    const r = await post(p.url, '/api/v1/chat', key, { messages: [{ role: 'user', content: 'slow' }] });
    assert.equal(r.status, 504, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'OPENAI_TIMEOUT');
    await mock.reset();
  });

  test('no log line holds the OPENAI_API_KEY', () => {
    assert.ok(!(p.stdout + p.stderr).includes(openaiKey));
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
