// Journey: seed 002, "AI Chat Backend" (../shared/seeds/002_*.txt) — users bring their own OpenAI
// key. Walks its README in order through parley's HTTP API, against the real binary and parley-mock:
//
//   register / log in (JWT on every endpoint)
//   → API key management: PUT /api/v1/users/{user_id}/api-key, GET (masked `sk-…abcd` only — the
//     seed returned the plaintext; PRODUCT.md says masked), DELETE
//   → AI chat: POST /api/v1/chat and POST /api/v1/chat/stream (the seed's /api/chat/ai/send)
//   → the seed's documented errors: no key 400 API_KEY_NOT_CONFIGURED, invalid key 400
//     INVALID_API_KEY, rate limit 429 OPENAI_RATE_LIMIT (after the retries), service unavailable,
//     validation 422 with `param`, message length 1–4000
//   → the security checklist as far as HTTP shows it: keys never returned, never logged, never in
//     an error; another user's key is 404; no token is 401.
//
// The chat steps run under each credential mode of the provider ("system", "byok",
// "byok_or_system"), each with its own parley + parley-mock, and check which key the mock received.
// Then stored messages and chat history (the seed's /api/chat/ai/send "stores both" and
// /api/chat/ai/history/{room_id}) through a conversation, the user's AI chat room: no key yet,
// the key stored, both messages stored and returned, the 1–4000 character limit, the history in
// order with the seed's message fields, another user's room 404, a key the provider refuses.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startStack, api, expectStatus, signUp, sseEvents, sseRequest, providerKey, expectNoSecretsInLogs, BACKEND,
} from './lib.mjs';
import { startParley } from '../integration/harness.mjs';

const MODEL = 'gpt-3.5-turbo'; // the seed's model; served by the provider "mock" (gpt-*)
const PROVIDER = 'mock';       // the vault key is stored under the provider's name
const password = (who) => `pw-${who}-${randomBytes(12).toString('base64url')}`;
const ask = (text) => ({ model: MODEL, messages: [{ role: 'user', content: text }] });

// The masked form: the first 3 and the last 4 characters around "…" (keys here are long).
function expectMasked(masked, key) {
  assert.equal(masked, `${key.slice(0, 3)}…${key.slice(-4)}`);
}

// Pieces of a key's random part that must never show up anywhere (the masked tail is 4 chars).
const fragments = (key) => [key, key.slice(-12), key.slice(9, 21)];

function expectValidation(r, param) {
  expectStatus(r, 422, 'VALIDATION_ERROR');
  assert.equal(r.body.error.param, param, `param: ${r.text}`);
}

// A finished SSE answer: ≥ 2 token events, then exactly one terminal `done` event whose full_text
// is the tokens joined and whose usage adds up.
function expectStreamed(r, expectedText) {
  expectStatus(r, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = sseEvents(r.text);
  const terminal = events.filter((e) => e.done === true || e.error);
  assert.equal(terminal.length, 1, `one terminal event: ${r.text}`);
  const done = events.at(-1);
  assert.equal(done, terminal[0], 'the terminal event comes last');
  assert.equal(done.done, true, r.text);
  const tokens = events.slice(0, -1);
  assert.ok(tokens.length >= 2, `streamed as several tokens: ${r.text}`);
  for (const t of tokens) {
    assert.deepEqual(Object.keys(t), ['token']);
    assert.equal(typeof t.token, 'string');
  }
  assert.equal(done.full_text, tokens.map((t) => t.token).join(''));
  assert.equal(done.full_text, expectedText);
  assert.equal(done.model, MODEL);
  const u = done.usage;
  assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0, JSON.stringify(u));
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  return done;
}

const MODES = ['system', 'byok', 'byok_or_system'];

