// A provider of kind "anthropic" (Anthropic's Messages API upstream), against parley-mock's
// Anthropic mode: POST /v1/messages relayed natively (the body as sent, the answer and the stream's
// events byte for byte), count_tokens relayed, and the reverse — /v1/chat/completions,
// /api/v1/chat and a conversation's messages answered by the Anthropic provider through the
// translation — with the system key and the user's own key, both in x-api-key, never in a log.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  startParley, startMock, adminToken, createServiceKey, json, tempDir, providerKey, sleep, BACKEND,
} from './harness.mjs';
import { api, expectStatus, signUp } from '../journeys/lib.mjs';

const SYSTEM_KEY = providerKey('antsystem');
const USER_KEY = providerKey('antuser');
const VERSION = '2023-06-01';
const MODEL = 'claude-sonnet-4';

// `sideUrl`: an OpenAI-compatible provider that also serves claude-mixed (a second deployment of
// it, of another kind).
function config(mockUrl, sideUrl) {
  const file = path.join(tempDir('parley-config-'), 'parley.toml');
  const side = sideUrl ? `
[[providers]]
name = "side"
base_url = "${sideUrl}/v1"
credentials = "system"
api_key_env = "ANT_SYSTEM_KEY"
models = ["claude-mixed"]
` : '';
  writeFileSync(file, `
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "${mockUrl}/v1"
credentials = "byok_or_system"
api_key_env = "ANT_SYSTEM_KEY"
models = ["${MODEL}", "claude-*"]
[providers.retry]
max_retries = 2
base_delay_ms = 20
max_delay_ms = 100
[providers.timeouts]
first_byte_ms = 3000
total_ms = 15000
${side}`);
  return file;
}

// SSE events of a body: [{event, data}] (data parsed; '[DONE]' kept as the string).
function sse(text) {
  return text.split('\n\n').filter((b) => b.trim()).map((block) => {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const raw = lines.find((l) => l.startsWith('data: ')).slice(6);
    return { event, data: raw === '[DONE]' ? raw : JSON.parse(raw) };
  });
}

// The per-process ids of the mock differ between two calls; nothing else may.
const normalized = (text) => text.replace(/msg_mock\w+/g, 'msg_X').replace(/toolu_mock\w+/g, 'toolu_X');

