// The voice and SMS assistant (docs/ASSISTANT.md) and the OpenAI-compatible audio relay
// (/v1/audio/speech, /v1/audio/transcriptions) against the built binary: conversation turns (TTS
// metadata from the preferences, spoken answers, stored conversations), SMS decisions (the
// structured answer, its validation and the one retry, auto-reply), calls, the merged history
// (order, filters, keyset pages, since/until, deletion), who may act for whom, limits and usage, the
// slow-turn warning, and audio uploads (multipart, size limits). The built-in demo provider answers
// without any key; parley-mock stands in for an OpenAI-compatible provider where the test needs to
// see or choose what the provider said.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startParley, startStack, rawRequest, statusOf, bodyOf, sleep, BACKEND, wavComment } from './harness.mjs';
import { api, expectStatus, signUp } from '../journeys/lib.mjs';

// ---- helpers ----------------------------------------------------------------------------------

// One SQL statement against an instance's database (its rows, as text).
function sql(p, statement) {
  if (BACKEND === 'postgres') {
    return execFileSync('psql', [p.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-tAc', statement]).toString().trim();
  }
  return execFileSync('sqlite3', [path.join(p.dataDir, 'parley.db'), statement]).toString().trim();
}

const words = (text) => String(text).split(/[ \t\n\r\f\v]+/).filter(Boolean).length;

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/;
const iso = (ms) => new Date(ms).toISOString();
const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;

// `ms` written with the zone offset `minutes` (e.g. +02:00): the same instant.
function withOffset(ms, minutes) {
  const local = new Date(ms + minutes * 60000).toISOString().replace('Z', '');
  const a = Math.abs(minutes);
  return `${local}${minutes >= 0 ? '+' : '-'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

// A RIFF/WAVE file (8 kHz 16-bit mono PCM) carrying `text` in a LIST/INFO/ICMT chunk, with a data
// chunk sized so that the whole file is `total` bytes (or 1600 bytes of silence without `total`).
function makeWav(text, total) {
  const comment = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0])]);
  const padded = comment.length % 2 ? Buffer.concat([comment, Buffer.from([0])]) : comment;
  const info = Buffer.concat([Buffer.from('INFO'), Buffer.from('ICMT'), u32(comment.length), padded]);
  const head = 12 + 8 + 16 + 8 + info.length + 8;
  let dataBytes = total === undefined ? 1600 : total - head;
  assert.ok(dataBytes >= 0 && dataBytes % 2 === 0, `cannot make a WAV of ${total} bytes`);
  const fmt = Buffer.alloc(16);
  fmt.writeUInt16LE(1, 0); fmt.writeUInt16LE(1, 2); fmt.writeUInt32LE(8000, 4); fmt.writeUInt32LE(16000, 8);
  fmt.writeUInt16LE(2, 12); fmt.writeUInt16LE(16, 14);
  const data = Buffer.alloc(dataBytes);
  for (let i = 0; i < dataBytes; i += 64) data[i] = i & 0x7f;
  const body = Buffer.concat([Buffer.from('WAVE'), Buffer.from('fmt '), u32(16), fmt, Buffer.from('LIST'), u32(info.length), info,
    Buffer.from('data'), u32(dataBytes), data]);
  const out = Buffer.concat([Buffer.from('RIFF'), u32(body.length), body]);
  if (total !== undefined) assert.equal(out.length, total);
  return out;
}

function u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; }

// A multipart/form-data body built by hand (for raw requests): fields [[name, value, filename?]].
function multipart(fields, boundary = 'parley-test-boundary-7f3a') {
  const parts = [];
  for (const [name, value, filename] of fields) {
    const disposition = `Content-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}`;
    const type = filename ? '\r\nContent-Type: audio/wav' : '';
    parts.push(Buffer.from(`--${boundary}\r\n${disposition}${type}\r\n\r\n`), Buffer.isBuffer(value) ? value : Buffer.from(String(value)), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

// POST /v1/audio/transcriptions with a FormData body (as the OpenAI SDKs send it).
async function transcribe(url, key, { file, filename = 'speech.wav', model = 'demo', response_format, language } = {}) {
  const form = new FormData();
  if (file) form.append('file', new Blob([file], { type: 'audio/wav' }), filename);
  if (model) form.append('model', model);
  if (response_format) form.append('response_format', response_format);
  if (language) form.append('language', language);
  const res = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: form });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* text formats */ }
  return { status: res.status, headers: res.headers, text, body };
}

// POST /v1/audio/speech; the answer's bytes as a Buffer.
async function speak(url, key, body) {
  const res = await fetch(`${url}/v1/audio/speech`, {
    method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  let parsed = null;
  try { parsed = JSON.parse(bytes.toString('utf8')); } catch { /* audio */ }
  return { status: res.status, headers: res.headers, bytes, body: parsed, text: bytes.toString('utf8') };
}

// A raw HTTP/1.1 request (head and body as given; the body may be left out to test early answers).
function rawHead(method, path, headers) {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

// A whole chat.completion whose message content is `content` (a parley-mock fault body).
const completion = (content, model = 'gpt-4o-mini') => ({
  id: 'chatcmpl-fixed', object: 'chat.completion', created: 1700000000, model,
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 30, completion_tokens: 7, total_tokens: 37 },
});

// Polls `fn` until it returns a truthy value.
async function waitFor(fn, what, ms = 8000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(60);
  }
}

const TURN_FIELDS = ['id', 'user_id', 'input_text', 'gpt_response', 'input_tokens', 'output_tokens', 'processing_time_ms',
  'model_used', 'created_at', 'conversation_id', 'message_id'];
const SMS_FIELDS = ['id', 'user_id', 'incoming_text', 'decision', 'reply_text', 'model_used', 'input_tokens', 'output_tokens', 'created_at'];
const CALL_FIELDS = ['id', 'user_id', 'direction', 'from_number', 'to_number', 'status', 'started_at', 'ended_at',
  'duration_seconds', 'conversation_id', 'created_at'];

// A history item is the record as its own route rendered it (without audio), plus type and at.
function expectItemOf(item, record, type, fields) {
  assert.equal(item.type, type);
  assert.equal(item.id, record.id);
  for (const f of fields) {
    assert.ok(f in item, `${type} item lacks ${f}: ${JSON.stringify(item)}`);
    if (typeof record[f] === 'number' && !Number.isInteger(record[f])) assert.ok(Math.abs(item[f] - record[f]) < 0.01, `${f}: ${item[f]} vs ${record[f]}`);
    else assert.deepEqual(item[f], record[f], `${type} ${f}`);
  }
  assert.ok(!('audio' in item), 'a history item carries no audio');
  assert.equal(item.at, type === 'call' ? record.started_at : record.created_at, `${type} at`);
}

// ---- the main instance: parley with the demo provider and parley-mock as "mock" ------------------

describe(`the assistant (${BACKEND})`, () => {
  let stack; let url; let mock; let admin; let alice; let bob; let boss;
  let n = 0;

  before(async () => {
    stack = await startStack({ env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_AUTH_REGISTRATIONS_PER_ADDRESS: '1000' } });
    url = stack.url;
    mock = stack.mock;
    admin = await signUp(url, 'admin'); // the first account is the admin
    alice = await signUp(url, 'alice');
    bob = await signUp(url, 'bob');
    boss = await signUp(url, 'boss');
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${boss.id}`, { token: admin.token, body: { role: 'manager' } }), 200);
  });
  after(async () => { await stack?.stop(); });

  const fresh = () => signUp(url, `user${++n}_${Date.now() % 100000}`);
  const prefs = async (who, body) =>
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${who.id}/preferences`, { token: who.token, body }), 200);
  const turn = (who, body, { as = who, headers } = {}) =>
    api(url, 'POST', '/api/v1/conversation', { ...(as.apiKey ? { apiKey: as.apiKey } : { token: as.token }), headers, body: { user_id: who.id, ...body } });
  const sms = (who, text, { as = who, extra = {} } = {}) =>
    api(url, 'POST', '/api/v1/sms/decision', { ...(as.apiKey ? { apiKey: as.apiKey } : { token: as.token }), body: { user_id: who.id, text, ...extra } });
  const callBody = (who, over = {}) => ({
    user_id: who.id, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'completed',
    started_at: '2026-01-02T10:30:00Z', ended_at: '2026-01-02T10:32:05Z', ...over,
  });
  const logCall = (who, over = {}, { as = who } = {}) => api(url, 'POST', '/api/v1/calls', { token: as.token, body: callBody(who, over) });
  const history = (who, suffix = '', query = '', { as = who } = {}) =>
    api(url, 'GET', `/api/v1/history/${who.id}${suffix}${query ? `?${query}` : ''}`, { token: as.token });
  const newConversation = async (who, body = {}) =>
    expectStatus(await api(url, 'POST', `/api/v1/users/${who.id}/conversations`, { token: who.token, body }), 201);
  const newKey = async (who, fields = {}) =>
    expectStatus(await api(url, 'POST', '/api/v1/api-keys', { token: who.token, body: { name: `k${++n}`, ...fields } }), 201);
  const usageOf = async (key, owner, count) => waitFor(async () => {
    const r = expectStatus(await api(url, 'GET', `/api/v1/usage/${key.id}?limit=100`, { token: owner.token }), 200);
    return r.items.length >= count ? r.items : null;
  }, `${count} usage records of ${key.id}`);
  const mockRequests = async (path) => (await mock.requests()).filter((r) => !path || r.path === path);

  // ---- turns --------------------------------------------------------------------------------

  describe('POST /api/v1/conversation', () => {
    test('a turn answers with every field; tts from the default preferences; no audio unless asked', async () => {
      const u = await fresh();
      const started = Date.now();
      const r = await turn(u, { text: 'What is the capital of France?' });
      const wall = Date.now() - started;
      const t = expectStatus(r, 200);
      assert.match(t.id, /^turn_/);
      assert.equal(t.user_id, u.id);
      assert.equal(t.input_text, 'What is the capital of France?');
      assert.equal(typeof t.gpt_response, 'string');
      assert.match(t.gpt_response, /You said: .*What is the capital of France\?/, 'the demo model answers the user text');
      assert.equal(t.model_used, 'demo', 'no model anywhere: the deployment default, demo');
      for (const f of ['input_tokens', 'output_tokens']) assert.ok(Number.isInteger(t[f]) && t[f] > 0, `${f}: ${t[f]}`);
      assert.equal(typeof t.processing_time_ms, 'number');
      assert.ok(t.processing_time_ms > 0 && t.processing_time_ms <= wall + 5, `processing_time_ms ${t.processing_time_ms} (request took ${wall} ms)`);
      assert.match(t.created_at, ISO_UTC);
      assert.ok(Math.abs(Date.parse(t.created_at) - Date.now()) < 60000);
      assert.equal(t.conversation_id, null);
      assert.equal(t.message_id, null);
      assert.deepEqual(t.tts, { voice: 'alloy', language: 'en' });
      assert.ok(t.audio === undefined || t.audio === null, 'no audio without speech: true');
      for (const f of TURN_FIELDS) assert.ok(f in t, `${f} missing`);

      // The turn is stored: the history shows it.
      const h = expectStatus(await history(u, '/conversations'), 200);
      assert.equal(h.items.length, 1);
      expectItemOf(h.items[0], t, 'conversation', TURN_FIELDS);
    });

    test('tts follows the preferences read at the time of each turn', async () => {
      const u = await fresh();
      await prefs(u, { tts_voice: 'nova', language: 'fr' });
      assert.deepEqual(expectStatus(await turn(u, { text: 'bonjour' }), 200).tts, { voice: 'nova', language: 'fr' });
      await prefs(u, { tts_voice: 'onyx' });
      assert.deepEqual(expectStatus(await turn(u, { text: 'encore' }), 200).tts, { voice: 'onyx', language: 'fr' });
      await prefs(u, { language: 'pt-BR' });
      assert.deepEqual(expectStatus(await turn(u, { text: 'olá' }), 200).tts, { voice: 'onyx', language: 'pt-BR' });
    });

    test('speech: true with the demo model gives a WAV file of the answer, base64', async () => {
      const u = await fresh();
      await prefs(u, { tts_voice: 'coral' });
      const t = expectStatus(await turn(u, { text: 'Say something nice', speech: true, model: 'demo' }), 200);
      assert.ok(t.audio && typeof t.audio === 'object', `no audio: ${JSON.stringify(t)}`);
      assert.equal(t.audio.format, 'wav');
      assert.equal(t.audio.content_type, 'audio/wav');
      assert.equal(typeof t.audio.data, 'string');
      assert.match(t.audio.data, /^[A-Za-z0-9+/]+={0,2}$/, 'standard base64');
      const wav = Buffer.from(t.audio.data, 'base64');
      assert.equal(t.audio.bytes, wav.length);
      assert.ok(wav.length > 44);
      assert.equal(wavComment(wav), t.gpt_response, 'the audio speaks the answer');
      assert.deepEqual(t.tts, { voice: 'coral', language: 'en' });
    });

    test('the model: the request, else the preferences; the prompt: system_prompt, else a spoken-style prompt in the language', async () => {
      const u = await fresh();
      await mock.reset();
      const a = expectStatus(await turn(u, { text: 'hello mock', model: 'gpt-4o-mini', temperature: 0.3, max_tokens: 50 }), 200);
      assert.equal(a.model_used, 'gpt-4o-mini');
      assert.equal(a.gpt_response, 'mock reply: hello mock');
      let [req] = await mockRequests('/v1/chat/completions');
      let sent = JSON.parse(req.body);
      assert.equal(sent.model, 'gpt-4o-mini');
      assert.equal(sent.temperature, 0.3);
      assert.equal(sent.max_tokens ?? sent.max_completion_tokens, 50);
      assert.equal(sent.messages[0].role, 'system', 'an assistant prompt goes first');
      assert.ok(sent.messages[0].content.length > 0);
      assert.deepEqual(sent.messages.at(-1), { role: 'user', content: 'hello mock' });
      // The usage the provider reported is the turn's.
      assert.equal(a.input_tokens, sent.messages.reduce((n, m) => n + words(m.content), 0), 'the provider\'s usage');
      assert.equal(a.output_tokens, 4);
      const englishPrompt = sent.messages[0].content;

      await prefs(u, { language: 'de' });
      await mock.reset();
      expectStatus(await turn(u, { text: 'hallo', model: 'gpt-4o-mini' }), 200);
      [req] = await mockRequests('/v1/chat/completions');
      sent = JSON.parse(req.body);
      assert.equal(sent.messages[0].role, 'system');
      assert.notEqual(sent.messages[0].content, englishPrompt, 'the prompt names the user\'s language');

      await prefs(u, { default_model: 'mock-1', system_prompt: 'Answer like a pirate.' });
      await mock.reset();
      const b = expectStatus(await turn(u, { text: 'where is the treasure' }), 200);
      assert.equal(b.model_used, 'mock-1', 'the user\'s default_model');
      [req] = await mockRequests('/v1/chat/completions');
      sent = JSON.parse(req.body);
      assert.equal(sent.model, 'mock-1');
      assert.deepEqual(sent.messages[0], { role: 'system', content: 'Answer like a pirate.' });
    });

    test('speech through an OpenAI-compatible provider: its /v1/audio/speech, defaults.speech_model, the user\'s voice', async () => {
      const u = await fresh();
      await prefs(u, { tts_voice: 'echo' });
      await mock.reset();
      const t = expectStatus(await turn(u, { text: 'read this aloud', model: 'gpt-4o-mini', speech: true }), 200);
      const speech = await mockRequests('/v1/audio/speech');
      assert.equal(speech.length, 1, 'one speech call');
      const asked = JSON.parse(speech[0].body);
      assert.equal(asked.model, 'tts-1');
      assert.equal(asked.voice, 'echo');
      assert.equal(asked.input, t.gpt_response);
      const format = asked.response_format ?? 'mp3';
      const types = { mp3: 'audio/mpeg', opus: 'audio/ogg', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm' };
      assert.equal(t.audio.format, format);
      assert.equal(t.audio.content_type, types[format]);
      const bytes = Buffer.from(t.audio.data, 'base64');
      assert.equal(t.audio.bytes, bytes.length);
      if (format !== 'pcm') assert.equal(wavComment(bytes), 'mock reply: read this aloud', 'the provider\'s bytes, unchanged');
    });

    test('a failed speech call fails the turn and no turn is stored', async () => {
      const u = await fresh();
      await mock.reset();
      // The chat call answers normally; the speech call gets a 400 (not retried).
      await mock.faults([{ delay_ms: 1 }, { status: 400 }]);
      const r = await turn(u, { text: 'speak up', model: 'mock-1', speech: true });
      assert.ok(r.status >= 400, `expected a failure, got ${r.status}: ${r.text.slice(0, 300)}`);
      assert.ok(r.body?.error, 'an error envelope');
      assert.equal((await mockRequests('/v1/chat/completions')).length, 1);
      assert.equal((await mockRequests('/v1/audio/speech')).length, 1);
      assert.equal(expectStatus(await history(u), 200).items.length, 0, 'no turn stored');
      await mock.reset();
    });

    test('a failed speech call in a conversation fails the turn; the answered exchange stays in the conversation', async () => {
      const u = await fresh();
      const c = await newConversation(u, { model: 'mock-1' });
      await mock.reset();
      await mock.faults([{ delay_ms: 1 }, { status: 400 }]);
      const r = await turn(u, { text: 'speak up', conversation_id: c.id, speech: true });
      assert.ok(r.status >= 400, `expected a failure, got ${r.status}: ${r.text.slice(0, 300)}`);
      assert.equal(expectStatus(await history(u), 200).items.length, 0, 'no turn stored');
      const msgs = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: u.token }), 200);
      assert.deepEqual(msgs.items.map((m) => [m.role, m.status, m.content]),
        [['user', 'complete', 'speak up'], ['assistant', 'complete', 'mock reply: speak up']],
        'the exchange was answered before the speech failed: it is a message of the conversation like any other');
      await mock.reset();
    });

    test('with conversation_id the turn is stored in the conversation and the model sees its context', async () => {
      const u = await fresh();
      const c = await newConversation(u, { title: 'On the phone', model: 'mock-1' });
      await mock.reset();
      const first = expectStatus(await turn(u, { text: 'first question', conversation_id: c.id }), 200);
      assert.equal(first.conversation_id, c.id);
      assert.equal(typeof first.message_id, 'string');
      assert.equal(first.model_used, 'mock-1', 'the conversation\'s model');
      assert.equal(first.gpt_response, 'mock reply: first question');
      const second = expectStatus(await turn(u, { text: 'second question', conversation_id: c.id }), 200);

      const msgs = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: u.token }), 200);
      assert.deepEqual(msgs.items.map((m) => [m.role, m.content]), [
        ['user', 'first question'], ['assistant', 'mock reply: first question'],
        ['user', 'second question'], ['assistant', 'mock reply: second question'],
      ]);
      assert.ok(msgs.items.some((m) => m.id === first.message_id), 'message_id names a message of the conversation');
      assert.ok(msgs.items.some((m) => m.id === second.message_id));
      assert.notEqual(first.message_id, second.message_id);
      const answers = msgs.items.filter((m) => m.role === 'assistant').map((m) => m.id);
      assert.ok(answers.includes(first.message_id), 'message_id is the stored answer');

      const chats = await mockRequests('/v1/chat/completions');
      const last = JSON.parse(chats.at(-1).body);
      const nonSystem = last.messages.filter((m) => m.role !== 'system');
      assert.deepEqual(nonSystem, [
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'mock reply: first question' },
        { role: 'user', content: 'second question' },
      ]);
    });

    test('an ended conversation is 409, another user\'s or a missing one 404; nothing is stored', async () => {
      const u = await fresh();
      const c = await newConversation(u);
      expectStatus(await api(url, 'POST', `/api/v1/users/${u.id}/conversations/${c.id}/end`, { token: u.token }), 200);
      expectStatus(await turn(u, { text: 'anyone there?', conversation_id: c.id }), 409, 'CONFLICT');
      const theirs = await newConversation(bob);
      expectStatus(await turn(u, { text: 'hi', conversation_id: theirs.id }), 404, 'NOT_FOUND');
      expectStatus(await turn(u, { text: 'hi', conversation_id: 'conv_does_not_exist' }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await history(u), 200).items.length, 0);
      const bobs = expectStatus(await api(url, 'GET', `/api/v1/conversations/${theirs.id}/messages`, { token: bob.token }), 200);
      assert.equal(bobs.items.length, 0);
    });

    test('a conversation already generating an answer is 409', async () => {
      const u = await fresh();
      const c = await newConversation(u, { model: 'mock-1' });
      await mock.reset();
      await mock.faults([{ delay_ms: 1000 }]);
      const pending = api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: u.token, body: { content: 'take your time' } });
      await waitFor(async () => (await mockRequests('/v1/chat/completions')).length === 1, 'the slow answer to start');
      expectStatus(await turn(u, { text: 'me too', conversation_id: c.id }), 409, 'CONFLICT');
      expectStatus(await pending, 201);
      assert.equal(expectStatus(await history(u), 200).items.length, 0);
      const after = expectStatus(await turn(u, { text: 'now', conversation_id: c.id }), 200);
      assert.equal(after.conversation_id, c.id);
      await mock.reset();
    });

    test('bad input is a 422 naming the field', async () => {
      const u = await fresh();
      const check = async (body, param, what) => {
        const r = await api(url, 'POST', '/api/v1/conversation', { token: u.token, body });
        expectStatus(r, 422, 'VALIDATION_ERROR');
        if (param) assert.equal(r.body.error.param, param, what);
      };
      await check({ user_id: u.id }, 'text', 'missing text');
      await check({ user_id: u.id, text: '' }, 'text', 'empty text');
      await check({ user_id: u.id, text: 42 }, 'text', 'text not a string');
      await check({ user_id: u.id, text: 'x'.repeat(4001) }, 'text', 'text over chat.max_message_chars');
      await check({ text: 'hello' }, 'user_id', 'missing user_id');
      await check({ user_id: u.id, text: 'hello', speech: 'yes' }, 'speech', 'speech not a boolean');
      await check({ user_id: u.id, text: 'hello', temperature: 3 }, 'temperature', 'temperature out of range');
      await check({ user_id: u.id, text: 'hello', max_tokens: 0 }, 'max_tokens', 'max_tokens < 1');
      await check({ user_id: u.id, text: 'hello', voice: 'nova' }, null, 'unknown field');
      assert.equal(expectStatus(await history(u), 200).items.length, 0, 'nothing stored');
      // The longest text allowed passes; the limit counts characters, not bytes.
      expectStatus(await turn(u, { text: 'y'.repeat(4000) }), 200);
      expectStatus(await turn(u, { text: 'é'.repeat(4000) }), 200);
      await check({ user_id: u.id, text: 'é'.repeat(4001) }, 'text', 'over the limit in characters');
    });

    test('who may act: the user and admins; a manager 403, another user 404; a service key acts as its owner', async () => {
      const u = await fresh();
      expectStatus(await turn(u, { text: 'hi' }, { as: boss }), 403, 'FORBIDDEN');
      expectStatus(await turn(u, { text: 'hi' }, { as: bob }), 404, 'NOT_FOUND');
      const byAdmin = expectStatus(await turn(u, { text: 'hi from admin' }, { as: admin }), 200);
      assert.equal(byAdmin.user_id, u.id);
      const key = await newKey(u);
      const byKey = expectStatus(await turn(u, { text: 'hi from my key' }, { as: { apiKey: key.key } }), 200);
      assert.equal(byKey.user_id, u.id);
      expectStatus(await turn(bob, { text: 'hi' }, { as: { apiKey: key.key } }), 404, 'NOT_FOUND');
      expectStatus(await api(url, 'POST', '/api/v1/conversation', { token: u.token, body: { user_id: 'usr_missing', text: 'hi' } }), 404, 'NOT_FOUND');
      expectStatus(await api(url, 'POST', '/api/v1/conversation', { body: { user_id: u.id, text: 'hi' } }), 401);
      const h = expectStatus(await history(u, '/conversations'), 200);
      assert.deepEqual(h.items.map((i) => i.id), [byKey.id, byAdmin.id]);
    });
  });

  // ---- SMS decisions ------------------------------------------------------------------------

  describe('POST /api/v1/sms/decision', () => {
    test('the demo model decides by the question mark; every field', async () => {
      const u = await fresh();
      const r = await sms(u, 'Can you help me tomorrow?');
      const d = expectStatus(r, 200);
      assert.match(d.id, /^sms_/);
      assert.equal(d.user_id, u.id);
      assert.equal(d.incoming_text, 'Can you help me tomorrow?');
      assert.equal(d.decision, 'yes');
      assert.equal(typeof d.reply_text, 'string');
      assert.match(d.reply_text, /^This is the parley demo model\. You said:/);
      assert.equal(d.send_reply, false, 'auto-reply is off by default');
      assert.equal(d.auto_reply_enabled, false);
      assert.equal(d.model_used, 'demo');
      for (const f of ['input_tokens', 'output_tokens']) assert.ok(Number.isInteger(d[f]) && d[f] > 0, `${f}: ${d[f]}`);
      assert.match(d.created_at, ISO_UTC);
      for (const f of SMS_FIELDS) assert.ok(f in d, `${f} missing`);

      const no = expectStatus(await sms(u, 'I will call you later.'), 200);
      assert.equal(no.decision, 'no');
      assert.equal(no.send_reply, false);

      const h = expectStatus(await history(u, '/sms'), 200);
      assert.deepEqual(h.items.map((i) => i.id), [no.id, d.id]);
      expectItemOf(h.items[1], d, 'sms', SMS_FIELDS);
      assert.equal(h.items[1].decision, 'yes');
    });

    test('auto_reply_enabled: a yes is sent at once, a no never', async () => {
      const u = await fresh();
      await prefs(u, { auto_reply_enabled: true });
      const yes = expectStatus(await sms(u, 'Are we still on for lunch?'), 200);
      assert.equal(yes.decision, 'yes');
      assert.equal(yes.auto_reply_enabled, true);
      assert.equal(yes.send_reply, true);
      const no = expectStatus(await sms(u, 'Buy cheap watches now'), 200);
      assert.equal(no.decision, 'no');
      assert.equal(no.auto_reply_enabled, true);
      assert.equal(no.send_reply, false);
      await prefs(u, { auto_reply_enabled: false });
      const off = expectStatus(await sms(u, 'Are you there?'), 200);
      assert.equal(off.decision, 'yes');
      assert.equal(off.send_reply, false, 'a draft only');
      assert.equal(off.auto_reply_enabled, false);
    });

    test('bad input is a 422; a manager 403, another user 404, an admin 200', async () => {
      const u = await fresh();
      const bad = async (body, param) => {
        const r = await api(url, 'POST', '/api/v1/sms/decision', { token: u.token, body });
        expectStatus(r, 422, 'VALIDATION_ERROR');
        if (param) assert.equal(r.body.error.param, param);
      };
      await bad({ user_id: u.id }, 'text');
      await bad({ user_id: u.id, text: '' }, 'text');
      await bad({ user_id: u.id, text: 'x'.repeat(4001) }, 'text');
      await bad({ text: 'hi?' }, 'user_id');
      await bad({ user_id: u.id, text: 'hi?', send: true }, null);
      expectStatus(await sms(u, 'Can you?', { as: boss }), 403, 'FORBIDDEN');
      expectStatus(await sms(u, 'Can you?', { as: bob }), 404, 'NOT_FOUND');
      const byAdmin = expectStatus(await sms(u, 'Can you?', { as: admin }), 200);
      assert.equal(byAdmin.user_id, u.id);
      const h = expectStatus(await history(u, '/sms'), 200);
      assert.deepEqual(h.items.map((i) => i.id), [byAdmin.id]);
    });

    describe('the structured answer of an OpenAI-compatible provider (parley-mock)', () => {
      // A user whose model is the mock's, with an empty mock queue.
      const mockUser = async () => {
        const u = await fresh();
        await prefs(u, { default_model: 'gpt-4o-mini' });
        await mock.reset();
        return u;
      };
      const chatRequests = () => mockRequests('/v1/chat/completions');

      test('the model is asked for json_schema (strict) {decision: yes|no, reply_text}, also in the prompt', async () => {
        const u = await mockUser();
        const d = expectStatus(await sms(u, 'Can you pick me up at 6?'), 200);
        assert.equal(d.model_used, 'gpt-4o-mini');
        assert.equal(d.decision, 'yes', 'the mock picks the first enum member for a question');
        assert.match(d.reply_text, /^mock reply: /);
        const reqs = await chatRequests();
        assert.equal(reqs.length, 1);
        const sent = JSON.parse(reqs[0].body);
        assert.equal(sent.model, 'gpt-4o-mini');
        assert.equal(sent.response_format?.type, 'json_schema', `response_format: ${JSON.stringify(sent.response_format)}`);
        const js = sent.response_format.json_schema;
        assert.equal(typeof js.name, 'string');
        assert.equal(js.strict, true);
        assert.equal(js.schema.type, 'object');
        assert.deepEqual([...js.schema.properties.decision.enum].sort(), ['no', 'yes']);
        assert.equal(js.schema.properties.reply_text.type, 'string');
        assert.deepEqual([...js.schema.required].sort(), ['decision', 'reply_text']);
        assert.equal(js.schema.additionalProperties, false);
        const all = sent.messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join('\n');
        assert.match(all, /decision/, 'the prompt asks for the object too');
        assert.match(all, /reply_text/);
        assert.match(all, /Can you pick me up at 6\?/, 'the incoming text is given to the model');
        assert.equal(d.input_tokens, sent.messages.reduce((n, m) => n + words(m.content), 0), 'the provider\'s usage');

        const statement = expectStatus(await sms(u, 'Your parcel was delivered.'), 200);
        assert.equal(statement.decision, 'no', 'the last enum member without a question');
      });

      const accepted = [
        ['a wrong letter case', '{"decision":"YES","reply_text":"ok"}', 'yes', 'ok'],
        ['blanks around the decision', '{"decision":"  No\\t","reply_text":"not today"}', 'no', 'not today'],
        ['one Markdown fence', '```json\n{"decision": "yes", "reply_text": "fenced"}\n```', 'yes', 'fenced'],
        ['a fence without a language', '```\n{"decision":"no","reply_text":"plain fence"}\n```', 'no', 'plain fence'],
        ['other members', '{"decision":"yes","reply_text":"extra","confidence":0.9,"notes":["a"]}', 'yes', 'extra'],
        ['blanks around the object', '  \n{"decision":"no","reply_text":"spaced"}\n ', 'no', 'spaced'],
        ['a reply_text of 1600 characters', JSON.stringify({ decision: 'yes', reply_text: 'r'.repeat(1600) }), 'yes', 'r'.repeat(1600)],
        ['an empty reply_text', '{"decision":"no","reply_text":""}', 'no', ''],
      ];
      for (const [what, content, decision, reply] of accepted) {
        test(`accepted at once: ${what}`, async () => {
          const u = await mockUser();
          await mock.faults([{ status: 200, body: completion(content) }]);
          const d = expectStatus(await sms(u, 'Is this fine?'), 200);
          assert.equal(d.decision, decision, 'stored lower case, trimmed');
          assert.equal(d.reply_text, reply);
          assert.equal((await chatRequests()).length, 1, 'no second ask');
          const h = expectStatus(await history(u, '/sms'), 200);
          assert.equal(h.items.length, 1);
          assert.equal(h.items[0].decision, decision);
          assert.equal(h.items[0].reply_text, reply);
        });
      }

      const refused = [
        ['not JSON', 'not json'],
        ['text before the object', 'Sure! {"decision":"yes","reply_text":"ok"}'],
        ['text after the object', '{"decision":"yes","reply_text":"ok"} Hope that helps.'],
        ['"maybe"', '{"decision":"maybe","reply_text":"ok"}'],
        ['a missing reply_text', '{"decision":"yes"}'],
        ['a missing decision', '{"reply_text":"ok"}'],
        ['a non-string reply_text', '{"decision":"yes","reply_text":5}'],
        ['a non-string decision', '{"decision":true,"reply_text":"ok"}'],
        ['a reply_text over 1600 characters', JSON.stringify({ decision: 'yes', reply_text: 'r'.repeat(1601) })],
        ['an array', '[{"decision":"yes","reply_text":"ok"}]'],
        ['two objects', '{"decision":"yes","reply_text":"a"}{"decision":"no","reply_text":"b"}'],
        ['two fences', '```json\n{"decision":"yes","reply_text":"a"}\n```\n```json\n{"decision":"no","reply_text":"b"}\n```'],
        ['an empty answer', ''],
      ];
      for (const [what, content] of refused) {
        test(`refused, asked once more, then accepted: ${what}`, async () => {
          const u = await mockUser();
          await mock.faults([{ status: 200, body: completion(content) }, { status: 200, body: completion('{"decision":"no","reply_text":"second try"}') }]);
          const d = expectStatus(await sms(u, 'Is this fine?'), 200);
          assert.equal(d.decision, 'no');
          assert.equal(d.reply_text, 'second try');
          assert.equal((await chatRequests()).length, 2, 'the model was asked twice');
          const h = expectStatus(await history(u, '/sms'), 200);
          assert.deepEqual(h.items.map((i) => i.id), [d.id], 'one decision stored');
        });
      }

      test('the request may name the model', async () => {
        const u = await fresh();
        await mock.reset();
        const d = expectStatus(await sms(u, 'Shall we meet?', { extra: { model: 'mock-1' } }), 200);
        assert.equal(d.model_used, 'mock-1');
        assert.equal(d.decision, 'yes');
        const [req] = await chatRequests();
        assert.equal(JSON.parse(req.body).model, 'mock-1');
        expectStatus(await sms(u, 'Shall we?', { extra: { model: 'no-such-model' } }), 422, 'VALIDATION_ERROR');
        assert.deepEqual(expectStatus(await history(u, '/sms'), 200).items.map((i) => i.id), [d.id]);
      });

      test('two refused answers are 502 MODEL_OUTPUT_INVALID and nothing is stored; both calls count in usage', async () => {
        const u = await mockUser();
        const key = await newKey(u);
        await mock.faults([
          { status: 200, body: completion('Sure! {"decision":"yes","reply_text":"ok"}') },
          { status: 200, body: completion('{"decision":"maybe","reply_text":"ok"}') },
        ]);
        const r = await sms(u, 'Is this fine?', { as: { apiKey: key.key } });
        expectStatus(r, 502, 'MODEL_OUTPUT_INVALID');
        assert.equal(r.body.error.type, 'api_error');
        assert.equal((await chatRequests()).length, 2, 'asked exactly twice');
        assert.equal(expectStatus(await history(u, '/sms'), 200).items.length, 0, 'nothing stored');
        assert.equal(expectStatus(await history(u), 200).items.length, 0);
        const records = await usageOf(key, u, 2);
        assert.equal(records.length, 2, `usage records: ${JSON.stringify(records)}`);
        for (const rec of records) {
          assert.equal(rec.endpoint, 'assistant.sms');
          assert.equal(rec.prompt_tokens, 30);
          assert.equal(rec.completion_tokens, 7);
        }
      });

      test('a second ask counts in the limits: a key allowing 2 requests a minute is spent by one retried decision', async () => {
        const u = await mockUser();
        const key = await newKey(u, { rate_limit_per_minute: 2 });
        await mock.faults([{ status: 200, body: completion('not json') }, { status: 200, body: completion('{"decision":"yes","reply_text":"ok"}') }]);
        expectStatus(await sms(u, 'Is this fine?', { as: { apiKey: key.key } }), 200);
        assert.equal((await chatRequests()).length, 2);
        const r = await sms(u, 'And this?', { as: { apiKey: key.key } });
        expectStatus(r, 429, 'RATE_LIMIT_EXCEEDED');
        assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
        assert.equal((await chatRequests()).length, 2, 'the refused call never reached the provider');
      });

      test('a provider failure is not a second ask: the error comes back and nothing is stored', async () => {
        const u = await mockUser();
        await mock.faults([{ status: 400 }]);
        const r = await sms(u, 'Is this fine?');
        // E.g. a provider that refuses response_format with a 400 of its own.
        expectStatus(r, 502, 'OPENAI_API_ERROR');
        assert.equal((await chatRequests()).length, 1, 'a provider error is not an answer to ask again');
        assert.equal(expectStatus(await history(u, '/sms'), 200).items.length, 0);
      });
    });
  });

  // ---- calls --------------------------------------------------------------------------------

  describe('POST /api/v1/calls, GET /api/v1/calls/{id}', () => {
    test('a call is stored with every field; the duration is ended_at − started_at', async () => {
      const u = await fresh();
      const c = await newConversation(u);
      const r = await logCall(u, { conversation_id: c.id });
      const call = expectStatus(r, 201);
      assert.match(call.id, /^call_/);
      assert.equal(call.user_id, u.id);
      assert.equal(call.direction, 'inbound');
      assert.equal(call.from_number, '+14155550123');
      assert.equal(call.to_number, '+14155550199');
      assert.equal(call.status, 'completed');
      assert.match(call.started_at, ISO_UTC);
      assert.match(call.ended_at, ISO_UTC);
      assert.equal(Date.parse(call.started_at), Date.parse('2026-01-02T10:30:00Z'));
      assert.equal(Date.parse(call.ended_at), Date.parse('2026-01-02T10:32:05Z'));
      assert.equal(call.duration_seconds, 125);
      assert.equal(call.conversation_id, c.id);
      assert.match(call.created_at, ISO_UTC);
      for (const f of CALL_FIELDS) assert.ok(f in call, `${f} missing`);
      const got = expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { token: u.token }), 200);
      assert.deepEqual(got, call);

      // Zones are converted to UTC; an outbound call without an end lasts 0 s.
      const zoned = expectStatus(await logCall(u, {
        direction: 'outbound', started_at: '2026-01-02T12:00:00+02:00', ended_at: '2026-01-02T06:01:30-04:00',
      }), 201);
      assert.equal(zoned.direction, 'outbound');
      assert.equal(Date.parse(zoned.started_at), Date.parse('2026-01-02T10:00:00Z'));
      assert.match(zoned.started_at, /^2026-01-02T10:00:00(\.0+)?Z$/);
      assert.equal(zoned.duration_seconds, 90);
      const open = expectStatus(await logCall(u, { ended_at: undefined }), 201);
      assert.equal(open.ended_at, null);
      assert.equal(open.duration_seconds, 0);
      assert.equal(open.conversation_id, null);
      // An explicit duration is kept.
      assert.equal(expectStatus(await logCall(u, { duration_seconds: 30 }), 201).duration_seconds, 30);
      assert.equal(expectStatus(await logCall(u, { ended_at: undefined, duration_seconds: 604800 }), 201).duration_seconds, 604800);
      // A call that did not connect lasts 0 s, whatever its times.
      for (const status of ['missed', 'failed', 'busy', 'rejected', 'no_answer']) {
        const nc = expectStatus(await logCall(u, { status }), 201);
        assert.equal(nc.status, status);
        assert.equal(nc.duration_seconds, 0, status);
      }
      assert.equal(expectStatus(await logCall(u, { status: 'missed', duration_seconds: 0 }), 201).duration_seconds, 0);
      // Up to a day ahead of the server's clock.
      expectStatus(await logCall(u, { started_at: iso(Date.now() + 12 * HOUR), ended_at: undefined }), 201);
      expectStatus(await logCall(u, { started_at: iso(Date.now() + DAY - 5 * 60000), ended_at: undefined }), 201);
      // E.164: + and 2 to 15 digits.
      for (const number of ['+12', '+123456789012345', '+442071838750']) {
        assert.equal(expectStatus(await logCall(u, { from_number: number, to_number: number }), 201).from_number, number);
      }
    });

    test('bad input is a 422 naming the field', async () => {
      const u = await fresh();
      const bad = async (over, param, what) => {
        const r = await logCall(u, over);
        expectStatus(r, 422, 'VALIDATION_ERROR');
        if (param) assert.equal(r.body.error.param, param, what);
      };
      for (const number of ['abc', '14155550123', '+1', '+1234567890123456', '+1 415 555 0123', '+1415555012a', '']) {
        await bad({ from_number: number }, 'from_number', `from_number ${JSON.stringify(number)}`);
      }
      await bad({ to_number: '555-0199' }, 'to_number', 'to_number');
      await bad({ from_number: undefined }, 'from_number', 'missing from_number');
      await bad({ direction: 'sideways' }, 'direction', 'direction');
      await bad({ direction: undefined }, 'direction', 'missing direction');
      await bad({ status: 'dropped' }, 'status', 'status');
      await bad({ status: 'COMPLETED' }, 'status', 'status case');
      await bad({ started_at: undefined }, 'started_at', 'missing started_at');
      await bad({ started_at: 'yesterday' }, 'started_at', 'started_at not a time');
      await bad({ started_at: '2026-01-02T10:30:00' }, 'started_at', 'started_at without a zone');
      await bad({ started_at: iso(Date.now() + 2 * DAY), ended_at: undefined }, 'started_at', 'more than a day ahead');
      await bad({ started_at: iso(Date.now() + DAY + 5 * 60000), ended_at: undefined }, 'started_at', 'just over a day ahead');
      await bad({ started_at: 1767349800 }, 'started_at', 'started_at not a string');
      await bad({ ended_at: '2026-01-02T10:29:59Z' }, 'ended_at', 'ended before started');
      await bad({ duration_seconds: -1 }, 'duration_seconds', 'negative duration');
      await bad({ duration_seconds: 604801 }, 'duration_seconds', 'duration over a week');
      await bad({ duration_seconds: 1.5 }, 'duration_seconds', 'fractional duration');
      await bad({ status: 'missed', duration_seconds: 12 }, 'duration_seconds', 'a missed call with a duration');
      await bad({ user_id: undefined }, 'user_id', 'missing user_id');
      await bad({ recording_url: 'https://example.com/x' }, null, 'unknown field');
      assert.equal(expectStatus(await history(u, '/calls'), 200).items.length, 0, 'nothing stored');
    });

    test('ownership: another user\'s conversation or call 404; a manager reads, cannot log; an admin does both', async () => {
      const u = await fresh();
      const theirs = await newConversation(bob);
      expectStatus(await logCall(u, { conversation_id: theirs.id }), 404, 'NOT_FOUND');
      expectStatus(await logCall(u, { conversation_id: 'conv_missing' }), 404, 'NOT_FOUND');
      const call = expectStatus(await logCall(u), 201);
      expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { token: bob.token }), 404, 'NOT_FOUND');
      expectStatus(await api(url, 'GET', `/api/v1/calls/call_missing`, { token: u.token }), 404, 'NOT_FOUND');
      assert.deepEqual(expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { token: boss.token }), 200), call);
      assert.deepEqual(expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { token: admin.token }), 200), call);
      const key = await newKey(u);
      assert.deepEqual(expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { apiKey: key.key }), 200), call);
      expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`), 401);
      expectStatus(await logCall(u, {}, { as: boss }), 403, 'FORBIDDEN');
      expectStatus(await logCall(u, {}, { as: bob }), 404, 'NOT_FOUND');
      const byAdmin = expectStatus(await logCall(u, {}, { as: admin }), 201);
      assert.equal(byAdmin.user_id, u.id);
      // An admin may link the user's conversation, not another user's.
      const mine = await newConversation(u);
      assert.equal(expectStatus(await logCall(u, { conversation_id: mine.id }, { as: admin }), 201).conversation_id, mine.id);
      expectStatus(await logCall(u, { conversation_id: theirs.id }, { as: admin }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await history(u, '/calls'), 200).items.length, 3);
    });
  });

  // ---- history ------------------------------------------------------------------------------

  describe('GET /api/v1/history/{user_id}', () => {
    // Turns, decisions and calls whose times interleave; calls logged out of order of started_at.
    // Returns the records newest first, as the merged history must list them.
    const buildHistory = async (u) => {
      const c0 = expectStatus(await logCall(u, { started_at: iso(Date.now() - 3 * DAY), ended_at: iso(Date.now() - 3 * DAY + 60000) }), 201);
      const t1 = expectStatus(await turn(u, { text: 'first turn' }), 200);
      await sleep(25);
      const mid1 = Date.now();
      await sleep(25);
      const c1 = expectStatus(await logCall(u, { started_at: iso(mid1), ended_at: undefined, direction: 'outbound' }), 201);
      const s2 = expectStatus(await sms(u, 'Are you free tonight?'), 200);
      await sleep(25);
      const mid2 = Date.now();
      await sleep(25);
      const t3 = expectStatus(await turn(u, { text: 'second turn', speech: true }), 200);
      // Logged after t3 but started before it: ordered by started_at.
      const c2 = expectStatus(await logCall(u, { started_at: iso(mid2), ended_at: undefined, status: 'missed' }), 201);
      await sleep(25);
      const s4 = expectStatus(await sms(u, 'See you soon.'), 200);
      const c3 = expectStatus(await logCall(u, { started_at: iso(Date.now() + HOUR), ended_at: undefined }), 201);
      return [['call', c3], ['sms', s4], ['conversation', t3], ['call', c2], ['sms', s2], ['call', c1], ['conversation', t1], ['call', c0]];
    };
    const FIELDS = { call: CALL_FIELDS, sms: SMS_FIELDS, conversation: TURN_FIELDS };
    const ids = (list) => list.map(([, r]) => r.id);

    // Every page of `suffix` with `limit`; checks each page and returns the items in order.
    const walk = async (u, suffix, limit, extra = '') => {
      const items = [];
      let cursor = null;
      for (let pages = 0; pages < 50; pages++) {
        const q = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}${extra}`;
        const page = expectStatus(await history(u, suffix, q), 200);
        assert.equal(page.limit, limit);
        assert.ok(page.items.length <= limit, `page of ${page.items.length} > ${limit}`);
        items.push(...page.items);
        if (page.next_cursor === null) return items;
        assert.equal(typeof page.next_cursor, 'string');
        assert.ok(page.items.length > 0, 'an empty page with a next cursor');
        cursor = page.next_cursor;
      }
      throw new Error('the pages never ended');
    };

    test('the merged history is newest first across the three kinds; each kind alone; records as their routes render them', async () => {
      const u = await fresh();
      const expected = await buildHistory(u);
      const all = expectStatus(await history(u), 200);
      assert.equal(all.limit, 50, 'the default limit');
      assert.equal(all.next_cursor, null);
      assert.deepEqual(all.items.map((i) => `${i.type}:${i.id}`), expected.map(([t, r]) => `${t}:${r.id}`));
      all.items.forEach((item, i) => expectItemOf(item, expected[i][1], expected[i][0], FIELDS[expected[i][0]]));
      for (let i = 1; i < all.items.length; i++) {
        assert.ok(Date.parse(all.items[i - 1].at) >= Date.parse(all.items[i].at), `out of order at ${i}`);
        assert.match(all.items[i].at, ISO_UTC);
      }
      for (const [suffix, type] of [['/conversations', 'conversation'], ['/calls', 'call'], ['/sms', 'sms']]) {
        const one = expectStatus(await history(u, suffix), 200);
        assert.deepEqual(one.items.map((i) => i.id), ids(expected.filter(([t]) => t === type)), suffix);
        assert.ok(one.items.every((i) => i.type === type));
        assert.equal(one.next_cursor, null);
      }
      // Nobody else's items.
      assert.ok(!expectStatus(await history(bob), 200).items.some((i) => ids(expected).includes(i.id)));
    });

    test('items with the same at are ordered by id, descending, across kinds; pages split ties exactly', async () => {
      const u = await fresh();
      const when = iso(Date.now() - HOUR);
      const older = [];
      for (let i = 0; i < 5; i++) older.push(expectStatus(await logCall(u, { started_at: when, ended_at: undefined }), 201));
      const d = expectStatus(await sms(u, 'a tie?'), 200);
      const tied = expectStatus(await logCall(u, { started_at: d.created_at, ended_at: undefined }), 201);
      assert.equal(tied.started_at, d.created_at);
      const byIdDesc = (a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
      const expected = [...[d, tied].sort(byIdDesc), ...older.sort(byIdDesc)].map((r) => r.id);
      assert.deepEqual(expectStatus(await history(u), 200).items.map((i) => i.id), expected);
      for (const limit of [1, 2, 3]) assert.deepEqual((await walk(u, '', limit)).map((i) => i.id), expected, `limit ${limit}`);
      assert.deepEqual((await walk(u, '/calls', 2)).map((i) => i.id), expected.filter((id) => id !== d.id));
      // since at the tie takes both tied items.
      const since = expectStatus(await history(u, '', `since=${encodeURIComponent(d.created_at)}`), 200);
      assert.deepEqual(since.items.map((i) => i.id), expected.slice(0, 2));
    });

    test('limit and cursor walk every page once, in order, ending with next_cursor null', async () => {
      const u = await fresh();
      const expected = await buildHistory(u);
      for (const limit of [1, 2, 3, 8, 200]) {
        const items = await walk(u, '', limit);
        assert.deepEqual(items.map((i) => i.id), ids(expected), `limit ${limit}`);
      }
      const calls = ids(expected.filter(([t]) => t === 'call'));
      for (const limit of [1, 2]) {
        assert.deepEqual((await walk(u, '/calls', limit)).map((i) => i.id), calls, `calls, limit ${limit}`);
        assert.deepEqual((await walk(u, '/sms', limit)).map((i) => i.id), ids(expected.filter(([t]) => t === 'sms')));
        assert.deepEqual((await walk(u, '/conversations', limit)).map((i) => i.id), ids(expected.filter(([t]) => t === 'conversation')));
      }
      // A page exactly as long as what is left ends the walk with next_cursor null, at the latest on the next page.
      const page = expectStatus(await history(u, '', 'limit=8'), 200);
      assert.equal(page.items.length, 8);
      if (page.next_cursor !== null) {
        const rest = expectStatus(await history(u, '', `limit=8&cursor=${encodeURIComponent(page.next_cursor)}`), 200);
        assert.deepEqual(rest.items, []);
        assert.equal(rest.next_cursor, null);
      }
    });

    test('pages are keyset-based: an item added meanwhile neither shifts nor repeats a page', async () => {
      const u = await fresh();
      const made = [];
      for (const text of ['one?', 'two?', 'three?', 'four?']) {
        made.unshift(expectStatus(await sms(u, text), 200));
        await sleep(5);
      }
      const first = expectStatus(await history(u, '/sms', 'limit=2'), 200);
      assert.deepEqual(first.items.map((i) => i.id), [made[0].id, made[1].id]);
      const added = expectStatus(await sms(u, 'five?'), 200);
      const second = expectStatus(await history(u, '/sms', `limit=2&cursor=${encodeURIComponent(first.next_cursor)}`), 200);
      assert.deepEqual(second.items.map((i) => i.id), [made[2].id, made[3].id]);
      const again = expectStatus(await history(u, '', `limit=10`), 200);
      assert.equal(again.items[0].id, added.id);
    });

    test('since (inclusive) and until (exclusive), with any zone', async () => {
      const u = await fresh();
      const expected = await buildHistory(u);
      const at = (i) => (expected[i][0] === 'call' ? expected[i][1].started_at : expected[i][1].created_at);
      const q = (params) => new URLSearchParams(params).toString();
      // expected: 0 c3, 1 s4, 2 t3, 3 c2, 4 s2, 5 c1, 6 t1, 7 c0
      const since = expectStatus(await history(u, '', q({ since: at(4) })), 200);
      assert.deepEqual(since.items.map((i) => i.id), ids(expected.slice(0, 5)), 'since is inclusive');
      const until = expectStatus(await history(u, '', q({ until: at(2) })), 200);
      assert.deepEqual(until.items.map((i) => i.id), ids(expected.slice(3)), 'until is exclusive');
      const both = expectStatus(await history(u, '', q({ since: at(5), until: at(2) })), 200);
      assert.deepEqual(both.items.map((i) => i.id), ids(expected.slice(3, 6)));
      const zoned = expectStatus(await history(u, '', q({ since: withOffset(Date.parse(at(4)), 120), until: withOffset(Date.parse(at(2)), -330) })), 200);
      assert.deepEqual(zoned.items.map((i) => i.id), ids(expected.slice(3, 5)), 'zones other than Z');
      const calls = expectStatus(await history(u, '/calls', q({ since: at(5) })), 200);
      assert.deepEqual(calls.items.map((i) => i.id), ids([expected[0], expected[3], expected[5]]));
      const empty = expectStatus(await history(u, '', q({ since: iso(Date.now() + 2 * DAY) })), 200);
      assert.deepEqual(empty.items, []);
      assert.equal(empty.next_cursor, null);
      // Pages with a window.
      const paged = await walk(u, '', 1, `&${q({ since: at(5), until: at(0) })}`);
      assert.deepEqual(paged.map((i) => i.id), ids(expected.slice(1, 6)));
    });

    test('bad queries are 422 naming the parameter', async () => {
      const u = await fresh();
      expectStatus(await sms(u, 'anything?'), 200);
      for (const [query, param] of [
        ['limit=0', 'limit'], ['limit=201', 'limit'], ['limit=abc', 'limit'], ['limit=-1', 'limit'], ['limit=1.5', 'limit'], ['limit=', 'limit'],
        ['cursor=not-a-cursor', 'cursor'], ['cursor=%00%01', 'cursor'], ['cursor=eyJmb28iOiJiYXIifQ', 'cursor'],
        ['since=yesterday', 'since'], ['until=2026-13-45T00:00:00Z', 'until'],
      ]) {
        for (const suffix of ['', '/calls']) {
          const r = await history(u, suffix, query);
          expectStatus(r, 422, 'VALIDATION_ERROR');
          assert.equal(r.body.error.param, param, `${suffix}?${query}`);
        }
      }
      assert.equal(expectStatus(await history(u, '', 'limit=200'), 200).limit, 200);
      assert.equal(expectStatus(await history(u, '', 'limit=1'), 200).limit, 1);
    });

    test('who may read: the user, a manager, an admin; another user 404; an unknown user 404', async () => {
      const u = await fresh();
      const s = expectStatus(await sms(u, 'hello?'), 200);
      for (const who of [u, boss, admin]) {
        for (const suffix of ['', '/sms', '/calls', '/conversations']) {
          expectStatus(await history(u, suffix, '', { as: who }), 200);
        }
        assert.deepEqual(expectStatus(await history(u, '', '', { as: who }), 200).items.map((i) => i.id), [s.id]);
      }
      for (const suffix of ['', '/sms', '/calls', '/conversations']) {
        expectStatus(await history(u, suffix, '', { as: bob }), 404, 'NOT_FOUND');
        expectStatus(await api(url, 'GET', `/api/v1/history/usr_missing${suffix}`, { token: admin.token }), 404, 'NOT_FOUND');
      }
      const key = await newKey(u);
      expectStatus(await api(url, 'GET', `/api/v1/history/${u.id}`, { apiKey: key.key }), 200);
      expectStatus(await api(url, 'GET', `/api/v1/history/${bob.id}`, { apiKey: key.key }), 404, 'NOT_FOUND');
      expectStatus(await api(url, 'GET', `/api/v1/history/${u.id}`), 401);
    });

    test('deleting a conversation keeps its turns and calls and clears the link', async () => {
      const u = await fresh();
      const c = await newConversation(u);
      const t = expectStatus(await turn(u, { text: 'in the conversation', conversation_id: c.id }), 200);
      const call = expectStatus(await logCall(u, { conversation_id: c.id }), 201);
      expectStatus(await api(url, 'DELETE', `/api/v1/users/${u.id}/conversations/${c.id}`, { token: u.token }), 204);
      const got = expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { token: u.token }), 200);
      assert.equal(got.conversation_id, null);
      const h = expectStatus(await history(u), 200);
      assert.deepEqual(h.items.map((i) => i.id).sort(), [t.id, call.id].sort());
      for (const item of h.items) assert.equal(item.conversation_id, null, item.type);
    });

    test('deleting the user deletes their turns, decisions and calls', async () => {
      const u = await fresh();
      const t = expectStatus(await turn(u, { text: 'soon gone' }), 200);
      const s = expectStatus(await sms(u, 'gone?'), 200);
      const call = expectStatus(await logCall(u), 201);
      assert.equal(expectStatus(await history(u, '', '', { as: admin }), 200).items.length, 3);
      for (const table of ['assistant_turns', 'sms_decisions', 'calls']) {
        assert.equal(sql(stack.p, `SELECT COUNT(*) FROM ${table} WHERE user_id = '${u.id}'`), '1', `${table} before`);
      }
      expectStatus(await api(url, 'DELETE', `/api/v1/users/${u.id}`, { token: admin.token }), 204);
      for (const suffix of ['', '/sms', '/calls', '/conversations']) {
        expectStatus(await history(u, suffix, '', { as: admin }), 404, 'NOT_FOUND');
      }
      expectStatus(await api(url, 'GET', `/api/v1/calls/${call.id}`, { token: admin.token }), 404, 'NOT_FOUND');
      // The rows are gone from the database.
      assert.equal(sql(stack.p, `SELECT COUNT(*) FROM assistant_turns WHERE user_id = '${u.id}' OR id = '${t.id}'`), '0', 'assistant_turns');
      assert.equal(sql(stack.p, `SELECT COUNT(*) FROM sms_decisions WHERE user_id = '${u.id}' OR id = '${s.id}'`), '0', 'sms_decisions');
      assert.equal(sql(stack.p, `SELECT COUNT(*) FROM calls WHERE user_id = '${u.id}' OR id = '${call.id}'`), '0', 'calls');
    });
  });

  // ---- limits and usage ---------------------------------------------------------------------

  describe('limits and usage', () => {
    test('a key limited to 2 requests a minute: a turn and a decision pass, the third call is 429', async () => {
      const u = await fresh();
      const key = await newKey(u, { rate_limit_per_minute: 2 });
      const as = { apiKey: key.key };
      const t = expectStatus(await turn(u, { text: 'counted once' }, { as }), 200);
      const d = expectStatus(await sms(u, 'counted twice?', { as }), 200);
      for (const r of [await turn(u, { text: 'one too many' }, { as }), await sms(u, 'one too many?', { as })]) {
        const body = expectStatus(r, 429, 'RATE_LIMIT_EXCEEDED');
        assert.equal(body.error.type, 'rate_limit_error');
        const retryAfter = r.headers.get('retry-after');
        assert.match(retryAfter ?? '', /^\d+$/, `Retry-After: ${retryAfter}`);
        assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60);
      }
      // Refused calls store nothing; the user's own token is not the key's limit.
      assert.deepEqual(expectStatus(await history(u), 200).items.map((i) => i.id), [d.id, t.id]);
      expectStatus(await turn(u, { text: 'with my token' }), 200);
      // Calls and history are not AI calls: not limited.
      expectStatus(await api(url, 'GET', `/api/v1/history/${u.id}`, { apiKey: key.key }), 200);

      const records = await usageOf(key, u, 2);
      assert.equal(records.length, 2, `records: ${JSON.stringify(records)}`);
      const byEndpoint = Object.fromEntries(records.map((rec) => [rec.endpoint, rec]));
      assert.deepEqual(Object.keys(byEndpoint).sort(), ['assistant.sms', 'assistant.turn']);
      assert.equal(byEndpoint['assistant.turn'].prompt_tokens, t.input_tokens);
      assert.equal(byEndpoint['assistant.turn'].completion_tokens, t.output_tokens);
      assert.equal(byEndpoint['assistant.sms'].prompt_tokens, d.input_tokens);
      assert.equal(byEndpoint['assistant.sms'].completion_tokens, d.output_tokens);
      for (const rec of records) {
        assert.equal(rec.api_key_id, key.id);
        assert.equal(rec.user_id, u.id);
        assert.equal(rec.model, 'demo');
        assert.equal(rec.status, 200);
        assert.equal(rec.total_tokens, rec.prompt_tokens + rec.completion_tokens);
        assert.ok(rec.prompt_tokens > 0 && rec.completion_tokens > 0);
      }
    });

    test('a spoken turn records assistant.turn and audio.speech', async () => {
      const u = await fresh();
      const key = await newKey(u);
      expectStatus(await turn(u, { text: 'say it', speech: true }, { as: { apiKey: key.key } }), 200);
      const records = await usageOf(key, u, 2);
      assert.deepEqual(records.map((r) => r.endpoint).sort(), ['assistant.turn', 'audio.speech']);
      assert.ok(records.every((r) => r.status === 200));
    });

    test('a turn in a stored conversation is counted as a conversation message', async () => {
      const u = await fresh();
      const key = await newKey(u);
      const c = await newConversation(u);
      const t = expectStatus(await turn(u, { text: 'in the conversation', conversation_id: c.id }, { as: { apiKey: key.key } }), 200);
      const records = await usageOf(key, u, 1);
      await sleep(300);
      const all = expectStatus(await api(url, 'GET', `/api/v1/usage/${key.id}`, { token: u.token }), 200).items;
      assert.deepEqual(all.map((r) => r.endpoint), ['conversation'], JSON.stringify(records));
      assert.equal(all[0].prompt_tokens, t.input_tokens);
      assert.equal(all[0].completion_tokens, t.output_tokens);
    });

    test('the speech call of a turn is limited on its own: a spoken turn spends 2 of a key\'s 2 requests a minute', async () => {
      const u = await fresh();
      const key = await newKey(u, { rate_limit_per_minute: 2 });
      expectStatus(await turn(u, { text: 'say it', speech: true }, { as: { apiKey: key.key } }), 200);
      const r = await turn(u, { text: 'and again' }, { as: { apiKey: key.key } });
      expectStatus(r, 429, 'RATE_LIMIT_EXCEEDED');
      assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
    });
  });

  test('a quick turn under the default slow_turn_ms (2000) logs no warning', async () => {
    const u = await fresh();
    const id = `quick-turn-${Date.now()}`;
    const started = Date.now();
    expectStatus(await turn(u, { text: 'quick' }, { headers: { 'X-Request-ID': id } }), 200);
    if (Date.now() - started < 1500) {
      await sleep(100);
      const lines = (stack.p.stderr + stack.p.stdout).split('\n').filter((l) => l.includes('slow assistant turn') && l.includes(id));
      assert.deepEqual(lines, [], 'a quick turn was logged as slow');
    }
  });

  // ---- the audio relay --------------------------------------------------------------------

  describe('/v1/audio/speech and /v1/audio/transcriptions', () => {
    test('demo model round trip: speech → WAV → multipart upload → the same text', async () => {
      const u = await fresh();
      const key = await newKey(u);
      const text = 'The quick brown fox jumps over the lazy dog.';
      const s = await speak(url, key.key, { model: 'demo', input: text, voice: 'alloy' });
      assert.equal(s.status, 200, s.text.slice(0, 300));
      assert.match(s.headers.get('content-type'), /^audio\/wav/);
      assert.equal(wavComment(s.bytes), text);
      const j = await transcribe(url, key.key, { file: s.bytes, model: 'demo' });
      assert.equal(j.status, 200, j.text);
      assert.match(j.headers.get('content-type'), /^application\/json/);
      assert.equal(j.body.text, text);
      const t = await transcribe(url, key.key, { file: s.bytes, model: 'demo', response_format: 'text' });
      assert.equal(t.status, 200, t.text);
      assert.match(t.headers.get('content-type'), /^text\/plain/);
      assert.equal(t.text.trim(), text);
      const v = await transcribe(url, key.key, { file: s.bytes, model: 'demo', response_format: 'verbose_json' });
      assert.equal(v.status, 200, v.text);
      assert.equal(v.body.text, text);
      assert.equal(typeof v.body.duration, 'number');
      assert.ok(v.body.duration > 0);
      assert.equal(typeof v.body.language, 'string');
      assert.ok(Array.isArray(v.body.segments));
      // X-API-Key works as well as Bearer.
      const form = new FormData();
      form.append('file', new Blob([s.bytes], { type: 'audio/wav' }), 'a.wav');
      form.append('model', 'demo');
      const viaHeader = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'X-API-Key': key.key }, body: form });
      assert.equal(viaHeader.status, 200);
      assert.equal((await viaHeader.json()).text, text);

      const records = await usageOf(key, u, 5);
      const endpoints = records.map((r) => r.endpoint);
      assert.equal(endpoints.filter((e) => e === 'audio.speech').length, 1, endpoints.join());
      assert.equal(endpoints.filter((e) => e === 'audio.transcriptions').length, 4, endpoints.join());
    });

    test('a transcription upload must be multipart with file and model', async () => {
      const key = await newKey(alice);
      const wav = makeWav('hello');
      const notMultipart = await api(url, 'POST', '/v1/audio/transcriptions', { apiKey: key.key, body: { model: 'demo', file: wav.toString('base64') } });
      expectStatus(notMultipart, 400);
      assert.ok(notMultipart.body?.error, 'an error envelope');
      const form = await fetch(`${url}/v1/audio/transcriptions`, {
        method: 'POST', headers: { Authorization: `Bearer ${key.key}`, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'model=demo',
      });
      assert.equal(form.status, 400);
      const noFile = await transcribe(url, key.key, { model: 'demo' });
      assert.equal(noFile.status, 422, noFile.text);
      assert.equal(noFile.body.error.code, 'VALIDATION_ERROR');
      assert.equal(noFile.body.error.param, 'file');
      const noModel = await transcribe(url, key.key, { file: wav, model: null });
      assert.equal(noModel.status, 422, noModel.text);
      assert.equal(noModel.body.error.code, 'VALIDATION_ERROR');
      assert.equal(noModel.body.error.param, 'model');
      const anonymous = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: new FormData() });
      assert.equal(anonymous.status, 401);
      const speechNoModel = await speak(url, key.key, { input: 'hi', voice: 'alloy' });
      assert.equal(speechNoModel.status, 422, speechNoModel.text);
      assert.equal(speechNoModel.body.error.param, 'model');
      const speechNoInput = await speak(url, key.key, { model: 'demo', voice: 'alloy' });
      assert.equal(speechNoInput.status, 422, speechNoInput.text);
      assert.equal(speechNoInput.body.error.param, 'input');
      const unknownSpeech = await speak(url, key.key, { model: 'no-such-model', input: 'hi', voice: 'alloy' });
      assert.equal(unknownSpeech.status, 404, unknownSpeech.text);
      assert.equal(unknownSpeech.body.error.code, 'MODEL_NOT_FOUND');
      const unknownModel = await transcribe(url, key.key, { file: wav, model: 'no-such-model' });
      assert.equal(unknownModel.status, 404, unknownModel.text);
      assert.equal(unknownModel.body.error.code, 'MODEL_NOT_FOUND');
    });

    test('uploads over 1 MiB pass the transcription route (25 MiB by default); the general 1 MiB limit stays elsewhere', async () => {
      const key = await newKey(alice);
      const big = makeWav('a long recording', 1536 * 1024);
      const r = await transcribe(url, key.key, { file: big, model: 'demo' });
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.equal(r.body.text, 'a long recording');
      const auth = `Bearer ${key.key}`;
      const chat = await rawRequest(stack.p.port, rawHead('POST', '/v1/chat/completions', { Authorization: auth, 'Content-Type': 'application/json', 'Content-Length': 1536 * 1024 }));
      assert.equal(statusOf(chat.data), 413, chat.data.slice(0, 200));
      const speech = await rawRequest(stack.p.port, rawHead('POST', '/v1/audio/speech', { Authorization: auth, 'Content-Type': 'application/json', 'Content-Length': 1536 * 1024 }));
      assert.equal(statusOf(speech.data), 413, speech.data.slice(0, 200));
      const huge = await rawRequest(stack.p.port, rawHead('POST', '/v1/audio/transcriptions', {
        Authorization: auth, 'Content-Type': 'multipart/form-data; boundary=b', 'Content-Length': 26214400 + 1,
      }));
      assert.equal(statusOf(huge.data), 413, huge.data.slice(0, 200));
      assert.equal(JSON.parse(bodyOf(huge.data)).error.code, 'PAYLOAD_TOO_LARGE');
    });

    test('through an OpenAI-compatible provider: speech content types per response_format, transcriptions relayed', async () => {
      const key = await newKey(alice);
      await mock.reset();
      const types = { mp3: 'audio/mpeg', opus: 'audio/ogg', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm' };
      for (const [format, type] of Object.entries(types)) {
        const s = await speak(url, key.key, { model: 'gpt-4o-mini-tts', input: `spoken as ${format}`, voice: 'nova', response_format: format });
        assert.equal(s.status, 200, `${format}: ${s.text.slice(0, 200)}`);
        assert.match(s.headers.get('content-type'), new RegExp(`^${type}`), format);
        if (format !== 'pcm') assert.equal(wavComment(s.bytes), `spoken as ${format}`);
        else assert.ok(s.bytes.length > 0);
      }
      const def = await speak(url, key.key, { model: 'gpt-4o-mini-tts', input: 'default format', voice: 'nova' });
      assert.equal(def.status, 200);
      assert.match(def.headers.get('content-type'), /^audio\/mpeg/);
      const speechReqs = await mockRequests('/v1/audio/speech');
      assert.equal(speechReqs.length, 7);
      const relayed = JSON.parse(speechReqs[0].body);
      assert.equal(relayed.model, 'gpt-4o-mini-tts');
      assert.equal(relayed.input, 'spoken as mp3');
      assert.equal(relayed.voice, 'nova');
      assert.equal(relayed.response_format, 'mp3');
      assert.equal(speechReqs[0].authorization, `Bearer ${stack.systemKey}`, 'the provider\'s key, not the caller\'s');

      const wav = makeWav('relayed through the mock');
      const j = await transcribe(url, key.key, { file: wav, model: 'gpt-4o-transcribe', filename: 'call.wav' });
      assert.equal(j.status, 200, j.text);
      assert.equal(j.body.text, 'relayed through the mock');
      const t = await transcribe(url, key.key, { file: wav, model: 'gpt-4o-transcribe', response_format: 'text' });
      assert.equal(t.status, 200);
      assert.match(t.headers.get('content-type'), /^text\/plain/);
      assert.equal(t.text, 'relayed through the mock');
      const srt = await transcribe(url, key.key, { file: wav, model: 'gpt-4o-transcribe', response_format: 'srt' });
      assert.equal(srt.status, 200);
      assert.match(srt.text, /^1\n00:00:00,000 --> 00:00:\d\d,\d{3}\nrelayed through the mock\n/);
      const upload = (await mockRequests('/v1/audio/transcriptions')).map((r) => JSON.parse(r.body));
      assert.equal(upload[0].model, 'gpt-4o-transcribe');
      assert.equal(upload[0].file_bytes, wav.length, 'the file is relayed whole');
      assert.equal(upload[1].response_format, 'text');
      await mock.reset();
    });
  });
});

// ---- an instance with a slow-turn threshold of 1 ms and a 4 KiB upload limit ------------------

describe(`the assistant with small thresholds (${BACKEND})`, () => {
  let p; let owner; let key;
  before(async () => {
    p = await startParley({ env: { PARLEY_ASSISTANT_SLOW_TURN_MS: '1', PARLEY_AUDIO_MAX_UPLOAD_BYTES: '4096' } });
    owner = await signUp(p.url, 'owner');
    key = await newKeyOn(p.url, owner);
  });
  after(async () => { await p?.cleanup(); });

  async function newKeyOn(url, who) {
    return expectStatus(await api(url, 'POST', '/api/v1/api-keys', { token: who.token, body: { name: 'small' } }), 201);
  }

  test('a turn slower than assistant.slow_turn_ms logs one warning with the request id and where the time went', async () => {
    const id = `slow-turn-${Date.now()}`;
    const r = await api(p.url, 'POST', '/api/v1/conversation', {
      token: owner.token, headers: { 'X-Request-ID': id }, body: { user_id: owner.id, text: 'take your time', speech: true },
    });
    expectStatus(r, 200);
    const line = await waitFor(() => (p.stderr + p.stdout).split('\n').find((l) => l.includes('slow assistant turn') && l.includes(id)), 'the slow-turn warning');
    assert.match(line, new RegExp(`request_id=${id}\\b`));
    assert.match(line, /model=demo\b/);
    for (const part of ['total_ms', 'provider_ms', 'speech_ms', 'parley_ms']) assert.match(line, new RegExp(`${part}=\\d+(\\.\\d+)?`), part);
    await sleep(100);
    const lines = (p.stderr + p.stdout).split('\n').filter((l) => l.includes('slow assistant turn') && l.includes(id));
    assert.equal(lines.length, 1, 'one warning per turn');
    // SMS decisions are not turns.
    const smsId = `slow-sms-${Date.now()}`;
    expectStatus(await api(p.url, 'POST', '/api/v1/sms/decision', { token: owner.token, headers: { 'X-Request-ID': smsId }, body: { user_id: owner.id, text: 'ok?' } }), 200);
    await sleep(100);
    assert.ok(!(p.stderr + p.stdout).split('\n').some((l) => l.includes('slow assistant turn') && l.includes(smsId)));
  });

  test('audio.max_upload_bytes below the general body limit: a 3 KiB upload passes; other routes keep their limit', async () => {
    const small = makeWav('small enough', 3 * 1024);
    const ok = await transcribe(p.url, key.key, { file: small, model: 'demo' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.text, 'small enough');
    // The smaller limit is the transcription route's only.
    const chat = await api(p.url, 'POST', '/v1/chat/completions', {
      apiKey: key.key, body: { model: 'demo', messages: [{ role: 'user', content: 'z'.repeat(8 * 1024) }] },
    });
    expectStatus(chat, 200);
  });

  test('audio.max_upload_bytes below the general body limit: an 8 KiB upload is 413 (with or without Content-Length)', async () => {
    const big = makeWav('too big', 8 * 1024);
    const viaFetch = await transcribe(p.url, key.key, { file: big, model: 'demo' }).catch((e) => ({ status: `failed: ${e.cause?.code ?? e.message}` }));
    assert.equal(viaFetch.status, 413, 'the SDK-style upload');
    if (viaFetch.body) assert.equal(viaFetch.body.error.code, 'PAYLOAD_TOO_LARGE');

    const { body, contentType } = multipart([['model', 'demo'], ['file', big, 'big.wav']]);
    const withLength = await rawRequest(p.port, [
      rawHead('POST', '/v1/audio/transcriptions', { Authorization: `Bearer ${key.key}`, 'Content-Type': contentType, 'Content-Length': body.length }), body,
    ]);
    assert.equal(statusOf(withLength.data), 413, withLength.data.slice(0, 200));
    assert.equal(JSON.parse(bodyOf(withLength.data)).error.code, 'PAYLOAD_TOO_LARGE');

    const chunked = await rawRequest(p.port, [
      rawHead('POST', '/v1/audio/transcriptions', { Authorization: `Bearer ${key.key}`, 'Content-Type': contentType, 'Transfer-Encoding': 'chunked' }),
      Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]),
    ]);
    assert.equal(statusOf(chunked.data), 413, chunked.data.slice(0, 200));
  });
});

// ---- an instance with an upload limit above the general body limit ------------------------------

describe(`audio.max_upload_bytes above the general body limit (${BACKEND})`, () => {
  let p; let key;
  before(async () => {
    p = await startParley({ env: { PARLEY_AUDIO_MAX_UPLOAD_BYTES: String(2 << 20) } });
    const owner = await signUp(p.url, 'owner');
    key = expectStatus(await api(p.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'upload' } }), 201);
  });
  after(async () => { await p?.cleanup(); });

  test('1.5 MiB passes; 3 MiB is 413 with Content-Length and chunked', async () => {
    const ok = await transcribe(p.url, key.key, { file: makeWav('within the limit', 1536 * 1024), model: 'demo' });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
    assert.equal(ok.body.text, 'within the limit');
    const { body, contentType } = multipart([['model', 'demo'], ['file', makeWav('over the limit', 3 << 20), 'big.wav']]);
    const headers = { Authorization: `Bearer ${key.key}`, 'Content-Type': contentType };
    const withLength = await rawRequest(p.port, [rawHead('POST', '/v1/audio/transcriptions', { ...headers, 'Content-Length': body.length }), body]);
    assert.equal(statusOf(withLength.data), 413, withLength.data.slice(0, 200));
    assert.equal(JSON.parse(bodyOf(withLength.data)).error.code, 'PAYLOAD_TOO_LARGE');
    const chunks = [rawHead('POST', '/v1/audio/transcriptions', { ...headers, 'Transfer-Encoding': 'chunked' })];
    for (let at = 0; at < body.length; at += 512 * 1024) {
      const piece = body.subarray(at, at + 512 * 1024);
      chunks.push(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    }
    chunks.push('0\r\n\r\n');
    const chunked = await rawRequest(p.port, chunks);
    assert.equal(statusOf(chunked.data), 413, chunked.data.slice(0, 200));
  });
});
