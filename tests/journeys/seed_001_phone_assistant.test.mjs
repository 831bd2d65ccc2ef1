// Journey for seed 001 ("Backend Service - FastAPI with OpenAI Integration"): the backend of a phone
// assistant — users with contact details and preferences (language, TTS voice, auto reply), a
// conversation turn answered by the model with the TTS settings the phone needs (and, asked for, the
// audio itself), yes/no decisions with a drafted reply on incoming SMS, call logs, and one history of
// turns, calls and SMS per user.
//
// The README's order, walked through parley's HTTP API against the real binary and parley-mock:
//   GET /health → create a user (username, email, phone_number) → get / list / update the user →
//   preferences (create, read, update: language es, tts_voice alloy / nova, auto_reply_enabled) →
//   a conversation turn (every field of the seed's answer, tts following the preferences, spoken
//   audio on request) → SMS decisions (yes on a question, no on spam; send_reply following
//   auto_reply_enabled; the model's structured answer validated) → call logs → the full history and
//   each kind (newest first, typed, paged) → errors (unknown user 404, bad input 422 naming the
//   field) → delete the user → their history is gone (404).
// docs/ASSISTANT.md wins over the seed: the routes live under /api/v1 (POST /api/v1/conversation,
// /api/v1/sms/decision, /api/v1/calls, GET /api/v1/history/{user_id}…), users are parley's accounts
// (an admin creates them with a password: the seed's POST /users/ is open; PATCH, not PUT, updates
// them; limit/offset, not skip/limit, pages them), preferences live at
// /api/v1/users/{id}/preferences (PUT creates or replaces, PATCH merges; the seed's
// POST /preferences/?user_id= and PUT /preferences/{preference_id}), ids are opaque strings, and
// another user's objects are 404.
//
// Each credential mode gets its own stack. The seed's deployment uses one OPENAI_API_KEY and
// OPENAI_MODEL=gpt-3.5-turbo ("system"; PARLEY_DEFAULTS_MODEL plays OPENAI_MODEL here); parley also
// lets the user bring their own provider key ("byok": only theirs; "byok_or_system": theirs when
// stored, else the deployment's). A service key acts as its owner, so the owner's vault key is the
// one the provider must see. Every provider call asserts which key it carried.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startStack, api, expectStatus, signUp, providerKey, expectNoSecretsInLogs, BACKEND,
} from './lib.mjs';
import { sleep, wavComment } from '../integration/harness.mjs';

const MODEL = 'gpt-3.5-turbo'; // the seed's OPENAI_MODEL
const SPEECH_MODEL = 'tts-1'; // defaults.speech_model
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const PUBLIC_ID = /^[A-Za-z0-9]{22}$/;
const USER_FIELDS = ['created_at', 'email', 'id', 'is_active', 'phone_number', 'role', 'updated_at', 'username'];
// docs/ASSISTANT.md's answers. The documented fields must all be there (more may be).
const TURN_FIELDS = ['id', 'user_id', 'input_text', 'gpt_response', 'input_tokens', 'output_tokens', 'processing_time_ms',
  'model_used', 'created_at', 'conversation_id', 'message_id', 'tts'];
const SMS_FIELDS = ['id', 'user_id', 'incoming_text', 'decision', 'reply_text', 'send_reply', 'auto_reply_enabled',
  'model_used', 'input_tokens', 'output_tokens', 'created_at'];
const CALL_FIELDS = ['id', 'user_id', 'direction', 'from_number', 'to_number', 'status', 'started_at', 'ended_at',
  'duration_seconds', 'conversation_id', 'created_at'];

const password = (who) => `pw-${who}-${randomBytes(12).toString('base64url')}`;
// parley-mock's words: runs of non-ASCII-whitespace characters.
const words = (s) => s.split(/[ \t\n\r\f\v]+/).filter(Boolean);
const promptWords = (messages) => messages.reduce((n, m) => n + words(m.content).length, 0);
const iso = (ms) => new Date(ms).toISOString();

function expectValidation(r, param) {
  expectStatus(r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.error.param, param, `param: ${r.text}`);
  assert.equal(r.body.error.type, 'invalid_request_error');
}

function expectFields(body, fields, what) {
  for (const f of fields) assert.ok(f in body, `${what} lacks ${f}: ${JSON.stringify(body)}`);
}

// A chat completion parley-mock answers instead of its own (a queued fault with status 200).
const completion = (content) => ({
  status: 200,
  body: {
    id: 'chatcmpl-journey', object: 'chat.completion', created: 1, model: MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52 },
  },
});

