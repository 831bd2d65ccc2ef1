// parley-mock against real HTTP clients: global fetch, raw sockets and (when installed) the official
// `openai` and `@anthropic-ai/sdk` SDKs. Run: PARLEY_MOCK_BIN=build/debug/bin/parley-mock node --test tests/integration/mock.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';

const BIN = process.env.PARLEY_MOCK_BIN ?? '/work/main/build/debug/bin/parley-mock';

function sanitizerReport(stderr) {
  return /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(stderr);
}

// Starts parley-mock on a free loopback port; resolves once it printed its listening line.
async function startMock(args = []) {
  const child = spawn(BIN, ['--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = readline.createInterface({ input: child.stdout });
  const line = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`parley-mock exited with ${code}: ${stderr}`)));
  });
  const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
  assert.ok(m, `unexpected first line: ${line}`);
  const exited = once(child, 'exit');
  return {
    child,
    base: m[1],
    port: Number(m[2]),
    stderr: () => stderr,
    // SIGTERM, then the exit code; a sanitizer report fails the caller.
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code, signal] = await exited;
      assert.equal(sanitizerReport(stderr), false, stderr);
      return { code, signal };
    },
  };
}

function post(base, path, body, headers = {}, extra = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...extra,
  });
}

const chat = (base, body, headers, extra) => post(base, '/v1/chat/completions', body, headers, extra);

async function queueFaults(base, faults) {
  const res = await post(base, '/_mock/faults', { faults });
  assert.equal(res.status, 200);
  return res.json();
}

async function resetMock(base) {
  const res = await post(base, '/_mock/reset', '');
  assert.equal(res.status, 200);
  await res.arrayBuffer();
}

async function recorded(base) {
  const res = await fetch(`${base}/_mock/requests`);
  assert.equal(res.status, 200);
  return res.json();
}

// Reads an SSE body into its `data:` payloads; a broken connection ends the read with `error` set.
async function readEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const events = [];
  let error = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        assert.ok(event.startsWith('data: '), `not a data event: ${event}`);
        events.push(event.slice('data: '.length));
      }
    }
  } catch (e) {
    error = e;
  }
  return { events, error, rest: buffer };
}

const words = (s) => s.split(/\s+/).filter(Boolean).length;

// Raw HTTP/1.1 over one socket: resolves with everything received until `until(text)` holds.
function rawExchange(port, payload, until) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(payload));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => {
      text += d;
      if (until(text)) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
  });
}

const messages = [
  { role: 'system', content: 'You are  a\thelpful assistant.' },
  { role: 'user', content: 'first question' },
  { role: 'assistant', content: 'first answer here' },
  { role: 'user', content: '  tell me\na story ' },
];
const promptWords = 5 + 2 + 3 + 4;

