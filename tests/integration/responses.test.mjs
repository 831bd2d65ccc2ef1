// OpenAI's Responses API on parley (POST/GET/DELETE /v1/responses, input_items, cancel, resume) at
// the HTTP level, through the real binary and parley-mock: translated to chat completions (two
// providers, so that previous_response_id crosses them), relayed to a provider that offers the
// Responses API itself (`responses = true`), stored per user, background responses followed,
// cancelled and resumed, limits and usage ("responses"). The official SDK is in
// tests/e2e/responses_sdk.test.mjs.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, startMock, adminToken, createServiceKey, json, tempDir, BACKEND, sleep, providerKey } from './harness.mjs';

const SYSTEM_KEY = providerKey('responsessystem');  // fresh per run

function providerTable(name, url, models, extra = '') {
  return `
[[providers]]
name = "${name}"
base_url = "${url}/v1"
credentials = "system"
api_key_env = "RESP_SYSTEM_KEY"
models = ${JSON.stringify(models)}
${extra}
[providers.retry]
max_retries = 1
base_delay_ms = 20
max_delay_ms = 100
[providers.timeouts]
first_byte_ms = 5000
total_ms = 15000
`;
}

// The SSE events of a body: [{event, data}] (comments and keep-alives left out).
export function sse(text) {
  return text.split('\n\n').filter((b) => b.split('\n').some((l) => l.startsWith('data: '))).map((block) => {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const data = JSON.parse(lines.find((l) => l.startsWith('data: ')).slice(6));
    return { event, data };
  });
}

