// The OpenAI-compatible gateway at /v1 through the official openai npm SDK: the real parley binary
// relays chat completions (streamed and not), models and embeddings to parley-mock, which checks
// that parley calls it with the deployment's system key. Answers are compared with what the SDK
// gets from the mock directly for the same request.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import { startParley, tempDir, collectedLogs, json } from '../integration/harness.mjs';
import { startMock, writeProviderConfig, adminToken, createServiceKey, mockReply, words } from './setup.mjs';

// Random so that the log scan at the end looks for fragments nothing else could produce.
const SYSTEM_KEY = `sk-mock${randomBytes(20).toString('hex')}`;
const EMBEDDING_DIM = 16;
// The second mock paces its stream so that buffering in parley would show.
const SLOW_CHUNK_DELAY_MS = 60;
const SLOW_CHUNKS = 4;

function sdk(apiKey, baseURL) {
  return new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout: 20000, organization: null, project: null });
}

// Every chunk of an SDK stream with its arrival time (performance.now()).
async function collect(stream) {
  const chunks = [];
  const at = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    at.push(performance.now());
  }
  return { chunks, at };
}

// A chunk without what differs between two calls (id, created) and without "usage": null, which
// the mock adds to every chunk when usage is asked for (parley asks for it on every stream).
function comparable(chunk) {
  const { id, created, ...rest } = chunk;
  if (rest.usage === null) delete rest.usage;
  return rest;
}

function withoutIdentity(completion) {
  const { id, created, ...rest } = completion;
  return rest;
}

const contentOf = (chunks, index = 0) =>
  chunks.map((c) => c.choices.find((ch) => ch.index === index)?.delta?.content ?? '').join('');