describe('parley-mock with default flags', () => {
  let mock;
  before(async () => { mock = await startMock(); });
  after(async () => {
    const { code } = await mock.stop();
    assert.equal(code, 0);
  });

  test('a non-streamed completion has the OpenAI shape and usage consistent with the input', async () => {
    const res = await chat(mock.base, { model: 'gpt-4o-mini', messages });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const body = await res.json();
    assert.match(body.id, /^chatcmpl-/);
    assert.equal(body.object, 'chat.completion');
    assert.equal(typeof body.created, 'number');
    assert.equal(body.model, 'gpt-4o-mini');
    assert.equal(typeof body.system_fingerprint, 'string');
    assert.equal(body.choices.length, 1);
    const [choice] = body.choices;
    assert.equal(choice.index, 0);
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.logprobs, null);
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, 'mock reply: tell me a story');
    assert.deepEqual(body.usage, { prompt_tokens: promptWords, completion_tokens: 6, total_tokens: promptWords + 6 });
    assert.equal(body.usage.completion_tokens, words(choice.message.content));
  });

  test('ids differ between completions', async () => {
    const a = await (await chat(mock.base, { model: 'm', messages })).json();
    const b = await (await chat(mock.base, { model: 'm', messages })).json();
    assert.notEqual(a.id, b.id);
  });

  test('max_tokens and max_completion_tokens cut the reply to that many words with finish_reason length', async () => {
    for (const limit of ['max_tokens', 'max_completion_tokens']) {
      const body = await (await chat(mock.base, { model: 'm', messages, [limit]: 4 })).json();
      assert.equal(body.choices[0].message.content, 'mock reply: tell me');
      assert.equal(body.choices[0].finish_reason, 'length');
      assert.equal(body.usage.completion_tokens, 4);
    }
    const roomy = await (await chat(mock.base, { model: 'm', messages, max_tokens: 6 })).json();
    assert.equal(roomy.choices[0].finish_reason, 'stop');
  });

  test('n > 1 gives n identical choices and counts completion tokens over all of them', async () => {
    const body = await (await chat(mock.base, { model: 'm', messages, n: 3 })).json();
    assert.deepEqual(body.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of body.choices) assert.equal(c.message.content, 'mock reply: tell me a story');
    assert.equal(body.usage.completion_tokens, 18);
    assert.equal(body.usage.total_tokens, promptWords + 18);
  });

  test('array content parts count as text; no user message gives the bare prefix', async () => {
    const parts = [{ role: 'user', content: [{ type: 'text', text: 'one two' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'three' }] }];
    const body = await (await chat(mock.base, { model: 'm', messages: parts })).json();
    assert.equal(body.choices[0].message.content, 'mock reply: one two three');
    assert.equal(body.usage.prompt_tokens, 3);
    const system = await (await chat(mock.base, { model: 'm', messages: [{ role: 'system', content: 'hi there' }] })).json();
    assert.equal(system.choices[0].message.content, 'mock reply:');
    assert.deepEqual(system.usage, { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
  });

  test('a streamed completion follows OpenAI chunk order, matches the non-streamed text and ends with [DONE]', async () => {
    const plain = await (await chat(mock.base, { model: 'gpt-4o', messages })).json();
    const res = await chat(mock.base, { model: 'gpt-4o', messages, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const { events, error, rest } = await readEvents(res);
    assert.equal(error, null);
    assert.equal(rest, '');
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.model, 'gpt-4o');
      assert.equal(c.id, chunks[0].id);
      assert.match(c.id, /^chatcmpl-/);
      assert.equal(typeof c.created, 'number');
      assert.equal('usage' in c, false, 'no usage without stream_options.include_usage');
      assert.equal(c.choices.length, 1);
    }
    assert.deepEqual(chunks[0].choices[0], { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
    const last = chunks.at(-1).choices[0];
    assert.deepEqual(last.delta, {});
    assert.equal(last.finish_reason, 'stop');
    const deltas = chunks.slice(1, -1).map((c) => {
      assert.equal(c.choices[0].finish_reason, null);
      return c.choices[0].delta.content;
    });
    assert.equal(deltas.length, 6, 'one delta per word by default');
    assert.equal(deltas.join(''), plain.choices[0].message.content);
  });

  test('"use tool NAME" with that function tool answers one tool call, streamed as OpenAI streams tool calls', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } }];
    const ask = [{ role: 'user', content: 'use tool get_weather for Paris' }];
    const plain = await (await chat(mock.base, { model: 'gpt-4o', messages: ask, tools })).json();
    const choice = plain.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.match(call.id, /^call_/);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.equal(args.city, 'mock reply: use tool get_weather for Paris');
    assert.equal(args.days, 5);
    assert.equal(plain.usage.completion_tokens, words(call.function.arguments));
    // Another tool's name, tool_choice none, or no tools: an ordinary reply.
    const other = await (await chat(mock.base, { model: 'gpt-4o', messages: [{ role: 'user', content: 'use tool other' }], tools })).json();
    assert.equal(other.choices[0].finish_reason, 'stop');
    const none = await (await chat(mock.base, { model: 'gpt-4o', messages: ask, tools, tool_choice: 'none' })).json();
    assert.equal(none.choices[0].message.content, 'mock reply: use tool get_weather for Paris');

    const res = await chat(mock.base, { model: 'gpt-4o', messages: ask, tools, stream: true });
    const { events } = await readEvents(res);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const first = chunks[0].choices[0].delta;
    assert.equal(first.role, 'assistant');
    assert.match(first.tool_calls[0].id, /^call_/);
    assert.deepEqual(first.tool_calls, [{ index: 0, id: first.tool_calls[0].id, type: 'function', function: { name: 'get_weather', arguments: '' } }]);
    const pieces = chunks.slice(1, -1).map((c) => c.choices[0].delta.tool_calls[0]);
    for (const piece of pieces) assert.equal(piece.index, 0);
    assert.equal(pieces.map((piece) => piece.function.arguments).join(''), call.function.arguments);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
  });

  test('POST /v1/responses answers a response object, and streamed OpenAI\'s events with sequence numbers', async () => {
    const body = { model: 'gpt-4o', instructions: 'be brief', input: [{ role: 'user', content: [{ type: 'input_text', text: 'tell me' }] }] };
    const res = await fetch(`${mock.base}/v1/responses`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    const r = await res.json();
    assert.match(r.id, /^resp_mock/);
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output[0].content[0].text, 'mock reply: tell me');
    assert.deepEqual([r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens], [4, 4, 8]);
    const streamed = await fetch(`${mock.base}/v1/responses`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
    const text = await streamed.text();
    const events = text.split('\n\n').filter(Boolean).map((block) => {
      const [event, data] = block.split('\n');
      return { name: event.slice(7), data: JSON.parse(data.slice(6)) };
    });
    events.forEach((e, i) => { assert.equal(e.data.type, e.name); assert.equal(e.data.sequence_number, i); });
    assert.deepEqual(events.map((e) => e.name).filter((n) => n !== 'response.output_text.delta'), [
      'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    assert.equal(events.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta).join(''), 'mock reply: tell me');
    assert.equal(events.at(-1).data.response.output[0].content[0].text, 'mock reply: tell me');
  });

  test('stream_options.include_usage adds a final chunk with empty choices and the usage', async () => {
    const plain = await (await chat(mock.base, { model: 'm', messages, max_tokens: 3 })).json();
    const res = await chat(mock.base, { model: 'm', messages, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    const { events, error } = await readEvents(res);
    assert.equal(error, null);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assert.deepEqual(usageChunk.usage, plain.usage);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
    const text = chunks.slice(1, -2).map((c) => c.choices[0].delta.content).join('');
    assert.equal(text, plain.choices[0].message.content);
  });

  test('invalid requests get 400 in the OpenAI error shape', async () => {
    const cases = [
      ['{not json', null],
      [{ model: 'm' }, 'messages'],
      [{ messages }, 'model'],
      [{ model: 'm', messages: [] }, 'messages'],
      [{ model: 'm', messages: 'hi' }, 'messages'],
      [{ model: 'm', messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
      [{ model: 'm', messages, stream_options: { include_usage: true } }, 'stream_options'],
      [{ model: 'm', messages, max_tokens: 0 }, 'max_tokens'],
    ];
    for (const [body, param] of cases) {
      const res = await chat(mock.base, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const { error } = await res.json();
      assert.equal(typeof error.message, 'string');
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(error.param, param);
      assert.ok('code' in error);
    }
  });

  test('an unknown path is a 404 in the OpenAI error shape', async () => {
    for (const path of ['/v1/nothing', '/elsewhere', '/_mock/nothing']) {
      const res = await fetch(`${mock.base}${path}`);
      assert.equal(res.status, 404);
      const { error } = await res.json();
      assert.equal(error.type, 'invalid_request_error');
      assert.ok(error.message.includes(path));
    }
  });

  test('GET /v1/models lists the default models', async () => {
    const res = await fetch(`${mock.base}/v1/models`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m) => m.id), ['gpt-4o-mini', 'gpt-4o', 'mock-1', 'text-embedding-3-small']);
    for (const m of body.data) {
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'parley-mock');
      assert.equal(typeof m.created, 'number');
    }
    const one = await (await fetch(`${mock.base}/v1/models/mock-1`)).json();
    assert.equal(one.id, 'mock-1');
    const missing = await fetch(`${mock.base}/v1/models/nope`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'model_not_found');
  });

  test('embeddings are deterministic unit vectors; base64 carries the same float32 values', async () => {
    const embed = async (body) => {
      const res = await post(mock.base, '/v1/embeddings', body);
      assert.equal(res.status, 200);
      return res.json();
    };
    const a = await embed({ model: 'text-embedding-3-small', input: 'the quick fox' });
    const b = await embed({ model: 'text-embedding-3-small', input: ['the quick fox', 'other'] });
    assert.equal(a.object, 'list');
    assert.equal(a.model, 'text-embedding-3-small');
    assert.deepEqual(a.usage, { prompt_tokens: 3, total_tokens: 3 });
    assert.deepEqual(b.usage, { prompt_tokens: 4, total_tokens: 4 });
    assert.equal(a.data[0].object, 'embedding');
    assert.equal(a.data[0].index, 0);
    assert.equal(a.data[0].embedding.length, 8);
    assert.deepEqual(b.data[0].embedding, a.data[0].embedding);
    assert.equal(b.data[1].index, 1);
    assert.notDeepEqual(b.data[1].embedding, a.data[0].embedding);
    const norm = Math.hypot(...a.data[0].embedding);
    assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);
    const wide = await embed({ model: 'e', input: 'x', dimensions: 32 });
    assert.equal(wide.data[0].embedding.length, 32);
    const encoded = await embed({ model: 'e', input: 'the quick fox', encoding_format: 'base64' });
    const bytes = Buffer.from(encoded.data[0].embedding, 'base64');
    const floats = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    assert.deepEqual(floats, a.data[0].embedding);
    const bad = await post(mock.base, '/v1/embeddings', { model: 'e', input: 42 });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.param, 'input');
  });

  test('the official openai SDK reads completions, streams and embeddings', async (t) => {
    let OpenAI;
    try {
      ({ default: OpenAI } = await import('openai'));
    } catch {
      t.skip('the openai package is not installed (npm ci)');
      return;
    }
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${mock.base}/v1`, maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    assert.equal(completion.choices[0].message.content, 'mock reply: tell me a story');
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, completion.choices[0].message.content);
    assert.deepEqual(usage, completion.usage);
    const embedding = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'the quick fox' });
    assert.equal(embedding.data[0].embedding.length, 8);
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'mock-1'));
  });

  test('a status fault answers that status with Retry-After and an OpenAI-shaped default body', async () => {
    await resetMock(mock.base);
    assert.deepEqual(await queueFaults(mock.base, [{ status: 429, retry_after: 1 }, { status: 503, body: { error: { message: 'custom' } } }]), { queued: 2 });
    const limited = await chat(mock.base, { model: 'm', messages });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '1');
    const { error } = await limited.json();
    assert.equal(error.code, 'rate_limit_exceeded');
    assert.equal(typeof error.message, 'string');
    const custom = await chat(mock.base, { model: 'm', messages });
    assert.equal(custom.status, 503);
    assert.equal(custom.headers.get('retry-after'), null);
    assert.deepEqual(await custom.json(), { error: { message: 'custom' } });
    assert.equal((await chat(mock.base, { model: 'm', messages })).status, 200);
  });

  test('a reset fault closes the connection before any byte: fetch rejects', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ reset: true }]);
    await assert.rejects(chat(mock.base, { model: 'm', messages }), (e) => {
      assert.equal(e.name, 'TypeError');
      return true;
    });
    assert.equal((await chat(mock.base, { model: 'm', messages })).status, 200);
  });

  test('a hang fault never answers but does not block other requests', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ hang: true }]);
    const controller = new AbortController();
    let settled = false;
    const hung = chat(mock.base, { model: 'm', messages }, {}, { signal: controller.signal });
    hung.then(() => { settled = true; }, () => { settled = true; });
    // Wait until the hung request has taken the fault, so the next one cannot.
    while ((await recorded(mock.base)).length < 1) await new Promise((r) => setTimeout(r, 10));
    const other = await chat(mock.base, { model: 'm', messages });
    assert.equal(other.status, 200);
    await other.arrayBuffer();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(settled, false, 'still no answer');
    controller.abort();
    await assert.rejects(hung, { name: 'AbortError' });
    assert.equal((await chat(mock.base, { model: 'm', messages })).status, 200);
  });

  test('drop_after_chunks ends a stream after N events without [DONE]', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ drop_after_chunks: 2 }]);
    const res = await chat(mock.base, { model: 'm', messages, stream: true });
    assert.equal(res.status, 200);
    const { events } = await readEvents(res);
    assert.equal(events.length, 2);
    assert.ok(!events.includes('[DONE]'));
    assert.equal(JSON.parse(events[1]).choices[0].delta.content, 'mock');
  });

  test('drop_after_chunks on a non-streamed request sends part of the body, then closes', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ drop_after_chunks: 1 }]);
    const res = await chat(mock.base, { model: 'm', messages });
    assert.equal(res.status, 200);
    await assert.rejects(res.text());
  });

  test('a malformed fault answers 200 application/json with a body JSON.parse rejects', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ malformed: true }]);
    const res = await chat(mock.base, { model: 'm', messages });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const text = await res.text();
    assert.throws(() => JSON.parse(text), SyntaxError);
  });

  test('a delay_ms fault answers normally after at least that long', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ delay_ms: 300 }]);
    const started = performance.now();
    const res = await chat(mock.base, { model: 'm', messages });
    const body = await res.json();
    assert.ok(performance.now() - started >= 300);
    assert.equal(res.status, 200);
    assert.equal(body.choices[0].message.content, 'mock reply: tell me a story');
  });

  test('faults apply one per request, in the order queued, then requests succeed again', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ status: 500 }, { status: 502 }]);
    assert.deepEqual(await queueFaults(mock.base, [{ status: 503 }]), { queued: 3 });
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = i % 2 ? await fetch(`${mock.base}/v1/models`) : await chat(mock.base, { model: 'm', messages });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses, [500, 502, 503, 200]);
    assert.equal((await recorded(mock.base)).length, 4);
  });

  test('invalid fault lists are rejected whole with 400', async () => {
    await resetMock(mock.base);
    for (const faults of [[{ status: 429 }, { explode: true }], [{ reset: true, hang: true }], [{}], [{ status: 99 }], 'x']) {
      const res = await post(mock.base, '/_mock/faults', { faults });
      assert.equal(res.status, 400, JSON.stringify(faults));
      assert.equal(typeof (await res.json()).error.message, 'string');
    }
    assert.equal((await chat(mock.base, { model: 'm', messages })).status, 200);
  });

  test('GET /_mock/requests records /v1 requests in order, faults included', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ status: 429 }]);
    const first = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'one' }] });
    const before = Date.now();
    await (await chat(mock.base, first, { authorization: 'Bearer sk-first' })).arrayBuffer();
    await (await fetch(`${mock.base}/v1/models?limit=1`)).arrayBuffer();
    await (await post(mock.base, '/v1/embeddings', '{"model":"e","input":"z"}', { authorization: 'Bearer sk-third' })).arrayBuffer();
    const after = Date.now();
    const log = await recorded(mock.base);
    assert.deepEqual(log.map(({ method, path, authorization, body }) => ({ method, path, authorization, body })), [
      { method: 'POST', path: '/v1/chat/completions', authorization: 'Bearer sk-first', body: first },
      { method: 'GET', path: '/v1/models', authorization: null, body: '' },
      { method: 'POST', path: '/v1/embeddings', authorization: 'Bearer sk-third', body: '{"model":"e","input":"z"}' },
    ]);
    let previous = before;
    for (const r of log) {
      assert.ok(r.received_at_ms >= previous && r.received_at_ms <= after);
      previous = r.received_at_ms;
    }
  });

  test('POST /_mock/reset clears both the recorded requests and the fault queue', async () => {
    await resetMock(mock.base);
    await queueFaults(mock.base, [{ status: 500 }, { status: 500 }]);
    assert.equal((await chat(mock.base, { model: 'm', messages })).status, 500);
    assert.equal((await recorded(mock.base)).length, 1);
    await resetMock(mock.base);
    assert.deepEqual(await recorded(mock.base), []);
    assert.equal((await chat(mock.base, { model: 'm', messages })).status, 200);
    assert.equal((await recorded(mock.base)).length, 1);
  });

  test('keep-alive serves several requests on one connection', async () => {
    const request = 'GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n';
    const text = await rawExchange(mock.port, request + request, (t) => t.split('"object":"list"').length === 3);
    assert.equal(text.split('HTTP/1.1 200 OK').length, 3);
  });

  test('a body over the 8 MiB limit gets 413', async () => {
    const request = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n\r\n';
    const text = await rawExchange(mock.port, request, (t) => t.includes('\r\n\r\n{'));
    assert.match(text, /^HTTP\/1\.1 413 /);
  });
});

// RIFF chunks of a WAV file: { id, data } for each top-level chunk after "WAVE".
function riffChunks(bytes) {
  const buf = Buffer.from(bytes);
  assert.equal(buf.toString('latin1', 0, 4), 'RIFF');
  assert.equal(buf.readUInt32LE(4), buf.length - 8, 'the RIFF size covers the whole file');
  assert.equal(buf.toString('latin1', 8, 12), 'WAVE');
  const chunks = [];
  for (let pos = 12; pos + 8 <= buf.length;) {
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    assert.ok(pos + 8 + size <= buf.length, `chunk ${id} fits`);
    chunks.push({ id, data: buf.subarray(pos + 8, pos + 8 + size) });
    pos += 8 + size + (size % 2);
  }
  return chunks;
}

// The ICMT text of a WAV's LIST/INFO chunk (NUL terminator removed), or null.
function icmt(chunks) {
  const list = chunks.find((c) => c.id === 'LIST' && c.data.toString('latin1', 0, 4) === 'INFO');
  if (!list) return null;
  for (let pos = 4; pos + 8 <= list.data.length;) {
    const id = list.data.toString('latin1', pos, pos + 4);
    const size = list.data.readUInt32LE(pos + 4);
    if (id === 'ICMT') return list.data.subarray(pos + 8, pos + 8 + size).toString('utf8').replace(/\0+$/, '');
    pos += 8 + size + (size % 2);
  }
  return null;
}

const speech = (base, body) => post(base, '/v1/audio/speech', body);

async function speak(base, input, extra = {}) {
  const res = await speech(base, { model: 'tts-1', input, voice: 'alloy', ...extra });
  assert.equal(res.status, 200);
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

function transcribe(base, fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value instanceof Uint8Array) form.append(name, new Blob([value], { type: 'audio/wav' }), `${name}.wav`);
    else form.append(name, value);
  }
  return fetch(`${base}/v1/audio/transcriptions`, { method: 'POST', body: form });
}

// A structured reply's content, parsed, and the whole body.
async function structured(base, body) {
  const res = await chat(base, body);
  assert.equal(res.status, 200);
  const json = await res.json();
  return { json, value: JSON.parse(json.choices[0].message.content) };
}

const personSchema = {
  type: 'object',
  properties: {
    answer: { type: 'string' },
    mood: { type: 'string', enum: ['happy', 'sad', 'curious'] },
    count: { type: 'integer' },
    score: { type: 'number' },
    ok: { type: 'boolean' },
    tags: { type: 'array', items: { type: 'string' } },
    inner: { type: 'object', properties: { level: { type: 'string', enum: ['low', 'high'] }, note: { type: ['string', 'null'] } }, required: ['level', 'note'], additionalProperties: false },
    ref: { $ref: '#/$defs/Color' },
  },
  required: ['answer', 'mood', 'count', 'score', 'ok', 'tags', 'inner', 'ref'],
  additionalProperties: false,
  $defs: { Color: { type: 'string', enum: ['red', 'green', 'blue'] } },
};
const schemaFormat = { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: personSchema } };

describe('parley-mock audio and structured replies', () => {
  let mock;
  before(async () => { mock = await startMock(); });
  after(async () => { assert.equal((await mock.stop()).code, 0); });

  test('speech is a valid 8 kHz 16-bit mono WAV carrying the input in LIST/INFO/ICMT', async () => {
    const input = 'Hello there, general Kenobi — ünïcödé';
    const { res, bytes } = await speak(mock.base, input, { response_format: 'wav' });
    assert.equal(res.headers.get('content-type'), 'audio/wav');
    const chunks = riffChunks(bytes);
    assert.deepEqual(chunks.map((c) => c.id), ['fmt ', 'LIST', 'data']);
    const fmt = chunks[0].data;
    assert.equal(fmt.length, 16);
    assert.deepEqual([fmt.readUInt16LE(0), fmt.readUInt16LE(2), fmt.readUInt32LE(4), fmt.readUInt32LE(8), fmt.readUInt16LE(12), fmt.readUInt16LE(14)],
      [1, 1, 8000, 16000, 2, 16]);
    assert.equal(icmt(chunks), input);
    // 50 ms + 5 ms per character.
    assert.equal(chunks[2].data.length, 2 * (400 + 40 * [...input].length));
    const samples = new Int16Array(chunks[2].data.buffer.slice(chunks[2].data.byteOffset, chunks[2].data.byteOffset + chunks[2].data.length));
    assert.ok(samples.some((s) => Math.abs(s) > 5000), 'an audible tone');
  });

  test('the tone grows with the input and stops at one second', async () => {
    const data = async (input) => riffChunks((await speak(mock.base, input)).bytes).find((c) => c.id === 'data').data.length;
    const short = await data('hi');
    const longer = await data('a somewhat longer sentence to say');
    assert.ok(longer > short);
    assert.equal(await data('x'.repeat(4096)), 16000);
    assert.equal(await data('x'.repeat(500)), 16000);
  });

  test('each response_format has its Content-Type; all but pcm send the WAV bytes, pcm the bare samples', async () => {
    const { bytes: wav } = await speak(mock.base, 'same words', { response_format: 'wav' });
    const types = { mp3: 'audio/mpeg', opus: 'audio/ogg', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm' };
    for (const [format, type] of Object.entries(types)) {
      const { res, bytes } = await speak(mock.base, 'same words', { response_format: format, speed: 1.5, instructions: 'cheerful' });
      assert.equal(res.headers.get('content-type'), type, format);
      if (format === 'pcm') assert.deepEqual(bytes, riffChunks(wav).find((c) => c.id === 'data').data);
      else assert.deepEqual(bytes, wav, format);
    }
    const { res } = await speak(mock.base, 'same words');
    assert.equal(res.headers.get('content-type'), 'audio/mpeg', 'mp3 by default');
  });

  test('invalid speech requests get 400 in the OpenAI error shape', async () => {
    const ok = { model: 'tts-1', input: 'hi', voice: 'alloy' };
    const cases = [
      ['{not json', null],
      [{ input: 'hi', voice: 'alloy' }, 'model'],
      [{ model: 'tts-1', voice: 'alloy' }, 'input'],
      [{ ...ok, input: '' }, 'input'],
      [{ ...ok, input: 'x'.repeat(4097) }, 'input'],
      [{ ...ok, input: 7 }, 'input'],
      [{ model: 'tts-1', input: 'hi' }, 'voice'],
      [{ ...ok, voice: 3 }, 'voice'],
      [{ ...ok, response_format: 'ogg' }, 'response_format'],
      [{ ...ok, speed: 0.2 }, 'speed'],
      [{ ...ok, speed: 4.5 }, 'speed'],
      [{ ...ok, speed: 'fast' }, 'speed'],
      [{ ...ok, instructions: 5 }, 'instructions'],
    ];
    for (const [body, param] of cases) {
      const res = await speech(mock.base, body);
      assert.equal(res.status, 400, JSON.stringify(body).slice(0, 80));
      assert.match(res.headers.get('content-type'), /^application\/json/);
      const { error } = await res.json();
      assert.equal(typeof error.message, 'string');
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(error.param, param);
    }
    assert.equal((await speech(mock.base, { ...ok, input: 'x'.repeat(4096), speed: 0.25 })).status, 200);
    assert.equal((await fetch(`${mock.base}/v1/audio/speech`)).status, 405);
  });

  test('transcribing the speech output gives back the original text, with token usage', async () => {
    const input = 'The quick brown fox jumps over the lazy dog.';
    const { bytes } = await speak(mock.base, input, { response_format: 'wav' });
    const res = await transcribe(mock.base, { file: bytes, model: 'gpt-4o-transcribe' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const inTokens = Math.ceil(bytes.length / 1000);
    assert.deepEqual(await res.json(), { text: input, usage: { type: 'tokens', input_tokens: inTokens, output_tokens: 9, total_tokens: inTokens + 9 } });
    // Any other file: a fixed sentence naming its size.
    const other = await (await transcribe(mock.base, { file: new Uint8Array(2500).fill(7), model: 'whisper-1' })).json();
    assert.deepEqual(other, { text: 'mock transcription of 2500 bytes', usage: { type: 'tokens', input_tokens: 3, output_tokens: 5, total_tokens: 8 } });
  });

  test('each transcription response_format', async () => {
    const input = 'one two three';
    const { bytes } = await speak(mock.base, input, { response_format: 'wav' });
    const seconds = (400 + 40 * input.length) / 8000;
    const get = async (format, extra = {}) => {
      const res = await transcribe(mock.base, { file: bytes, model: 'whisper-1', response_format: format, ...extra });
      assert.equal(res.status, 200, format);
      return { type: res.headers.get('content-type'), text: await res.text() };
    };
    const json = await get('json', { temperature: '0.2', prompt: 'numbers' });
    assert.match(json.type, /^application\/json/);
    assert.equal(JSON.parse(json.text).text, input);
    const text = await get('text');
    assert.match(text.type, /^text\/plain/);
    assert.equal(text.text, input);
    const verbose = await get('verbose_json', { language: 'en' });
    const v = JSON.parse(verbose.text);
    assert.equal(v.text, input);
    assert.equal(v.language, 'en');
    assert.equal(v.duration, seconds);
    assert.deepEqual(v.segments, []);
    assert.equal(v.usage.output_tokens, 3);
    assert.equal(JSON.parse((await get('verbose_json')).text).language, 'english');
    const srt = await get('srt');
    assert.match(srt.type, /^text\/plain/);
    assert.equal(srt.text, `1\n00:00:00,000 --> 00:00:00,${String(seconds * 1000).padStart(3, '0')}\n${input}\n\n`);
    const vtt = await get('vtt');
    assert.equal(vtt.text, `WEBVTT\n\n00:00:00.000 --> 00:00:00.${String(seconds * 1000).padStart(3, '0')}\n${input}\n\n`);
  });

  test('invalid transcription requests get 400: no file, no model, not multipart, malformed multipart, bad fields', async () => {
    const file = new Uint8Array([1, 2, 3]);
    const expect400 = async (res, param) => {
      assert.equal(res.status, 400);
      const { error } = await res.json();
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(typeof error.message, 'string');
      assert.equal(error.param, param);
    };
    await expect400(await transcribe(mock.base, { model: 'whisper-1' }), 'file');
    await expect400(await transcribe(mock.base, { file }), 'model');
    await expect400(await transcribe(mock.base, { file, model: 'whisper-1', response_format: 'mp3' }), 'response_format');
    await expect400(await transcribe(mock.base, { file, model: 'whisper-1', temperature: 'warm' }), 'temperature');
    await expect400(await transcribe(mock.base, { file, model: 'whisper-1', temperature: '1.5' }), 'temperature');
    await expect400(await post(mock.base, '/v1/audio/transcriptions', { file: 'x', model: 'whisper-1' }), null);
    const raw = (body, type = 'multipart/form-data; boundary=XyZ') => fetch(`${mock.base}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': type }, body });
    const part = '--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n';
    const filePart = '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n';
    await expect400(await raw(`${part}${filePart}`), null); // no closing delimiter
    await expect400(await raw(`${part}${filePart}--XyZ--\r\n`, 'multipart/form-data'), null); // no boundary
    await expect400(await raw('--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n'), null); // no name
    await expect400(await raw('nothing here'), null);
    // The same parts, well formed (quoted boundary, preamble), pass.
    const good = await raw(`preamble\r\n${part}${filePart}--XyZ--\r\n`, 'Multipart/Form-Data; boundary="XyZ"');
    assert.equal(good.status, 200);
    assert.equal((await good.json()).text, 'mock transcription of 3 bytes');
  });

  test('a transcription is recorded as a short summary, not the upload', async () => {
    await resetMock(mock.base);
    const { bytes } = await speak(mock.base, 'record me', { response_format: 'wav' });
    await (await transcribe(mock.base, { file: bytes, model: 'whisper-1', response_format: 'text' })).arrayBuffer();
    await (await post(mock.base, '/v1/audio/transcriptions', 'plain')).arrayBuffer();
    const log = await recorded(mock.base);
    assert.equal(log.length, 3);
    assert.deepEqual(JSON.parse(log[0].body), { model: 'tts-1', input: 'record me', voice: 'alloy', response_format: 'wav' });
    assert.equal(log[1].path, '/v1/audio/transcriptions');
    assert.deepEqual(JSON.parse(log[1].body), { model: 'whisper-1', file_bytes: bytes.length, filename: 'file.wav', response_format: 'text' });
    const bad = JSON.parse(log[2].body);
    assert.equal(bad.body_bytes, 5);
    assert.equal(typeof bad.error, 'string');
  });

  test('a 20 MiB upload is accepted for transcription; 8 MiB stays the limit elsewhere, 32 MiB here', async () => {
    await resetMock(mock.base);
    const big = new Uint8Array(20 << 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const res = await transcribe(mock.base, { file: big, model: 'whisper-1' });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.text, `mock transcription of ${20 << 20} bytes`);
    assert.equal(body.usage.input_tokens, Math.ceil((20 << 20) / 1000));
    const [entry] = await recorded(mock.base);
    assert.equal(entry.body, JSON.stringify({ model: 'whisper-1', file_bytes: 20 << 20, filename: 'file.wav', response_format: null }));
    const head = (path, length) => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: ${length}\r\n\r\n`;
    const over = await rawExchange(mock.port, head('/v1/audio/transcriptions', 33 << 20), (t) => t.includes('\r\n\r\n{'));
    assert.match(over, /^HTTP\/1\.1 413 /);
    const speechOver = await rawExchange(mock.port, head('/v1/audio/speech', 9000000), (t) => t.includes('\r\n\r\n{'));
    assert.match(speechOver, /^HTTP\/1\.1 413 /);
  });

  test('json_schema: the reply is JSON built from the schema; enums take the last member, or the first after a "?"', async () => {
    const statement = [{ role: 'system', content: 'be terse' }, { role: 'user', content: '  tell me\na story ' }];
    const { json, value } = await structured(mock.base, { model: 'm', messages: statement, response_format: schemaFormat });
    assert.deepEqual(value, {
      answer: 'mock reply: tell me a story', mood: 'curious', count: 4, score: 0.5, ok: true, tags: [],
      inner: { level: 'high', note: 'mock reply: tell me a story' }, ref: 'blue',
    });
    assert.deepEqual(Object.keys(value), Object.keys(personSchema.properties), 'properties in schema order');
    const content = json.choices[0].message.content;
    assert.equal(json.choices[0].finish_reason, 'stop');
    assert.deepEqual(json.usage, { prompt_tokens: 2 + 4, completion_tokens: words(content), total_tokens: 6 + words(content) });
    const question = await structured(mock.base, { model: 'm', messages: [{ role: 'user', content: 'is it sunny?' }], response_format: schemaFormat });
    assert.equal(question.value.mood, 'happy');
    assert.equal(question.value.inner.level, 'low');
    assert.equal(question.value.ref, 'red');
    assert.equal(question.value.count, 3);
    assert.equal(question.value.answer, 'mock reply: is it sunny?');
  });

  test('json_schema replies ignore max_tokens, repeat for n, and stream deltas that concatenate to the same JSON', async () => {
    const body = { model: 'm', messages, response_format: schemaFormat, max_tokens: 2, n: 2 };
    const { json } = await structured(mock.base, body);
    const content = json.choices[0].message.content;
    assert.equal(json.choices[1].message.content, content);
    assert.equal(json.choices[0].finish_reason, 'stop');
    assert.equal(json.usage.completion_tokens, 2 * words(content));
    const res = await chat(mock.base, { ...body, stream: true, stream_options: { include_usage: true } });
    const { events, error } = await readEvents(res);
    assert.equal(error, null);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.deepEqual(chunks.at(-1).usage, json.usage);
    for (const index of [0, 1]) {
      const deltas = chunks.flatMap((c) => c.choices.filter((x) => x.index === index && x.delta.content !== undefined).map((x) => x.delta.content)).slice(1);
      assert.equal(deltas.length, words(content));
      assert.equal(deltas.join(''), content);
      assert.equal(chunks.find((c) => c.choices[0]?.index === index && c.choices[0].finish_reason).choices[0].finish_reason, 'stop');
    }
  });

  test('json_object replies {"reply": ...}; an empty schema gives {}; bad response_format is a 400', async () => {
    const object = await structured(mock.base, { model: 'm', messages, response_format: { type: 'json_object' }, max_tokens: 1 });
    assert.deepEqual(object.value, { reply: 'mock reply: tell me a story' });
    const empty = await structured(mock.base, { model: 'm', messages, response_format: { type: 'json_schema', json_schema: { name: 'none' } } });
    assert.deepEqual(empty.value, {});
    const text = await (await chat(mock.base, { model: 'm', messages, response_format: { type: 'text' } })).json();
    assert.equal(text.choices[0].message.content, 'mock reply: tell me a story');
    const cases = [
      [{ type: 'xml' }, 'response_format.type'],
      ['json', 'response_format'],
      [{}, 'response_format.type'],
      [{ type: 'json_schema' }, 'response_format.json_schema'],
      [{ type: 'json_schema', json_schema: { schema: {} } }, 'response_format.json_schema.name'],
      [{ type: 'json_schema', json_schema: { name: 'x', schema: 'nope' } }, 'response_format.json_schema.schema'],
    ];
    for (const [rf, param] of cases) {
      const res = await chat(mock.base, { model: 'm', messages, response_format: rf });
      assert.equal(res.status, 400, JSON.stringify(rf));
      assert.equal((await res.json()).error.param, param);
    }
  });

  test('the official openai SDK speaks, transcribes and parses structured replies', async (t) => {
    let OpenAI;
    let toFile;
    try {
      ({ default: OpenAI, toFile } = await import('openai'));
    } catch {
      t.skip('the openai package is not installed (npm ci)');
      return;
    }
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${mock.base}/v1`, maxRetries: 0 });
    const audio = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'coral', input: 'round trip through the SDK', response_format: 'wav' });
    const bytes = Buffer.from(await audio.arrayBuffer());
    const transcript = await client.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(bytes, 'speech.wav') });
    assert.equal(transcript.text, 'round trip through the SDK');
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, response_format: schemaFormat });
    assert.equal(JSON.parse(completion.choices[0].message.content).mood, 'curious');
  });
});

