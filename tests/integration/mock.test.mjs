// parley-mock against real HTTP clients: global fetch, raw sockets and (when installed) the official
// `openai` SDK. Run: PARLEY_MOCK_BIN=build/debug/bin/parley-mock node --test tests/integration/mock.test.mjs
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
