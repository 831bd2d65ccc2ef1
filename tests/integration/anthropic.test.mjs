// Anthropic's Messages API on parley (POST /v1/messages, /v1/messages/count_tokens) at the HTTP
// level, through the real binary and parley-mock's chat completions: the request translated, the
// answer and the stream translated back with Anthropic's event names, tools both ways, errors in
// Anthropic's shape, parley's limits and usage accounting. The official SDK is in
// tests/e2e/anthropic_sdk.test.mjs.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, startMock, adminToken, createServiceKey, json, tempDir, BACKEND, sleep, providerKey } from './harness.mjs';

const SYSTEM_KEY = providerKey('anthropicsystem');  // fresh per run
const VERSION = '2023-06-01';

function providerConfig(name, url, models) {
  return `
[[providers]]
name = "${name}"
base_url = "${url}/v1"
credentials = "system"
api_key_env = "AN_SYSTEM_KEY"
models = ${JSON.stringify(models)}
[providers.retry]
max_retries = 1
base_delay_ms = 20
max_delay_ms = 100
[providers.timeouts]
first_byte_ms = 3000
total_ms = 15000
`;
}

// The SSE events of a body: [{event, data}].
function sse(text) {
  return text.split('\n\n').filter((b) => b.trim()).map((block) => {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const data = JSON.parse(lines.find((l) => l.startsWith('data: ')).slice(6));
    return { event, data };
  });
}

function expectAnthropicError(res, body, status, type) {
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.type, 'error');
  assert.equal(body.error.type, type);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  const rid = res.headers.get('request-id');
  assert.ok(rid, 'request-id header');
  assert.equal(body.request_id, rid);
  assert.equal(res.headers.get('x-request-id'), rid);
}