describe('parley-mock with --require-key', () => {
  let mock;
  before(async () => { mock = await startMock(['--require-key', 'sk-alpha,sk-beta', '--require-key', 'sk-gamma']); });
  after(async () => { assert.equal((await mock.stop()).code, 0); });

  test('requests without a listed bearer key get 401 invalid_api_key; listed keys pass', async () => {
    for (const headers of [{}, { authorization: 'Bearer sk-wrong' }, { authorization: 'sk-alpha' }]) {
      const res = await chat(mock.base, { model: 'm', messages }, headers);
      assert.equal(res.status, 401);
      const { error } = await res.json();
      assert.equal(error.code, 'invalid_api_key');
      assert.equal(error.type, 'invalid_request_error');
      assert.ok(!JSON.stringify(error).includes('wrong'), 'the offered key is not echoed');
    }
    for (const key of ['sk-alpha', 'sk-beta', 'sk-gamma']) {
      assert.equal((await chat(mock.base, { model: 'm', messages }, { authorization: `Bearer ${key}` })).status, 200);
    }
    assert.equal((await fetch(`${mock.base}/v1/models`)).status, 401);
    assert.equal((await fetch(`${mock.base}/_mock/requests`)).status, 200, 'the control API needs no key');
  });
});

describe('parley-mock pacing and listing flags', () => {
  let mock;
  before(async () => {
    mock = await startMock(['--chunks', '2', '--chunk-delay-ms', '50', '--ttfb-ms', '150', '--models', 'alpha,beta', '--embedding-dim', '4', '--threads', '2']);
  });
  after(async () => { assert.equal((await mock.stop()).code, 0); });

  test('--chunks splits the content into that many deltas, paced by --chunk-delay-ms after --ttfb-ms', async () => {
    const started = performance.now();
    const res = await chat(mock.base, { model: 'm', messages, stream: true });
    const headersAt = performance.now() - started;
    const { events, error } = await readEvents(res);
    const total = performance.now() - started;
    assert.equal(error, null);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const deltas = chunks.slice(1, -1).map((c) => c.choices[0].delta.content);
    assert.deepEqual(deltas, ['mock reply: tell', ' me a story']);
    assert.ok(headersAt >= 150, `headers after ${headersAt} ms`);
    // Five events (role, two deltas, finish, [DONE]) leave four gaps.
    assert.ok(total >= 150 + 4 * 50, `stream took ${total} ms`);
  });

  test('--chunks splits a structured reply the same way; the deltas rebuild its JSON', async () => {
    const body = { model: 'm', messages, response_format: schemaFormat };
    const plain = await (await chat(mock.base, body)).json();
    const { events, error } = await readEvents(await chat(mock.base, { ...body, stream: true }));
    assert.equal(error, null);
    const deltas = events.slice(1, -2).map((e) => JSON.parse(e).choices[0].delta.content);
    assert.equal(deltas.length, 2);
    assert.equal(deltas.join(''), plain.choices[0].message.content);
    assert.equal(JSON.parse(deltas.join('')).mood, 'curious');
  });

  test('--models and --embedding-dim change the listing and vector size', async () => {
    const models = await (await fetch(`${mock.base}/v1/models`)).json();
    assert.deepEqual(models.data.map((m) => m.id), ['alpha', 'beta']);
    const e = await (await post(mock.base, '/v1/embeddings', { model: 'alpha', input: 'x' })).json();
    assert.equal(e.data[0].embedding.length, 4);
  });

  test('concurrent requests on two threads all get their own correct reply', async () => {
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      chat(mock.base, { model: 'm', messages: [{ role: 'user', content: `number ${i}` }] }).then((r) => r.json())));
    replies.forEach((r, i) => assert.equal(r.choices[0].message.content, `mock reply: number ${i}`));
  });
});

