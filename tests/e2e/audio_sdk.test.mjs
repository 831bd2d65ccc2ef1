// The OpenAI-compatible audio routes through the official openai npm SDK: client.audio.speech.create
// answers audio bytes (a WAV file) and client.audio.transcriptions.create reads them back, from
// parley's own demo model (no provider key) and relayed to parley-mock (which checks that parley
// calls it with the deployment's system key). The spoken text survives the round trip in each
// response_format the SDK parses (json, text, verbose_json); an unknown model is the SDK's
// NotFoundError, an upload over audio.max_upload_bytes an APIError with status 413, and a key over
// its rate_limit_per_minute a RateLimitError.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import OpenAI, { toFile } from 'openai';
import { startParley, tempDir, collectedLogs, json, wavComment } from '../integration/harness.mjs';
import { startMock, writeProviderConfig, adminToken, createServiceKey } from './setup.mjs';

// Random so that the log scan at the end looks for fragments nothing else could produce.
const SYSTEM_KEY = `sk-mock${randomBytes(20).toString('hex')}`;
const SMALL_UPLOAD = 4096; // PARLEY_AUDIO_MAX_UPLOAD_BYTES of the second instance

function sdk(apiKey, baseURL) {
  return new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout: 20000, organization: null, project: null });
}

// Resolves with the error the promise rejects with (and fails if it resolves).
async function rejection(promise) {
  try {
    const value = await promise;
    assert.fail(`expected an error, got ${typeof value === 'string' ? value : JSON.stringify(value)?.slice(0, 200)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
}

describe('openai SDK: /v1/audio/speech and /v1/audio/transcriptions', { timeout: 90000 }, () => {
  let mock; let p; let small; let dir;
  let token; let serviceKey; let client;

  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    dir = tempDir('parley-e2e-audio-');
    const config = writeProviderConfig(dir, [
      { name: 'mock', url: mock.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['gpt-4o-mini', 'tts-1', 'whisper-1', 'mock-*'] },
    ]);
    p = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY } });
    small = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY, PARLEY_AUDIO_MAX_UPLOAD_BYTES: String(SMALL_UPLOAD) } });
    token = await adminToken(p.url);
    serviceKey = (await createServiceKey(p.url, token, 'audio-sdk')).key;
    assert.match(serviceKey, /^ai_/);
    client = sdk(serviceKey, `${p.url}/v1`);
  });

  after(async () => {
    if (p) await p.cleanup();
    if (small) await small.cleanup();
    if (mock) await mock.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const speak = async (c, request) => {
    const { data, response } = await c.audio.speech.create(request).withResponse();
    return { bytes: Buffer.from(await data.arrayBuffer()), response };
  };

  // ---- text to speech ----------------------------------------------------------------------------

  test('speech from the demo model: WAV bytes, made offline without any provider key', async () => {
    await mock.reset();
    const input = 'Hello from the parley demo voice.';
    const { bytes, response } = await speak(client, { model: 'demo', input, voice: 'alloy', response_format: 'wav' });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^audio\/(wav|x-wav|wave)\b/);
    assert.match(response.headers.get('x-request-id') ?? '', /\S/);
    assert.equal(wavComment(bytes), input, 'the demo WAV carries its text');
    assert.deepEqual(await mock.requests(), [], 'the demo model calls no provider');
  });

  test('speech from a parley-mock model: the provider\'s WAV bytes, asked for with the system key and the request as sent', async () => {
    await mock.reset();
    const request = { model: 'tts-1', input: 'The capital of France is Paris.', voice: 'nova', response_format: 'wav' };
    const { bytes, response } = await speak(client, request);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'audio/wav');
    assert.equal(wavComment(bytes), request.input);
    // The bytes are the provider's, untouched.
    const direct = await sdk(SYSTEM_KEY, `${mock.url}/v1`).audio.speech.create(request);
    assert.ok(bytes.equals(Buffer.from(await direct.arrayBuffer())), 'relayed byte for byte');
    const reqs = await mock.requests();
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].method, 'POST');
    assert.equal(reqs[0].path, '/v1/audio/speech');
    assert.equal(reqs[0].authorization, `Bearer ${SYSTEM_KEY}`);
    assert.deepEqual(JSON.parse(reqs[0].body), request);
    // The default format (mp3) is the provider's business: its content type comes back.
    const mp3 = await client.audio.speech.create({ model: 'tts-1', input: 'beep', voice: 'alloy' }).asResponse();
    assert.equal(mp3.headers.get('content-type'), 'audio/mpeg');
    assert.ok((await mp3.arrayBuffer()).byteLength > 0);
  });

  // ---- speech to text ----------------------------------------------------------------------------

  for (const [label, speechModel, transcriptionModel] of [['the demo model', 'demo', 'demo'], ['parley-mock', 'tts-1', 'whisper-1']]) {
    test(`round trip through ${label}: the transcription of the speech is its input, as json, text and verbose_json`, async () => {
      const input = `Meet me at the station at ${speechModel === 'demo' ? 'nine' : 'ten'} tomorrow`;
      const { bytes } = await speak(client, { model: speechModel, input, voice: 'echo', response_format: 'wav' });
      await mock.reset();

      const plain = await client.audio.transcriptions.create({ file: await toFile(bytes, 'speech.wav'), model: transcriptionModel });
      assert.equal(plain.text, input);

      const text = await client.audio.transcriptions.create({ file: await toFile(bytes, 'speech.wav'), model: transcriptionModel, response_format: 'text' });
      assert.equal(typeof text, 'string', `the SDK returns text as a string, got ${JSON.stringify(text)?.slice(0, 200)}`);
      assert.equal(text.trim(), input);

      const verbose = await client.audio.transcriptions.create({ file: await toFile(bytes, 'speech.wav'), model: transcriptionModel, response_format: 'verbose_json' });
      assert.equal(verbose.text, input);
      assert.equal(typeof verbose.language, 'string');
      assert.equal(typeof verbose.duration, 'number');
      assert.ok(verbose.duration > 0 && verbose.duration <= 2, `duration ${verbose.duration}`);
      assert.ok(Array.isArray(verbose.segments));

      const reqs = await mock.requests();
      if (transcriptionModel === 'demo') {
        assert.deepEqual(reqs, [], 'the demo model calls no provider');
      } else {
        assert.equal(reqs.length, 3);
        for (const [i, format] of [null, 'text', 'verbose_json'].entries()) {
          assert.equal(reqs[i].path, '/v1/audio/transcriptions');
          assert.equal(reqs[i].authorization, `Bearer ${SYSTEM_KEY}`);
          // parley-mock records a summary of the multipart upload it received.
          const got = JSON.parse(reqs[i].body);
          assert.equal(got.model, 'whisper-1');
          assert.equal(got.file_bytes, bytes.length, 'the upload reaches the provider whole');
          assert.equal(got.filename, 'speech.wav');
          assert.equal(got.response_format ?? null, format);
        }
      }
    });
  }

  test('a transcription of audio made by the other side: demo speech read by parley-mock, mock speech by the demo model', async () => {
    const a = (await speak(client, { model: 'demo', input: 'one two three', voice: 'alloy', response_format: 'wav' })).bytes;
    const b = (await speak(client, { model: 'tts-1', input: 'four five six', voice: 'alloy', response_format: 'wav' })).bytes;
    assert.equal((await client.audio.transcriptions.create({ file: await toFile(a, 'a.wav'), model: 'whisper-1' })).text, 'one two three');
    assert.equal((await client.audio.transcriptions.create({ file: await toFile(b, 'b.wav'), model: 'demo' })).text, 'four five six');
  });

  // ---- errors ------------------------------------------------------------------------------------

  test('an unknown model is NotFoundError (404) for speech and for transcriptions, and reaches no provider', async () => {
    await mock.reset();
    const check = (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name} ${err?.status}: ${err?.message}`);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'MODEL_NOT_FOUND');
      return true;
    };
    check(await rejection(client.audio.speech.create({ model: 'no-such-voice-model', input: 'hi', voice: 'alloy' })));
    const wav = (await speak(client, { model: 'demo', input: 'hi', voice: 'alloy', response_format: 'wav' })).bytes;
    check(await rejection(client.audio.transcriptions.create({ file: await toFile(wav, 'speech.wav'), model: 'no-such-whisper' })));
    assert.deepEqual(await mock.requests(), []);
  });

  test(`an upload over audio.max_upload_bytes (${SMALL_UPLOAD}) is an APIError with status 413; one under it is transcribed`, async () => {
    const smallToken = await adminToken(small.url);
    const c = sdk((await createServiceKey(small.url, smallToken, 'audio-small')).key, `${small.url}/v1`);
    await mock.reset();
    const big = Buffer.alloc(8192, 7);
    const err = await rejection(c.audio.transcriptions.create({ file: await toFile(big, 'big.wav'), model: 'whisper-1' }));
    assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 413, `${err?.constructor?.name}: ${err?.message}`);
    assert.deepEqual(await mock.requests(), [], 'the upload never reaches the provider');
    // Under the limit: accepted (the limit is the upload's, not every request's).
    const wav = (await speak(c, { model: 'tts-1', input: 'short', voice: 'alloy', response_format: 'wav' })).bytes;
    assert.ok(wav.length < SMALL_UPLOAD - 600, `${wav.length} bytes: too big to test with`);
    assert.equal((await c.audio.transcriptions.create({ file: await toFile(wav, 'speech.wav'), model: 'whisper-1' })).text, 'short');
  });

  test('the default audio.max_upload_bytes (25 MiB) holds, not http.max_body_bytes (1 MiB): 1.5 MiB is transcribed, 25 MiB + 1 byte is 413', async () => {
    await mock.reset();
    const mid = Buffer.alloc(1.5 * 1024 * 1024, 1);
    const ok = await client.audio.transcriptions.create({ file: await toFile(mid, 'long.wav'), model: 'whisper-1' });
    assert.equal(ok.text, `mock transcription of ${mid.length} bytes`);
    assert.equal(JSON.parse((await mock.requests())[0].body).file_bytes, mid.length);
    await mock.reset();
    const huge = Buffer.alloc(25 * 1024 * 1024 + 1, 2);
    const err = await rejection(client.audio.transcriptions.create({ file: await toFile(huge, 'huge.wav'), model: 'whisper-1' }));
    assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 413, `${err?.constructor?.name}: ${err?.message}`);
    assert.deepEqual(await mock.requests(), []);
  });

  test('a key over its rate_limit_per_minute gets RateLimitError (429) on speech and on transcriptions', async () => {
    const res = await fetch(`${p.url}/api/v1/api-keys`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'audio-limited', rate_limit_per_minute: 2 }),
    });
    const created = await json(res);
    assert.equal(res.status, 201, JSON.stringify(created));
    const c = sdk(created.key, `${p.url}/v1`);
    const first = await speak(c, { model: 'tts-1', input: 'first', voice: 'alloy', response_format: 'wav' });
    assert.equal(first.response.headers.get('x-ratelimit-limit-requests'), '2');
    assert.equal(first.response.headers.get('x-ratelimit-remaining-requests'), '1');
    const wav = (await speak(c, { model: 'demo', input: 'second', voice: 'alloy', response_format: 'wav' })).bytes;
    await mock.reset();
    for (const call of [
      c.audio.speech.create({ model: 'tts-1', input: 'third', voice: 'alloy' }),
      c.audio.transcriptions.create({ file: await toFile(wav, 'speech.wav'), model: 'whisper-1' }),
    ]) {
      const err = await rejection(call);
      assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${err?.constructor?.name} ${err?.status}: ${err?.message}`);
      assert.equal(err.status, 429);
      assert.equal(err.code, 'RATE_LIMIT_EXCEEDED');
      assert.match(err.headers['retry-after'] ?? '', /^\d+$/);
      assert.equal(err.headers['x-ratelimit-remaining-requests'], '0');
    }
    assert.deepEqual(await mock.requests(), [], 'refused calls never reach the provider');
    // Another key is not limited by this one.
    assert.equal((await client.audio.transcriptions.create({ file: await toFile(wav, 'speech.wav'), model: 'whisper-1' })).text, 'second');
  });

  // ---- shutdown and logs -------------------------------------------------------------------------

  test('parley exits cleanly, and its logs hold neither key nor any 8-character piece of one', async () => {
    for (const inst of [p, small]) {
      const { code, signal } = await inst.stop();
      const report = inst.stderr.includes('ERROR: ') ? inst.stderr.slice(inst.stderr.indexOf('ERROR: '), inst.stderr.indexOf('ERROR: ') + 6000)
        : inst.stderr.slice(-4000);
      assert.equal(signal, null, `parley ended by ${signal}:\n${report}`);
      assert.equal(code, 0, `parley exited ${code}:\n${report}`);
    }
    const logs = collectedLogs.map((i) => `${i.stdout}\n${i.stderr}`).join('\n');
    assert.match(logs, /request_id=/, 'no log lines were captured');
    for (const [label, key] of [['service key', serviceKey], ['system key', SYSTEM_KEY]]) {
      for (let i = 0; i + 8 <= key.length; i++) {
        assert.ok(!logs.includes(key.slice(i, i + 8)), `the log holds the ${label}'s characters ${i}..${i + 7}`);
      }
    }
  });
});
