// The OpenAI-compatible gateway (/v1) at the HTTP level, through the real binary and parley-mock:
// bodies forwarded byte for byte, answers relayed as the provider sent them, streams relayed chunk
// by chunk with the usage chunk handled, provider verdicts and failures mapped, headers passed
// through, and every call accounted in the usage table. The official SDK is exercised in tests/e2e.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, startMock, adminToken, createServiceKey, json, expectErrorEnvelope, tempDir, BACKEND, sleep, providerKey } from './harness.mjs';

const SYSTEM_KEY = providerKey('gatewaysystemkey');  // fresh per run

function providerConfig(name, url, models) {
  return `
[[providers]]
name = "${name}"
base_url = "${url}/v1"
credentials = "system"
api_key_env = "GW_SYSTEM_KEY"
models = ${JSON.stringify(models)}
[providers.retry]
max_retries = 3
base_delay_ms = 20
max_delay_ms = 100
[providers.timeouts]
first_byte_ms = 3000
total_ms = 15000
`;
}

describe(`OpenAI-compatible gateway (${BACKEND})`, () => {
  let p; let mock; let slow; let token; let key;
  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    slow = await startMock(['--require-key', SYSTEM_KEY, '--chunk-delay-ms', '400', '--chunks', '4']);
    const dir = tempDir();
    const config = path.join(dir, 'parley.toml');
    writeFileSync(config, providerConfig('mock', mock.url, ['gpt-4o-mini', 'text-embedding-3-small', 'mock-*']) +
      providerConfig('slow', slow.url, ['slow-model']));
    p = await startParley({ args: ['--config', config], env: { GW_SYSTEM_KEY: SYSTEM_KEY } });
    token = await adminToken(p.url, 'gwadmin');
    key = (await createServiceKey(p.url, token, 'gateway-test')).key;
    assert.match(key, /^ai_/);
  });
  after(async () => { await p.cleanup(); mock.stop(); slow.stop(); });

  const reset = () => fetch(`${mock.url}/_mock/reset`, { method: 'POST' });
  const faults = (list) => fetch(`${mock.url}/_mock/faults`, { method: 'POST', body: JSON.stringify({ faults: list }) });
  const recorded = async () => json(await fetch(`${mock.url}/_mock/requests`));
  const v1 = (route, body, auth = key) => fetch(`${p.url}/v1${route}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${auth}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const events = (text) => text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));

  test('a completion is forwarded byte for byte with the system key and relayed as the provider sent it', async () => {
    await reset();
    // Odd spacing, a number written as 0.50, unknown fields: a re-serialised body would differ.
    const sent = '{"model": "gpt-4o-mini",  "messages": [{"role":"user","content":"relay me please"}], "temperature": 0.50, "seed": 42, "x_vendor": {"a": [1, 2]}}';
    const res = await v1('/chat/completions', sent);
    assert.equal(res.status, 200);
    const text = await res.text();
    const body = JSON.parse(text);
    assert.equal(body.choices[0].message.content, 'mock reply: relay me please');
    assert.equal(body.usage.prompt_tokens, 3);
    assert.match(body.id, /^chatcmpl-mock/);
    const reqs = await recorded();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].body, sent);
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
    assert.equal(res.headers.get('x-ratelimit-limit-requests'), '10000');
    assert.equal(res.headers.get('x-ratelimit-remaining-requests'), '9999');
    assert.ok(res.headers.get('x-request-id'));
  });

  test('an access token works as well as a service key', async () => {
    const res = await v1('/chat/completions', { model: 'mock-large', messages: [{ role: 'user', content: 'jwt here' }] }, token);
    assert.equal(res.status, 200);
    assert.equal((await json(res)).choices[0].message.content, 'mock reply: jwt here');
  });

  test('a stream is relayed chunk by chunk, ends with [DONE], and hides the usage chunk unless asked', async () => {
    await reset();
    const res = await v1('/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'one two three four' }] });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    assert.equal(res.headers.get('x-ratelimit-limit-requests'), '10000');
    const data = events(await res.text());
    assert.equal(data.at(-1), '[DONE]');
    assert.equal(data.filter((d) => d === '[DONE]').length, 1);
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => c.choices.length > 0), 'no usage-only chunk');
    assert.ok(chunks.every((c) => !('usage' in c) || c.usage === null));
    assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), 'mock reply: one two three four');
    const forwarded = JSON.parse((await recorded())[0].body);
    assert.equal(forwarded.stream_options.include_usage, true, 'parley asks the provider for usage');

    const asked = await v1('/chat/completions', { model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'count me' }] });
    const withUsage = events(await asked.text()).slice(0, -1).map((d) => JSON.parse(d));
    const last = withUsage.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, 2);
  });

  test('chunks reach the client as the provider sends them, not at the end', async () => {
    const res = await v1('/chat/completions', { model: 'slow-model', stream: true, messages: [{ role: 'user', content: 'pace me' }] });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    while (!seen.includes('data: ')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before its first event arrived');
      seen += decoder.decode(value);
    }
    // The slow provider waits 400 ms between chunks: the first event is here, the end is not.
    assert.ok(!seen.includes('[DONE]'), 'everything arrived at once: the stream was buffered');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    assert.ok(seen.includes('data: [DONE]'));
  });

  test('a provider failing mid-stream ends the stream with exactly one error event', async () => {
    await reset();
    await faults([{ drop_after_chunks: 2 }]);
    const res = await v1('/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'break in the middle please' }] });
    assert.equal(res.status, 200);
    const data = events(await res.text());
    assert.ok(!data.includes('[DONE]'));
    const errors = data.filter((d) => d.includes('"error"'));
    assert.equal(errors.length, 1);
    assert.equal(data.at(-1), errors[0]);
    const terminal = JSON.parse(errors[0]);
    assert.match(terminal.error.code, /^OPENAI_/);
    assert.equal(typeof terminal.error.message, 'string');
    assert.equal((await recorded()).length, 1, 'no retry once bytes reached the client');
  });

  test("the provider's verdict on a request is relayed as sent; its 401 never is", async () => {
    await reset();
    const verdict = { error: { message: "Invalid schema for function 'f'.", type: 'invalid_request_error', param: 'tools[0]', code: 'invalid_function_parameters' } };
    await faults([{ status: 400, body: JSON.stringify(verdict) }]);
    const res = await v1('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 400);
    assert.deepEqual(await json(res), verdict);
    assert.equal((await recorded()).length, 1, 'a 400 is not retried');

    await faults([{ status: 401, body: JSON.stringify({ error: { message: `Incorrect API key provided: ${SYSTEM_KEY.slice(0, 12)}`, type: 'invalid_request_error' } }) }]);
    const bad = await v1('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(bad.status, 400);
    const text = await bad.text();
    assert.ok(!text.includes(SYSTEM_KEY.slice(0, 8)));
    expectErrorEnvelope(assert, JSON.parse(text), 'INVALID_API_KEY');

    await faults([{ status: 422, body: '{"error":{"message":"bad n","type":"invalid_request_error","code":null,"param":"n"}}' }]);
    const streamed = await v1('/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(streamed.status, 422);
    assert.equal((await json(streamed)).error.param, 'n');
  });

  test('retryable provider failures are retried, then mapped to our codes', async () => {
    await reset();
    await faults([{ status: 503 }, { status: 429, retry_after: 0 }]);
    const ok = await v1('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'third time lucky' }] });
    assert.equal(ok.status, 200);
    assert.equal((await recorded()).length, 3);
    await reset();
    await faults([{ status: 429, retry_after: 0 }, { status: 429, retry_after: 0 }, { status: 429, retry_after: 0 }, { status: 429, retry_after: 0 }]);
    const limited = await v1('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(limited.status, 429);
    expectErrorEnvelope(assert, await json(limited), 'OPENAI_RATE_LIMIT');
    assert.equal((await recorded()).length, 4);
  });

  test('requests parley cannot route get clear errors in the envelope', async () => {
    const unknown = await v1('/chat/completions', { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(unknown.status, 404);
    const body = await json(unknown);
    expectErrorEnvelope(assert, body, 'MODEL_NOT_FOUND');
    assert.equal(body.error.param, 'model');
    const notJson = await v1('/chat/completions', '{"model":');
    assert.equal(notJson.status, 400);
    expectErrorEnvelope(assert, await json(notJson), 'INVALID_JSON');
    const noMessages = await v1('/chat/completions', { model: 'gpt-4o-mini' });
    assert.equal(noMessages.status, 422);
    assert.equal((await json(noMessages)).error.param, 'messages');
    const badKey = await v1('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, 'ai_not_a_real_key_0000000000000000');
    assert.equal(badKey.status, 401);
    assert.equal(badKey.headers.get('www-authenticate'), 'Bearer');
    const none = await fetch(`${p.url}/v1/models`);
    assert.equal(none.status, 401);
  });

  test('models list the configured names; one model is found by exact name or prefix', async () => {
    const res = await fetch(`${p.url}/v1/models`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.object, 'list');
    const ids = body.data.map((m) => m.id);
    for (const id of ['gpt-4o-mini', 'text-embedding-3-small', 'slow-model', 'demo']) assert.ok(ids.includes(id), id);
    assert.ok(!ids.some((id) => id.includes('*')));
    const owned = Object.fromEntries(body.data.map((m) => [m.id, m.owned_by]));
    assert.equal(owned['slow-model'], 'slow');
    const one = await fetch(`${p.url}/v1/models/mock-anything`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(one.status, 200);
    assert.equal((await json(one)).owned_by, 'mock');
    const missing = await fetch(`${p.url}/v1/models/nothing-here`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(missing.status, 404);
  });

  test('embeddings are forwarded and relayed; the demo model answers offline', async () => {
    await reset();
    const res = await v1('/embeddings', { model: 'text-embedding-3-small', input: ['alpha beta', 'gamma'] });
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.data.length, 2);
    assert.ok(body.data[0].embedding.length > 0);
    assert.equal(JSON.parse((await recorded())[0].body).input[1], 'gamma');
    const demo = await v1('/chat/completions', { model: 'demo', messages: [{ role: 'user', content: 'offline please' }] });
    assert.equal(demo.status, 200);
    assert.match((await json(demo)).choices[0].message.content, /You said: offline please$/);
    const demoEmb = await v1('/embeddings', { model: 'demo', input: 'x', dimensions: 8 });
    assert.equal((await json(demoEmb)).data[0].embedding.length, 8);
  });

  test('a client that leaves cancels the provider call at once, streamed or not', async () => {
    // The provider hangs; without cancellation parley would wait for its 15 s total deadline.
    const inFlight = async () => {
      const text = await (await fetch(`${p.url}/metrics`)).text();
      return Number(text.match(/^parley_http_requests_in_flight (\d+)/m)[1]);
    };
    for (const stream of [false, true]) {
      await reset();
      await faults([{ hang: true }]);
      const ctl = new AbortController();
      const pending = fetch(`${p.url}/v1/chat/completions`, {
        method: 'POST', signal: ctl.signal,
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'wait for me' }] }),
      }).catch((e) => e);
      for (let i = 0; i < 100 && (await recorded()).length === 0; i++) await sleep(50);
      assert.equal((await recorded()).length, 1, 'the provider got the request');
      assert.equal(await inFlight(), 2, 'the hung call and this metrics request');
      ctl.abort();
      await pending;
      let n = 2;
      for (let i = 0; i < 60 && n !== 1; i++) { await sleep(50); n = await inFlight(); }
      assert.equal(n, 1, `stream=${stream}: the provider call was not cancelled when the client left`);
      assert.equal((await recorded()).length, 1, 'and not retried');
    }
  });

  test('a client that leaves during the back-off before a retry ends the call: no further attempt', async () => {
    await reset();
    // The provider asks for a 3 s pause; the client leaves during it.
    await faults([{ status: 503, retry_after: 3 }]);
    const ctl = new AbortController();
    const pending = fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST', signal: ctl.signal,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'patience' }] }),
    }).catch((e) => e);
    for (let i = 0; i < 100 && (await recorded()).length === 0; i++) await sleep(50);
    assert.equal((await recorded()).length, 1, 'the first attempt reached the provider');
    await sleep(200);
    ctl.abort();
    await pending;
    await sleep(3500);
    assert.equal((await recorded()).length, 1, 'no attempt after the client left');
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    assert.equal(Number(metrics.match(/^parley_http_requests_in_flight (\d+)/m)[1]), 1, 'only this request in flight');
  });

  test('every call is accounted in the usage table, per service key', async () => {
    // A key of its own, so that calls of earlier tests still waiting for their batch do not count.
    const fresh = await createServiceKey(p.url, token, 'usage-test');
    const before = usageRows(p, fresh.id);
    assert.equal(before.count, 0);
    const res = await v1('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'account for these five words' }] }, fresh.key);
    const usage = (await json(res)).usage;
    const s = await v1('/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'and stream these' }] }, fresh.key);
    await s.text();
    let after = before;
    for (let i = 0; i < 40 && after.count < before.count + 2; i++) { await sleep(100); after = usageRows(p, fresh.id); }
    assert.equal(after.count, before.count + 2);
    assert.equal(after.prompt - before.prompt, usage.prompt_tokens + 3);
    assert.ok(after.streamed >= 1);
  });
});

// Reads the usage table directly (sqlite3 or psql): count, prompt tokens and streamed calls of a key.
function usageRows(p, keyId) {
  const sql = `SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(streamed),0) FROM usage_events WHERE api_key_id = '${keyId}'`;
  const out = BACKEND === 'postgres'
    ? execFileSync('psql', [p.databaseUrl, '-At', '-F', '|', '-c', sql], { encoding: 'utf8' })
    : execFileSync('sqlite3', ['-separator', '|', path.join(p.dataDir, 'parley.db'), sql], { encoding: 'utf8' });
  const [count, prompt, streamed] = out.trim().split('|').map(Number);
  return { count, prompt, streamed };
}

describe(`gateway stream deadlines (${BACKEND})`, () => {
  // One slow provider (an event every 300 ms) behind two entries: one allows 100 ms between
  // chunks, the other a second. The deadline of each read replaces the previous one.
  let p; let slow; let key;
  before(async () => {
    slow = await startMock(['--require-key', SYSTEM_KEY, '--chunk-delay-ms', '300', '--chunks', '3']);
    const entry = (name, model, betweenMs) => `