const weatherTool = {
  name: 'get_weather', description: 'Weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe(`a provider of kind anthropic (${BACKEND})`, () => {
  let p; let mock; let side; let token; let key; let user; let userKey;
  before(async () => {
    mock = await startMock(['--require-key', `${SYSTEM_KEY},${USER_KEY}`]);
    side = await startMock(['--require-key', SYSTEM_KEY]);
    p = await startParley({
      args: ['--config', config(mock.url, side.url)],
      env: { ANT_SYSTEM_KEY: SYSTEM_KEY, PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
    });
    token = await adminToken(p.url, 'antadmin');
    key = await createServiceKey(p.url, token, 'anthropic-provider');
    user = await signUp(p.url, 'antuser');
  });
  after(async () => { await p?.cleanup(); await mock?.stop(); await side?.stop(); });

  const messages = (route, body, { apiKey = key.key } = {}) => fetch(`${p.url}/v1${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'x-api-key': apiKey, 'anthropic-version': VERSION },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const completions = (body, { apiKey = key.key } = {}) => fetch(`${p.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(body),
  });
  const direct = (route, body) => fetch(`${mock.url}/v1${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'x-api-key': SYSTEM_KEY, 'anthropic-version': VERSION },
    body: JSON.stringify(body),
  });
  const ask = (content, extra = {}) => ({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content }], ...extra });

  test('/v1/messages: the body goes as sent with x-api-key and anthropic-version; the message comes back as answered', async () => {
    await mock.reset();
    const raw = `{"model": "${MODEL}",  "max_tokens": 50, "messages": [{"role": "user", "content": "hello native"}], "metadata": {"user_id": "u1"}}`;
    const res = await messages('/messages', raw);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.id, /^msg_mock/, 'the provider\'s own id: relayed, not translated');
    assert.equal(body.model, MODEL);
    assert.deepEqual(body.content, [{ type: 'text', text: 'mock reply: hello native' }]);
    assert.equal(body.stop_reason, 'end_turn');
    assert.equal(body.usage.input_tokens, 2);
    assert.equal(body.usage.output_tokens, 4);
    assert.equal(res.headers.get('request-id'), res.headers.get('x-request-id'));
    assert.equal(res.headers.get('anthropic-ratelimit-requests-limit'), '10000');
    const seen = await mock.requests();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].path, '/v1/messages');
    assert.equal(seen[0].body, raw);
    assert.equal(seen[0].x_api_key, SYSTEM_KEY);
    assert.equal(seen[0].authorization, null);
    assert.equal(seen[0].anthropic_version, VERSION);
  });

  test('/v1/messages streamed: the events are the provider\'s, byte for byte', async () => {
    const request = ask('use tool get_weather in Lisbon', { stream: true, tools: [weatherTool] });
    const res = await messages('/messages', request);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(res.headers.get('request-id'));
    const relayed = await res.text();
    const own = await (await direct('/messages', request)).text();
    assert.equal(normalized(relayed), normalized(own));
    const events = sse(relayed);
    assert.equal(events[0].event, 'message_start');
    assert.equal(events.at(-1).event, 'message_stop');
    assert.ok(events.some((e) => e.event === 'content_block_start' && e.data.content_block.type === 'tool_use'));
    for (const e of events) assert.equal(e.event, e.data.type);
  });

  test('/v1/messages/count_tokens is the provider\'s count', async () => {
    await mock.reset();
    const request = { model: MODEL, messages: [{ role: 'user', content: 'count these four words' }], system: 'be brief' };
    const res = await messages('/messages/count_tokens', request);
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    const own = await json(await direct('/messages/count_tokens', request));
    assert.deepEqual(body, own);
    assert.equal(body.input_tokens, 6);
    const seen = await mock.requests();
    assert.deepEqual(seen.map((r) => [r.path, r.x_api_key]), [['/v1/messages/count_tokens', SYSTEM_KEY], ['/v1/messages/count_tokens', SYSTEM_KEY]]);
  });

  test('a relayed count_tokens calls the provider: it is limited as one request and recorded', async () => {
    const made = await fetch(`${p.url}/api/v1/api-keys`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'count-limited', rate_limit_per_minute: 1 }),
    });
    const limited = await json(made);
    assert.equal(made.status, 201, JSON.stringify(limited));
    const request = { model: MODEL, messages: [{ role: 'user', content: 'count me' }] };
    const first = await messages('/messages/count_tokens', request, { apiKey: limited.key });
    assert.equal(first.status, 200, JSON.stringify(await json(first)));
    assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.equal(first.headers.get('x-parley-provider'), 'claude');
    const second = await messages('/messages/count_tokens', request, { apiKey: limited.key });
    const refused = await json(second);
    assert.equal(second.status, 429, JSON.stringify(refused));
    assert.equal(refused.type, 'error');
    assert.equal(refused.error.type, 'rate_limit_error');
    let items = [];
    for (let i = 0; i < 40 && items.length < 1; i++) {
      await sleep(150);
      items = (await json(await fetch(`${p.url}/api/v1/usage/${limited.id}`, { headers: { Authorization: `Bearer ${token}` } }))).items;
    }
    assert.equal(items.length, 1, JSON.stringify(items));
    assert.equal(items[0].endpoint, 'messages.count_tokens');
    assert.equal(items[0].provider, 'claude');
    assert.equal(items[0].status, 200);
    assert.equal(items[0].prompt_tokens, 0);
    assert.equal(items[0].completion_tokens, 0);
  });

  test('/v1/messages: the provider\'s own 400 is relayed as it sent it; a 529 is retried', async () => {
    const bad = await messages('/messages', { model: MODEL, messages: [{ role: 'user', content: 'no max' }] });
    const error = await json(bad);
    assert.equal(bad.status, 400);
    assert.equal(error.type, 'error');
    assert.equal(error.error.type, 'invalid_request_error');
    assert.equal(error.error.message, 'max_tokens: Field required');
    assert.ok(bad.headers.get('request-id'));

    await mock.reset();
    await mock.faults([{ status: 529 }]);
    const res = await messages('/messages', ask('after an overload'));
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.content[0].text, 'mock reply: after an overload');
    assert.equal((await mock.requests()).length, 2);

    await mock.faults([{ status: 529 }, { status: 529 }, { status: 529 }]);
    const down = await messages('/messages', ask('still overloaded'));
    const failed = await json(down);
    assert.ok(down.status >= 500, JSON.stringify(failed));
    assert.equal(failed.type, 'error');
  });

  test('/v1/messages: usage recorded with endpoint "messages" from Anthropic\'s usage fields', async () => {
    const own = await createServiceKey(p.url, token, 'anthropic-provider-usage');
    const plain = await json(await messages('/messages', ask('count my usage'), { apiKey: own.key }));
    const streamed = sse(await (await messages('/messages', ask('count my stream please', { stream: true }), { apiKey: own.key })).text());
    let items = [];
    for (let i = 0; i < 40 && items.length < 2; i++) {
      await sleep(150);
      items = (await json(await fetch(`${p.url}/api/v1/usage/${own.id}`, { headers: { Authorization: `Bearer ${token}` } }))).items;
    }
    assert.equal(items.length, 2, JSON.stringify(items));
    for (const r of items) {
      assert.equal(r.endpoint, 'messages');
      assert.equal(r.provider, 'claude');
      assert.equal(r.model, MODEL);
      assert.equal(r.status, 200);
    }
    const [s, n] = items; // newest first
    assert.equal(n.prompt_tokens, plain.usage.input_tokens);
    assert.equal(n.completion_tokens, plain.usage.output_tokens);
    const start = streamed[0].data.message.usage;
    const final = streamed.at(-2).data.usage;
    assert.equal(s.streamed, true);
    assert.equal(s.prompt_tokens, start.input_tokens);
    assert.equal(s.completion_tokens, final.output_tokens);
  });

  test('/v1/chat/completions: translated to the Messages API and answered as a chat completion', async () => {
    await mock.reset();
    const res = await completions({ model: MODEL, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello from openai' }] });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.model, MODEL);
    assert.equal(body.choices[0].message.role, 'assistant');
    assert.equal(body.choices[0].message.content, 'mock reply: hello from openai');
    assert.equal(body.choices[0].finish_reason, 'stop');
    assert.deepEqual(body.usage && [body.usage.prompt_tokens, body.usage.completion_tokens], [5, 5]);
    const seen = await mock.requests();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].path, '/v1/messages');
    assert.equal(seen[0].x_api_key, SYSTEM_KEY);
    assert.equal(seen[0].anthropic_version, VERSION);
    const sent = JSON.parse(seen[0].body);
    assert.equal(sent.system, 'Be brief.');
    assert.deepEqual(sent.messages, [{ role: 'user', content: [{ type: 'text', text: 'hello from openai' }] }]);
    assert.equal(typeof sent.max_tokens, 'number');
  });

  test('/v1/chat/completions streamed: chat chunks, the usage chunk only when asked for', async () => {
    const withUsage = await completions({ model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream to me' }] });
    assert.equal(withUsage.status, 200);
    const events = sse(await withUsage.text());
    assert.equal(events.at(-1).data, '[DONE]');
    const chunks = events.slice(0, -1).map((e) => e.data);
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'mock reply: stream to me');
    assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'stop'));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, 3);
    assert.equal(last.usage.completion_tokens, 5);

    const without = await completions({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'stream to me' }] });
    const plain = sse(await without.text()).slice(0, -1).map((e) => e.data);
    assert.ok(plain.every((c) => c.choices.length === 1 && !c.usage), JSON.stringify(plain.at(-1)));
  });

  test('/v1/chat/completions with tools: tool_use comes back as tool_calls', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weatherTool.input_schema } }];
    const res = await completions({ model: MODEL, tools, messages: [{ role: 'user', content: 'use tool get_weather for Paris' }] });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    const choice = body.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls[0].type, 'function');
    assert.equal(choice.message.tool_calls[0].function.name, 'get_weather');
    assert.equal(typeof JSON.parse(choice.message.tool_calls[0].function.arguments).city, 'string');

    const streamed = await completions({ model: MODEL, tools, stream: true, messages: [{ role: 'user', content: 'use tool get_weather for Paris' }] });
    const chunks = sse(await streamed.text()).slice(0, -1).map((e) => e.data);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(calls[0].function.name, 'get_weather');
    const args = calls.map((c) => c.function.arguments ?? '').join('');
    assert.deepEqual(JSON.parse(args), JSON.parse(choice.message.tool_calls[0].function.arguments));
    assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls'));
  });

  test('/v1/chat/completions: a 529 is retried; the provider\'s 400 comes back in OpenAI\'s envelope', async () => {
    await mock.reset();
    await mock.faults([{ status: 529 }]);
    const res = await completions({ model: MODEL, messages: [{ role: 'user', content: 'after overload' }] });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.choices[0].message.content, 'mock reply: after overload');
    assert.equal((await mock.requests()).length, 2);

    await mock.faults([{ status: 400, body: { type: 'error', error: { type: 'invalid_request_error', message: 'messages.0.content: bad content' } } }]);
    const bad = await completions({ model: MODEL, messages: [{ role: 'user', content: 'refused' }] });
    const error = await json(bad);
    assert.equal(bad.status, 400, JSON.stringify(error));
    assert.equal(error.error.message, 'messages.0.content: bad content');
    assert.equal(error.error.type, 'invalid_request_error');
    assert.ok('param' in error.error && 'code' in error.error);

    await mock.faults([{ status: 400, body: { type: 'error', error: { type: 'invalid_request_error', message: 'stream refused' } } }]);
    const badStream = await completions({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'refused' }] });
    assert.equal(badStream.status, 400);
    assert.equal((await json(badStream)).error.message, 'stream refused');
  });

  test('what the Messages API has not (embeddings) is a clear 400', async () => {
    const res = await fetch(`${p.url}/v1/embeddings`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key.key}` },
      body: JSON.stringify({ model: MODEL, input: 'embed me' }),
    });
    const body = await json(res);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(body.error.message, /Messages API.*embeddings/);
  });

  test('/v1/models lists the Anthropic provider\'s models', async () => {
    const res = await fetch(`${p.url}/v1/models`, { headers: { Authorization: `Bearer ${key.key}` } });
    const body = await json(res);
    assert.ok(body.data.some((m) => m.id === MODEL && m.owned_by === 'claude'), JSON.stringify(body));
  });

  test('/api/v1/chat and a conversation message are answered by the Anthropic provider', async () => {
    await mock.reset();
    const chat = expectStatus(await api(p.url, 'POST', '/api/v1/chat', { token: user.token, body: { model: MODEL, messages: [{ role: 'user', content: 'console chat' }] } }), 200);
    assert.equal(chat.content, 'mock reply: console chat');
    const c = expectStatus(await api(p.url, 'POST', `/api/v1/users/${user.id}/conversations`, { token: user.token, body: { model: MODEL } }), 201);
    const r = expectStatus(await api(p.url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: user.token, body: { content: 'in a conversation' } }), 201);
    assert.equal(r.assistant_message.content, 'mock reply: in a conversation');
    assert.equal(r.assistant_message.status, 'complete');
    const seen = await mock.requests();
    assert.ok(seen.length >= 2);
    for (const s of seen) {
      assert.equal(s.path, '/v1/messages');
      assert.equal(s.x_api_key, SYSTEM_KEY);
    }
  });

  test('the user\'s own key: checked with the provider, then sent in x-api-key on every route', async () => {
    const wrong = await api(p.url, 'PUT', `/api/v1/users/${user.id}/api-key`, { token: user.token, body: { api_key: providerKey('wrong'), provider: 'claude', verify: true } });
    assert.ok(wrong.status >= 400, wrong.text);
    expectStatus(await api(p.url, 'PUT', `/api/v1/users/${user.id}/api-key`, { token: user.token, body: { api_key: USER_KEY, provider: 'claude', verify: true } }), 200);
    const models = (await mock.requests()).filter((r) => r.path === '/v1/models');
    assert.ok(models.length >= 1 && models.at(-1).x_api_key === USER_KEY);
    userKey = expectStatus(await api(p.url, 'POST', '/api/v1/api-keys', { token: user.token, body: { name: 'own' } }), 201);

    await mock.reset();
    assert.equal((await messages('/messages', ask('own key native'), { apiKey: userKey.key })).status, 200);
    const streamed = await messages('/messages', ask('own key stream', { stream: true }), { apiKey: userKey.key });
    assert.equal(streamed.status, 200);
    await streamed.text();
    assert.equal((await completions({ model: MODEL, messages: [{ role: 'user', content: 'own key chat' }] }, { apiKey: userKey.key })).status, 200);
    expectStatus(await api(p.url, 'POST', '/api/v1/chat', { token: user.token, body: { model: MODEL, messages: [{ role: 'user', content: 'own key console' }] } }), 200);
    const seen = await mock.requests();
    assert.equal(seen.length, 4);
    for (const s of seen) {
      assert.equal(s.x_api_key, USER_KEY);
      assert.equal(s.authorization, null);
    }
  });

  test('no provider key appears in parley\'s logs', async () => {
    const logs = p.stdout + p.stderr;
    for (const k of [SYSTEM_KEY, USER_KEY]) {
      assert.ok(!logs.includes(k), 'a key in the logs');
      assert.ok(!logs.includes(k.slice(-12)), 'a fragment of a key in the logs');
    }
  });

  test('a model with deployments of both kinds: /v1/messages goes natively to the Anthropic ones only', async () => {
    await side.reset();
    const before = (await mock.requests()).filter((r) => r.path === '/v1/messages').length;
    for (let i = 0; i < 12; i++) {
      const res = await messages('/messages', { model: 'claude-mixed', max_tokens: 32, messages: [{ role: 'user', content: `mixed ${i}` }] });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get('x-parley-provider'), 'claude');
      assert.equal((await json(res)).type, 'message');
    }
    assert.equal((await mock.requests()).filter((r) => r.path === '/v1/messages').length - before, 12);
    assert.equal((await side.requests()).length, 0, 'the OpenAI-compatible deployment got a Messages request');
    // Chat completions for the same model spread over both deployments (translated for Anthropic's).
    for (let i = 0; i < 16; i++) {
      const res = await completions({ model: 'claude-mixed', messages: [{ role: 'user', content: `spread ${i}` }] });
      assert.equal(res.status, 200);
    }
    assert.ok((await side.requests()).length > 0, 'no chat completions reached the OpenAI-compatible deployment');
  });
});
