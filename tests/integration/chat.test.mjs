// The AI task endpoints through the real binary: the built-in demo provider, and an
// OpenAI-compatible provider (parley-mock) with the retry policy of PRODUCT.md observed through
// the mock's recorded requests.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, startMock, json, expectErrorEnvelope, tempDir, BACKEND, providerKey } from './harness.mjs';

const SYSTEM_KEY = providerKey('mocksystemkey');  // fresh per run

async function adminToken(url) {
  await fetch(`${url}/api/v1/auth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'admin', email: 'admin@example.com', password: 'correct horse battery' }),
  });
  const res = await fetch(`${url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=password&username=admin&password=correct+horse+battery',
  });
  return (await json(res)).access_token;
}

function post(url, token, route, body) {
  return fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

async function sseEvents(res) {
  const text = await res.text();
  return text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)));
}

describe(`chat endpoints (${BACKEND})`, () => {
  let p; let mock; let token;
  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    const dir = tempDir();
    const config = path.join(dir, 'parley.toml');
    writeFileSync(config, `
[[providers]]
name = "mock"
base_url = "${mock.url}/v1"
credentials = "system"
api_key_env = "MOCK_SYSTEM_KEY"
models = ["gpt-4o-mini", "mock-*"]
[providers.retry]
max_retries = 3
base_delay_ms = 50
max_delay_ms = 400
retry_after_cap_ms = 600
[providers.timeouts]
first_byte_ms = 1500
total_ms = 10000
`);
    p = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY } });
    token = await adminToken(p.url);
  });
  after(async () => { await p.cleanup(); mock.stop(); });

  const reset = () => fetch(`${mock.url}/_mock/reset`, { method: 'POST' });
  const faults = (list) => fetch(`${mock.url}/_mock/faults`, { method: 'POST', body: JSON.stringify({ faults: list }) });
  const recorded = async () => json(await fetch(`${mock.url}/_mock/requests`));

  test('the demo model answers without any key', async () => {
    const res = await post(p.url, token, '/api/v1/chat', { model: 'demo', messages: [{ role: 'user', content: 'hello there' }] });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.match(body.content, /You said: hello there$/);
    assert.equal(body.model, 'demo');
    assert.ok(body.usage.total_tokens > 0);
    assert.equal(typeof body.latency_ms, 'number');
  });

  test('the demo model streams tokens then one done event', async () => {
    const res = await post(p.url, token, '/api/v1/chat/stream', { messages: [{ role: 'user', content: 'stream me please' }] });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const events = await sseEvents(res);
    const tokens = events.filter((e) => 'token' in e).map((e) => e.token).join('');
    const done = events.filter((e) => e.done);
    assert.equal(done.length, 1);
    assert.equal(events.at(-1).done, true);
    assert.equal(done[0].full_text, tokens);
    assert.ok(done[0].usage.completion_tokens > 0);
  });

  test('a provider model is relayed with the system key', async () => {
    await reset();
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'tell me a story' }] });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.content, 'mock reply: tell me a story');
    assert.equal(body.usage.prompt_tokens, 4);
    const reqs = await recorded();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
  });

  test('429, 429, 200 succeeds after two retries with growing delays', async () => {
    await reset();
    await faults([{ status: 429 }, { status: 429 }]);
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'again' }] });
    assert.equal(res.status, 200);
    const reqs = await recorded();
    assert.equal(reqs.length, 3);
    const gap1 = reqs[1].received_at_ms - reqs[0].received_at_ms;
    const gap2 = reqs[2].received_at_ms - reqs[1].received_at_ms;
    // Lower bounds only (a loaded machine only makes a wait longer): the first backoff is 50 ms ±20 %,
    // the second 100 ms ±20 %; the doubling itself is unit-tested (upstream retry policy).
    assert.ok(gap1 >= 35, `first backoff ${gap1} ms`);
    assert.ok(gap2 >= 75, `second backoff ${gap2} ms: it did not grow`);
  });

  test('Retry-After is honoured up to its cap', async () => {
    await reset();
    // 1 s asked, capped at 600 ms; without the header the first backoff would be about 50 ms.
    await faults([{ status: 429, retry_after: 1 }, { status: 503, retry_after: 120 }]);
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'patience' }] });
    assert.equal(res.status, 200);
    const reqs = await recorded();
    assert.equal(reqs.length, 3);
    const gap1 = reqs[1].received_at_ms - reqs[0].received_at_ms;
    const gap2 = reqs[2].received_at_ms - reqs[1].received_at_ms;
    assert.ok(gap1 >= 550, `Retry-After ignored: waited ${gap1} ms`);
    assert.ok(gap2 >= 550 && gap2 < 5000, `a 120 s Retry-After must be capped at 600 ms, waited ${gap2} ms`);
  });

  for (const status of [500, 502, 503, 504]) {
    test(`${status} is retried`, async () => {
      await reset();
      await faults([{ status }]);
      const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
      assert.equal(res.status, 200);
      assert.equal((await recorded()).length, 2);
    });
  }

  test('a connection reset is retried', async () => {
    await reset();
    await faults([{ reset: true }]);
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 200);
    assert.equal((await recorded()).length, 2);
  });

  // Each reset used to be followed by a resend on a fresh connection when the failed one came from
  // the pool, so with idle connections pooled one call reached the provider up to 8 times.
  test('resets on pooled connections: at most 4 requests reach the provider', async () => {
    await Promise.all(Array.from({ length: 8 }, () =>
      post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'warm the pool' }] })));
    await reset();
    await faults(Array.from({ length: 10 }, () => ({ reset: true })));
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'provider down' }] });
    expectErrorEnvelope(assert, await json(res), 'OPENAI_CONNECTION_ERROR');
    assert.equal((await recorded()).length, 4);
    await reset();
  });

  for (const [status, code] of [[400, 'OPENAI_API_ERROR'], [401, 'INVALID_API_KEY'], [403, 'INVALID_API_KEY'], [404, 'OPENAI_API_ERROR'], [422, 'OPENAI_API_ERROR']]) {
    test(`${status} reaches the provider exactly once (${code})`, async () => {
      await reset();
      await faults([{ status }]);
      const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
      const body = await json(res);
      expectErrorEnvelope(assert, body, code);
      assert.equal((await recorded()).length, 1);
      assert.doesNotMatch(JSON.stringify(body), /mocksystemkey/);
    });
  }

  test('at most 4 attempts, then OPENAI_RATE_LIMIT', async () => {
    await reset();
    await faults([{ status: 429 }, { status: 429 }, { status: 429 }, { status: 429 }, { status: 429 }]);
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 429);
    expectErrorEnvelope(assert, await json(res), 'OPENAI_RATE_LIMIT');
    assert.equal((await recorded()).length, 4);
  });

  test('a hanging provider ends in OPENAI_TIMEOUT within the deadline', async () => {
    await reset();
    await faults([{ hang: true }]);
    const t0 = Date.now();
    const res = await post(p.url, token, '/api/v1/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 504);
    expectErrorEnvelope(assert, await json(res), 'OPENAI_TIMEOUT');
    assert.ok(Date.now() - t0 < 10000);
  });

  test('a stream that breaks after tokens ends with exactly one error event and no retry', async () => {
    await reset();
    await faults([{ drop_after_chunks: 3 }]);
    const res = await post(p.url, token, '/api/v1/chat/stream', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'one two three four five six' }] });
    assert.equal(res.status, 200);
    const events = await sseEvents(res);
    assert.ok(events.some((e) => 'token' in e));
    const terminal = events.filter((e) => e.done || e.error);
    assert.equal(terminal.length, 1);
    assert.ok(events.at(-1).error);
    assert.equal((await recorded()).length, 1);
  });

  test('an unknown model is 422 naming the allowed models', async () => {
    const res = await post(p.url, token, '/api/v1/chat', { model: 'nope', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 422);
    const body = await json(res);
    expectErrorEnvelope(assert, body, 'VALIDATION_ERROR');
    assert.equal(body.error.param, 'model');
    assert.match(body.error.message, /mock-\*/);
  });

  test('validation: roles, content length, temperature', async () => {
    const cases = [
      [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: '' }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: 'x'.repeat(4001) }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: 'x' }], temperature: 2.5 }, 'temperature'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'user', content: 'x' }], extra: 1 }, 'extra'],
    ];
    for (const [body, param] of cases) {
      const res = await post(p.url, token, '/api/v1/chat', body);
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.equal((await json(res)).error.param, param);
    }
  });

  test('summarize and translate answer through the demo model', async () => {
    const s = await post(p.url, token, '/api/v1/summarize', { text: 'A long text about many things.', style: 'bullet_points', max_length: 50 });
    assert.equal(s.status, 200);
    const sb = await json(s);
    assert.ok(sb.summary.length > 0);
    assert.equal(sb.style, 'bullet_points');
    const bad = await post(p.url, token, '/api/v1/summarize', { text: 'x', style: 'poem' });
    assert.equal(bad.status, 422);
    const t = await post(p.url, token, '/api/v1/translate', { text: 'hola mundo', target_language: 'en' });
    assert.equal(t.status, 200);
    const tb = await json(t);
    assert.equal(tb.source_language, 'auto');
    assert.ok(tb.translated_text.length > 0);
  });

  test('anonymous callers are refused', async () => {
    const res = await fetch(`${p.url}/api/v1/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 401);
  });

  test('no log line or response contains the system key or a fragment of it', async () => {
    const key = SYSTEM_KEY;
    for (let i = 0; i + 8 <= key.length; i++) {
      assert.ok(!p.stderr.includes(key.slice(i, i + 8)), `log contains a key fragment: ${key.slice(i, i + 8)}`);
    }
  });
});