[[providers]]
name = "${name}"
base_url = "${slow.url}/v1"
credentials = "system"
api_key_env = "GW_SYSTEM_KEY"
models = ["${model}"]
[providers.timeouts]
first_byte_ms = 3000
between_chunks_ms = ${betweenMs}
total_ms = 15000
`;
    const config = path.join(tempDir(), 'parley.toml');
    writeFileSync(config, entry('hasty', 'hasty-model', 100) + entry('patient', 'patient-model', 1000));
    p = await startParley({ args: ['--config', config], env: { GW_SYSTEM_KEY: SYSTEM_KEY } });
    const token = await adminToken(p.url, 'deadlines');
    key = (await createServiceKey(p.url, token, 'deadlines')).key;
  });
  after(async () => { await p.cleanup(); slow.stop(); });

  const stream = async (model) => {
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'one two three' }] }),
    });
    const text = await res.text();
    return { status: res.status, events: text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6)) };
  };

  test('a provider silent for longer than between_chunks_ms ends the stream with one timeout event', async () => {
    const { status, events } = await stream('hasty-model');
    assert.equal(status, 200, 'the first event arrived in time, so the stream had started');
    assert.ok(!events.includes('[DONE]'), 'a cut stream does not claim to be complete');
    const last = JSON.parse(events.at(-1));
    assert.equal(last.error?.code, 'OPENAI_TIMEOUT');
    assert.equal(events.filter((e) => e.includes('"error"')).length, 1);
  });

  test('gaps within between_chunks_ms keep the stream going to its end', async () => {
    const { status, events } = await stream('patient-model');
    assert.equal(status, 200);
    assert.equal(events.at(-1), '[DONE]');
    const text = events.slice(0, -1).map((e) => JSON.parse(e).choices?.[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0, 'content arrived');
    assert.ok(!events.some((e) => e.includes('"error"')));
  });
});