// Anthropic's Messages API: its headers, its shapes, its event names.
const ANTHROPIC_HEADERS = { 'anthropic-version': '2023-06-01', 'x-api-key': 'sk-ant-test' };
const anthropic = (base, body, headers = {}, path = '/v1/messages') => post(base, path, body, { ...ANTHROPIC_HEADERS, ...headers });
const countTokens = (base, body, headers) => anthropic(base, body, headers, '/v1/messages/count_tokens');

// Reads an Anthropic SSE body into [{ event, data }] with data parsed; a broken connection ends
// the read with `error` set, as in readEvents.
async function readNamedEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let error = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch (e) {
    error = e;
  }
  const blocks = text.split('\n\n');
  const events = blocks.slice(0, -1).map((block) => {
    const m = /^event: ([a-z_]+)\ndata: (.*)$/s.exec(block);
    assert.ok(m, `not an Anthropic event: ${block}`);
    const data = JSON.parse(m[2]);
    assert.equal(data.type, m[1], 'the event name repeats the data type');
    return { event: m[1], data };
  });
  return { events, error, rest: blocks.at(-1) };
}

// A conversation with every kind of content the mock reads: 5 + 3 + 2 + 4 words.
const anthropicSystem = 'You are  a\thelpful assistant.';
const turns = [
  { role: 'user', content: 'first question' },
  { role: 'assistant', content: [{ type: 'text', text: 'first answer here' }] },
  {
    role: 'user',
    content: [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'text', text: '  tell me\na story ' },
    ],
  },
];
const turnWords = 5 + 2 + 3 + 4;
const weatherTool = {
  name: 'get_weather',
  description: 'The weather in a city.',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' }, unit: { enum: ['c', 'f'] } }, required: ['city'] },
};
const clockTool = { name: 'clock', input_schema: { type: 'object', properties: {} } };