for (const mode of MODES) {
  describe(`seed 002 AI chat backend, credentials = "${mode}" (${BACKEND})`, () => {
    let s; let ops; let alice; let bob;
    let restarted; // parley started again on the same data (step 6); s.stop() does not know it
    const aliceKey = providerKey('alice');
    const aliceKey2 = providerKey('alice2');
    const bobKey = providerKey('bob');
    const refusedKey = providerKey('revoked'); // a key the provider does not accept
    const passwords = { ops: password('ops'), alice: password('alice'), bob: password('bob') };
    const allSecrets = () => [aliceKey, aliceKey2, bobKey, refusedKey, s.systemKey].flatMap(fragments)
      .concat(Object.values(passwords));
    const responses = []; // every body this describe received, scanned for keys at the end

    // Which key the provider must see for a user whose stored key is `own` (null: none stored);
    // null: the request must not reach the provider at all.
    const expectedKey = (own) => {
      if (mode === 'system') return s.systemKey;
      if (own) return own;
      return mode === 'byok' ? null : s.systemKey;
    };
    const call = async (...args) => {
      const r = await api(s.url, ...args);
      responses.push(r.text);
      return r;
    };
    const keyRoute = (user) => `/api/v1/users/${user.id}/api-key`;
    const setKey = (user, key, extra = {}, as = user) => call('PUT', keyRoute(user), { token: as.token, body: { api_key: key, provider: PROVIDER, ...extra } });
    const getKey = (user, as = user) => call('GET', `${keyRoute(user)}?provider=${PROVIDER}`, { token: as.token });
    const deleteKey = (user, as = user) => call('DELETE', `${keyRoute(user)}?provider=${PROVIDER}`, { token: as.token });
    const chat = (user, text) => call('POST', '/api/v1/chat', { token: user.token, body: ask(text) });
    const stream = (user, text) => call('POST', '/api/v1/chat/stream', { token: user.token, body: ask(text) });
    const seenKeys = async () => (await s.mock.requests()).map((r) => r.authorization);

    before(async () => {
      s = await startStack({
        credentials: mode,
        mockKeys: [aliceKey, aliceKey2, bobKey],
        env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
      });
      ops = await signUp(s.url, 'ops', passwords.ops); // the deployment's first account: admin
    });
    after(async () => { await restarted?.stop(); await s?.stop(); });

    // ---- 1. accounts: the seed's JWT authentication --------------------------------------------

    test('1. a user registers and logs in; the JWT identifies them as a plain user', async () => {
      alice = await signUp(s.url, 'alice', passwords.alice);
      bob = await signUp(s.url, 'bob', passwords.bob);
      assert.match(alice.id, /^[A-Za-z0-9]{22}$/, 'opaque public id');
      assert.notEqual(alice.id, bob.id);
      const me = expectStatus(await call('GET', '/api/v1/users/me', { token: alice.token }), 200);
      assert.equal(me.id, alice.id);
      assert.equal(me.username, 'alice');
      assert.equal(me.role, 'user');
      assert.equal(expectStatus(await call('GET', '/api/v1/users/me', { token: ops.token }), 200).role, 'admin');
    });

    // ---- 2. API key management: PUT / GET / DELETE /api/v1/users/{user_id}/api-key -------------

    test('2. before a key is stored, GET api-key is 404 NOT_FOUND', async () => {
      const r = await getKey(alice);
      expectStatus(r, 404, 'NOT_FOUND');
      assert.equal(r.body.error.param, null);
    });

    test('2a. PUT api-key stores the key and answers only its masked form, never cached', async () => {
      const r = await setKey(alice, aliceKey);
      const body = expectStatus(r, 200);
      assert.deepEqual(Object.keys(body).sort(), ['api_key_masked', 'created_at', 'provider', 'updated_at']);
      assert.equal(body.provider, PROVIDER);
      expectMasked(body.api_key_masked, aliceKey);
      assert.ok(!Number.isNaN(Date.parse(body.created_at)) && body.created_at === body.updated_at);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      for (const f of fragments(aliceKey)) assert.ok(!r.text.includes(f), 'the key came back');
    });

    test('2b. GET api-key shows the masked `sk-…abcd` form only, never the key (unlike the seed)', async () => {
      const r = await getKey(alice);
      const body = expectStatus(r, 200);
      expectMasked(body.api_key_masked, aliceKey);
      assert.equal(body.provider, PROVIDER);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      for (const f of fragments(aliceKey)) assert.ok(!r.text.includes(f), 'GET returned the key');
      // The key was stored for provider "mock"; the default provider "openai" has none.
      expectStatus(await call('GET', keyRoute(alice), { token: alice.token }), 404, 'NOT_FOUND');
    });

    test('2c. PUT again replaces the key: created_at stays, updated_at moves, the mask follows', async () => {
      const before_ = expectStatus(await getKey(alice), 200);
      await new Promise((r) => setTimeout(r, 5));
      const body = expectStatus(await setKey(alice, aliceKey2), 200);
      expectMasked(body.api_key_masked, aliceKey2);
      assert.equal(body.created_at, before_.created_at);
      assert.ok(Date.parse(body.updated_at) > Date.parse(before_.updated_at), `${body.updated_at} > ${before_.updated_at}`);
      expectMasked(expectStatus(await getKey(alice), 200).api_key_masked, aliceKey2);
    });

    test('2d. PUT with verify: true refuses a key the provider rejects (400 INVALID_API_KEY) and stores nothing', async () => {
      await s.mock.reset();
      const r = await setKey(alice, refusedKey, { verify: true });
      expectStatus(r, 400, 'INVALID_API_KEY');
      for (const f of fragments(refusedKey)) assert.ok(!r.text.includes(f), 'the error quotes the key');
      // The provider was asked once, with the key under test.
      assert.deepEqual(await seenKeys(), [`Bearer ${refusedKey}`]);
      expectMasked(expectStatus(await getKey(alice), 200).api_key_masked, aliceKey2);
      // A key the provider accepts is stored after the check.
      expectMasked(expectStatus(await setKey(alice, aliceKey, { verify: true }), 200).api_key_masked, aliceKey);
    });

    test('2e. a malformed key is 422 VALIDATION_ERROR with param "api_key", and the message never repeats it', async () => {
      const cases = ['sk-1', 'sk-has space-123456789', 'x'.repeat(513), 12345678, null];
      for (const bad of cases) {
        const r = await setKey(alice, bad);
        expectValidation(r, 'api_key');
        if (typeof bad === 'string') assert.ok(!r.body.error.message.includes(bad), r.text);
      }
      const missing = await call('PUT', keyRoute(alice), { token: alice.token, body: { provider: PROVIDER } });
      expectValidation(missing, 'api_key');
      expectMasked(expectStatus(await getKey(alice), 200).api_key_masked, aliceKey);
    });

    test('2f. DELETE api-key removes it: 204, then GET and DELETE are 404', async () => {
      const r = await deleteKey(alice);
      expectStatus(r, 204);
      assert.equal(r.text, '');
      expectStatus(await getKey(alice), 404, 'NOT_FOUND');
      expectStatus(await deleteKey(alice), 404, 'NOT_FOUND');
      // Set it again for the chat steps.
      expectStatus(await setKey(alice, aliceKey), 200);
    });

    // ---- 3. AI chat ------------------------------------------------------------------------------

    test('3. POST /api/v1/chat answers content, model, usage and latency; the provider got the right key', async () => {
      await s.mock.reset();
      const r = await chat(alice, 'Hello AI');
      const body = expectStatus(r, 200);
      assert.equal(body.content, 'mock reply: Hello AI');
      assert.equal(body.model, MODEL);
      assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });
      assert.ok(Number.isInteger(body.latency_ms) && body.latency_ms >= 0);
      const seen = await s.mock.requests();
      assert.equal(seen.length, 1);
      assert.equal(seen[0].path, '/v1/chat/completions');
      assert.equal(seen[0].authorization, `Bearer ${expectedKey(aliceKey)}`);
      const sent = JSON.parse(seen[0].body);
      assert.equal(sent.model, MODEL);
      assert.deepEqual(sent.messages, [{ role: 'user', content: 'Hello AI' }]);
    });

    test('3a. POST /api/v1/chat/stream sends `data: {"token"}` events then one `data: {"done", "full_text", "usage"}`', async () => {
      await s.mock.reset();
      const r = await stream(alice, 'Hello streaming AI');
      const done = expectStreamed(r, 'mock reply: Hello streaming AI');
      assert.deepEqual(done.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
      assert.equal(r.headers.get('cache-control'), 'no-cache');
      assert.deepEqual(await seenKeys(), [`Bearer ${expectedKey(aliceKey)}`]);
    });

    test('3b. each user is served with their own key (or the system key), never another user\'s', async () => {
      await s.mock.reset();
      // bob has no key yet.
      const bobNoKey = await chat(bob, 'bob without key');
      if (expectedKey(null) === null) {
        expectStatus(bobNoKey, 400, 'API_KEY_NOT_CONFIGURED');
      } else {
        expectStatus(bobNoKey, 200);
      }
      expectStatus(await setKey(bob, bobKey), 200);
      const jobs = [];
      for (let i = 0; i < 5; i++) {
        jobs.push(chat(alice, `alice-${i}`), chat(bob, `bob-${i}`));
      }
      for (const r of await Promise.all(jobs)) expectStatus(r, 200);
      const seen = await s.mock.requests();
      // Ten chats, plus bob's keyless one when a system key served it.
      assert.equal(seen.length, 10 + (expectedKey(null) === null ? 0 : 1));
      for (const r of seen) {
        const text = JSON.parse(r.body).messages[0].content;
        const want = text === 'bob without key' ? expectedKey(null)
          : text.startsWith('alice-') ? expectedKey(aliceKey) : expectedKey(bobKey);
        assert.equal(r.authorization, `Bearer ${want}`, `request "${text}"`);
      }
    });

    // ---- 4. the seed's error responses -------------------------------------------------------------

    test('4a. "No API key": after DELETE, byok answers 400 API_KEY_NOT_CONFIGURED (chat and stream) and calls nobody', async () => {
      expectStatus(await deleteKey(alice), 204);
      await s.mock.reset();
      const r = await chat(alice, 'no key now');
      const st = await stream(alice, 'no key now');
      if (mode === 'byok') {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        assert.match(r.body.error.message, /api-key/);
        // Before the first token a stream's error is an ordinary JSON error.
        expectStatus(st, 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await seenKeys(), []);
      } else {
        // system / byok_or_system: the deployment's key serves the user.
        assert.equal(expectStatus(r, 200).content, 'mock reply: no key now');
        expectStreamed(st, 'mock reply: no key now');
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`, `Bearer ${s.systemKey}`]);
      }
    });

    test('4b. "Invalid API key": a key the provider refuses is 400 INVALID_API_KEY, tried once, never quoted', async () => {
      expectStatus(await setKey(alice, refusedKey), 200); // stored without verify
      await s.mock.reset();
      const r = await chat(alice, 'with a refused key');
      if (mode === 'system') {
        // The user's own key plays no part: the system key is used and accepted.
        expectStatus(r, 200);
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
      } else {
        expectStatus(r, 400, 'INVALID_API_KEY');
        assert.equal(r.body.error.type, 'invalid_request_error');
        for (const f of fragments(refusedKey)) assert.ok(!r.text.includes(f), 'the error quotes the key');
        assert.deepEqual(await seenKeys(), [`Bearer ${refusedKey}`], 'a refused key is not retried');
        await s.mock.reset();
        expectStatus(await stream(alice, 'stream with a refused key'), 400, 'INVALID_API_KEY');
        assert.equal((await s.mock.requests()).length, 1);
      }
      // Whatever the mode: the provider answering 401 (here a fault) is INVALID_API_KEY, not retried.
      expectStatus(await setKey(alice, aliceKey), 200);
      await s.mock.reset();
      await s.mock.faults([{ status: 401 }, { status: 401 }]);
      const refused = await chat(alice, 'provider says 401');
      expectStatus(refused, 400, 'INVALID_API_KEY');
      assert.deepEqual(await seenKeys(), [`Bearer ${expectedKey(aliceKey)}`]);
      await s.mock.reset();
    });

    test('4c. "Rate limit": the provider\'s 429 is retried 3 times, then 429 OPENAI_RATE_LIMIT (chat and stream)', async () => {
      for (const send of [chat, stream]) {
        await s.mock.reset();
        // Five queued 429s: a client that retried more than 3 times would see a fifth request.
        await s.mock.faults(Array.from({ length: 5 }, () => ({ status: 429 })));
        const r = await send(alice, 'rate limited');
        expectStatus(r, 429, 'OPENAI_RATE_LIMIT');
        assert.equal(r.body.error.type, 'rate_limit_error');
        const seen = await s.mock.requests();
        assert.equal(seen.length, 4, 'one call and three retries');
        for (const q of seen) assert.equal(q.authorization, `Bearer ${expectedKey(aliceKey)}`, 'retries keep the key');
        const gaps = seen.slice(1).map((q, i) => q.received_at_ms - seen[i].received_at_ms);
        assert.ok(gaps.every((g) => g >= 20), `backoff between retries: ${gaps}`);
      }
      // A 429 that clears before the retries run out is invisible to the user.
      await s.mock.reset();
      await s.mock.faults([{ status: 429 }, { status: 429 }]);
      assert.equal(expectStatus(await chat(alice, 'eventually'), 200).content, 'mock reply: eventually');
      assert.equal((await s.mock.requests()).length, 3);
      await s.mock.reset();
    });

    test('4d. "Service unavailable": an unreachable provider is 503 OPENAI_CONNECTION_ERROR, a failing one 502 OPENAI_API_ERROR', async () => {
      await s.mock.reset();
      // Connection resets before any response byte, more of them than any retry budget.
      await s.mock.faults(Array.from({ length: 10 }, () => ({ reset: true })));
      const down = await chat(alice, 'provider down');
      expectStatus(down, 503, 'OPENAI_CONNECTION_ERROR');
      assert.equal(down.body.error.type, 'api_error');
      const tries = await s.mock.requests();
      assert.equal(tries.length, 4, `one call and three retries: ${tries.length} calls`);
      for (const q of tries) assert.equal(q.authorization, `Bearer ${expectedKey(aliceKey)}`);
      await s.mock.reset();
      await s.mock.faults(Array.from({ length: 5 }, () => ({ status: 503 })));
      const failing = await chat(alice, 'provider failing');
      expectStatus(failing, 502, 'OPENAI_API_ERROR');
      assert.equal((await s.mock.requests()).length, 4, 'one call and three retries');
      await s.mock.reset();
      // The service is back: the next message goes through.
      expectStatus(await chat(alice, 'back again'), 200);
    });

    if (mode === 'system') {
      test('4d\'. connection resets: at most 3 retries reach the provider, also with idle pooled connections', async () => {
        // Several idle keep-alive connections to the provider, as after any busy moment.
        for (const r of await Promise.all(Array.from({ length: 10 }, (_, i) => chat(alice, `warm ${i}`)))) expectStatus(r, 200);
        await s.mock.reset();
        await s.mock.faults(Array.from({ length: 10 }, () => ({ reset: true })));
        const down = await chat(alice, 'provider down');
        expectStatus(down, 503, 'OPENAI_CONNECTION_ERROR');
        const tries = await s.mock.requests();
        await s.mock.reset();
        assert.equal(tries.length, 4, `calls that reached the provider: ${tries.length} at +${tries.map((q) => q.received_at_ms - tries[0].received_at_ms).join(', +')} ms`);
      });
    }

    test('4e. a stream the provider drops mid-answer ends with exactly one error event after the tokens', async () => {
      await s.mock.reset();
      await s.mock.faults([{ drop_after_chunks: 3 }]);
      const r = await stream(alice, 'one two three four five');
      expectStatus(r, 200);
      const events = sseEvents(r.text);
      const terminal = events.filter((e) => e.done === true || e.error);
      assert.equal(terminal.length, 1, r.text);
      assert.equal(events.at(-1), terminal[0]);
      assert.ok(events.at(-1).error, `ends with an error: ${r.text}`);
      assert.equal(events.at(-1).error.code, 'OPENAI_CONNECTION_ERROR');
      assert.equal(typeof events.at(-1).error.request_id, 'string');
      assert.ok(events.length >= 2 && events[0].token === 'mock', r.text);
      // Never retried once tokens reached the client.
      assert.equal((await s.mock.requests()).length, 1);
      await s.mock.reset();
    });

    test('4f. validation: the seed\'s body shape, a missing or empty message and an unknown model are 422 with param', async () => {
      await s.mock.reset();
      // The seed's /api/chat/ai/send body {message, room_id, user_id} is not parley's shape.
      expectValidation(await call('POST', '/api/v1/chat', {
        token: alice.token, body: { message: 'Hello AI', room_id: `ai_chat_${alice.id}`, user_id: alice.id },
      }), 'message');
      expectValidation(await call('POST', '/api/v1/chat', { token: alice.token, body: { model: MODEL } }), 'messages');
      expectValidation(await call('POST', '/api/v1/chat', { token: alice.token, body: { model: MODEL, messages: [] } }), 'messages');
      expectValidation(await call('POST', '/api/v1/chat', { token: alice.token, body: { model: MODEL, messages: [{ role: 'user' }] } }), 'messages[0].content');
      expectValidation(await call('POST', '/api/v1/chat', { token: alice.token, body: { model: MODEL, messages: [{ role: 'wizard', content: 'hi' }] } }), 'messages[0].role');
      expectValidation(await call('POST', '/api/v1/chat', { token: alice.token, body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] } }), 'model');
      expectValidation(await call('POST', '/api/v1/chat/stream', { token: alice.token, body: { model: MODEL, messages: [{ role: 'user', content: '' }] } }), 'messages[0].content');
      const notJson = await call('POST', '/api/v1/chat', { token: alice.token, body: '{"messages": [' });
      expectStatus(notJson, 400, 'INVALID_JSON');
      assert.deepEqual(await seenKeys(), [], 'nothing invalid reached the provider');
    });

    test('4g. message length 1–4000 characters: 0 and 4001 are 422, 1 and 4000 (counted in characters, not bytes) pass', async () => {
      await s.mock.reset();
      for (const send of [chat, stream]) {
        for (const text of ['', '€'.repeat(4001), 'a'.repeat(4001)]) {
          const r = await send(alice, text);
          expectValidation(r, 'messages[0].content');
          assert.match(r.body.error.message, /4000/);
        }
      }
      assert.equal((await s.mock.requests()).length, 0);
      expectStatus(await chat(alice, 'x'), 200);
      const long = expectStatus(await chat(alice, '€'.repeat(4000)), 200);
      assert.equal(long.content, `mock reply: ${'€'.repeat(4000)}`);
      expectStreamed(await stream(alice, `${'a'.repeat(3990)} b c`), `mock reply: ${'a'.repeat(3990)} b c`);
      assert.equal((await s.mock.requests()).length, 3);
    });

    // ---- 5. the security checklist, as far as HTTP shows it ----------------------------------------

    test('5a. authorization: another user\'s key is 404 for GET, PUT and DELETE, and stays untouched', async () => {
      const before_ = expectStatus(await getKey(alice), 200);
      for (const r of [
        await getKey(alice, bob),
        await setKey(alice, bobKey, {}, bob),
        await deleteKey(alice, bob),
      ]) {
        expectStatus(r, 404, 'NOT_FOUND');
        assert.ok(!r.text.includes(before_.api_key_masked), 'the 404 reveals the key exists');
      }
      // Exactly as for a user that does not exist.
      expectStatus(await call('GET', `/api/v1/users/${'Z'.repeat(22)}/api-key?provider=${PROVIDER}`, { token: bob.token }), 404, 'NOT_FOUND');
      assert.deepEqual(expectStatus(await getKey(alice), 200), before_);
      await s.mock.reset();
      expectStatus(await chat(alice, 'still mine'), 200);
      assert.deepEqual(await seenKeys(), [`Bearer ${expectedKey(aliceKey)}`]);
      // An admin sees the masked form only.
      const admin = await getKey(alice, ops);
      assert.deepEqual(expectStatus(admin, 200), before_);
    });

    test('5b. JWT required: no token, a forged token or another scheme is 401 on every endpoint, with WWW-Authenticate', async () => {
      await s.mock.reset();
      const [h, p] = alice.token.split('.');
      const forged = `${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`;
      const routes = [
        ['PUT', keyRoute(alice), { api_key: providerKey('intruder'), provider: PROVIDER }],
        ['GET', keyRoute(alice)], ['DELETE', keyRoute(alice)],
        ['POST', '/api/v1/chat', ask('hi')], ['POST', '/api/v1/chat/stream', ask('hi')],
      ];
      for (const [method, route, body] of routes) {
        for (const headers of [{}, { Authorization: `Bearer ${forged}` }, { Authorization: `Basic ${Buffer.from('alice:x').toString('base64')}` }]) {
          const r = await call(method, route, { body, headers });
          expectStatus(r, 401, 'UNAUTHORIZED');
          assert.equal(r.headers.get('www-authenticate'), 'Bearer', `${method} ${route}`);
        }
      }
      assert.deepEqual(await seenKeys(), []);
      expectMasked(expectStatus(await getKey(alice), 200).api_key_masked, aliceKey);
    });

    test('5b\'. error messages carry no key: provider errors that quote it are replaced by parley\'s own message', async () => {
      const quoting = { error: { message: `Incorrect API key provided: ${aliceKey} (${aliceKey.slice(0, 8)}***${aliceKey.slice(-4)})`, type: 'invalid_request_error', code: 'invalid_api_key' } };
      const cases = [[400, 502, 'OPENAI_API_ERROR'], [401, 400, 'INVALID_API_KEY'], [404, 502, 'OPENAI_API_ERROR'], [422, 502, 'OPENAI_API_ERROR']];
      for (const send of [chat, stream]) {
        for (const [upstream, status, code] of cases) {
          await s.mock.reset();
          await s.mock.faults([{ status: upstream, body: quoting }]);
          const r = await send(alice, `provider answers ${upstream}`);
          expectStatus(r, status, code);
          for (const f of [...fragments(aliceKey), ...fragments(s.systemKey), 'Incorrect API key provided']) {
            assert.ok(!r.text.includes(f), `the provider's message reached the client (${upstream}): ${r.text}`);
          }
          assert.equal((await s.mock.requests()).length, 1, `a provider ${upstream} is not retried`);
        }
      }
      await s.mock.reset();
    });

    test('5c. keys are stored encrypted: no key in the data directory, in any response, in the audit log or in a log line', async () => {
      // The audit trail records key changes without the key.
      const audit = await call('GET', '/api/v1/audit?limit=200&action=provider_key.set', { token: ops.token });
      const events = expectStatus(audit, 200).items;
      assert.ok(events.some((e) => e.target_id === alice.id && e.detail?.provider === PROVIDER), audit.text);
      const secrets = allSecrets();
      assert.ok(responses.length > 100);
      for (const text of responses) {
        for (const k of secrets) assert.ok(!text.includes(k), 'a key or password reached a response');
      }
      if (BACKEND === 'sqlite') {
        // The database, its WAL and every other file parley keeps: Fernet tokens and hashes only.
        const files = readdirSync(s.p.dataDir, { withFileTypes: true }).filter((e) => e.isFile());
        assert.ok(files.some((e) => e.name.endsWith('.db')), files.map((e) => e.name).join(','));
        for (const e of files) {
          const bytes = readFileSync(path.join(s.p.dataDir, e.name)).toString('latin1');
          for (const k of [aliceKey, aliceKey2, bobKey, refusedKey, ...Object.values(passwords)]) {
            assert.ok(!bytes.includes(k), `plaintext secret in ${e.name}`);
          }
        }
      }
      expectNoSecretsInLogs(secrets);
    });

    // ---- 6. the seed's troubleshooting: "Encryption errors" ----------------------------------------

    test('6. another encryption key after a restart: the stored key cannot be opened, 500 API_KEY_DECRYPTION_FAILED asks to set it again', async () => {
      const args = s.p.proc.spawnargs;
      const config = args[args.indexOf('--config') + 1];
      await s.p.stop();
      // Same data directory (users, tokens' JWT secret, stored keys); a different Fernet key.
      restarted = await startParley({
        dataDir: s.p.dataDir, databaseUrl: s.p.databaseUrl, args: ['--config', config],
        env: { JOURNEY_SYSTEM_KEY: s.systemKey, PARLEY_ENCRYPTION_KEYS: `${randomBytes(32).toString('base64url')}=`, PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
      });
      s.url = restarted.url;
      // The masked form is still shown: it is stored beside the encrypted key.
      expectMasked(expectStatus(await getKey(alice), 200).api_key_masked, aliceKey);
      await s.mock.reset();
      const r = await chat(alice, 'after the key change');
      const st = await stream(alice, 'after the key change');
      if (mode === 'system') {
        expectStatus(r, 200);
        expectStreamed(st, 'mock reply: after the key change');
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`, `Bearer ${s.systemKey}`]);
      } else {
        for (const x of [r, st]) {
          expectStatus(x, 500, 'API_KEY_DECRYPTION_FAILED');
          assert.match(x.body.error.message, /set your API key again/i);
        }
        assert.deepEqual(await seenKeys(), [], 'nothing reached the provider');
      }
      // Setting the key again fixes it.
      expectMasked(expectStatus(await setKey(alice, aliceKey), 200).api_key_masked, aliceKey);
      await s.mock.reset();
      assert.equal(expectStatus(await chat(alice, 'fixed'), 200).content, 'mock reply: fixed');
      assert.deepEqual(await seenKeys(), [`Bearer ${expectedKey(aliceKey)}`]);
      expectNoSecretsInLogs(allSecrets());
    });
  });
}

// ---- stored messages and history: the seed's /api/chat/ai/send and /api/chat/ai/history ----------
// The seed's "AI Chat" endpoints (lines 39-50) and Messages collection (lines 67-80) map to a
// conversation (the user's AI chat room, "ai_chat_{user_id}", line 50) and its messages. The seed
// is bring-your-own-key (line 5); each credential mode runs with its own parley + parley-mock, the
// mock accepting the users' and the system's keys only (--require-key), so that a wrong key is
// refused upstream with 401.

const MESSAGE_FIELDS = ['active', 'ai_model', 'content', 'conversation_id', 'created_at', 'error_code', 'id', 'is_ai_message',
  'latency_ms', 'message_type', 'parent_id', 'role', 'sender_id', 'seq', 'status', 'timestamp', 'updated_at', 'usage'];

for (const mode of MODES) {
  describe(`seed 002 AI chat backend: stored messages and history, credentials = "${mode}" (${BACKEND})`, () => {
    let s; let alice; let bob; let room;
    const aliceKey = providerKey('alice');
    const refusedKey = providerKey('revoked'); // a key the provider does not accept
    const passwords = { ops: password('ops'), alice: password('alice'), bob: password('bob') };
    const responses = [];
    const call = async (...args) => {
      const r = await api(s.url, ...args);
      responses.push(r.text);
      return r;
    };
    const expectedKey = (own) => {
      if (mode === 'system') return s.systemKey;
      if (own) return own;
      return mode === 'byok' ? null : s.systemKey;
    };
    const messages = (rest = '') => `/api/v1/conversations/${room.id}/messages${rest}`;
    const send = (content, { as = alice, stream = false } = {}) => call('POST', messages(), { token: as.token, body: stream ? { content, stream } : { content } });
    const history = async () => expectStatus(await call('GET', messages('?limit=200'), { token: alice.token }), 200).items;
    const seenKeys = async () => (await s.mock.requests()).map((r) => r.authorization);
    const setKey = (key) => call('PUT', `/api/v1/users/${alice.id}/api-key`, { token: alice.token, body: { api_key: key, provider: PROVIDER } });
    const expected = []; // [{ role, content }] of the room's history so far

    // The seed's "stores both user message and AI response" (line 44): both come back, stored.
    function expectBothStored(body, text) {
      assert.deepEqual(Object.keys(body).sort(), ['assistant_message', 'user_message']);
      const { user_message: u, assistant_message: a } = body;
      for (const m of [u, a]) assert.deepEqual(Object.keys(m).sort(), MESSAGE_FIELDS);
      assert.equal(u.content, text);
      assert.equal(u.sender_id, alice.id);
      assert.equal(u.is_ai_message, false);
      assert.equal(a.content, `mock reply: ${text}`);
      assert.equal(a.is_ai_message, true);
      assert.equal(a.ai_model, MODEL);
      assert.equal(a.status, 'complete');
      assert.equal(a.parent_id, u.id);
      expected.push({ role: 'user', content: text }, { role: 'assistant', content: `mock reply: ${text}` });
    }

    before(async () => {
      s = await startStack({ credentials: mode, mockKeys: [aliceKey], env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true' } });
      await signUp(s.url, 'ops', passwords.ops); // the deployment's first account: admin
      alice = await signUp(s.url, 'alice', passwords.alice);
      bob = await signUp(s.url, 'bob', passwords.bob);
    });
    after(async () => { await s?.stop(); });

    // Lines 47-50: the room a user chats with the AI in, "ai_chat_{user_id}".
    test('1. alice opens her AI chat room: a conversation of hers', async () => {
      const r = await call('POST', `/api/v1/users/${alice.id}/conversations`, { token: alice.token, body: { title: `ai_chat_${alice.id}`, model: MODEL } });
      room = expectStatus(r, 201);
      assert.equal(room.user_id, alice.id);
      assert.equal(room.title, `ai_chat_${alice.id}`);
      assert.equal(room.model, MODEL);
      assert.equal(room.message_count, 0);
      assert.match(room.id, /^[A-Za-z0-9]{22}$/, 'opaque id, not the guessable room name');
      // The room of someone else cannot be opened.
      expectStatus(await call('POST', `/api/v1/users/${alice.id}/conversations`, { token: bob.token, body: { title: 'mine now' } }), 404, 'NOT_FOUND');
    });

    // Lines 182-188 ("400 - No API Key") and line 45 (the user's key is what answers).
    test('2. a message before alice stores a key: 400 API_KEY_NOT_CONFIGURED under byok, nothing stored; else the system key answers', async () => {
      await s.mock.reset();
      const r = await send('Hello AI');
      if (expectedKey(null) === null) {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        assert.match(r.body.error.message, /api-key/);
        expectStatus(await send('Hello AI', { stream: true }), 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await seenKeys(), []);
        assert.deepEqual(await history(), [], 'neither message stored');
        assert.equal(expectStatus(await call('GET', `/api/v1/users/${alice.id}/conversations/${room.id}`, { token: alice.token }), 200).message_count, 0);
      } else {
        expectBothStored(expectStatus(r, 201), 'Hello AI');
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
      }
    });

    // Lines 21-27 and 154-160 (PUT the key), then lines 41-45 and 162-170 (send; both stored).
    test('3. alice stores her key; a message is answered with it, and both the message and the answer are stored and returned', async () => {
      expectMasked(expectStatus(await setKey(aliceKey), 200).api_key_masked, aliceKey);
      for (const text of ['Hello AI', 'How are you today?']) {
        await s.mock.reset();
        const before_ = [...expected];
        expectBothStored(expectStatus(await send(text), 201), text);
        const seen = await s.mock.requests();
        assert.deepEqual(seen.map((q) => q.authorization), [`Bearer ${expectedKey(aliceKey)}`]);
        // The earlier exchanges go along as context.
        assert.deepEqual(JSON.parse(seen[0].body).messages, [...before_, { role: 'user', content: text }]);
      }
      // Streamed: the same two messages are stored.
      await s.mock.reset();
      const st = await call('POST', messages(), { token: alice.token, body: { content: 'Stream it please', stream: true } });
      expectStreamed(st, 'mock reply: Stream it please');
      expected.push({ role: 'user', content: 'Stream it please' }, { role: 'assistant', content: 'mock reply: Stream it please' });
      assert.deepEqual(await seenKeys(), [`Bearer ${expectedKey(aliceKey)}`]);
    });

    // Line 100 ("Message length limits (1-4000 characters)").
    test('4. message length 1–4000 characters: 0 and 4001 are 422 with param "content" and store nothing; 1 and 4000 are stored', async () => {
      await s.mock.reset();
      const count = (await history()).length;
      for (const stream of [false, true]) {
        for (const text of ['', 'a'.repeat(4001), '€'.repeat(4001)]) {
          const r = await send(text, { stream });
          expectValidation(r, 'content');
          assert.match(r.body.error.message, /4000|blank|empty/);
        }
      }
      assert.deepEqual(await seenKeys(), []);
      assert.equal((await history()).length, count, 'nothing stored');
      expectBothStored(expectStatus(await send('x'), 201), 'x');
      expectBothStored(expectStatus(await send('€'.repeat(4000)), 201), '€'.repeat(4000)); // characters, not bytes
      assert.equal((await s.mock.requests()).length, 2);
    });

    // Lines 47-50 and 172-176 (history), lines 67-80 (the stored message's fields).
    test('5. the chat history: every message in order, with sender_id, content, timestamp, message_type, is_ai_message, ai_model, status', async () => {
      const items = await history();
      assert.deepEqual(items.map((m) => ({ role: m.role, content: m.content })), expected);
      for (const m of items) {
        assert.deepEqual(Object.keys(m).sort(), MESSAGE_FIELDS);
        assert.match(m.id, /^[A-Za-z0-9]{22}$/);
        assert.equal(m.conversation_id, room.id);
        assert.equal(m.message_type, 'text');
        assert.equal(m.status, 'complete');
        assert.equal(m.timestamp, m.created_at);
        assert.ok(!Number.isNaN(Date.parse(m.timestamp)));
        if (m.role === 'user') {
          assert.equal(m.sender_id, alice.id);
          assert.equal(m.is_ai_message, false);
          assert.equal(m.ai_model, null);
        } else {
          assert.equal(m.sender_id, null, 'the AI sends as nobody');
          assert.equal(m.is_ai_message, true);
          assert.equal(m.ai_model, MODEL);
        }
      }
      for (let i = 1; i < items.length; i++) {
        assert.ok(items[i].seq > items[i - 1].seq);
        assert.ok(Date.parse(items[i].timestamp) >= Date.parse(items[i - 1].timestamp), 'oldest first');
      }
      const room_ = expectStatus(await call('GET', `/api/v1/users/${alice.id}/conversations/${room.id}`, { token: alice.token }), 200);
      assert.equal(room_.message_count, items.length);
    });

    // Line 96 ("Room access validation implemented") and line 95 (users access only their data).
    test('6. another user\'s history is 404, and so is sending into it; nothing changes', async () => {
      await s.mock.reset();
      const items = await history();
      for (const r of [
        await call('GET', messages(), { token: bob.token }),
        await send('let me in', { as: bob }),
        await call('GET', messages(`/${items[1].id}`), { token: bob.token }),
        await call('GET', `/api/v1/users/${alice.id}/conversations/${room.id}`, { token: bob.token }),
      ]) {
        expectStatus(r, 404, 'NOT_FOUND');
        assert.ok(!r.text.includes('mock reply'), 'a 404 shows no message');
      }
      expectStatus(await call('GET', messages()), 401, 'UNAUTHORIZED');
      assert.deepEqual(await seenKeys(), []);
      assert.deepEqual(await history(), items);
    });

    // Lines 191-198 ("400 - Invalid API Key") and 293-296 (check the user's key): the provider
    // refuses the key with 401.
    test('7. a key the provider refuses: 400 INVALID_API_KEY, tried once; the question is stored with a failed answer', async () => {
      expectStatus(await setKey(refusedKey), 200); // stored without verify
      await s.mock.reset();
      const count = (await history()).length;
      const r = await send('Are you there?');
      if (mode === 'system') {
        // The deployment's key answers; the user's key is not used.
        expectBothStored(expectStatus(r, 201), 'Are you there?');
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
      } else {
        expectStatus(r, 400, 'INVALID_API_KEY');
        assert.equal(r.body.error.type, 'invalid_request_error');
        for (const f of fragments(refusedKey)) assert.ok(!r.text.includes(f), 'the error quotes the key');
        assert.deepEqual(await seenKeys(), [`Bearer ${refusedKey}`], 'a 401 is not retried');
        const failedId = r.headers.get('x-message-id');
        assert.match(failedId, /^[A-Za-z0-9]{22}$/);
        const items = await history();
        assert.equal(items.length, count + 2);
        const [q, a] = items.slice(-2);
        assert.deepEqual([q.role, q.content, q.status, q.sender_id], ['user', 'Are you there?', 'complete', alice.id]);
        assert.deepEqual([a.id, a.role, a.is_ai_message, a.status, a.error_code, a.content, a.parent_id],
          [failedId, 'assistant', true, 'failed', 'INVALID_API_KEY', '', q.id]);
        assert.deepEqual(expectStatus(await call('GET', messages(`/${failedId}`), { token: alice.token }), 200), a);
        const stats = expectStatus(await call('GET', `/api/v1/users/${alice.id}/conversations/${room.id}/stats`, { token: alice.token }), 200);
        assert.equal(stats.failed_answers, 1);
        expected.push({ role: 'user', content: 'Are you there?' }, { role: 'assistant', content: '' });
        // Streamed, the failure is the stream's one terminal event, with the same code.
        await s.mock.reset();
        const st = await sseRequest(s.url, 'POST', messages(), { token: alice.token, body: { content: 'Still there?', stream: true } });
        expectStatus(st, 200);
        assert.equal(st.events.length, 1, st.text);
        const end = st.events[0].data;
        assert.equal(end.error.code, 'INVALID_API_KEY');
        assert.equal(end.error.type, 'invalid_request_error');
        assert.equal(end.status, 'failed');
        assert.equal(end.message_id, st.headers.get('x-message-id'));
        for (const f of fragments(refusedKey)) assert.ok(!st.text.includes(f), 'the error quotes the key');
        assert.deepEqual(await seenKeys(), [`Bearer ${refusedKey}`]);
        expected.push({ role: 'user', content: 'Still there?' }, { role: 'assistant', content: '' });
      }
      // With a good key again the room goes on; the failed turn is not sent as context.
      expectStatus(await setKey(aliceKey), 200);
      await s.mock.reset();
      expectBothStored(expectStatus(await send('Back again'), 201), 'Back again');
      const seen = await s.mock.requests();
      assert.deepEqual(seen.map((q) => q.authorization), [`Bearer ${expectedKey(aliceKey)}`]);
      assert.deepEqual(JSON.parse(seen[0].body).messages.at(-1), { role: 'user', content: 'Back again' });
      assert.ok(!JSON.parse(seen[0].body).messages.some((m) => m.role === 'assistant' && m.content === ''), 'a failed answer is not context');
      assert.deepEqual((await history()).map((m) => ({ role: m.role, content: m.content })), expected);
    });

    // Lines 88-90 and 259-264: keys never logged nor returned.
    test('8. no key or password reaches a response or a log', async () => {
      const secrets = [aliceKey, refusedKey, s.systemKey].flatMap(fragments).concat(Object.values(passwords));
      for (const text of responses) {
        for (const k of secrets) assert.ok(!text.includes(k), 'a key or password reached a response');
      }
      expectNoSecretsInLogs(secrets);
    });
  });
}