for (const credentials of ['system', 'byok', 'byok_or_system']) {
  describe(`seed 001 phone assistant, credentials = "${credentials}" (${BACKEND})`, () => {
    const ownKey = providerKey('john');
    const pw = { admin: password('admin'), john: password('john'), jane: password('jane'), mona: password('mona') };
    let s; let admin; let john; let jane; let mona;
    let serviceKey; // john's ai_… key
    const transcript = []; // every response body
    // Everything john's history must hold: { type, id, at, record } (record as its route rendered it).
    const made = [];
    const call = async (method, route, opts) => {
      const r = await api(s.url, method, route, opts);
      transcript.push(r.text);
      return r;
    };
    const login = async (username, pass) => {
      const r = await call('POST', '/api/v1/auth/token', { form: { grant_type: 'password', username, password: pass } });
      return expectStatus(r, 200).access_token;
    };
    const seen = () => s.mock.requests();
    // Which key the provider must see for john; null: nothing may reach it.
    let ownStored = false;
    const expectedKey = () => {
      if (credentials === 'system') return s.systemKey;
      if (ownStored) return ownKey;
      return credentials === 'byok' ? null : s.systemKey;
    };
    const turn = (body, auth = { token: john.token }) => call('POST', '/api/v1/conversation', { ...auth, body });
    const decide = (body, auth = { token: john.token }) => call('POST', '/api/v1/sms/decision', { ...auth, body });
    const logCall = (body, auth = { token: john.token }) => call('POST', '/api/v1/calls', { ...auth, body });
    const history = async (rest = '', auth = { token: john.token }, user = john) => call('GET', `/api/v1/history/${user.id}${rest}`, auth);
    const prefsOf = (user = john) => `/api/v1/users/${user.id}/preferences`;
    const remember = (type, record) => {
      const { audio: _audio, ...stored } = record;
      made.push({ type, id: record.id, at: type === 'call' ? record.started_at : record.created_at, record: stored });
    };
    // john's history as it must be: newest `at` first, equal times by id descending.
    const expectedHistory = (type) => made.filter((m) => !type || m.type === type)
      .sort((a, b) => (Date.parse(b.at) - Date.parse(a.at)) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

    // A turn's answer against what the provider saw: `prompt` the system message the model must
    // get (a string, or a RegExp it must match), `tts` the preferences of the moment.
    async function expectTurn(r, { text, tts, prompt, conversationId = null, speech = false }) {
      const body = expectStatus(r, 200);
      expectFields(body, TURN_FIELDS, 'the turn');
      assert.match(body.id, /^turn_\S+$/);
      assert.equal(body.user_id, john.id);
      assert.equal(body.input_text, text);
      assert.equal(body.gpt_response, `mock reply: ${words(text).join(' ')}`);
      assert.equal(body.model_used, MODEL);
      assert.equal(body.output_tokens, words(body.gpt_response).length);
      assert.equal(typeof body.processing_time_ms, 'number');
      assert.ok(body.processing_time_ms > 0 && body.processing_time_ms < 60000, `processing_time_ms ${body.processing_time_ms}`);
      assert.match(body.created_at, ISO_MS);
      assert.ok(Math.abs(Date.parse(body.created_at) - Date.now()) < 60000, body.created_at);
      assert.deepEqual(body.tts, tts);
      assert.equal(body.conversation_id, conversationId);
      if (!conversationId) assert.equal(body.message_id, null);
      if (!speech) assert.ok(!('audio' in body), 'audio only when asked for');
      const reqs = await seen();
      assert.equal(reqs.length, speech ? 2 : 1, JSON.stringify(reqs.map((q) => q.path)));
      assert.equal(reqs[0].path, '/v1/chat/completions');
      assert.equal(reqs[0].authorization, `Bearer ${expectedKey()}`);
      const sent = JSON.parse(reqs[0].body);
      assert.equal(sent.model, MODEL);
      assert.equal(body.input_tokens, promptWords(sent.messages), 'input_tokens are the provider\'s prompt tokens');
      if (!conversationId) {
        assert.equal(sent.messages.length, 2, JSON.stringify(sent.messages));
        assert.deepEqual(sent.messages[1], { role: 'user', content: text });
        assert.equal(sent.messages[0].role, 'system');
        if (typeof prompt === 'string') assert.equal(sent.messages[0].content, prompt);
        else assert.match(sent.messages[0].content, prompt);
      }
      return { body, sent: sent.messages };
    }

    before(async () => {
      s = await startStack({ credentials, mockKeys: [ownKey], env: { PARLEY_DEFAULTS_MODEL: MODEL } });
      admin = await signUp(s.url, 'admin', pw.admin); // the first account is the deployment's admin
    });
    after(async () => { await s?.stop(); });

    test('0. GET /health answers without credentials', async () => {
      const body = expectStatus(await call('GET', '/health'), 200);
      assert.equal(body.status, 'ok');
    });

    test('1. create the user (username, email, phone_number): the admin creates accounts; bad input names the field', async () => {
      const seedUser = { username: 'john_doe', email: 'john@example.com', phone_number: '+1234567890' };
      // The seed's request as it is: parley's accounts need a password.
      expectValidation(await call('POST', '/api/v1/users', { token: admin.token, body: seedUser }), 'password');
      expectStatus(await call('POST', '/api/v1/users', { body: { ...seedUser, password: pw.john } }), 401, 'UNAUTHORIZED');
      const r = await call('POST', '/api/v1/users', { token: admin.token, body: { ...seedUser, password: pw.john } });
      const body = expectStatus(r, 201);
      assert.deepEqual(Object.keys(body).sort(), USER_FIELDS, 'no password or hash in a user record');
      assert.match(body.id, PUBLIC_ID, 'ids are opaque, not sequential');
      assert.equal(body.username, 'john_doe');
      assert.equal(body.email, 'john@example.com');
      assert.equal(body.phone_number, '+1234567890');
      assert.equal(body.role, 'user');
      assert.equal(body.is_active, true);
      assert.match(body.created_at, ISO_MS);
      assert.ok(!r.text.includes(pw.john));
      john = { ...body, token: await login('john_doe', pw.john) };

      const other = (name, extra = {}) => ({ username: name, email: `${name}@example.com`, password: pw.jane, ...extra });
      const dup = await call('POST', '/api/v1/users', { token: admin.token, body: other('JOHN_DOE') });
      assert.equal(expectStatus(dup, 409, 'CONFLICT').error.param, 'username');
      expectValidation(await call('POST', '/api/v1/users', { token: admin.token, body: other('jane_doe', { phone_number: '1234567890' }) }), 'phone_number');
      expectValidation(await call('POST', '/api/v1/users', { token: admin.token, body: other('jane_doe', { email: 'not-an-address' }) }), 'email');
      expectValidation(await call('POST', '/api/v1/users', { token: admin.token, body: { email: 'x@example.com', password: pw.jane } }), 'username');
      expectStatus(await call('POST', '/api/v1/users', { token: john.token, body: other('jane_doe') }), 403, 'FORBIDDEN');

      // Another user (for the 404s) and a manager (who reads everyone's history).
      const j = expectStatus(await call('POST', '/api/v1/users', { token: admin.token, body: other('jane_doe', { phone_number: '+14155550100' }) }), 201);
      jane = { ...j, token: await login('jane_doe', pw.jane) };
      const m = expectStatus(await call('POST', '/api/v1/users', {
        token: admin.token, body: { username: 'mona', email: 'mona@example.com', password: pw.mona, role: 'manager' },
      }), 201);
      mona = { ...m, token: await login('mona', pw.mona) };
    });

    test('2. get the user: the user themself and the admin; another user and an unknown id get 404', async () => {
      const own = expectStatus(await call('GET', `/api/v1/users/${john.id}`, { token: john.token }), 200);
      const byAdmin = expectStatus(await call('GET', `/api/v1/users/${john.id}`, { token: admin.token }), 200);
      assert.deepEqual(own, byAdmin);
      assert.equal(own.phone_number, '+1234567890');
      expectStatus(await call('GET', `/api/v1/users/${john.id}`, { token: jane.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', `/api/v1/users/${'Q'.repeat(22)}`, { token: admin.token }), 404, 'NOT_FOUND');
    });

    test('3. list users with paging (limit, offset); a plain user may not', async () => {
      const all = expectStatus(await call('GET', '/api/v1/users?offset=0&limit=10', { token: admin.token }), 200);
      assert.equal(all.total, 4);
      assert.deepEqual(all.items.map((u) => u.username).sort(), ['admin', 'jane_doe', 'john_doe', 'mona']);
      for (const u of all.items) assert.deepEqual(Object.keys(u).sort(), USER_FIELDS);
      const page = expectStatus(await call('GET', '/api/v1/users?offset=1&limit=2', { token: admin.token }), 200);
      assert.deepEqual([page.items.length, page.total, page.limit, page.offset], [2, 4, 2, 1]);
      expectStatus(await call('GET', '/api/v1/users', { token: john.token }), 403, 'FORBIDDEN');
    });

    test('4. update the user (the seed\'s {email, is_active}): the admin may set both, the user only their profile', async () => {
      const r = await call('PATCH', `/api/v1/users/${john.id}`, { token: admin.token, body: { email: 'newemail@example.com', is_active: true } });
      const body = expectStatus(r, 200);
      assert.equal(body.email, 'newemail@example.com');
      assert.equal(body.is_active, true);
      assert.equal(body.phone_number, '+1234567890');
      expectStatus(await call('PATCH', `/api/v1/users/${john.id}`, { token: john.token, body: { is_active: true } }), 403, 'FORBIDDEN');
      const own = expectStatus(await call('PATCH', `/api/v1/users/${john.id}`, { token: john.token, body: { phone_number: '+14155550123' } }), 200);
      assert.equal(own.phone_number, '+14155550123');
      expectValidation(await call('PATCH', `/api/v1/users/${john.id}`, { token: john.token, body: { phone_number: 'call me' } }), 'phone_number');
      expectStatus(await call('PATCH', `/api/v1/users/${john.id}`, { token: jane.token, body: { email: 'mine@example.com' } }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await call('GET', '/api/v1/users/me', { token: john.token }), 200).email, 'newemail@example.com');
    });

    test('5. preferences: defaults before any; the seed\'s create (PUT), read; bad values name the field', async () => {
      const defaults = expectStatus(await call('GET', prefsOf(), { token: john.token }), 200);
      assert.equal(defaults.language, 'en');
      assert.equal(defaults.tts_voice, 'alloy');
      assert.equal(defaults.auto_reply_enabled, false);

      const seedPrefs = { language: 'en', tts_voice: 'nova', auto_reply_enabled: false, conversation_timeout: 300 };
      const put = expectStatus(await call('PUT', prefsOf(), { token: john.token, body: seedPrefs }), 200);
      for (const [k, v] of Object.entries(seedPrefs)) assert.equal(put[k], v, k);
      assert.equal(put.user_id, john.id);
      const got = expectStatus(await call('GET', prefsOf(), { token: john.token }), 200);
      assert.deepEqual(got, put);

      expectValidation(await call('PUT', prefsOf(), { token: john.token, body: { ...seedPrefs, tts_voice: 'robot' } }), 'tts_voice');
      expectValidation(await call('PUT', prefsOf(), { token: john.token, body: { ...seedPrefs, conversation_timeout: 5 } }), 'conversation_timeout');
      expectValidation(await call('PATCH', prefsOf(), { token: john.token, body: { auto_reply_enabled: 'yes' } }), 'auto_reply_enabled');
      expectValidation(await call('PATCH', prefsOf(), { token: john.token, body: { user_id: john.id } }), 'user_id');
      // Another user: 404; the manager reads but does not change them.
      expectStatus(await call('GET', prefsOf(), { token: jane.token }), 404, 'NOT_FOUND');
      expectStatus(await call('PUT', prefsOf(), { token: jane.token, body: seedPrefs }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await call('GET', prefsOf(), { token: mona.token }), 200).tts_voice, 'nova');
      expectStatus(await call('PATCH', prefsOf(), { token: mona.token, body: { language: 'fr' } }), 403, 'FORBIDDEN');
      assert.deepEqual(expectStatus(await call('GET', prefsOf(), { token: john.token }), 200), put, 'refused changes changed nothing');
    });

    test(`6. provider credentials behind the turn (${credentials}): the key the provider sees`, async () => {
      await s.mock.reset();
      const text = 'Who pays for this?';
      const r = await turn({ user_id: john.id, text });
      if (expectedKey() === null) {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        expectStatus(await decide({ user_id: john.id, text }), 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await seen(), []);
        assert.deepEqual(expectStatus(await history(), 200).items, [], 'a refused turn is not stored');
      } else {
        remember('conversation', (await expectTurn(r, { text, tts: { voice: 'nova', language: 'en' }, prompt: /\S/ })).body);
      }
      // john stores a provider key of his own.
      const put = await call('PUT', `/api/v1/users/${john.id}/api-key`, { token: john.token, body: { api_key: ownKey, provider: 'mock' } });
      assert.equal(expectStatus(put, 200).api_key_masked, `sk-…${ownKey.slice(-4)}`);
      ownStored = true;
    });

    let france; // the README's turn
    let englishPrompt; // the system message parley wrote for it
    test('7. a conversation turn (the README\'s request): every field of the seed\'s answer, tts from the preferences', async () => {
      await s.mock.reset();
      const text = 'What is the capital of France?';
      const r = await turn({ user_id: john.id, text });
      const { body, sent } = await expectTurn(r, { text, tts: { voice: 'nova', language: 'en' }, prompt: /\S/ });
      // Without a system_prompt of the user's, a short prompt in the user's language (en).
      assert.match(sent[0].content, /\ben\b/, `the prompt names the language: ${sent[0].content}`);
      assert.match(r.headers.get('x-request-id') ?? '', /\S/);
      france = body;
      englishPrompt = sent[0].content;
      remember('conversation', body);
    });

    test('8. update the preferences (PATCH language es, tts_voice alloy): the next turn follows them', async () => {
      const patched = expectStatus(await call('PATCH', prefsOf(), { token: john.token, body: { language: 'es', tts_voice: 'alloy' } }), 200);
      assert.equal(patched.language, 'es');
      assert.equal(patched.tts_voice, 'alloy');
      assert.equal(patched.auto_reply_enabled, false, 'PATCH keeps what it does not name');
      assert.equal(patched.conversation_timeout, 300);
      await s.mock.reset();
      const text = '¿Cuál es la capital de Francia?';
      const { body, sent } = await expectTurn(await turn({ user_id: john.id, text }), { text, tts: { voice: 'alloy', language: 'es' }, prompt: /\bes\b/ });
      assert.notEqual(sent[0].content, englishPrompt, 'the prompt follows the language');
      remember('conversation', body);
      // The earlier turn keeps the settings of its moment.
      const stored = expectStatus(await history('/conversations'), 200).items.find((i) => i.id === france.id);
      assert.deepEqual(stored.tts, { voice: 'nova', language: 'en' });

      // A system_prompt of the user's replaces parley's prompt.
      expectStatus(await call('PATCH', prefsOf(), { token: john.token, body: { system_prompt: 'You are Jarvis, a terse phone butler.' } }), 200);
      await s.mock.reset();
      remember('conversation', (await expectTurn(await turn({ user_id: john.id, text: 'Good morning' }), {
        text: 'Good morning', tts: { voice: 'alloy', language: 'es' }, prompt: 'You are Jarvis, a terse phone butler.',
      })).body);
      assert.equal(expectStatus(await call('PATCH', prefsOf(), { token: john.token, body: { system_prompt: null } }), 200).system_prompt, null);
    });

    let spoken;
    test('9. speech: true — the answer carries its audio, made by the provider\'s /v1/audio/speech with the user\'s voice', async () => {
      expectStatus(await call('PATCH', prefsOf(), { token: john.token, body: { tts_voice: 'nova' } }), 200);
      await s.mock.reset();
      const text = 'Read me the weather for Lisbon';
      const r = await turn({ user_id: john.id, text, speech: true });
      const { body } = await expectTurn(r, { text, tts: { voice: 'nova', language: 'es' }, prompt: /\bes\b/, speech: true });
      const { audio } = body;
      assert.ok(audio, `no audio in ${r.text.slice(0, 300)}`);
      assert.deepEqual(Object.keys(audio).sort(), ['bytes', 'content_type', 'data', 'format']);
      const bytes = Buffer.from(audio.data, 'base64');
      assert.equal(audio.data, bytes.toString('base64'), 'data is canonical base64');
      assert.equal(audio.bytes, bytes.length);
      // parley-mock answers a WAV whose comment is the text it was asked to speak: the answer.
      assert.equal(wavComment(bytes), body.gpt_response);
      const formats = { 'audio/mpeg': 'mp3', 'audio/wav': 'wav', 'audio/ogg': 'opus', 'audio/aac': 'aac', 'audio/flac': 'flac', 'audio/pcm': 'pcm' };
      assert.equal(audio.format, formats[audio.content_type.split(';')[0].trim()], `format ${audio.format} for ${audio.content_type}`);

      const [, speech] = await seen();
      assert.equal(speech.path, '/v1/audio/speech');
      assert.equal(speech.authorization, `Bearer ${expectedKey()}`);
      const asked = JSON.parse(speech.body);
      assert.equal(asked.model, SPEECH_MODEL);
      assert.equal(asked.input, body.gpt_response);
      assert.equal(asked.voice, 'nova');
      if (asked.response_format) assert.equal(asked.response_format, audio.format);
      spoken = body;
      remember('conversation', body);
    });

    test('9a. the turn\'s speech call is counted in the user\'s usage (endpoint audio.speech)', async () => {
      let items = [];
      for (let i = 0; i < 50; i++) {
        const r = await call('GET', `/api/v1/users/${john.id}/usage?limit=100`, { token: john.token });
        items = expectStatus(r, 200).items;
        if (items.some((x) => x.request_id && x.model === SPEECH_MODEL)) break;
        await sleep(100);
      }
      const speech = items.filter((x) => x.model === SPEECH_MODEL);
      assert.equal(speech.length, 1, JSON.stringify(items.map((x) => [x.endpoint, x.model])));
      assert.equal(speech[0].endpoint, 'audio.speech');
      assert.equal(speech[0].status, 200);
    });

    test('9b. a failed speech call fails the turn, and nothing is stored', async () => {
      const before_ = expectStatus(await history(), 200).items.length;
      await s.mock.reset();
      // The chat call answers normally (a 1 ms delay alone); the speech call fails on every attempt.
      await s.mock.faults([{ delay_ms: 1 }, ...Array.from({ length: 4 }, () => ({ status: 500 }))]);
      const r = await turn({ user_id: john.id, text: 'Say it out loud', speech: true });
      expectStatus(r, 502, 'OPENAI_API_ERROR');
      const reqs = await seen();
      assert.equal(reqs[0].path, '/v1/chat/completions');
      assert.ok(reqs.slice(1).every((q) => q.path === '/v1/audio/speech') && reqs.length >= 2, JSON.stringify(reqs.map((q) => q.path)));
      assert.equal(expectStatus(await history(), 200).items.length, before_);
      await s.mock.reset();
    });

    // SMS decisions. parley-mock answers the json_schema parley asks for: the enum's FIRST member
    // ("yes") when the message holds a '?', else its LAST ("no"); strings are its reply text.
    const smsSchemaChecks = (sent) => {
      assert.equal(sent.response_format?.type, 'json_schema', JSON.stringify(sent.response_format));
      const js = sent.response_format.json_schema;
      assert.equal(js.strict, true);
      assert.deepEqual(js.schema.properties.decision.enum, ['yes', 'no']);
      assert.equal(js.schema.properties.reply_text.type, 'string');
      assert.deepEqual([...js.schema.required].sort(), ['decision', 'reply_text']);
    };
    async function expectDecision(r, { text, decision, sendReply, autoReply }) {
      const body = expectStatus(r, 200);
      expectFields(body, SMS_FIELDS, 'the decision');
      assert.match(body.id, /^sms_\S+$/);
      assert.equal(body.user_id, john.id);
      assert.equal(body.incoming_text, text);
      assert.equal(body.decision, decision);
      assert.equal(body.reply_text, `mock reply: ${words(text).join(' ')}`);
      assert.equal(body.send_reply, sendReply);
      assert.equal(body.auto_reply_enabled, autoReply);
      assert.equal(body.model_used, MODEL);
      assert.match(body.created_at, ISO_MS);
      const reqs = await seen();
      assert.equal(reqs.length, 1);
      assert.equal(reqs[0].path, '/v1/chat/completions');
      assert.equal(reqs[0].authorization, `Bearer ${expectedKey()}`);
      const sent = JSON.parse(reqs[0].body);
      assert.equal(sent.model, MODEL);
      smsSchemaChecks(sent);
      assert.deepEqual(sent.messages.at(-1), { role: 'user', content: text });
      assert.equal(body.input_tokens, promptWords(sent.messages));
      assert.equal(body.output_tokens, words(JSON.stringify({ decision, reply_text: body.reply_text })).length);
      return body;
    }

    test('10. SMS decision (the README\'s request): a question gets yes and a drafted reply; auto reply off: not sent', async () => {
      await s.mock.reset();
      const text = 'Can you help me tomorrow?';
      remember('sms', await expectDecision(await decide({ user_id: john.id, text }), { text, decision: 'yes', sendReply: false, autoReply: false }));
      await s.mock.reset();
      const spam = 'Buy cheap watches now';
      remember('sms', await expectDecision(await decide({ user_id: john.id, text: spam }), { text: spam, decision: 'no', sendReply: false, autoReply: false }));
    });

    test('11. with auto_reply_enabled on, a yes comes back with send_reply true; a no is never sent', async () => {
      assert.equal(expectStatus(await call('PATCH', prefsOf(), { token: john.token, body: { auto_reply_enabled: true } }), 200).auto_reply_enabled, true);
      await s.mock.reset();
      const text = 'Are we still on for dinner at 8?';
      remember('sms', await expectDecision(await decide({ user_id: john.id, text }), { text, decision: 'yes', sendReply: true, autoReply: true }));
      await s.mock.reset();
      const spam = 'You won a cruise, reply STOP to opt out';
      remember('sms', await expectDecision(await decide({ user_id: john.id, text: spam }), { text: spam, decision: 'no', sendReply: false, autoReply: true }));
    });

    test('12. the model\'s SMS answer is validated: a fenced object with " YES " is accepted, a refused one is asked once more, two are 502 MODEL_OUTPUT_INVALID', async () => {
      const text = 'Can I call you later?';
      // One object in a Markdown fence, any letter case and blanks: accepted, stored lower case.
      await s.mock.reset();
      await s.mock.faults([completion('```json\n{"decision": " YES ", "reply_text": "Sure, call me after six.", "confidence": 0.9}\n```')]);
      const fenced = expectStatus(await decide({ user_id: john.id, text }), 200);
      assert.equal(fenced.decision, 'yes');
      assert.equal(fenced.reply_text, 'Sure, call me after six.');
      assert.equal(fenced.send_reply, true);
      assert.equal((await seen()).length, 1);
      remember('sms', fenced);

      // A refused answer (text around the object), then a good one: two calls, one decision.
      await s.mock.reset();
      await s.mock.faults([completion('Here you go: {"decision": "yes", "reply_text": "Sure"}')]);
      const retried = expectStatus(await decide({ user_id: john.id, text }), 200);
      assert.equal(retried.decision, 'yes');
      assert.equal(retried.reply_text, `mock reply: ${text}`);
      const twice = await seen();
      assert.equal(twice.length, 2, 'asked once more');
      for (const q of twice) {
        assert.equal(q.authorization, `Bearer ${expectedKey()}`);
        smsSchemaChecks(JSON.parse(q.body));
      }
      remember('sms', retried);

      // Refused twice ("maybe", then not JSON at all): 502, nothing stored.
      const count = expectStatus(await history('/sms'), 200).items.length;
      for (const second of ['no JSON here', '{"decision": "yes"}', '{"decision": "yes", "reply_text": 42}', `{"decision": "no", "reply_text": "${'x'.repeat(1601)}"}`]) {
        await s.mock.reset();
        await s.mock.faults([completion('{"decision": "maybe", "reply_text": "Perhaps"}'), completion(second)]);
        const r = await decide({ user_id: john.id, text });
        expectStatus(r, 502, 'MODEL_OUTPUT_INVALID');
        assert.equal(r.body.error.type, 'api_error');
        assert.equal((await seen()).length, 2, second);
      }
      assert.equal(expectStatus(await history('/sms'), 200).items.length, count, 'refused decisions are not stored');
    });

    const calls = {};
    test('13. call log: POST /api/v1/calls → 201 with its duration; GET /api/v1/calls/{id}; times in any zone come back in UTC', async () => {
      // The README's time: 2024-01-15T10:30:00, here with its zone.
      const inbound = { user_id: john.id, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'completed', started_at: '2024-01-15T10:30:00Z', ended_at: '2024-01-15T10:32:05Z' };
      const r = await logCall(inbound);
      const body = expectStatus(r, 201);
      assert.deepEqual(Object.keys(body).sort(), [...CALL_FIELDS].sort());
      assert.match(body.id, /^call_\S+$/);
      assert.equal(body.user_id, john.id);
      assert.equal(body.direction, 'inbound');
      assert.equal(body.from_number, '+14155550123');
      assert.equal(body.to_number, '+14155550199');
      assert.equal(body.status, 'completed');
      assert.equal(body.started_at, '2024-01-15T10:30:00.000Z');
      assert.equal(body.ended_at, '2024-01-15T10:32:05.000Z');
      assert.equal(body.duration_seconds, 125, 'ended_at − started_at');
      assert.equal(body.conversation_id, null);
      assert.match(body.created_at, ISO_MS);
      assert.deepEqual(expectStatus(await call('GET', `/api/v1/calls/${body.id}`, { token: john.token }), 200), body);
      calls.inbound = body;
      remember('call', body);

      // A missed call has no duration, whatever its times; ±hh:mm zones are read.
      const missed = expectStatus(await logCall({ ...inbound, status: 'missed', started_at: '2024-01-15T12:40:00+02:00', ended_at: '2024-01-15T12:40:30+02:00' }), 201);
      assert.equal(missed.started_at, '2024-01-15T10:40:00.000Z');
      assert.equal(missed.duration_seconds, 0);
      remember('call', missed);
      // An explicit duration wins; no ended_at is fine.
      const outbound = expectStatus(await logCall({ user_id: john.id, direction: 'outbound', from_number: '+14155550199', to_number: '+442071838750', status: 'completed', started_at: iso(Date.now() - 90_000), duration_seconds: 42 }), 201);
      assert.equal(outbound.duration_seconds, 42);
      assert.equal(outbound.ended_at, null);
      remember('call', outbound);
      // A call starting a little ahead of the clock (up to a day) is accepted: it is the newest in history.
      const ahead = expectStatus(await logCall({ user_id: john.id, direction: 'outbound', from_number: '+14155550199', to_number: '+14155550123', status: 'busy', started_at: iso(Date.now() + 3_600_000) }), 201);
      assert.equal(ahead.duration_seconds, 0);
      calls.ahead = ahead;
      remember('call', ahead);

      // Another user's call is 404, as if it did not exist; the manager reads it.
      expectStatus(await call('GET', `/api/v1/calls/${body.id}`, { token: jane.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', '/api/v1/calls/call_nosuchcall', { token: john.token }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await call('GET', `/api/v1/calls/${body.id}`, { token: mona.token }), 200).id, body.id);
    });

    test('14. full history (GET /api/v1/history/{user_id}?limit=50): turns, decisions and calls, newest first, typed, as their routes render them', async () => {
      const r = await history('?limit=50');
      const body = expectStatus(r, 200);
      assert.deepEqual(Object.keys(body).sort(), ['items', 'limit', 'next_cursor']);
      assert.equal(body.limit, 50);
      assert.equal(body.next_cursor, null);
      const expected = expectedHistory();
      assert.deepEqual(body.items.map((i) => [i.type, i.id]), expected.map((m) => [m.type, m.id]));
      assert.equal(body.items[0].id, calls.ahead.id, 'a call is placed by its started_at');
      assert.equal(body.items.at(-1).id, calls.inbound.id);
      body.items.forEach((item, i) => {
        const m = expected[i];
        assert.equal(item.at, m.at, `${m.type} ${m.id}: at`);
        assert.ok(!('audio' in item), 'history holds no audio');
        for (const [k, v] of Object.entries(m.record)) {
          if (k === 'auto_reply_enabled') continue; // the preference of the moment, not part of the record
          assert.deepEqual(item[k], v, `${m.type} ${m.id}: ${k}`);
        }
        const extra = Object.keys(item).filter((k) => !(k in m.record) && k !== 'type' && k !== 'at');
        assert.deepEqual(extra, [], `${m.type} ${m.id}: fields its route does not show`);
      });
      assert.ok(body.items.find((i) => i.id === spoken.id), 'the spoken turn is in the history');
      // The default limit is 50.
      assert.equal(expectStatus(await history(), 200).limit, 50);
    });

    test('15. history per kind: /conversations, /calls, /sms', async () => {
      for (const [route, type] of [['/conversations', 'conversation'], ['/calls', 'call'], ['/sms', 'sms']]) {
        const body = expectStatus(await history(`${route}?limit=50`), 200);
        assert.ok(body.items.every((i) => i.type === type), route);
        assert.deepEqual(body.items.map((i) => i.id), expectedHistory(type).map((m) => m.id), route);
        assert.equal(body.next_cursor, null);
      }
    });

    test('16. history pages: limit and next_cursor walk it without gaps or repeats; since / until; bad queries are 422', async () => {
      const all = expectedHistory().map((m) => m.id);
      const walked = [];
      let cursor = null;
      for (let i = 0; i < 50; i++) {
        const body = expectStatus(await history(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), 200);
        walked.push(...body.items.map((x) => x.id));
        assert.ok(body.items.length <= 2);
        cursor = body.next_cursor;
        if (cursor === null) break;
        assert.equal(typeof cursor, 'string');
      }
      assert.deepEqual(walked, all);
      // An item added meanwhile does not shift a page already walked.
      const first = expectStatus(await history('?limit=3'), 200);
      await s.mock.reset();
      const late = expectStatus(await decide({ user_id: john.id, text: 'One more thing?' }), 200);
      remember('sms', late);
      const next = expectStatus(await history(`?limit=3&cursor=${encodeURIComponent(first.next_cursor)}`), 200);
      assert.deepEqual(next.items.map((x) => x.id), all.slice(3, 6));

      // since (inclusive) and until (exclusive).
      const times = expectedHistory();
      const since = times.filter((m) => m.type === 'sms').at(-1).at; // the oldest decision
      const until = calls.ahead.started_at;
      const expectedWindow = times.filter((m) => Date.parse(m.at) >= Date.parse(since) && Date.parse(m.at) < Date.parse(until)).map((m) => m.id);
      const windowed = expectStatus(await history(`?since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`), 200);
      assert.deepEqual(windowed.items.map((x) => x.id), expectedWindow);
      assert.ok(!windowed.items.some((x) => x.id === calls.ahead.id), 'until is exclusive');
      const withZone = expectStatus(await history(`/calls?until=${encodeURIComponent('2024-01-15T12:35:00+02:00')}`), 200);
      assert.deepEqual(withZone.items.map((x) => x.id), [calls.inbound.id]);

      expectValidation(await history('?cursor=not-a-cursor!'), 'cursor');
      expectValidation(await history('?limit=0'), 'limit');
      expectValidation(await history('?limit=201'), 'limit');
      expectValidation(await history('?limit=ten'), 'limit');
      expectValidation(await history('/sms?since=yesterday'), 'since');
      expectValidation(await history('?until=2024-13-45'), 'until');
      assert.equal(expectStatus(await history('?limit=200'), 200).limit, 200);
    });

    let talk; // a stored conversation of john's
    test('17. a turn may continue a stored conversation: the model sees its context; the call may name it', async () => {
      talk = expectStatus(await call('POST', `/api/v1/users/${john.id}/conversations`, {
        token: john.token, body: { title: 'Phone call', system_message: 'You answer the phone.', model: MODEL },
      }), 201);
      const context = [{ role: 'system', content: 'You answer the phone.' }];
      for (const text of ['Hello, who is this?', 'Please book a table for two']) {
        await s.mock.reset();
        const r = await turn({ user_id: john.id, text, conversation_id: talk.id });
        const { body, sent } = await expectTurn(r, { text, tts: { voice: 'nova', language: 'es' }, conversationId: talk.id });
        assert.deepEqual(sent, [...context, { role: 'user', content: text }]);
        assert.equal(typeof body.message_id, 'string');
        context.push({ role: 'user', content: text }, { role: 'assistant', content: body.gpt_response });
        const msgs = expectStatus(await call('GET', `/api/v1/conversations/${talk.id}/messages?limit=200`, { token: john.token }), 200).items;
        assert.deepEqual(msgs.slice(-2).map((m) => [m.role, m.content]), [['user', text], ['assistant', body.gpt_response]]);
        assert.equal(msgs.at(-1).id, body.message_id);
        remember('conversation', body);
      }
      const linked = expectStatus(await logCall({
        user_id: john.id, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'completed',
        started_at: iso(Date.now() - 30_000), ended_at: iso(Date.now() - 1000), conversation_id: talk.id,
      }), 201);
      assert.equal(linked.conversation_id, talk.id);
      assert.equal(linked.duration_seconds, 29);
      calls.linked = linked;
      remember('call', linked);

      // Another user's conversation is 404; an ended one is 409.
      const janes = expectStatus(await call('POST', `/api/v1/users/${jane.id}/conversations`, { token: jane.token, body: { title: 'Mine', model: MODEL } }), 201);
      await s.mock.reset();
      expectStatus(await turn({ user_id: john.id, text: 'hi', conversation_id: janes.id }), 404, 'NOT_FOUND');
      expectStatus(await logCall({
        user_id: john.id, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'completed',
        started_at: '2024-01-15T10:30:00Z', conversation_id: janes.id,
      }), 404, 'NOT_FOUND');
      const ended = expectStatus(await call('POST', `/api/v1/users/${john.id}/conversations`, { token: john.token, body: { title: 'Done', model: MODEL } }), 201);
      expectStatus(await call('POST', `/api/v1/users/${john.id}/conversations/${ended.id}/end`, { token: john.token }), 200);
      expectStatus(await turn({ user_id: john.id, text: 'hi', conversation_id: ended.id }), 409, 'CONFLICT');
      assert.deepEqual(await seen(), []);
    });

    test('18. deleting the conversation keeps its turns and calls and clears their link', async () => {
      expectStatus(await call('DELETE', `/api/v1/users/${john.id}/conversations/${talk.id}`, { token: john.token }), 204);
      assert.equal(expectStatus(await call('GET', `/api/v1/calls/${calls.linked.id}`, { token: john.token }), 200).conversation_id, null);
      const turns = expectStatus(await history('/conversations?limit=200'), 200).items;
      const linkedTurns = made.filter((m) => m.record.conversation_id === talk.id);
      assert.equal(linkedTurns.length, 3, 'two turns and a call named it');
      for (const m of linkedTurns) {
        if (m.type === 'conversation') {
          // The link is the conversation and the answer message in it: both go.
          const t = turns.find((x) => x.id === m.id);
          assert.deepEqual([t?.conversation_id, t?.message_id], [null, null], m.id);
          assert.equal(t.gpt_response, m.record.gpt_response, 'the turn itself is kept');
          m.record.message_id = null;
        }
        m.record.conversation_id = null;
      }
      assert.deepEqual(expectStatus(await history('?limit=200'), 200).items.map((i) => i.id), expectedHistory().map((m) => m.id));
    });

    test('19. a service key (X-API-Key) instead of the token: the turn and the decision act as its owner', async () => {
      const created = expectStatus(await call('POST', '/api/v1/api-keys', { token: john.token, body: { name: 'phone' } }), 201);
      serviceKey = created.key;
      assert.match(serviceKey, /^ai_[0-9A-Za-z]{40}$/);
      await s.mock.reset();
      const text = 'What time is it in Tokyo?';
      remember('conversation', (await expectTurn(await turn({ user_id: john.id, text }, { apiKey: serviceKey }), { text, tts: { voice: 'nova', language: 'es' }, prompt: /\bes\b/ })).body);
      await s.mock.reset();
      const sms = 'Can you pick up the kids?';
      remember('sms', await expectDecision(await decide({ user_id: john.id, text: sms }, { apiKey: serviceKey }), { text: sms, decision: 'yes', sendReply: true, autoReply: true }));
      // And Authorization: Bearer ai_… works the same; the key reads its owner's history.
      await s.mock.reset();
      remember('conversation', (await expectTurn(await turn({ user_id: john.id, text: 'Thanks' }, { token: serviceKey }), { text: 'Thanks', tts: { voice: 'nova', language: 'es' }, prompt: /\bes\b/ })).body);
      const viaKey = expectStatus(await history('?limit=200', { apiKey: serviceKey }), 200);
      assert.deepEqual(viaKey.items.map((i) => i.id), expectedHistory().map((m) => m.id));
      // A key acts for its owner only.
      expectStatus(await turn({ user_id: jane.id, text: 'hi' }, { apiKey: serviceKey }), 404, 'NOT_FOUND');
    });

    test('20. who may do what: another user gets 404 everywhere; a manager reads the history but may not act for john', async () => {
      await s.mock.reset();
      const callBody = { user_id: john.id, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'missed', started_at: iso(Date.now()) };
      for (const r of [
        await turn({ user_id: john.id, text: 'hi' }, { token: jane.token }),
        await decide({ user_id: john.id, text: 'hi?' }, { token: jane.token }),
        await logCall(callBody, { token: jane.token }),
        await history('', { token: jane.token }),
        await history('/sms', { token: jane.token }),
      ]) {
        expectStatus(r, 404, 'NOT_FOUND');
        assert.ok(!r.text.includes('john'), 'a 404 shows nothing of john');
      }
      for (const r of [
        await turn({ user_id: john.id, text: 'hi' }, { token: mona.token }),
        await decide({ user_id: john.id, text: 'hi?' }, { token: mona.token }),
        await logCall(callBody, { token: mona.token }),
      ]) expectStatus(r, 403, 'FORBIDDEN');
      const read = expectStatus(await history('?limit=200', { token: mona.token }), 200);
      assert.deepEqual(read.items.map((i) => i.id), expectedHistory().map((m) => m.id));
      // The admin may act for john.
      const byAdmin = expectStatus(await logCall({ ...callBody, started_at: iso(Date.now() - 5000) }, { token: admin.token }), 201);
      assert.equal(byAdmin.user_id, john.id);
      remember('call', byAdmin);
      // Nothing without credentials.
      for (const r of [await turn({ user_id: john.id, text: 'hi' }, {}), await history('', {})]) {
        expectStatus(r, 401, 'UNAUTHORIZED');
        assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      }
      assert.deepEqual(await seen(), [], 'refused requests never reach the provider');
    });

    test('21. errors: an unknown user is 404; bad input is 422 VALIDATION_ERROR naming the field', async () => {
      await s.mock.reset();
      const nobody = 'Q'.repeat(22);
      for (const r of [
        await turn({ user_id: nobody, text: 'hi' }, { token: admin.token }),
        await decide({ user_id: nobody, text: 'hi?' }, { token: admin.token }),
        await logCall({ user_id: nobody, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'missed', started_at: iso(Date.now()) }, { token: admin.token }),
        await history('', { token: admin.token }, { id: nobody }),
        await history('/calls', { token: admin.token }, { id: nobody }),
        await turn({ user_id: nobody, text: 'hi' }),
      ]) expectStatus(r, 404, 'NOT_FOUND');

      const u = john.id;
      const callOk = { user_id: u, direction: 'inbound', from_number: '+14155550123', to_number: '+14155550199', status: 'completed', started_at: '2024-01-15T10:30:00Z' };
      const cases = [
        ['/api/v1/conversation', { text: 'What is the capital of France?' }, 'user_id'],
        ['/api/v1/conversation', { user_id: 1, text: 'What is the capital of France?' }, 'user_id'],
        ['/api/v1/conversation', { user_id: u }, 'text'],
        ['/api/v1/conversation', { user_id: u, text: '' }, 'text'],
        ['/api/v1/conversation', { user_id: u, text: 'x'.repeat(4001) }, 'text'],
        ['/api/v1/conversation', { user_id: u, text: 'hi', speech: 'yes' }, 'speech'],
        ['/api/v1/conversation', { user_id: u, text: 'hi', temperature: 3 }, 'temperature'],
        ['/api/v1/conversation', { user_id: u, text: 'hi', max_tokens: 0 }, 'max_tokens'],
        ['/api/v1/conversation', { user_id: u, text: 'hi', model: 'no-such-model' }, 'model'],
        ['/api/v1/conversation', { user_id: u, text: 'hi', voice: 'nova' }, 'voice'],
        ['/api/v1/sms/decision', { user_id: u }, 'text'],
        ['/api/v1/sms/decision', { text: 'Can you help me tomorrow?' }, 'user_id'],
        ['/api/v1/sms/decision', { user_id: u, text: '' }, 'text'],
        ['/api/v1/sms/decision', { user_id: u, text: 'hi', decision: 'yes' }, 'decision'],
        ['/api/v1/calls', { ...callOk, direction: 'sideways' }, 'direction'],
        ['/api/v1/calls', { ...callOk, from_number: '555-1234' }, 'from_number'],
        ['/api/v1/calls', { ...callOk, to_number: '+0123' }, 'to_number'],
        ['/api/v1/calls', { ...callOk, status: 'ringing' }, 'status'],
        ['/api/v1/calls', { ...callOk, started_at: undefined }, 'started_at'],
        ['/api/v1/calls', { ...callOk, started_at: 'yesterday' }, 'started_at'],
        ['/api/v1/calls', { ...callOk, started_at: iso(Date.now() + 2 * 86_400_000) }, 'started_at'],
        ['/api/v1/calls', { ...callOk, ended_at: '2024-01-15T10:29:59Z' }, 'ended_at'],
        ['/api/v1/calls', { ...callOk, duration_seconds: 604_801 }, 'duration_seconds'],
        ['/api/v1/calls', { ...callOk, duration_seconds: -1 }, 'duration_seconds'],
        ['/api/v1/calls', { ...callOk, caller_name: 'Mom' }, 'caller_name'],
      ];
      for (const [route, body, param] of cases) {
        const r = await call('POST', route, { token: john.token, body });
        assert.equal(r.status, 422, `${route} ${JSON.stringify(body).slice(0, 120)}: ${r.text.slice(0, 300)}`);
        expectValidation(r, param);
      }
      expectStatus(await call('POST', '/api/v1/conversation', { token: john.token, body: '{"user_id": ' }), 400, 'INVALID_JSON');
      assert.deepEqual(await seen(), [], 'refused requests never reach the provider');
    });

    test('22. a slow turn (over assistant.slow_turn_ms, 2000) logs one warning with the request id, the model and where the time went', async () => {
      await s.mock.reset();
      await s.mock.faults([{ delay_ms: 2100 }]);
      const r = await turn({ user_id: john.id, text: 'Take your time' });
      const { body } = await expectTurn(r, { text: 'Take your time', tts: { voice: 'nova', language: 'es' }, prompt: /\bes\b/ });
      remember('conversation', body);
      assert.ok(body.processing_time_ms >= 2100, `processing_time_ms ${body.processing_time_ms}`);
      const id = r.headers.get('x-request-id');
      const logs = () => `${s.p.stdout}\n${s.p.stderr}`;
      for (let i = 0; i < 40 && !logs().includes(`slow assistant turn: request_id=${id}`); i++) await sleep(50);
      const lines = logs().split('\n').filter((l) => l.includes('slow assistant turn'));
      const line = lines.find((l) => l.includes(`request_id=${id}`));
      assert.ok(line, `no warning for ${id}:\n${lines.join('\n')}`);
      assert.match(line, new RegExp(`model=${MODEL.replace(/\./g, '\\.')}\\b`));
      for (const f of ['total_ms', 'provider_ms', 'speech_ms', 'parley_ms']) assert.match(line, new RegExp(`\\b${f}=\\d+(\\.\\d+)?\\b`), f);
      assert.ok(Number(/provider_ms=(\d+(?:\.\d+)?)/.exec(line)[1]) >= 2000, line);
      assert.equal(lines.length, 1, 'only the slow turn logs a warning');
    });

    test('23. delete the user: 204; their history, calls and keys are gone (404 / 401)', async () => {
      expectStatus(await call('DELETE', `/api/v1/users/${john.id}`, { token: admin.token }), 204);
      for (const rest of ['', '/conversations', '/calls', '/sms']) expectStatus(await history(rest, { token: admin.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', `/api/v1/calls/${calls.inbound.id}`, { token: admin.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', prefsOf(), { token: admin.token }), 404, 'NOT_FOUND');
      expectStatus(await history('', { token: john.token }), 401, 'UNAUTHORIZED');
      expectStatus(await turn({ user_id: john.id, text: 'hi' }, { apiKey: serviceKey }), 401, 'UNAUTHORIZED');
      // A new account under the same name starts with nothing.
      const again = expectStatus(await call('POST', '/api/v1/users', { token: admin.token, body: { username: 'john_doe', email: 'john@example.com', password: pw.john } }), 201);
      assert.notEqual(again.id, john.id);
      const fresh = expectStatus(await history('', { token: await login('john_doe', pw.john) }, again), 200);
      assert.deepEqual(fresh.items, []);
      // jane's things are untouched.
      expectStatus(await history('', { token: jane.token }, jane), 200);
    });

    test('24. no response and no log line contains a provider key', () => {
      assert.ok(transcript.length > 100, 'the journey recorded its responses');
      const fragments = [ownKey, s.systemKey].flatMap((k) => [k, k.slice(-12), k.slice(3, 15)]);
      for (const text of transcript) {
        for (const f of fragments) assert.ok(!text.includes(f), 'a response contains a provider key');
      }
      expectNoSecretsInLogs([...fragments, ...Object.values(pw)]);
    });
  });
}