describe(`Anthropic Messages API (${BACKEND})`, () => {
  let p; let mock; let token; let key;
  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    const dir = tempDir();
    const config = path.join(dir, 'parley.toml');
    writeFileSync(config, providerConfig('mock', mock.url, ['gpt-4o-mini', 'mock-*']));
    p = await startParley({ args: ['--config', config], env: { AN_SYSTEM_KEY: SYSTEM_KEY } });
    token = await adminToken(p.url, 'anthropicadmin');
    key = await createServiceKey(p.url, token, 'anthropic-test');
  });
  after(async () => { await p.cleanup(); mock.stop(); });

  const reset = () => fetch(`${mock.url}/_mock/reset`, { method: 'POST' });
  const faults = (list) => fetch(`${mock.url}/_mock/faults`, { method: 'POST', body: JSON.stringify({ faults: list }) });
  const recorded = async () => json(await fetch(`${mock.url}/_mock/requests`));
  const post = (route, body, { apiKey = key.key, bearer = false, version = VERSION } = {}) => {
    const headers = { 'Content-Type': 'application/json' };
    if (apiKey && bearer) headers.Authorization = `Bearer ${apiKey}`;
    else if (apiKey) headers['x-api-key'] = apiKey;
    if (version) headers['anthropic-version'] = version;
    return fetch(`${p.url}/v1${route}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  };
  const ask = (content, extra = {}) => ({ model: 'gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content }], ...extra });

  test('plain: translated to chat completions and answered as an Anthropic message', async () => {
    await reset();
    const res = await post('/messages', ask('hello there claude'));
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.id, /^msg_/);
    assert.equal(body.type, 'message');
    assert.equal(body.role, 'assistant');
    assert.equal(body.model, 'gpt-4o-mini');
    assert.deepEqual(body.content, [{ type: 'text', text: 'mock reply: hello there claude' }]);
    assert.equal(body.stop_reason, 'end_turn');
    assert.equal(body.stop_sequence, null);
    assert.equal(body.usage.input_tokens, 3);
    assert.equal(body.usage.output_tokens, 5);
    assert.equal(res.headers.get('request-id'), res.headers.get('x-request-id'));
    const reqs = await recorded();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
    const sent = JSON.parse(reqs[0].body);
    assert.deepEqual(sent.messages, [{ role: 'user', content: 'hello there claude' }]);
    assert.equal(sent.max_tokens, 100);
  });

  test('Authorization: Bearer works as x-api-key does (as the official SDK sends it)', async () => {
    const res = await post('/messages', ask('bearer here'), { bearer: true });
    assert.equal(res.status, 200);
    assert.equal((await json(res)).content[0].text, 'mock reply: bearer here');
  });

  test('system prompt and blocks become the chat system message', async () => {
    await reset();
    const res = await post('/messages', ask([{ type: 'text', text: 'with a system' }], {
      system: [{ type: 'text', text: 'You are terse.' }, { type: 'text', text: 'Be kind.', cache_control: { type: 'ephemeral' } }],
      temperature: 0.5, stop_sequences: ['END'],
    }));
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.content[0].text, 'mock reply: with a system');
    const sent = JSON.parse((await recorded())[0].body);
    assert.deepEqual(sent.messages[0], { role: 'system', content: 'You are terse.\nBe kind.' });
    assert.deepEqual(sent.messages[1], { role: 'user', content: 'with a system' });
    assert.equal(sent.temperature, 0.5);
    assert.deepEqual(sent.stop, ['END']);
  });

  test('max_tokens cut → stop_reason max_tokens', async () => {
    const res = await post('/messages', ask('tell me a long story please', { max_tokens: 3 }));
    const body = await json(res);
    assert.equal(res.status, 200);
    assert.equal(body.content[0].text, 'mock reply: tell');
    assert.equal(body.stop_reason, 'max_tokens');
    assert.equal(body.usage.output_tokens, 3);
  });

  test('streamed: Anthropic\'s events in order, the text equal to the mock\'s reply', async () => {
    await reset();
    const res = await post('/messages', ask('stream this to me', { stream: true }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(res.headers.get('request-id'));
    const events = sse(await res.text());
    const names = events.map((e) => e.event);
    for (const e of events) assert.equal(e.data.type, e.event);
    assert.equal(names[0], 'message_start');
    assert.equal(names[1], 'content_block_start');
    assert.equal(names[2], 'ping');
    assert.deepEqual(names.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    const middle = names.slice(3, -3);
    assert.ok(middle.length >= 2);
    assert.ok(middle.every((n) => n === 'content_block_delta'), names.join(','));
    assert.match(events[0].data.message.id, /^msg_/);
    assert.equal(events[0].data.message.model, 'gpt-4o-mini');
    assert.deepEqual(events[1].data.content_block, { type: 'text', text: '' });
    const text = events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('');
    assert.equal(text, 'mock reply: stream this to me');
    const delta = events.at(-2).data;
    assert.equal(delta.delta.stop_reason, 'end_turn');
    assert.equal(delta.usage.output_tokens, 6);
    assert.equal(delta.usage.input_tokens, 4);
    const sent = JSON.parse((await recorded())[0].body);
    assert.equal(sent.stream, true);
    assert.deepEqual(sent.stream_options, { include_usage: true });
  });

  test('streamed max_tokens cut ends with stop_reason max_tokens', async () => {
    const res = await post('/messages', ask('one two three four', { stream: true, max_tokens: 2 }));
    const events = sse(await res.text());
    assert.equal(events.at(-2).data.delta.stop_reason, 'max_tokens');
    const text = events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('');
    assert.equal(text, 'mock reply:');
  });

  const weatherTool = {
    name: 'get_weather', description: 'Weather of a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  };

  test('tools: a tool call comes back as tool_use, its tool_result goes back as a tool message', async () => {
    await reset();
    // The mock's chat completions call no tools on their own: the provider's answer is queued.
    const completion = {
      id: 'chatcmpl-tool', object: 'chat.completion', created: 1700000000, model: 'gpt-4o-mini',
      choices: [{
        index: 0, finish_reason: 'tool_calls',
        message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      }],
      usage: { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 },
    };
    await faults([{ status: 200, body: completion }]);
    const first = await post('/messages', ask('weather in Paris?', { tools: [weatherTool], tool_choice: { type: 'auto' } }));
    const answer = await json(first);
    assert.equal(first.status, 200, JSON.stringify(answer));
    assert.equal(answer.stop_reason, 'tool_use');
    assert.deepEqual(answer.content, [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } }]);
    assert.equal(answer.usage.input_tokens, 12);
    assert.equal(answer.usage.output_tokens, 7);
    let sent = JSON.parse((await recorded())[0].body);
    assert.deepEqual(sent.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weatherTool.input_schema } }]);
    assert.equal(sent.tool_choice, 'auto');

    await reset();
    const second = await post('/messages', {
      model: 'gpt-4o-mini', max_tokens: 100, tools: [weatherTool],
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: answer.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: '22 degrees' }] },
      ],
    });
    const final = await json(second);
    assert.equal(second.status, 200, JSON.stringify(final));
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.content[0].type, 'text');
    sent = JSON.parse((await recorded())[0].body);
    assert.deepEqual(sent.messages[1], {
      role: 'assistant', content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
    });
    assert.deepEqual(sent.messages[2], { role: 'tool', tool_call_id: 'call_1', content: '22 degrees' });
  });

  test('count_tokens: parley\'s estimate, no provider call', async () => {
    await reset();
    const small = await post('/messages/count_tokens', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const a = await json(small);
    assert.equal(small.status, 200, JSON.stringify(a));
    assert.deepEqual(Object.keys(a), ['input_tokens']);
    assert.ok(Number.isInteger(a.input_tokens) && a.input_tokens > 0);
    const big = await post('/messages/count_tokens', {
      model: 'gpt-4o-mini', system: 'x'.repeat(400), messages: [{ role: 'user', content: 'hi' }], tools: [weatherTool],
    });
    const b = await json(big);
    assert.ok(b.input_tokens >= a.input_tokens + 100, `${b.input_tokens} vs ${a.input_tokens}`);
    assert.equal((await recorded()).length, 0, 'no provider call');
    const unknown = await post('/messages/count_tokens', { model: 'claude-nope', messages: [{ role: 'user', content: 'hi' }] });
    expectAnthropicError(unknown, await json(unknown), 404, 'not_found_error');
    const noKey = await post('/messages/count_tokens', { model: 'gpt-4o-mini', messages: [] }, { apiKey: null });
    expectAnthropicError(noKey, await json(noKey), 401, 'authentication_error');
  });

  test('errors in Anthropic\'s shape with request-id', async () => {
    await reset();
    let res = await post('/messages', ask('x'), { apiKey: null });
    expectAnthropicError(res, await json(res), 401, 'authentication_error');
    res = await post('/messages', ask('x'), { apiKey: 'ai_notARealKey0000000000000000000000000000' });
    expectAnthropicError(res, await json(res), 401, 'authentication_error');
    res = await post('/messages', ask('x'), { apiKey: 'ai_notARealKey0000000000000000000000000000', bearer: true });
    expectAnthropicError(res, await json(res), 401, 'authentication_error');
    res = await post('/messages', ask('x', { model: 'claude-unknown' }));
    let body = await json(res);
    expectAnthropicError(res, body, 404, 'not_found_error');
    assert.match(body.error.message, /claude-unknown/);
    res = await post('/messages', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    body = await json(res);
    expectAnthropicError(res, body, 400, 'invalid_request_error');
    assert.match(body.error.message, /^max_tokens\b.*required/);
    res = await post('/messages', ask('x', { top_k: 5 }));
    body = await json(res);
    expectAnthropicError(res, body, 400, 'invalid_request_error');
    assert.match(body.error.message, /^top_k\b/);
    res = await post('/messages', ask('x', { bogus: 1 }));
    body = await json(res);
    expectAnthropicError(res, body, 400, 'invalid_request_error');
    assert.match(body.error.message, /bogus: Extra inputs are not permitted/);
    res = await post('/messages', '{"model": ');
    expectAnthropicError(res, await json(res), 400, 'invalid_request_error');
    res = await post('/messages', '[1]');
    expectAnthropicError(res, await json(res), 400, 'invalid_request_error');
    res = await post('/messages', ask('x'), { version: null });
    body = await json(res);
    expectAnthropicError(res, body, 400, 'invalid_request_error');
    assert.match(body.error.message, /anthropic-version/);
    assert.equal((await recorded()).length, 0, 'nothing reached the provider');
  });

  test('provider failures in Anthropic\'s shape, before and after the first event', async () => {
    await reset();
    await faults([{ status: 400, body: { error: { message: 'the provider says no', type: 'invalid_request_error' } } }]);
    let res = await post('/messages', ask('x'));
    let body = await json(res);
    expectAnthropicError(res, body, 400, 'invalid_request_error');
    assert.equal(body.error.message, 'the provider says no');
    await faults([{ status: 500 }, { status: 500 }]);
    res = await post('/messages', ask('x'));
    expectAnthropicError(res, await json(res), 502, 'api_error');
    await faults([{ status: 500 }, { status: 500 }]);
    res = await post('/messages', ask('x', { stream: true }));
    expectAnthropicError(res, await json(res), 502, 'api_error');
    await faults([{ drop_after_chunks: 3 }]);
    res = await post('/messages', ask('a b c d e f g h', { stream: true }));
    assert.equal(res.status, 200);
    const events = sse(await res.text());
    assert.equal(events[0].event, 'message_start');
    assert.equal(events.at(-1).event, 'error');
    assert.equal(events.at(-1).data.type, 'error');
    assert.ok(events.at(-1).data.error.type);
    assert.ok(!events.some((e) => e.event === 'message_stop'));
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
      const pending = fetch(`${p.url}/v1/messages`, {
        method: 'POST', signal: ctl.signal,
        headers: { 'Content-Type': 'application/json', 'x-api-key': key.key, 'anthropic-version': VERSION },
        body: JSON.stringify(ask('wait for me', { stream })),
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

  test('limits: over the key\'s rate limit is a 429 rate_limit_error with retry-after', async () => {
    const res0 = await fetch(`${p.url}/api/v1/api-keys`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'anthropic-limited', rate_limit_per_minute: 1 }),
    });
    const limited = await json(res0);
    assert.equal(res0.status, 201, JSON.stringify(limited));
    const ok = await post('/messages', ask('first'), { apiKey: limited.key });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-ratelimit-remaining-requests'), '0');
    const res = await post('/messages', ask('second'), { apiKey: limited.key });
    const body = await json(res);
    expectAnthropicError(res, body, 429, 'rate_limit_error');
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    const streamed = await post('/messages', ask('third', { stream: true }), { apiKey: limited.key });
    expectAnthropicError(streamed, await json(streamed), 429, 'rate_limit_error');
    const count = await post('/messages/count_tokens', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { apiKey: limited.key });
    assert.equal(count.status, 200, 'count_tokens is not a provider call');
  });

  test('usage: each call recorded with endpoint "messages"', async () => {
    const own = await createServiceKey(p.url, token, 'anthropic-usage');
    const plain = await json(await post('/messages', ask('count my usage'), { apiKey: own.key }));
    const streamed = sse(await (await post('/messages', ask('count my stream', { stream: true }), { apiKey: own.key })).text());
    await post('/messages/count_tokens', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { apiKey: own.key });
    let items = [];
    for (let i = 0; i < 40 && items.length < 2; i++) {
      await sleep(150);
      const res = await fetch(`${p.url}/api/v1/usage/${own.id}`, { headers: { Authorization: `Bearer ${token}` } });
      items = (await json(res)).items;
    }
    assert.equal(items.length, 2, JSON.stringify(items));
    for (const r of items) {
      assert.equal(r.endpoint, 'messages');
      assert.equal(r.provider, 'mock');
      assert.equal(r.model, 'gpt-4o-mini');
      assert.equal(r.status, 200);
    }
    const [s, n] = items; // newest first
    assert.equal(s.streamed, true);
    assert.equal(n.streamed, false);
    assert.equal(n.prompt_tokens, plain.usage.input_tokens);
    assert.equal(n.completion_tokens, plain.usage.output_tokens);
    const final = streamed.at(-2).data.usage;
    assert.equal(s.prompt_tokens, final.input_tokens);
    assert.equal(s.completion_tokens, final.output_tokens);
  });
});