describe(`Responses API (${BACKEND})`, () => {
  let p; let alpha; let beta; let relay; let token; let key;
  before(async () => {
    alpha = await startMock(['--require-key', SYSTEM_KEY]);
    beta = await startMock(['--require-key', SYSTEM_KEY]);
    relay = await startMock(['--require-key', SYSTEM_KEY]);
    const config = path.join(tempDir(), 'parley.toml');
    writeFileSync(config, providerTable('alpha', alpha.url, ['gpt-4o-mini', 'alpha-*'])
      + providerTable('beta', beta.url, ['beta-*'])
      + providerTable('relay', relay.url, ['relay-*'], 'responses = true'));
    p = await startParley({ args: ['--config', config], env: { RESP_SYSTEM_KEY: SYSTEM_KEY } });
    token = await adminToken(p.url, 'responsesadmin');
    key = await createServiceKey(p.url, token, 'responses-test');
  });
  after(async () => { await p?.cleanup(); await alpha?.stop(); await beta?.stop(); await relay?.stop(); });

  const headers = (apiKey = key.key) => ({ 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` });
  const create = (body, apiKey) => fetch(`${p.url}/v1/responses`, { method: 'POST', headers: headers(apiKey), body: JSON.stringify(body) });
  const get = (id, query = '', apiKey) => fetch(`${p.url}/v1/responses/${id}${query}`, { headers: headers(apiKey) });
  const del = (id, apiKey) => fetch(`${p.url}/v1/responses/${id}`, { method: 'DELETE', headers: headers(apiKey) });
  const cancel = (id, apiKey) => fetch(`${p.url}/v1/responses/${id}/cancel`, { method: 'POST', headers: headers(apiKey) });
  const items = (id, query = '', apiKey) => fetch(`${p.url}/v1/responses/${id}/input_items${query}`, { headers: headers(apiKey) });
  const lastChat = async (mock) => {
    const all = (await mock.requests()).filter((r) => r.path === '/v1/chat/completions');
    return JSON.parse(all.at(-1).body);
  };
  const textOf = (response) => response.output.find((i) => i.type === 'message').content[0].text;
  const poll = async (id, done = (r) => !['queued', 'in_progress'].includes(r.status)) => {
    for (let i = 0; i < 200; i++) {
      const r = await json(await get(id));
      if (done(r)) return r;
      await sleep(50);
    }
    throw new Error(`response ${id} never finished`);
  };

  test('conversation: a response reads and extends a parley conversation, seen through /v1/conversations and /api/v1', async () => {
    const made = await fetch(`${p.url}/v1/conversations`, {
      method: 'POST', headers: headers(),
      body: JSON.stringify({ items: [{ type: 'message', role: 'user', content: 'my colour is teal' }] }),
    });
    assert.equal(made.status, 200);
    const conversation = await json(made);
    const first = await create({ model: 'gpt-4o-mini', input: 'first question', conversation: conversation.id });
    assert.equal(first.status, 200);
    const r1 = await json(first);
    assert.equal(r1.conversation.id, conversation.id);
    // The provider got the conversation's items before the input.
    const sent = await lastChat(alpha);
    assert.deepEqual(sent.messages.map((m) => m.content), ['my colour is teal', 'first question']);
    // A second turn on another provider sees both earlier turns.
    const second = await create({ model: 'beta-1', input: 'second question', conversation: { id: conversation.id } });
    assert.equal(second.status, 200);
    const r2 = await json(second);
    const sentBeta = await lastChat(beta);
    assert.deepEqual(sentBeta.messages.map((m) => m.role), ['user', 'user', 'assistant', 'user']);
    assert.equal(sentBeta.messages[2].content, textOf(r1));
    // The conversation's items: the seed item, then each turn's input and output, oldest first.
    const listed = await json(await fetch(`${p.url}/v1/conversations/${conversation.id}/items?order=asc`, { headers: headers() }));
    assert.deepEqual(listed.data.map((i) => i.role), ['user', 'user', 'assistant', 'user', 'assistant']);
    assert.equal(listed.data.at(-1).content[0].text, textOf(r2));
    // parley's own conversation routes show the same history.
    const own = await json(await fetch(`${p.url}/api/v1/conversations/${conversation.id}/messages`, { headers: headers() }));
    assert.deepEqual(own.items.map((m) => m.content), ['my colour is teal', 'first question', textOf(r1), 'second question', textOf(r2)]);
    // Another user's key cannot use it.
    const reg = await fetch(`${p.url}/api/v1/users`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ username: 'convoutsider', email: 'convoutsider@example.com', password: 'correct horse battery', role: 'user' }),
    });
    assert.equal(reg.status, 201, await reg.text());
    const login = await json(await fetch(`${p.url}/api/v1/auth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'convoutsider', password: 'correct horse battery' }).toString(),
    }));
    const foreign = await create({ model: 'gpt-4o-mini', input: 'x', conversation: conversation.id }, login.access_token);
    assert.equal(foreign.status, 404);
  });

  test('plain: translated to chat completions and answered as a response object, then stored', async () => {
    await alpha.reset();
    const res = await create({ model: 'gpt-4o-mini', input: 'hello there', instructions: 'be brief', metadata: { k: 'v' } });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.id, /^resp_/);
    assert.equal(body.object, 'response');
    assert.equal(body.status, 'completed');
    assert.equal(body.model, 'gpt-4o-mini');
    assert.equal(body.store, true);
    assert.equal(body.instructions, 'be brief');
    assert.deepEqual(body.metadata, { k: 'v' });
    assert.equal(textOf(body), 'mock reply: hello there');
    assert.equal(body.usage.input_tokens, 4);
    assert.equal(body.usage.output_tokens, 4);
    assert.equal(body.usage.total_tokens, 8);
    const sent = await lastChat(alpha);
    assert.deepEqual(sent.messages, [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }]);
    assert.ok(!('store' in sent) && !('metadata' in sent), 'parley-side members are not sent');

    const stored = await json(await get(body.id));
    assert.deepEqual(stored, body);
  });

  test('streamed: OpenAI\'s events in order with consecutive sequence numbers, usage at the end; stored', async () => {
    const res = await create({ model: 'gpt-4o-mini', input: 'stream me please', stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const events = sse(await res.text());
    const names = events.map((e) => e.event);
    assert.deepEqual(names.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    assert.deepEqual(names.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    const deltas = events.filter((e) => e.event === 'response.output_text.delta');
    assert.equal(deltas.map((e) => e.data.delta).join(''), 'mock reply: stream me please');
    events.forEach((e, i) => {
      assert.equal(e.data.type, e.event);
      assert.equal(e.data.sequence_number, i);
    });
    const done = events.at(-1).data.response;
    assert.equal(done.status, 'completed');
    assert.equal(done.usage.input_tokens, 3);
    assert.equal(done.usage.output_tokens, 5);
    assert.equal(events[0].data.response.status, 'in_progress');
    const stored = await json(await get(done.id));
    assert.equal(stored.status, 'completed');
    assert.deepEqual(stored.output, done.output);
  });

  test('store false keeps nothing: GET is 404, and so is previous_response_id to it', async () => {
    const body = await json(await create({ model: 'gpt-4o-mini', input: 'forget me', store: false }));
    assert.equal(body.status, 'completed');
    assert.equal(body.store, false);
    const res = await get(body.id);
    assert.equal(res.status, 404);
    const next = await create({ model: 'gpt-4o-mini', input: 'again', previous_response_id: body.id });
    const err = await json(next);
    assert.equal(next.status, 404);
    assert.equal(err.error.param, 'previous_response_id');
  });

  test('DELETE answers response.deleted; the response is gone', async () => {
    const body = await json(await create({ model: 'gpt-4o-mini', input: 'delete me' }));
    const res = await del(body.id);
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), { id: body.id, object: 'response.deleted', deleted: true });
    assert.equal((await get(body.id)).status, 404);
    assert.equal((await del(body.id)).status, 404);
  });

  test('input_items: the turn\'s items with ids, paginated with after, limit and order', async () => {
    const input = [
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'two' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'three' }] },
    ];
    const body = await json(await create({ model: 'gpt-4o-mini', input }));
    const all = await json(await items(body.id));
    assert.equal(all.object, 'list');
    assert.equal(all.data.length, 3);
    assert.equal(all.has_more, false);
    // desc by default: the newest item first
    assert.deepEqual(all.data.map((i) => i.content[0].text), ['three', 'two', 'one']);
    assert.deepEqual(all.data.map((i) => i.content[0].type), ['input_text', 'output_text', 'input_text']);
    for (const i of all.data) { assert.equal(i.type, 'message'); assert.equal(typeof i.id, 'string'); }
    assert.equal(all.first_id, all.data[0].id);
    assert.equal(all.last_id, all.data[2].id);
    const page1 = await json(await items(body.id, '?order=asc&limit=2'));
    assert.deepEqual(page1.data.map((i) => i.content[0].text), ['one', 'two']);
    assert.equal(page1.has_more, true);
    const page2 = await json(await items(body.id, `?order=asc&limit=2&after=${page1.last_id}`));
    assert.deepEqual(page2.data.map((i) => i.content[0].text), ['three']);
    assert.equal(page2.has_more, false);
    const bad = await items(body.id, '?limit=0');
    assert.equal(bad.status, 422);
    assert.equal((await json(bad)).error.param, 'limit');
  });

  test('previous_response_id: the second provider receives the earlier turn as messages; instructions are not carried', async () => {
    await beta.reset();
    const first = await json(await create({ model: 'gpt-4o-mini', input: 'my name is Ada', instructions: 'first instructions' }));
    const second = await json(await create({ model: 'beta-1', input: 'what is my name', previous_response_id: first.id }));
    assert.equal(second.status, 'completed', JSON.stringify(second));
    assert.equal(second.previous_response_id, first.id);
    assert.equal(second.model, 'beta-1');
    const sent = await lastChat(beta);
    assert.deepEqual(sent.messages, [
      { role: 'user', content: 'my name is Ada' },
      { role: 'assistant', content: 'mock reply: my name is Ada' },
      { role: 'user', content: 'what is my name' },
    ]);
    // A third turn back on the first provider carries both earlier turns.
    await alpha.reset();
    await json(await create({ model: 'gpt-4o-mini', input: 'and now', previous_response_id: second.id }));
    const third = await lastChat(alpha);
    assert.equal(third.messages.length, 5);
    assert.equal(third.messages[3].content, 'mock reply: what is my name');
  });

  test('what cannot be translated is a 400 naming the param, in OpenAI\'s envelope', async () => {
    const res = await create({ model: 'gpt-4o-mini', input: 'search', tools: [{ type: 'web_search' }] });
    const body = await json(res);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(typeof body.error.message, 'string');
    assert.match(body.error.param, /^tools/);
    const unknown = await create({ model: 'gpt-4o-mini', input: 'x', frobnicate: true });
    assert.equal(unknown.status, 400);
    assert.equal((await json(unknown)).error.param, 'frobnicate');
    const conv = await create({ model: 'gpt-4o-mini', input: 'x', conversation: 'conv_1' });
    assert.equal(conv.status, 404);
    const convBody = await json(conv);
    assert.equal(convBody.error.param, 'conversation');
    const both = await create({ model: 'gpt-4o-mini', input: 'x', conversation: 'conv_1', previous_response_id: 'resp_x' });
    assert.equal(both.status, 400);
    const bg = await create({ model: 'gpt-4o-mini', input: 'x', background: true, store: false });
    assert.equal(bg.status, 400);
    assert.equal((await json(bg)).error.param, 'background');
    const model = await create({ model: 'nope-1', input: 'x' });
    assert.equal(model.status, 404);
    assert.equal((await json(model)).error.param, 'model');
  });

  test('tools: a function_call, then its function_call_output with previous_response_id', async () => {
    const tools = [{
      type: 'function', name: 'get_weather', description: 'weather of a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    }];
    const first = await json(await create({ model: 'gpt-4o-mini', input: 'use tool get_weather for Paris', tools }));
    assert.equal(first.status, 'completed', JSON.stringify(first));
    const call = first.output.find((i) => i.type === 'function_call');
    assert.ok(call, JSON.stringify(first.output));
    assert.equal(call.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.arguments).city, 'string');
    assert.match(call.call_id, /\S/);
    await alpha.reset();
    const second = await json(await create({
      model: 'gpt-4o-mini', previous_response_id: first.id, tools,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    }));
    assert.equal(second.status, 'completed', JSON.stringify(second));
    const sent = await lastChat(alpha);
    const assistant = sent.messages.find((m) => m.role === 'assistant');
    assert.equal(assistant.tool_calls[0].id, call.call_id);
    assert.equal(assistant.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(sent.messages.at(-1), { role: 'tool', tool_call_id: call.call_id, content: 'sunny' });

    // Streamed tool call: function_call_arguments events.
    const events = sse(await (await create({ model: 'gpt-4o-mini', input: 'use tool get_weather now', tools, stream: true })).text());
    const names = events.map((e) => e.event);
    assert.ok(names.includes('response.function_call_arguments.delta'), names.join());
    const argsDone = events.find((e) => e.event === 'response.function_call_arguments.done');
    assert.equal(typeof JSON.parse(argsDone.data.arguments).city, 'string');
    events.forEach((e, i) => assert.equal(e.data.sequence_number, i));
  });

  test('background: answered at once (queued), then completed; GET polls it', async () => {
    const res = await create({ model: 'gpt-4o-mini', input: 'in the background', background: true });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.background, true);
    assert.ok(['queued', 'in_progress'].includes(body.status), body.status);
    const done = await poll(body.id);
    assert.equal(done.status, 'completed');
    assert.equal(done.background, true);
    assert.equal(textOf(done), 'mock reply: in the background');
    // Cancelling a response that is over leaves it as it is; a synchronous one cannot be cancelled.
    const again = await json(await cancel(body.id));
    assert.equal(again.status, 'completed');
    const sync = await json(await create({ model: 'gpt-4o-mini', input: 'sync' }));
    assert.equal((await cancel(sync.id)).status, 400);
  });

  test('cancel: a background response still waiting for its provider ends cancelled', async () => {
    await alpha.faults([{ hang: true }]);
    const body = await json(await create({ model: 'gpt-4o-mini', input: 'never answered', background: true }));
    // Wait until the provider has the request.
    for (let i = 0; i < 100; i++) {
      if ((await alpha.requests()).some((r) => r.body.includes('never answered'))) break;
      await sleep(20);
    }
    const res = await cancel(body.id);
    const cancelled = await json(res);
    assert.equal(res.status, 200, JSON.stringify(cancelled));
    assert.equal(cancelled.status, 'cancelled');
    assert.equal((await json(await get(body.id))).status, 'cancelled');
    await alpha.reset();
  });

  test('resume: GET ?stream=true&starting_after=N gives the events after N, identical to the uninterrupted stream', async () => {
    const res = await create({ model: 'gpt-4o-mini', input: 'resume this stream of words', background: true, stream: true });
    assert.equal(res.status, 200);
    const full = sse(await res.text());
    assert.equal(full[0].event, 'response.created');
    assert.equal(full.at(-1).event, 'response.completed');
    full.forEach((e, i) => assert.equal(e.data.sequence_number, i));
    const id = full[0].data.response.id;
    const replay = sse(await (await get(id, '?stream=true')).text());
    assert.deepEqual(replay, full);
    const after = sse(await (await get(id, '?stream=true&starting_after=4')).text());
    assert.deepEqual(after, full.slice(5));
    const none = sse(await (await get(id, `?stream=true&starting_after=${full.length - 1}`)).text());
    assert.deepEqual(none, []);
    // A synchronous response cannot be streamed again.
    const sync = await json(await create({ model: 'gpt-4o-mini', input: 'sync' }));
    assert.equal((await get(sync.id, '?stream=true')).status, 400);
  });

  test('resume while running: a client that left picks up after the last event it saw', async () => {
    await alpha.faults([{ delay_ms: 300 }]);
    const controller = new AbortController();
    const res = await fetch(`${p.url}/v1/responses`, {
      method: 'POST', headers: headers(), signal: controller.signal,
      body: JSON.stringify({ model: 'gpt-4o-mini', input: 'keep going without me', background: true, stream: true }),
    });
    const reader = res.body.getReader();
    let text = '';
    while (sse(text).length < 1) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const seen = sse(text);
    const id = seen[0].data.response.id;
    const last = seen.at(-1).data.sequence_number;
    const rest = sse(await (await get(id, `?stream=true&starting_after=${last}`)).text());
    const full = sse(await (await get(id, '?stream=true')).text());
    assert.equal(full.at(-1).event, 'response.completed');
    assert.deepEqual([...seen, ...rest], full);
  });

  test('another user\'s response is 404 everywhere', async () => {
    const mine = await json(await create({ model: 'gpt-4o-mini', input: 'private' }));
    const reg = await fetch(`${p.url}/api/v1/users`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ username: 'respother', email: 'respother@example.com', password: 'correct horse battery', role: 'user' }),
    });
    assert.equal(reg.status, 201, await reg.text());
    const login = await json(await fetch(`${p.url}/api/v1/auth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'respother', password: 'correct horse battery' }).toString(),
    }));
    const other = login.access_token;
    assert.equal((await get(mine.id, '', other)).status, 404);
    assert.equal((await items(mine.id, '', other)).status, 404);
    assert.equal((await del(mine.id, other)).status, 404);
    assert.equal((await cancel(mine.id, other)).status, 404);
    const chained = await create({ model: 'gpt-4o-mini', input: 'x', previous_response_id: mine.id }, other);
    assert.equal(chained.status, 404);
    assert.equal((await get(mine.id)).status, 200, 'still there for its owner');
    const anonymous = await fetch(`${p.url}/v1/responses/${mine.id}`);
    assert.equal(anonymous.status, 401);
  });

  test('limits: over the key\'s rate limit is a 429; usage recorded with endpoint "responses"', async () => {
    const res0 = await fetch(`${p.url}/api/v1/api-keys`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'responses-limited', rate_limit_per_minute: 1 }),
    });
    const limited = await json(res0);
    assert.equal(res0.status, 201);
    const ok = await create({ model: 'gpt-4o-mini', input: 'first' }, limited.key);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-ratelimit-remaining-requests'), '0');
    const refused = await create({ model: 'gpt-4o-mini', input: 'second' }, limited.key);
    assert.equal(refused.status, 429);
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);

    const own = await createServiceKey(p.url, token, 'responses-usage');
    const plain = await json(await create({ model: 'gpt-4o-mini', input: 'count my usage' }, own.key));
    const streamed = sse(await (await create({ model: 'beta-2', input: 'count my stream', stream: true }, own.key)).text());
    let records = [];
    for (let i = 0; i < 40 && records.length < 2; i++) {
      await sleep(150);
      const res = await fetch(`${p.url}/api/v1/usage/${own.id}`, { headers: { Authorization: `Bearer ${token}` } });
      records = (await json(res)).items;
    }
    assert.equal(records.length, 2, JSON.stringify(records));
    for (const r of records) { assert.equal(r.endpoint, 'responses'); assert.equal(r.status, 200); }
    const [s, n] = records; // newest first
    assert.equal(s.provider, 'beta');
    assert.equal(s.streamed, true);
    assert.equal(n.provider, 'alpha');
    assert.equal(n.prompt_tokens, plain.usage.input_tokens);
    assert.equal(n.completion_tokens, plain.usage.output_tokens);
    const final = streamed.at(-1).data.response.usage;
    assert.equal(s.prompt_tokens, final.input_tokens);
    assert.equal(s.completion_tokens, final.output_tokens);
  });

  test('relay: a provider with responses = true gets POST /responses, the context expanded and store false', async () => {
    await relay.reset();
    const first = await json(await create({ model: 'gpt-4o-mini', input: 'remember blue' }));
    const res = await create({ model: 'relay-1', input: 'what colour', previous_response_id: first.id, metadata: { a: '1' } });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.id, /^resp_/);
    assert.ok(!body.id.startsWith('resp_mock'), 'the id is parley\'s');
    assert.equal(body.store, true);
    assert.equal(body.previous_response_id, first.id);
    assert.equal(textOf(body), 'mock reply: what colour');
    const sent = (await relay.requests()).filter((r) => r.path === '/v1/responses');
    assert.equal(sent.length, 1);
    const upstream = JSON.parse(sent[0].body);
    assert.equal(upstream.store, false);
    assert.ok(!('previous_response_id' in upstream));
    assert.deepEqual(upstream.input.map((i) => [i.role, i.content[0].text]), [
      ['user', 'remember blue'], ['assistant', 'mock reply: remember blue'], ['user', 'what colour'],
    ]);
    assert.deepEqual(await json(await get(body.id)), body);

    // Streamed: the provider's events as sent, the response's id parley's; stored.
    const events = sse(await (await create({ model: 'relay-1', input: 'stream it', stream: true, previous_response_id: body.id })).text());
    assert.equal(events.at(-1).event, 'response.completed');
    events.forEach((e, i) => assert.equal(e.data.sequence_number, i));
    const done = events.at(-1).data.response;
    assert.ok(!done.id.startsWith('resp_mock'));
    assert.equal(textOf(await json(await get(done.id))), 'mock reply: stream it');

    // Background on a relayed provider, then resumed.
    const bg = await json(await create({ model: 'relay-1', input: 'relay background', background: true }));
    const finished = await poll(bg.id);
    assert.equal(finished.status, 'completed');
    assert.equal(textOf(finished), 'mock reply: relay background');
    const replay = sse(await (await get(bg.id, '?stream=true&starting_after=1')).text());
    assert.equal(replay[0].data.sequence_number, 2);
    assert.equal(replay.at(-1).event, 'response.completed');
  });
});