// Concatenates the deltas of each block of a streamed message, as an SDK does.
function assembleBlocks(events) {
  const blocks = [];
  for (const { data } of events) {
    if (data.type === 'content_block_start') blocks[data.index] = { ...data.content_block, partial: '' };
    if (data.type === 'content_block_delta') {
      const block = blocks[data.index];
      if (data.delta.type === 'text_delta') block.text += data.delta.text;
      else block.partial += data.delta.partial_json;
    }
  }
  return blocks.map(({ partial, ...b }) => (b.type === 'tool_use' ? { ...b, input: JSON.parse(partial) } : b));
}

describe('parley-mock Anthropic Messages API', () => {
  let mock;
  before(async () => { mock = await startMock(); });
  after(async () => { assert.equal((await mock.stop()).code, 0); });

  test('a message has Anthropic\'s shape and headers; text and usage follow the chat rules', async () => {
    const res = await anthropic(mock.base, { model: 'claude-test', max_tokens: 100, system: anthropicSystem, messages: turns, temperature: 0.5, metadata: { user_id: 'u1' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    assert.match(res.headers.get('request-id'), /^req_mock\d{12}$/);
    assert.equal(res.headers.get('anthropic-ratelimit-requests-remaining'), '9999');
    assert.equal(res.headers.get('x-ratelimit-remaining-requests'), null, 'OpenAI\'s headers stay on the OpenAI side');
    const body = await res.json();
    assert.match(body.id, /^msg_mock\d{12}$/);
    assert.deepEqual({ ...body, id: 'x' }, {
      id: 'x',
      type: 'message',
      role: 'assistant',
      model: 'claude-test',
      content: [{ type: 'text', text: 'mock reply: tell me a story' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      stop_details: null,
      container: null,
      usage: { input_tokens: turnWords, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 6 },
    });
    // System as text blocks counts the same; ids differ from message to message.
    const blocks = await (await anthropic(mock.base, { model: 'claude-test', max_tokens: 100, system: [{ type: 'text', text: 'You are  a' }, { type: 'text', text: 'helpful assistant.' }], messages: turns })).json();
    assert.equal(blocks.usage.input_tokens, turnWords);
    assert.notEqual(blocks.id, body.id);
  });

  test('tool_result contents count and are read; system messages count but are not replied to', async () => {
    const body = await (await anthropic(mock.base, {
      model: 'c', max_tokens: 50,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'clock', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'it is noon' }] }, { type: 'text', text: 'thanks' }] },
      ],
    })).json();
    assert.equal(body.content[0].text, 'mock reply: it is noon thanks');
    assert.equal(body.usage.input_tokens, 2 + 2 + 4);
  });

  test('count_tokens counts what usage.input_tokens counts and takes no max_tokens', async () => {
    const res = await countTokens(mock.base, { model: 'claude-test', system: anthropicSystem, messages: turns, tools: [weatherTool] });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('request-id'), /^req_/);
    assert.deepEqual(await res.json(), { input_tokens: turnWords });
    const refused = await countTokens(mock.base, { model: 'claude-test', max_tokens: 5, messages: turns });
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error.message, 'max_tokens: Extra inputs are not permitted');
  });

  test('max_tokens cuts the reply to that many words; stop_sequences end it before the first match', async () => {
    const cut = await (await anthropic(mock.base, { model: 'c', max_tokens: 3, messages: turns })).json();
    assert.deepEqual([cut.content, cut.stop_reason, cut.stop_sequence, cut.usage.output_tokens], [[{ type: 'text', text: 'mock reply: tell' }], 'max_tokens', null, 3]);
    const stopped = await (await anthropic(mock.base, { model: 'c', max_tokens: 100, messages: turns, stop_sequences: ['zebra', 'a story', 'me'] })).json();
    assert.deepEqual([stopped.content, stopped.stop_reason, stopped.stop_sequence, stopped.usage.output_tokens], [[{ type: 'text', text: 'mock reply: tell ' }], 'stop_sequence', 'me', 3]);
    // A stop sequence beyond the max_tokens cut does not apply.
    const limited = await (await anthropic(mock.base, { model: 'c', max_tokens: 2, messages: turns, stop_sequences: ['story'] })).json();
    assert.deepEqual([limited.content[0].text, limited.stop_reason, limited.stop_sequence], ['mock reply:', 'max_tokens', null]);
    // max_tokens 0 (a cache warm-up) generates nothing.
    const none = await (await anthropic(mock.base, { model: 'c', max_tokens: 0, messages: turns })).json();
    assert.deepEqual([none.content, none.stop_reason, none.usage.output_tokens], [[], 'max_tokens', 0]);
  });

  test('"use tool NAME" calls that tool with input built from its schema; tool_choice any, tool and none', async () => {
    const ask = (content, extra = {}) => anthropic(mock.base, { model: 'c', max_tokens: 100, tools: [clockTool, weatherTool], messages: [{ role: 'user', content }], ...extra }).then((r) => r.json());
    const auto = await ask('please use tool get_weather for Paris');
    const reply = 'mock reply: please use tool get_weather for Paris';
    assert.equal(auto.stop_reason, 'tool_use');
    assert.equal(auto.content.length, 2, 'a text block, then the call');
    assert.deepEqual(auto.content[0], { type: 'text', text: reply });
    assert.match(auto.content[1].id, /^toolu_mock\d{12}$/);
    assert.deepEqual({ ...auto.content[1], id: 'x' }, { type: 'tool_use', id: 'x', name: 'get_weather', input: { city: reply, days: 6, unit: 'f' } });
    assert.equal(auto.usage.output_tokens, words(reply) + words(JSON.stringify(auto.content[1].input)));
    // A question picks the first enum member; max_tokens does not cut a tool call.
    const question = await ask('use tool get_weather today?', { max_tokens: 1 });
    assert.deepEqual(question.content[1].input, { city: 'mock reply: use tool get_weather today?', days: 4, unit: 'c' });
    // any: the named tool or else the first, and no text; tool: the forced one; none: never.
    const any = await ask('what time is it', { tool_choice: { type: 'any' } });
    assert.deepEqual(any.content.map((b) => [b.type, b.name]), [['tool_use', 'clock']]);
    assert.deepEqual(any.content[0].input, {});
    const forced = await ask('use tool clock', { tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true } });
    assert.deepEqual(forced.content.map((b) => [b.type, b.name]), [['tool_use', 'get_weather']]);
    const never = await ask('use tool clock', { tool_choice: { type: 'none' } });
    assert.deepEqual([never.content, never.stop_reason], [[{ type: 'text', text: 'mock reply: use tool clock' }], 'end_turn']);
    const unknown = await ask('use tool teleport');
    assert.equal(unknown.stop_reason, 'end_turn');
    // The round trip: the result goes back, the reply reads it.
    const back = await anthropic(mock.base, {
      model: 'c', max_tokens: 100, tools: [weatherTool],
      messages: [
        { role: 'user', content: 'please use tool get_weather for Paris' },
        { role: 'assistant', content: auto.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: auto.content[1].id, content: '22 degrees' }] },
      ],
    }).then((r) => r.json());
    assert.deepEqual([back.content, back.stop_reason], [[{ type: 'text', text: 'mock reply: 22 degrees' }], 'end_turn']);
  });

  test('a streamed message sends Anthropic\'s events in order; they rebuild the unstreamed message', async () => {
    const body = { model: 'claude-test', max_tokens: 100, system: anthropicSystem, messages: turns };
    const plain = await (await anthropic(mock.base, body)).json();
    const res = await anthropic(mock.base, { ...body, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.match(res.headers.get('request-id'), /^req_/);
    const { events, error } = await readNamedEvents(res);
    assert.equal(error, null);
    assert.deepEqual(events.map((e) => e.event), [
      'message_start', 'content_block_start', 'ping',
      ...Array(6).fill('content_block_delta'),
      'content_block_stop', 'message_delta', 'message_stop',
    ]);
    const start = events[0].data.message;
    assert.deepEqual([start.content, start.stop_reason, start.stop_sequence, start.usage.input_tokens, start.usage.output_tokens], [[], null, null, turnWords, 1]);
    assert.match(start.id, /^msg_mock/);
    assert.deepEqual(events[1].data, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    assert.deepEqual(events.slice(3, 9).map((e) => e.data.delta), ['mock', ' reply:', ' tell', ' me', ' a', ' story'].map((text) => ({ type: 'text_delta', text })));
    assert.deepEqual(events[9].data, { type: 'content_block_stop', index: 0 });
    assert.deepEqual(events[10].data, {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null, stop_details: null },
      usage: plain.usage,
    });
    assert.deepEqual(assembleBlocks(events), plain.content);
  });

  test('a streamed tool call sends its input as input_json_delta; stop sequences stream too', async () => {
    const body = { model: 'c', max_tokens: 100, tools: [weatherTool], messages: [{ role: 'user', content: 'use tool get_weather' }] };
    const plain = await (await anthropic(mock.base, body)).json();
    const { events } = await readNamedEvents(await anthropic(mock.base, { ...body, stream: true }));
    const blocks = assembleBlocks(events);
    assert.deepEqual(blocks.map(({ id, ...b }) => b), plain.content.map(({ id, ...b }) => b));
    assert.match(blocks[1].id, /^toolu_mock/);
    const toolStart = events.find((e) => e.event === 'content_block_start' && e.data.index === 1).data;
    assert.deepEqual({ ...toolStart.content_block, id: 'x' }, { type: 'tool_use', id: 'x', name: 'get_weather', input: {} });
    assert.ok(events.filter((e) => e.data.delta?.type === 'input_json_delta').length > 1, 'the input comes in pieces');
    assert.equal(events.at(-2).data.delta.stop_reason, 'tool_use');
    const stop = await readNamedEvents(await anthropic(mock.base, { model: 'c', max_tokens: 100, messages: turns, stop_sequences: ['story'], stream: true }));
    assert.deepEqual(stop.events.at(-2).data.delta, { stop_reason: 'stop_sequence', stop_sequence: 'story', stop_details: null });
    assert.equal(assembleBlocks(stop.events)[0].text, 'mock reply: tell me a ');
  });

  test('invalid requests get 400 invalid_request_error naming the field, in Anthropic\'s error shape', async () => {
    const ok = { model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
    const cases = [
      ['{"model":', 'The request body is not valid JSON.'],
      ['[]', 'The request body must be a JSON object.'],
      [{ ...ok, model: undefined }, 'model: Field required'],
      [{ ...ok, max_tokens: undefined }, 'max_tokens: Field required'],
      [{ ...ok, max_tokens: 'ten' }, 'max_tokens: Input should be a valid integer'],
      [{ ...ok, messages: undefined }, 'messages: Field required'],
      [{ ...ok, messages: [] }, 'messages: at least one message is required'],
      [{ ...ok, messages: [{ role: 'tool', content: 'x' }] }, 'messages.0.role: Input should be \'user\', \'assistant\' or \'system\''],
      [{ ...ok, messages: [{ role: 'user', content: '' }] }, 'messages.0: all messages must have non-empty content except for the optional final assistant message'],
      [{ ...ok, messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }] }, 'messages: text content blocks must be non-empty'],
      [{ ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, /^messages\.0\.content\.0: Input tag 'image_url' found using 'type' does not match any of the expected tags: 'text', 'image'/],
      [{ ...ok, messages: [{ role: 'user', content: [{ type: 'text' }] }] }, 'messages.0.content.0.text: Field required'],
      [{ ...ok, messages: [{ role: 'user', content: 'hi', name: 'bob' }] }, 'messages.0.name: Extra inputs are not permitted'],
      [{ ...ok, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'clock', input: {} }] }] },
        'messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1. Each `tool_use` block must have a corresponding `tool_result` block in the next message.'],
      [{ ...ok, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't9', content: 'x' }] }] },
        'messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t9. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.'],
      [{ ...ok, system: [{ type: 'image', source: {} }] }, 'system.0.type: Input should be \'text\''],
      [{ ...ok, temperature: 1.5 }, 'temperature: Input should be less than or equal to 1'],
      [{ ...ok, stream: 'yes' }, 'stream: Input should be a valid boolean'],
      [{ ...ok, stop_sequences: [' '] }, 'stop_sequences: each stop sequence must contain non-whitespace'],
      [{ ...ok, n: 2 }, 'n: Extra inputs are not permitted'],
      [{ ...ok, tools: [{ name: 'bad name', input_schema: { type: 'object' } }] }, 'tools.0.name: String should match pattern \'^[a-zA-Z0-9_-]{1,128}$\''],
      [{ ...ok, tools: [{ name: 'f' }] }, 'tools.0.input_schema: Field required'],
      [{ ...ok, tools: [clockTool, clockTool] }, 'tools: Tool names must be unique.'],
      [{ ...ok, tools: [clockTool], tool_choice: { type: 'required' } }, 'tool_choice.type: Input should be \'auto\', \'any\', \'tool\' or \'none\''],
      [{ ...ok, tools: [clockTool], tool_choice: { type: 'tool', name: 'nope' } }, 'tool_choice.name: no tool named \'nope\' in tools'],
    ];
    for (const [body, message] of cases) {
      const res = await anthropic(mock.base, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const requestId = res.headers.get('request-id');
      const error = await res.json();
      assert.equal(error.type, 'error');
      assert.equal(error.error.type, 'invalid_request_error');
      assert.equal(error.request_id, requestId, 'the body repeats the request-id header');
      if (message instanceof RegExp) assert.match(error.error.message, message);
      else assert.equal(error.error.message, message, JSON.stringify(body));
    }
    // A final assistant message may be empty (a prefill), and newer API versions are accepted.
    assert.equal((await anthropic(mock.base, { ...ok, messages: [...ok.messages, { role: 'assistant', content: '' }] }, { 'anthropic-version': '2026-10-21' })).status, 200);
  });

  test('the version header is required; unknown paths are 404 not_found_error, other methods 405', async () => {
    const ok = { model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
    const missing = await post(mock.base, '/v1/messages', ok, { 'x-api-key': 'k' });
    assert.equal(missing.status, 400);
    assert.deepEqual((await missing.json()).error, { type: 'invalid_request_error', message: 'anthropic-version: header is required' });
    const bad = await anthropic(mock.base, ok, { 'anthropic-version': 'latest' });
    assert.equal(bad.status, 400);
    const notFound = await anthropic(mock.base, ok, {}, '/v1/messages/batches');
    assert.equal(notFound.status, 404);
    const body = await notFound.json();
    assert.deepEqual([body.type, body.error.type], ['error', 'not_found_error']);
    const get = await fetch(`${mock.base}/v1/messages`, { headers: ANTHROPIC_HEADERS });
    assert.equal(get.status, 405);
    assert.equal((await get.json()).error.type, 'invalid_request_error');
    // Over the body limit: 413 request_too_large.
    const request = `POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n\r\n`;
    const text = await rawExchange(mock.port, request, (t) => t.includes('\r\n\r\n{') && t.endsWith('}'));
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.match(text, /"type":"request_too_large"/);
  });

  test('faults answer in Anthropic\'s shape: 429 rate_limit_error, 529 overloaded_error, 500 api_error', async () => {
    await resetMock(mock.base);
    const ok = { model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
    await queueFaults(mock.base, [{ status: 429, retry_after: 7 }, { status: 529 }, { status: 500 }, { status: 529, body: { custom: true } }]);
    const limited = await anthropic(mock.base, ok);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '7');
    assert.equal(limited.headers.get('anthropic-ratelimit-requests-remaining'), '0');
    const body = await limited.json();
    assert.deepEqual([body.type, body.error.type, body.request_id], ['error', 'rate_limit_error', limited.headers.get('request-id')]);
    const overloaded = await anthropic(mock.base, ok);
    assert.equal(overloaded.status, 529);
    assert.equal(overloaded.statusText, 'Overloaded');
    assert.deepEqual((await overloaded.json()).error, { type: 'overloaded_error', message: 'Overloaded' });
    const broken = await anthropic(mock.base, ok);
    assert.equal(broken.status, 500);
    assert.equal((await broken.json()).error.type, 'api_error');
    assert.deepEqual(await (await anthropic(mock.base, ok)).json(), { custom: true });
    assert.equal((await anthropic(mock.base, ok)).status, 200);
  });

  test('drop_after_chunks cuts a streamed message after N events; malformed and delay_ms apply too', async () => {
    await resetMock(mock.base);
    const ok = { model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'tell me a story' }] };
    await queueFaults(mock.base, [{ drop_after_chunks: 4 }, { malformed: true }, { delay_ms: 200 }]);
    const cut = await anthropic(mock.base, { ...ok, stream: true });
    assert.equal(cut.status, 200);
    const { events, error, rest } = await readNamedEvents(cut);
    assert.ok(error, 'the body ends without its last chunk');
    assert.deepEqual([events.map((e) => e.event), rest], [['message_start', 'content_block_start', 'ping', 'content_block_delta'], '']);
    const malformed = await anthropic(mock.base, ok);
    assert.equal(malformed.status, 200);
    const text = await malformed.text();
    assert.ok(text.startsWith('{"id":"msg_mock"'));
    assert.throws(() => JSON.parse(text), SyntaxError);
    const started = performance.now();
    const slow = await anthropic(mock.base, ok);
    assert.equal(slow.status, 200);
    await slow.arrayBuffer();
    assert.ok(performance.now() - started >= 200);
  });

  test('requests are recorded with x-api-key and anthropic-version as sent', async () => {
    await resetMock(mock.base);
    const body = JSON.stringify({ model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    await (await anthropic(mock.base, body, { 'x-api-key': 'sk-ant-one' })).arrayBuffer();
    await (await countTokens(mock.base, '{"model":"c","messages":[{"role":"user","content":"hi"}]}', { 'anthropic-version': '2026-10-21' })).arrayBuffer();
    await (await chat(mock.base, { model: 'm', messages }, { authorization: 'Bearer sk-openai' })).arrayBuffer();
    const log = await recorded(mock.base);
    assert.deepEqual(log.map(({ path, authorization, x_api_key, anthropic_version }) => ({ path, authorization, x_api_key, anthropic_version })), [
      { path: '/v1/messages', authorization: null, x_api_key: 'sk-ant-one', anthropic_version: '2023-06-01' },
      { path: '/v1/messages/count_tokens', authorization: null, x_api_key: 'sk-ant-test', anthropic_version: '2026-10-21' },
      { path: '/v1/chat/completions', authorization: 'Bearer sk-openai', x_api_key: null, anthropic_version: null },
    ]);
    assert.equal(log[0].body, body);
  });

  test('with --require-key, x-api-key (or Authorization: Bearer, as the SDK sends it) must be a listed key', async () => {
    const keyed = await startMock(['--require-key', 'sk-ant-alpha,sk-ant-beta']);
    try {
      const ok = { model: 'c', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
      const cases = [
        [{ 'x-api-key': undefined }, 'x-api-key header is required'],
        [{ 'x-api-key': 'sk-ant-wrong' }, 'invalid x-api-key'],
        [{ 'x-api-key': undefined, authorization: 'Bearer sk-ant-wrong' }, 'invalid x-api-key'],
        [{ 'x-api-key': undefined, authorization: 'sk-ant-alpha' }, 'invalid x-api-key'],
        [{ 'x-api-key': 'sk-ant-wrong', authorization: 'Bearer sk-ant-alpha' }, 'invalid x-api-key'],
      ];
      for (const [headers, message] of cases) {
        const clean = Object.fromEntries(Object.entries({ ...ANTHROPIC_HEADERS, ...headers }).filter(([, v]) => v !== undefined));
        const res = await post(keyed.base, '/v1/messages', ok, clean);
        assert.equal(res.status, 401, JSON.stringify(headers));
        const body = await res.json();
        assert.deepEqual(body.error, { type: 'authentication_error', message });
        assert.ok(!JSON.stringify(body).includes('wrong'), 'the offered key is not echoed');
      }
      for (const key of ['sk-ant-alpha', 'sk-ant-beta']) {
        assert.equal((await anthropic(keyed.base, ok, { 'x-api-key': key })).status, 200);
        assert.equal((await countTokens(keyed.base, { model: 'c', messages: ok.messages }, { 'x-api-key': key })).status, 200);
      }
      const bearer = await post(keyed.base, '/v1/messages', ok, { 'anthropic-version': '2026-10-21', authorization: 'Bearer sk-ant-beta' });
      assert.equal(bearer.status, 200);
    } finally {
      assert.equal((await keyed.stop()).code, 0);
    }
  });

  test('--chunks and --chunk-delay-ms pace a streamed message as they pace chat completions', async () => {
    const paced = await startMock(['--chunks', '2', '--chunk-delay-ms', '40']);
    try {
      const started = performance.now();
      const { events, error } = await readNamedEvents(await anthropic(paced.base, { model: 'c', max_tokens: 100, messages: turns, stream: true }));
      const took = performance.now() - started;
      assert.equal(error, null);
      assert.deepEqual(events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text), ['mock reply: tell', ' me a story']);
      // message_start, block start, ping, 2 deltas, block stop, message_delta, message_stop: 7 gaps.
      assert.equal(events.length, 8);
      assert.ok(took >= 7 * 40, `stream took ${took} ms`);
    } finally {
      assert.equal((await paced.stop()).code, 0);
    }
  });

  test('the official @anthropic-ai/sdk reads messages, streams, tool calls, token counts and errors', async (t) => {
    let Anthropic;
    try {
      ({ default: Anthropic } = await import('@anthropic-ai/sdk'));
    } catch {
      t.skip('the @anthropic-ai/sdk package is not installed');
      return;
    }
    await resetMock(mock.base);
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: mock.base, maxRetries: 0 });
    const message = await client.messages.create({ model: 'claude-test', max_tokens: 100, system: anthropicSystem, messages: turns });
    assert.equal(message.content[0].text, 'mock reply: tell me a story');
    const stream = client.messages.stream({ model: 'claude-test', max_tokens: 100, system: anthropicSystem, messages: turns });
    let text = '';
    stream.on('text', (piece) => { text += piece; });
    const final = await stream.finalMessage();
    assert.equal(text, message.content[0].text);
    assert.deepEqual(final.usage, message.usage);
    const tools = [weatherTool];
    const call = await client.messages.stream({ model: 'c', max_tokens: 100, tools, messages: [{ role: 'user', content: 'use tool get_weather' }] }).finalMessage();
    const use = call.content.find((b) => b.type === 'tool_use');
    assert.equal(use.input.city, 'mock reply: use tool get_weather');
    const answer = await client.messages.create({
      model: 'c', max_tokens: 100, tools,
      messages: [
        { role: 'user', content: 'use tool get_weather' },
        { role: 'assistant', content: call.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
      ],
    });
    assert.equal(answer.content[0].text, 'mock reply: sunny');
    assert.deepEqual(await client.messages.countTokens({ model: 'c', system: anthropicSystem, messages: turns }), { input_tokens: turnWords });
    await queueFaults(mock.base, [{ status: 529 }]);
    await assert.rejects(client.messages.create({ model: 'c', max_tokens: 5, messages: turns }), (e) => {
      assert.equal(e.status, 529);
      assert.match(e.requestID, /^req_mock/);
      return true;
    });
    // The SDK sends its key in one of the two headers, and its API version.
    const sent = await recorded(mock.base);
    assert.ok(sent.every((r) => r.x_api_key === 'sk-ant-test' || r.authorization === 'Bearer sk-ant-test'));
    assert.ok(sent.every((r) => /^\d{4}-\d\d-\d\d$/.test(r.anthropic_version)));
  });
});

describe('parley-mock process', () => {
  test('refuses a non-loopback listen address', async () => {
    const child = spawn(BIN, ['--listen', '0.0.0.0:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const [code] = await once(child, 'exit');
    assert.notEqual(code, 0);
    assert.equal(stdout, '');
    assert.match(stderr, /loopback/);
  });

  test('SIGTERM exits cleanly even while a request hangs', async () => {
    const mock = await startMock();
    await queueFaults(mock.base, [{ hang: true }]);
    const hung = chat(mock.base, { model: 'm', messages }).then(() => 'answered', (e) => e);
    await new Promise((r) => setTimeout(r, 100));
    const { code } = await mock.stop();
    assert.equal(code, 0);
    assert.ok((await hung) instanceof Error, 'the hung request fails when the server stops');
  });
});