describe('openai SDK against the /v1 gateway', { timeout: 60000 }, () => {
  let mock;
  let slow;
  let p;
  let dir;
  let accessToken;
  let serviceKey;
  let client;
  let direct;

  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY, '--embedding-dim', String(EMBEDDING_DIM)]);
    slow = await startMock(['--require-key', SYSTEM_KEY, '--chunk-delay-ms', String(SLOW_CHUNK_DELAY_MS),
      '--chunks', String(SLOW_CHUNKS)]);
    dir = tempDir('parley-e2e-');
    const config = writeProviderConfig(dir, [
      { name: 'mock', url: mock.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['gpt-4o-mini', 'text-embedding-3-small', 'mock-*'] },
      { name: 'slow', url: slow.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['slow-1'] },
    ]);
    p = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY } });
    accessToken = await adminToken(p.url);
    serviceKey = (await createServiceKey(p.url, accessToken, 'openai-sdk')).key;
    assert.match(serviceKey, /^ai_/);
    client = sdk(serviceKey, `${p.url}/v1`);
    direct = sdk(SYSTEM_KEY, `${mock.url}/v1`);
  });

  after(async () => {
    if (p) await p.cleanup();
    if (mock) await mock.stop();
    if (slow) await slow.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // ---- chat completions ----------------------------------------------------------------------

  test('a non-streamed completion is the mock\'s reply, as a direct call gets it, with usage', async () => {
    await mock.reset();
    const request = {
      model: 'gpt-4o-mini',
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: '  tell me\na story ' }],
    };
    const viaParley = await client.chat.completions.create(request);
    const viaMock = await direct.chat.completions.create(request);

    assert.equal(viaParley.choices.length, 1);
    assert.equal(viaParley.choices[0].message.content, 'mock reply: tell me a story');
    assert.equal(viaParley.choices[0].message.content, mockReply(request.messages[1].content));
    assert.equal(viaParley.choices[0].message.content, viaMock.choices[0].message.content);
    assert.equal(viaParley.choices[0].message.role, 'assistant');
    assert.equal(viaParley.choices[0].finish_reason, 'stop');
    assert.equal(viaParley.object, 'chat.completion');
    assert.equal(viaParley.model, 'gpt-4o-mini');
    assert.match(viaParley.id, /^chatcmpl-mock\d{12}$/, 'the provider\'s id is relayed');
    assert.equal(viaParley.system_fingerprint, 'fp_parley_mock');
    // prompt: "be brief" (2) + "tell me a story" (4); completion: "mock reply: tell me a story" (6).
    assert.deepEqual(viaParley.usage, { prompt_tokens: 6, completion_tokens: 6, total_tokens: 12 });
    // The body is the provider's, verbatim: equal to the direct answer but for id and time.
    assert.deepEqual(withoutIdentity(viaParley), withoutIdentity(viaMock));

    const reqs = await mock.requests();
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].method, 'POST');
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
    assert.equal(reqs[0].body, reqs[1].body, 'a non-streamed body is forwarded byte for byte');

    // The answer's bytes too, but for the id and the time, which differ between two calls.
    const normalize = (text) => text.replace(/"id":"chatcmpl-mock\d+"/, '"id":"ID"').replace(/"created":\d+/, '"created":0');
    const rawParley = await client.chat.completions.create(request).asResponse();
    const rawMock = await direct.chat.completions.create(request).asResponse();
    assert.match(rawParley.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(normalize(await rawParley.text()), normalize(await rawMock.text()));
  });

  test('max_tokens reaches the provider: the reply is cut and finish_reason is length', async () => {
    const r = await client.chat.completions.create({
      model: 'mock-anything', max_tokens: 3, messages: [{ role: 'user', content: 'one two three four' }],
    });
    assert.equal(r.choices[0].message.content, 'mock reply: one');
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.model, 'mock-anything', 'a model matched by a prefix pattern is served');
  });

  test('a stream\'s deltas concatenate to the non-streamed text, in the mock\'s order, without a usage chunk', async () => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'one two three four five' }] };
    const whole = (await client.chat.completions.create(request)).choices[0].message.content;
    assert.equal(whole, mockReply('one two three four five'));

    const { chunks } = await collect(await client.chat.completions.create({ ...request, stream: true }));
    const { chunks: directChunks } = await collect(await direct.chat.completions.create({ ...request, stream: true }));

    assert.equal(contentOf(chunks), whole);
    // role chunk, one chunk per word, finish chunk; the iteration above ended, so the stream ended.
    assert.equal(chunks.length, 2 + words(whole).length);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.deepEqual(chunks.slice(1, -1).map((c) => c.choices[0].delta.content),
      ['mock', ...words(whole).slice(1).map((w) => ` ${w}`)]);
    const ids = new Set(chunks.map((c) => c.id));
    assert.equal(ids.size, 1, 'every chunk of one stream has the provider\'s one id');
    assert.match([...ids][0], /^chatcmpl-mock\d{12}$/);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.ok(c.choices.length > 0, 'no usage-only chunk when the client did not ask for usage');
      assert.equal(c.usage ?? null, null, 'no usage when the client did not ask for it');
    }
    assert.deepEqual(chunks.map(comparable), directChunks.map(comparable));
  });

  test('a stream of two choices keeps the provider\'s chunk order and indexes', async () => {
    const request = { model: 'gpt-4o-mini', n: 2, stream: true, messages: [{ role: 'user', content: 'alpha beta gamma' }] };
    const { chunks } = await collect(await client.chat.completions.create(request));
    const { chunks: directChunks } = await collect(await direct.chat.completions.create(request));
    const indexes = chunks.map((c) => c.choices.map((ch) => ch.index)).flat();
    // Per step the mock sends choice 0 then choice 1: role, 5 words, finish.
    assert.deepEqual(indexes, Array.from({ length: 2 * 7 }, (_, i) => i % 2));
    assert.equal(contentOf(chunks, 0), mockReply('alpha beta gamma'));
    assert.equal(contentOf(chunks, 1), mockReply('alpha beta gamma'));
    assert.deepEqual(chunks.map(comparable), directChunks.map(comparable));
  });

  test('with stream_options.include_usage the last chunk carries the usage', async () => {
    const request = {
      model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'count these four words' }],
    };
    const { chunks } = await collect(await client.chat.completions.create(request));
    const { chunks: directChunks } = await collect(await direct.chat.completions.create(request));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 });
    assert.equal(chunks.filter((c) => c.usage).length, 1, 'exactly one chunk carries usage');
    assert.equal(contentOf(chunks), mockReply('count these four words'));
    assert.deepEqual(chunks.map(comparable), directChunks.map(comparable));
  });

  test('on the wire a stream is text/event-stream, one data: event per chunk, then one [DONE]', async () => {
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${serviceKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'wire check' }] }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.match(res.headers.get('x-request-id') ?? '', /\S/);
    const text = await res.text();
    assert.ok(text.endsWith('data: [DONE]\n\n'), `stream end: ${JSON.stringify(text.slice(-60))}`);
    const events = text.split('\n\n');
    assert.equal(events.pop(), '');
    for (const e of events) assert.ok(e.startsWith('data: ') && !e.includes('\n'), `not one data line: ${JSON.stringify(e)}`);
    assert.equal(events.filter((e) => e === 'data: [DONE]').length, 1);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)));
    assert.equal(contentOf(chunks), 'mock reply: wire check');
    assert.ok(chunks.every((c) => c.choices.length > 0 && (c.usage ?? null) === null));
  });

  test('chunks are relayed as the provider sends them, not held back', async () => {
    const { chunks, at } = await collect(await client.chat.completions.create({
      model: 'slow-1', stream: true, messages: [{ role: 'user', content: 'a b c d e f' }],
    }));
    // role, SLOW_CHUNKS content chunks, finish; the mock waits SLOW_CHUNK_DELAY_MS between events.
    assert.equal(chunks.length, SLOW_CHUNKS + 2);
    assert.equal(contentOf(chunks), mockReply('a b c d e f'));
    const spread = at.at(-1) - at[0];
    const sent = (chunks.length - 1) * SLOW_CHUNK_DELAY_MS;
    assert.ok(spread >= sent / 2, `chunks spread over ${spread.toFixed(0)} ms, the mock spread them over ${sent} ms`);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    const paced = gaps.filter((g) => g >= SLOW_CHUNK_DELAY_MS / 3).length;
    assert.ok(paced >= gaps.length - 2, `arrival gaps ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`);
  });

  // ---- the request as the provider sees it -----------------------------------------------------

  test('every field of the request reaches the provider unchanged, with the system key', async () => {
    await mock.reset();
    const request = {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'developer', content: 'answer in JSON' },
        { role: 'user', content: [{ type: 'text', text: 'pass' }, { type: 'text', text: 'it on' }] },
      ],
      seed: 42,
      response_format: { type: 'json_object' },
      tools: [{
        type: 'function',
        function: {
          name: 'lookup', description: 'Look a word up',
          parameters: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] },
        },
      }],
      tool_choice: 'auto',
      logprobs: true,
      top_logprobs: 2,
      n: 2,
      user: 'end-user-7',
      metadata: { purpose: 'e2e', tier: 'gold' },
      temperature: 0.25,
      max_completion_tokens: 50,
      parley_unknown_field: { list: [1, 'two', null, { three: 3.5 }], flag: false },
    };
    const r = await client.chat.completions.create(request);
    assert.equal(r.choices.length, 2);
    // parley-mock answers a json_object request with {"reply": …} (tools/parley-mock/README.md).
    assert.deepEqual(JSON.parse(r.choices[1].message.content), { reply: 'mock reply: pass it on' });
    await direct.chat.completions.create(request);

    const reqs = await mock.requests();
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].body, reqs[1].body, 'forwarded byte for byte, as the SDK sent it');
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`, 'the provider sees the system key, not the service key');
    const received = JSON.parse(reqs[0].body);
    for (const [field, value] of Object.entries(request)) assert.deepEqual(received[field], value, field);
    assert.ok(!reqs[0].body.includes(serviceKey));
    assert.ok(!(received.stream ?? false), 'a non-streamed request stays non-streamed');
  });

  test('a streamed request reaches the provider unchanged but for asking for usage', async () => {
    await mock.reset();
    const request = {
      model: 'gpt-4o-mini', stream: true, seed: 7, user: 'end-user-8', metadata: { k: 'v' },
      parley_unknown_field: [true, { deep: ['x'] }],
      messages: [{ role: 'user', content: 'stream it' }],
    };
    const { chunks } = await collect(await client.chat.completions.create(request));
    assert.equal(contentOf(chunks), 'mock reply: stream it');
    const reqs = await mock.requests();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
    const received = JSON.parse(reqs[0].body);
    for (const [field, value] of Object.entries(request)) assert.deepEqual(received[field], value, field);
    assert.equal(received.stream_options?.include_usage, true, 'parley asks the provider for the usage chunk');
  });

  // ---- models and embeddings ---------------------------------------------------------------------

  test('models.list lists the configured exact names and demo', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    for (const id of ['gpt-4o-mini', 'text-embedding-3-small', 'slow-1', 'demo']) {
      assert.ok(ids.includes(id), `${id} missing from ${ids.join(', ')}`);
    }
    assert.ok(!ids.some((id) => id.includes('*')), `a prefix pattern is listed: ${ids.join(', ')}`);
    assert.equal(new Set(ids).size, ids.length, 'no model is listed twice');
    for (const m of page.data) {
      assert.equal(m.object, 'model');
      assert.ok(Number.isInteger(m.created), `created of ${m.id}`);
      assert.equal(typeof m.owned_by, 'string');
    }
    const res = await fetch(`${p.url}/v1/models`, { headers: { Authorization: `Bearer ${serviceKey}` } });
    assert.equal(res.status, 200);
    assert.equal((await json(res)).object, 'list');
  });

  test('models.retrieve answers a listed name and a prefix-matched one, and 404 otherwise', async () => {
    const exact = await client.models.retrieve('gpt-4o-mini');
    assert.equal(exact.id, 'gpt-4o-mini');
    assert.equal(exact.object, 'model');
    const matched = await client.models.retrieve('mock-special');
    assert.equal(matched.id, 'mock-special');
    await assert.rejects(() => client.models.retrieve('no-such-model'), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name} ${err?.status}`);
      return true;
    });
  });

  test('embeddings are the mock\'s vectors, as a direct call gets them', async () => {
    await mock.reset();
    const request = { model: 'text-embedding-3-small', input: ['hello world', 'a second input'] };
    // The SDK asks for base64 and decodes it when no encoding_format is given.
    const viaParley = await client.embeddings.create(request);
    const viaMock = await direct.embeddings.create(request);
    assert.equal(viaParley.object, 'list');
    assert.equal(viaParley.data.length, 2);
    for (const [i, d] of viaParley.data.entries()) {
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, EMBEDDING_DIM);
      const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-5, `vector ${i} has norm ${norm}`);
    }
    assert.notDeepEqual(viaParley.data[0].embedding, viaParley.data[1].embedding);
    assert.deepEqual(viaParley.data, viaMock.data);
    assert.deepEqual(viaParley.usage, { prompt_tokens: 5, total_tokens: 5 });

    const floats = await client.embeddings.create({ ...request, encoding_format: 'float', dimensions: 5 });
    assert.deepEqual(floats.data.map((d) => d.embedding.length), [5, 5]);

    const reqs = await mock.requests();
    assert.equal(reqs.length, 3);
    assert.equal(reqs[0].path, '/v1/embeddings');
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
    // The SDK's own request (base64) as parley forwarded it and as the direct call sent it.
    const forwarded = JSON.parse(reqs[0].body);
    for (const [field, value] of Object.entries(JSON.parse(reqs[1].body))) assert.deepEqual(forwarded[field], value, field);
    assert.equal(forwarded.encoding_format, 'base64');
    const explicit = JSON.parse(reqs[2].body);
    for (const [field, value] of Object.entries({ ...request, encoding_format: 'float', dimensions: 5 })) {
      assert.deepEqual(explicit[field], value, field);
    }
  });

  // ---- errors ------------------------------------------------------------------------------------

  test('a provider 429 on every attempt is RateLimitError (OPENAI_RATE_LIMIT) after 4 attempts', async () => {
    for (const stream of [false, true]) {
      await mock.reset();
      await mock.faults(Array.from({ length: 4 }, () => ({ status: 429, retry_after: 0 })));
      await assert.rejects(
        () => client.chat.completions.create({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'busy?' }] }),
        (err) => {
          assert.ok(err instanceof OpenAI.RateLimitError, `stream=${stream}: got ${err?.constructor?.name} ${err?.status}: ${err?.message}`);
          assert.equal(err.status, 429);
          assert.equal(err.code, 'OPENAI_RATE_LIMIT');
          assert.equal(typeof err.error?.message, 'string');
          assert.equal(typeof err.error?.type, 'string');
          assert.match(err.request_id ?? '', /\S/, 'errors carry x-request-id too');
          return true;
        },
      );
      assert.equal((await mock.requests()).length, 4, `stream=${stream}: one try and three retries`);
    }
    await mock.reset();
  });

  test('a provider\'s own 400 is relayed (BadRequestError with its body); its 401 is not', async () => {
    await mock.reset();
    const complaint = { message: 'The provider does not like this.', type: 'invalid_request_error', param: 'messages', code: 'provider_complaint' };
    await mock.faults([{ status: 400, body: { error: complaint } }, { status: 401 }]);
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'judge me' }] };
    await assert.rejects(() => client.chat.completions.create(request), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name} ${err?.status}`);
      assert.deepEqual(err.error, complaint);
      return true;
    });
    // The provider refusing parley's key is parley's problem, not the caller's key: no 401 to the
    // client, and the provider's message (which may quote a key) is not relayed.
    await assert.rejects(() => client.chat.completions.create(request), (err) => {
      assert.ok(!(err instanceof OpenAI.AuthenticationError), 'the caller\'s key was fine');
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name} ${err?.status}`);
      assert.equal(err.code, 'INVALID_API_KEY');
      assert.doesNotMatch(JSON.stringify(err.error), /Incorrect API key provided/);
      return true;
    });
    assert.equal((await mock.requests()).length, 2, 'neither is retried');
  });

  test('a stream the provider breaks after its first chunks ends in an error the SDK raises', async () => {
    await mock.reset();
    await mock.faults([{ drop_after_chunks: 3 }]);
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'one two three four five six' }],
    });
    const received = [];
    await assert.rejects(async () => { for await (const chunk of stream) received.push(chunk); }, (err) => {
      assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(typeof err.error?.message, 'string', 'the error event carries the envelope');
      return true;
    });
    assert.ok(received.length >= 1 && received.length <= 3, `${received.length} chunks before the error`);
    assert.equal(received[0].choices[0].delta.role, 'assistant');
    assert.equal((await mock.requests()).length, 1, 'no retry once chunks were relayed');
  });

  test('a bad or missing key is refused (AuthenticationError) before any provider call', async () => {
    await mock.reset();
    const last = serviceKey.at(-1) === 'x' ? 'y' : 'x';
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'let me in' }] };
    for (const bad of [`ai_${'A'.repeat(40)}`, `${serviceKey.slice(0, -1)}${last}`, 'not-a-key', SYSTEM_KEY]) {
      const c = sdk(bad, `${p.url}/v1`);
      await assert.rejects(() => c.chat.completions.create(request), (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name} ${err?.status}`);
        assert.equal(err.status, 401);
        assert.equal(err.code, 'UNAUTHORIZED');
        assert.equal(typeof err.error?.message, 'string');
        return true;
      });
      await assert.rejects(() => c.models.list(), OpenAI.AuthenticationError);
    }
    const anonymous = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(request),
    });
    assert.equal(anonymous.status, 401);
    const body = await json(anonymous);
    assert.equal(typeof body.error?.message, 'string');
    assert.equal(typeof body.error?.type, 'string');
    assert.equal(body.error?.code, 'UNAUTHORIZED');
    assert.equal((await mock.requests()).length, 0);
  });

  test('a JWT access token is accepted as the API key', async () => {
    const r = await sdk(accessToken, `${p.url}/v1`).chat.completions.create({
      model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'signed in' }],
    });
    assert.equal(r.choices[0].message.content, 'mock reply: signed in');
  });

  test('an unknown model is NotFoundError (MODEL_NOT_FOUND) and reaches no provider', async () => {
    await mock.reset();
    const check = (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError || err instanceof OpenAI.BadRequestError,
        `got ${err?.constructor?.name} ${err?.status}: ${err?.message}`);
      if (err.status === 404) assert.equal(err.code, 'MODEL_NOT_FOUND');
      return true;
    };
    const messages = [{ role: 'user', content: 'anyone?' }];
    await assert.rejects(() => client.chat.completions.create({ model: 'no-such-model', messages }), check);
    await assert.rejects(() => client.chat.completions.create({ model: 'no-such-model', messages, stream: true }), check);
    await assert.rejects(() => client.embeddings.create({ model: 'no-such-embedding', input: 'x' }), check);
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${serviceKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-model', messages }),
    });
    const body = await json(res);
    assert.ok(res.status === 404 || res.status === 400, `status ${res.status}`);
    assert.equal(typeof body.error?.message, 'string');
    assert.equal(typeof body.error?.type, 'string');
    assert.equal(typeof body.error?.code, 'string');
    assert.equal((await mock.requests()).length, 0);
  });

  // ---- headers -----------------------------------------------------------------------------------

  test('x-request-id is on every answer, and a caller\'s own id is kept', async () => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'ids please' }] };
    const { data, response } = await client.chat.completions.create(request).withResponse();
    assert.equal(data.choices[0].message.content, 'mock reply: ids please');
    const first = response.headers.get('x-request-id');
    assert.match(first ?? '', /\S/);

    const { data: stream, response: streamed } = await client.chat.completions.create({ ...request, stream: true }).withResponse();
    const second = streamed.headers.get('x-request-id');
    assert.match(second ?? '', /\S/);
    assert.notEqual(second, first);
    await collect(stream);

    for (const call of [client.models.list(), client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' })]) {
      const raw = await call.asResponse();
      assert.equal(raw.status, 200);
      assert.match(raw.headers.get('x-request-id') ?? '', /\S/);
      await raw.text();
    }

    const own = await client.chat.completions.create(request, { headers: { 'X-Request-ID': 'e2e-sdk-request-1' } }).withResponse();
    assert.equal(own.response.headers.get('x-request-id'), 'e2e-sdk-request-1');
  });

  test('the provider\'s x-ratelimit-* headers pass through', async (t) => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'limits' }] };
    const fromMock = (await direct.chat.completions.create(request).withResponse()).response.headers;
    const names = [];
    fromMock.forEach((_, name) => { if (name.toLowerCase().startsWith('x-ratelimit-')) names.push(name.toLowerCase()); });
    if (names.length === 0) {
      t.skip('parley-mock sends no x-ratelimit-* headers');
      return;
    }
    const viaParley = (await client.chat.completions.create(request).withResponse()).response.headers;
    for (const name of names) assert.equal(viaParley.get(name), fromMock.get(name), name);
  });

  // ---- shutdown and logs -------------------------------------------------------------------------

  test('parley exits cleanly, and its logs hold neither key nor any 8-character piece of one', async () => {
    const { code, signal } = await p.stop();
    // A sanitizer report is most useful from its first line; otherwise show the end of the log.
    const report = p.stderr.includes('ERROR: ') ? p.stderr.slice(p.stderr.indexOf('ERROR: '), p.stderr.indexOf('ERROR: ') + 6000)
      : p.stderr.slice(-4000);
    assert.equal(signal, null, `parley ended by ${signal}:\n${report}`);
    assert.equal(code, 0, `parley exited ${code}:\n${report}`);
    const logs = collectedLogs.map((i) => `${i.stdout}\n${i.stderr}`).join('\n');
    assert.match(logs, /request_id=/, 'no log lines were captured');
    for (const [label, key] of [['service key', serviceKey], ['system key', SYSTEM_KEY]]) {
      for (let i = 0; i + 8 <= key.length; i++) {
        // The message names the offset only, so a failure does not print key material.
        assert.ok(!logs.includes(key.slice(i, i + 8)), `the log holds the ${label}'s characters ${i}..${i + 7}`);
      }
    }
  });
});
