// Journey for seed 003 ("FastAPI AI Service"): an AI microservice with service API keys — created
// (shown once), listed, read, updated, revoked — used on chat, streaming chat (SSE), summarize and
// translate, with usage tracking and rate limits per key.
//
// The README's order, walked through parley's HTTP API against the real binary and parley-mock:
//   GET /health → create an API key → list / get / update it → chat → chat/stream → summarize
//   (concise / detailed / bullet_points, max_length) → translate (source_language "auto") → errors
//   (bad key 401, bad input 422 naming the field) → rate limits (a key with a small
//   rate_limit_per_minute used on chat, summarize and translate until 429) → usage records and the
//   30-day summary of that key → revoke the key → the revoked key is refused.
// PRODUCT.md wins over the seed: managing keys needs an account (the seed's routes are open), keys
// are revoked rather than deleted, and the model default is the offline demo model.
//
// Each credential mode gets its own stack. The seed's deployment uses one OPENAI_API_KEY
// ("system"); parley also lets the key's owner bring their own ("byok": only theirs;
// "byok_or_system": theirs when stored, else the deployment's). A service key acts as its owner, so
// the owner's vault key is the one the provider must see. Every provider call asserts that.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, api, expectStatus, signUp, sseEvents, providerKey, expectNoSecretsInLogs, BACKEND,
} from './lib.mjs';
import { sleep } from '../integration/harness.mjs';

const isTime = (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const words = (s) => s.split(/\s+/).filter(Boolean);
const API_KEY_FIELDS = ['budget_period', 'created_at', 'expires_at', 'id', 'is_active', 'key_prefix', 'last_used_at', 'name',
  'rate_limit_per_minute', 'revoked_at', 'spend_budget_usd', 'status', 'token_budget', 'tokens_per_minute', 'user_id'];

for (const credentials of ['system', 'byok', 'byok_or_system']) {
  describe(`seed 003 FastAPI AI service, credentials = "${credentials}" (${BACKEND})`, () => {
    const ownKey = providerKey('appowner');
    let s; let owner; let stranger;
    let created; // the POST /api/v1/api-keys answer, with `key`
    let key; // the service key itself (ai_…)
    const transcript = []; // every response body except the one that shows the key once

    const call = async (method, route, opts) => {
      const r = await api(s.url, method, route, opts);
      transcript.push(r.text);
      return r;
    };
    const seen = () => s.mock.requests();
    const seenKeys = async () => (await seen()).map((r) => r.authorization);
    // Which key the provider must see once the owner has stored `ownKey`.
    const expectedKey = () => (credentials === 'system' ? s.systemKey : ownKey);

    before(async () => {
      // The seed's RATE_LIMIT_PER_MINUTE default of 10 per key (docs/LIMITS.md).
      s = await startStack({ credentials, mockKeys: [ownKey], env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_LIMITS_DEFAULT_RPM: '10' } });
      await signUp(s.url, 'admin'); // the first account is the deployment's admin
      owner = await signUp(s.url, 'app_owner');
      stranger = await signUp(s.url, 'stranger');
    });
    after(async () => { await s?.stop(); });

    test('GET /health answers without credentials', async () => {
      const body = expectStatus(await call('GET', '/health'), 200);
      assert.equal(body.status, 'ok');
      assert.equal(typeof body.version, 'string');
    });

    test('create an API key: the key (ai_…) is returned once, with the documented fields', async () => {
      // parley needs an account to manage keys (the seed's curl has none).
      expectStatus(await call('POST', '/api/v1/api-keys', { body: { name: 'My App Key', rate_limit_per_minute: 20 } }), 401, 'UNAUTHORIZED');
      const noName = await call('POST', '/api/v1/api-keys', { token: owner.token, body: { rate_limit_per_minute: 20 } });
      assert.equal(expectStatus(noName, 422, 'VALIDATION_ERROR').error.param, 'name');
      const badRate = await call('POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'x', rate_limit_per_minute: -1 } });
      assert.equal(expectStatus(badRate, 422, 'VALIDATION_ERROR').error.param, 'rate_limit_per_minute');

      const r = await api(s.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'My App Key', rate_limit_per_minute: 20 } });
      created = expectStatus(r, 201);
      key = created.key;
      assert.match(key, /^ai_[0-9A-Za-z]{40}$/);
      assert.deepEqual(Object.keys(created).sort(), [...API_KEY_FIELDS, 'key'].sort());
      assert.equal(created.name, 'My App Key');
      assert.equal(created.key_prefix, key.slice(0, 10));
      assert.equal(created.is_active, true);
      assert.equal(created.status, 'active');
      assert.equal(created.rate_limit_per_minute, 20);
      assert.ok(isTime(created.created_at));
      assert.equal(created.last_used_at, null);
      assert.equal(created.user_id, owner.id);
      assert.match(created.id, /^[0-9A-Za-z]{22}$/, 'ids are opaque, not sequential');
      assert.equal(r.headers.get('cache-control'), 'no-store');
    });

    test('list and get the key: it is never shown again; others cannot see it', async () => {
      const list = await call('GET', '/api/v1/api-keys', { apiKey: key }); // the key manages its owner's keys
      const body = expectStatus(list, 200);
      assert.equal(body.total, 1);
      assert.equal(body.items.length, 1);
      const { key: _shownOnce, ...listed } = created;
      assert.deepEqual(body.items[0], listed);
      const one = await call('GET', `/api/v1/api-keys/${created.id}`, { token: owner.token });
      assert.deepEqual(Object.keys(expectStatus(one, 200)).sort(), API_KEY_FIELDS);
      assert.equal(one.body.id, created.id);
      for (const r of [list, one]) assert.ok(!r.text.includes(key), 'the key was shown again');

      expectStatus(await call('GET', '/api/v1/api-keys/NoSuchKeyId0000000000', { token: owner.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', `/api/v1/api-keys/${created.id}`, { token: stranger.token }), 404, 'NOT_FOUND');
      assert.equal(expectStatus(await call('GET', '/api/v1/api-keys', { token: stranger.token }), 200).total, 0);
    });

    test('update the key (PATCH): name and rate_limit_per_minute', async () => {
      const r = await call('PATCH', `/api/v1/api-keys/${created.id}`, { token: owner.token, body: { name: 'Renamed App Key', rate_limit_per_minute: 30 } });
      const body = expectStatus(r, 200);
      assert.equal(body.name, 'Renamed App Key');
      assert.equal(body.rate_limit_per_minute, 30);
      assert.equal(body.status, 'active');
      // null returns the key to the deployment's default.
      assert.equal(expectStatus(await call('PATCH', `/api/v1/api-keys/${created.id}`, { token: owner.token, body: { rate_limit_per_minute: null } }), 200).rate_limit_per_minute, null);
      assert.equal(expectStatus(await call('PATCH', `/api/v1/api-keys/${created.id}`, { token: owner.token, body: { name: 'My App Key', rate_limit_per_minute: 20 } }), 200).rate_limit_per_minute, 20);
      const unknown = await call('PATCH', `/api/v1/api-keys/${created.id}`, { token: owner.token, body: { key_prefix: 'ai_x' } });
      assert.equal(expectStatus(unknown, 422, 'VALIDATION_ERROR').error.param, 'key_prefix');
      expectStatus(await call('PATCH', `/api/v1/api-keys/${created.id}`, { token: stranger.token, body: { name: 'mine' } }), 404, 'NOT_FOUND');
    });

    test(`provider credentials behind the service key (${credentials})`, async () => {
      const ask = () => call('POST', '/api/v1/chat', { apiKey: key, body: { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'Who pays?' }] } });
      await s.mock.reset();
      const before = await ask();
      if (credentials === 'byok') {
        expectStatus(before, 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await seenKeys(), []);
      } else {
        expectStatus(before, 200);
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
      }
      // The owner stores a provider key, with the service key acting as them.
      const put = await call('PUT', `/api/v1/users/${owner.id}/api-key`, { apiKey: key, body: { api_key: ownKey, provider: 'mock' } });
      assert.equal(expectStatus(put, 200).api_key_masked, `sk-…${ownKey.slice(-4)}`);
      await s.mock.reset();
      expectStatus(await ask(), 200);
      assert.deepEqual(await seenKeys(), [`Bearer ${expectedKey()}`]);
    });

    test('chat: the README request, with X-API-Key and with Authorization: Bearer ai_…', async () => {
      const readme = {
        messages: [
          { role: 'system', content: 'You are a helpful assistant.' },
          { role: 'user', content: 'What is Python?' },
        ],
        model: 'gpt-3.5-turbo',
        max_tokens: 500,
      };
      await s.mock.reset();
      for (const auth of [{ apiKey: key }, { token: key }]) {
        const r = await call('POST', '/api/v1/chat', { ...auth, body: readme });
        const body = expectStatus(r, 200);
        assert.equal(body.content, 'mock reply: What is Python?');
        assert.equal(body.model, 'gpt-3.5-turbo');
        assert.deepEqual(body.usage, { prompt_tokens: 8, completion_tokens: 5, total_tokens: 13 });
        assert.equal(typeof body.latency_ms, 'number');
        assert.match(r.headers.get('x-request-id') ?? '', /\S/);
      }
      const reqs = await seen();
      assert.equal(reqs.length, 2);
      for (const x of reqs) {
        assert.equal(x.authorization, `Bearer ${expectedKey()}`);
        const sent = JSON.parse(x.body);
        assert.deepEqual(sent.messages, readme.messages);
        assert.equal(sent.max_tokens, 500);
        assert.equal(sent.model, 'gpt-3.5-turbo');
      }
    });

    test('chat/stream: tokens as Server-Sent Events, then one done event with full_text', async () => {
      await s.mock.reset();
      const r = await call('POST', '/api/v1/chat/stream', { apiKey: key, body: { messages: [{ role: 'user', content: 'Write a short poem about coding' }], model: 'gpt-3.5-turbo' } });
      expectStatus(r, 200);
      assert.match(r.headers.get('content-type'), /^text\/event-stream/);
      const events = sseEvents(r.text);
      const tokens = events.filter((e) => 'token' in e).map((e) => e.token);
      assert.ok(tokens.length >= 2, 'the answer arrives token by token');
      assert.deepEqual(tokens.slice(0, 3), ['mock', ' reply:', ' Write']);
      const terminal = events.filter((e) => e.done || e.error);
      assert.equal(terminal.length, 1);
      const done = events.at(-1);
      assert.equal(done.done, true);
      assert.equal(done.full_text, tokens.join(''));
      assert.equal(done.full_text, 'mock reply: Write a short poem about coding');
      assert.deepEqual(done.usage, { prompt_tokens: 6, completion_tokens: 8, total_tokens: 14 });
      const reqs = await seen();
      assert.equal(reqs.length, 1);
      assert.equal(reqs[0].authorization, `Bearer ${expectedKey()}`);
      assert.equal(JSON.parse(reqs[0].body).stream, true);
    });

    test('chat/stream failures: before the first token an ordinary JSON error, after it exactly one error event', async () => {
      const body = { messages: [{ role: 'user', content: 'one two three four five six' }], model: 'gpt-3.5-turbo' };
      await s.mock.reset();
      await s.mock.faults(Array.from({ length: 4 }, () => ({ status: 429 })));
      const early = await call('POST', '/api/v1/chat/stream', { apiKey: key, body });
      expectStatus(early, 429, 'OPENAI_RATE_LIMIT');
      assert.equal((await seen()).length, 4, '1 attempt and 3 retries');

      await s.mock.reset();
      await s.mock.faults([{ drop_after_chunks: 3 }]);
      const late = await call('POST', '/api/v1/chat/stream', { apiKey: key, body });
      expectStatus(late, 200);
      const events = sseEvents(late.text);
      assert.ok(events.some((e) => 'token' in e), 'tokens arrived before the failure');
      assert.equal(events.filter((e) => e.done || e.error).length, 1);
      const last = events.at(-1);
      assert.ok(last.error, `the stream must end with an error event: ${late.text}`);
      assert.equal(typeof last.error.code, 'string');
      assert.equal(typeof last.error.request_id, 'string');
      assert.equal((await seen()).length, 1, 'a stream that reached the client is never retried');
    });

    test('summarize: styles concise, detailed and bullet_points with max_length', async () => {
      const text = 'Your long text to summarize goes here, with enough words to need a summary.';
      const prompts = new Map();
      for (const style of ['concise', 'detailed', 'bullet_points']) {
        await s.mock.reset();
        const r = await call('POST', '/api/v1/summarize', { apiKey: key, body: { text, max_length: 100, style, model: 'gpt-3.5-turbo' } });
        const body = expectStatus(r, 200);
        assert.equal(body.summary, `mock reply: ${words(text).join(' ')}`);
        assert.equal(body.style, style);
        assert.equal(body.max_length, 100);
        assert.equal(body.model, 'gpt-3.5-turbo');
        assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
        assert.equal(typeof body.latency_ms, 'number');
        const reqs = await seen();
        assert.equal(reqs.length, 1);
        assert.equal(reqs[0].authorization, `Bearer ${expectedKey()}`);
        const sent = JSON.parse(reqs[0].body).messages;
        assert.deepEqual(sent.at(-1), { role: 'user', content: text });
        const instruction = sent.filter((m) => m.role === 'system').map((m) => m.content).join(' ');
        assert.match(instruction, /\b100\b/, 'max_length must reach the model');
        prompts.set(style, instruction);
      }
      assert.match(prompts.get('bullet_points'), /bullet/i);
      assert.equal(new Set(prompts.values()).size, 3, 'each style must ask the model differently');

      // Defaults: concise, 150.
      const d = expectStatus(await call('POST', '/api/v1/summarize', { apiKey: key, body: { text, model: 'gpt-3.5-turbo' } }), 200);
      assert.equal(d.style, 'concise');
      assert.equal(d.max_length, 150);
    });

    test('translate: source_language "auto" detects the language; an explicit one is passed on', async () => {
      await s.mock.reset();
      const r = await call('POST', '/api/v1/translate', { apiKey: key, body: { text: 'Hello, how are you?', source_language: 'auto', target_language: 'Spanish', model: 'gpt-3.5-turbo' } });
      const body = expectStatus(r, 200);
      assert.equal(body.translated_text, 'mock reply: Hello, how are you?');
      assert.equal(body.source_language, 'auto');
      assert.equal(body.target_language, 'Spanish');
      assert.equal(body.model, 'gpt-3.5-turbo');
      assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
      const reqs = await seen();
      assert.equal(reqs.length, 1);
      assert.equal(reqs[0].authorization, `Bearer ${expectedKey()}`);
      const sent = JSON.parse(reqs[0].body).messages;
      assert.deepEqual(sent.at(-1), { role: 'user', content: 'Hello, how are you?' });
      const autoPrompt = sent.filter((m) => m.role === 'system').map((m) => m.content).join(' ');
      assert.match(autoPrompt, /Spanish/);

      // Omitted: auto. Explicit: named to the model.
      assert.equal(expectStatus(await call('POST', '/api/v1/translate', { apiKey: key, body: { text: 'Bonjour', target_language: 'German', model: 'gpt-3.5-turbo' } }), 200).source_language, 'auto');
      await s.mock.reset();
      const explicit = expectStatus(await call('POST', '/api/v1/translate', { apiKey: key, body: { text: 'Good morning', source_language: 'English', target_language: 'Spanish', model: 'gpt-3.5-turbo' } }), 200);
      assert.equal(explicit.source_language, 'English');
      const p2 = JSON.parse((await seen())[0].body).messages.filter((m) => m.role === 'system').map((m) => m.content).join(' ');
      assert.match(p2, /English/);
      assert.notEqual(p2, autoPrompt);
    });

    test('errors: a missing or unknown key is 401; invalid input is 422 VALIDATION_ERROR naming the field', async () => {
      await s.mock.reset();
      const msg = { messages: [{ role: 'user', content: 'hi' }], model: 'gpt-3.5-turbo' };
      for (const auth of [{}, { apiKey: `ai_${'x'.repeat(40)}` }, { token: `ai_${'y'.repeat(40)}` }]) {
        const r = await call('POST', '/api/v1/chat', { ...auth, body: msg });
        expectStatus(r, 401, 'UNAUTHORIZED');
        assert.equal(r.headers.get('www-authenticate'), 'Bearer');
        assert.equal(r.body.error.type, 'authentication_error');
      }
      const cases = [
        ['/api/v1/chat', {}, 'messages'],
        ['/api/v1/chat', { messages: [] }, 'messages'],
        ['/api/v1/chat', { messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
        ['/api/v1/chat', { messages: [{ role: 'user', content: '' }] }, 'messages[0].content'],
        ['/api/v1/chat', { ...msg, temperature: 3 }, 'temperature'],
        ['/api/v1/chat', { ...msg, max_tokens: 0 }, 'max_tokens'],
        ['/api/v1/chat', { ...msg, model: 'no-such-model' }, 'model'],
        ['/api/v1/chat/stream', { ...msg, stream_please: true }, 'stream_please'],
        ['/api/v1/summarize', { text: 'x', style: 'poem' }, 'style'],
        ['/api/v1/summarize', { text: 'x', max_length: 5 }, 'max_length'],
        ['/api/v1/summarize', { style: 'concise' }, 'text'],
        ['/api/v1/translate', { text: 'Hello' }, 'target_language'],
        ['/api/v1/translate', { target_language: 'Spanish' }, 'text'],
      ];
      for (const [route, body, param] of cases) {
        const r = await call('POST', route, { apiKey: key, body });
        assert.equal(expectStatus(r, 422, 'VALIDATION_ERROR').error.param, param, `${route} ${JSON.stringify(body)}`);
        assert.equal(r.body.error.type, 'invalid_request_error');
      }
      expectStatus(await call('POST', '/api/v1/chat', { apiKey: key, body: '{"messages": [' }), 400, 'INVALID_JSON');
      assert.deepEqual(await seen(), [], 'refused requests never reach the provider');
    });

    // Rate limiting per key (seed: rate_limit_per_minute, 10 by default; docs/LIMITS.md): the call
    // over the key's limit is 429 RATE_LIMIT_EXCEEDED with Retry-After and X-RateLimit-*, and every
    // answer of an AI route says what is left. A smaller limit than the seed's 20 reaches it quickly.
    let limited; // a key with rate_limit_per_minute 3, and what its calls reported
    const limitedUsage = [];
    test('rate limit per key: calls count down X-RateLimit-Remaining; the one over rate_limit_per_minute is 429 RATE_LIMIT_EXCEEDED with Retry-After', async () => {
      limited = expectStatus(await api(s.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'limited', rate_limit_per_minute: 3 } }), 201);
      assert.equal(limited.rate_limit_per_minute, 3);
      await s.mock.reset();
      const calls = [
        ['/api/v1/chat', { messages: [{ role: 'user', content: 'What is Python?' }], model: 'gpt-3.5-turbo', max_tokens: 500 }],
        ['/api/v1/summarize', { text: 'Python is a programming language that lets you work quickly.', style: 'concise', model: 'gpt-3.5-turbo' }],
        ['/api/v1/translate', { text: 'Hello, how are you?', source_language: 'auto', target_language: 'Spanish', model: 'gpt-3.5-turbo' }],
      ];
      for (let i = 0; i < calls.length; i++) {
        const [route, body] = calls[i];
        const r = await call('POST', route, { apiKey: limited.key, body });
        limitedUsage.push(expectStatus(r, 200).usage);
        assert.equal(r.headers.get('x-ratelimit-limit'), '3', route);
        assert.equal(r.headers.get('x-ratelimit-remaining'), String(2 - i), route);
        assert.match(r.headers.get('x-ratelimit-reset') ?? '', /^\d+$/, route);
        assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3', route);
        assert.equal(r.headers.get('x-ratelimit-remaining-requests'), String(2 - i), route);
      }
      for (const [route, body] of [
        ['/api/v1/chat', calls[0][1]],
        ['/api/v1/chat/stream', { messages: [{ role: 'user', content: 'Write a short poem about coding' }], model: 'gpt-3.5-turbo' }],
        ['/api/v1/translate', calls[2][1]],
      ]) {
        const r = await call('POST', route, { apiKey: limited.key, body });
        const err = expectStatus(r, 429, 'RATE_LIMIT_EXCEEDED').error;
        assert.equal(err.type, 'rate_limit_error');
        assert.match(err.message, /\b3\b/, 'the message names the limit');
        const retryAfter = r.headers.get('retry-after');
        assert.match(retryAfter ?? '', /^\d+$/);
        assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `Retry-After ${retryAfter}`);
        assert.equal(r.headers.get('x-ratelimit-limit'), '3');
        assert.equal(r.headers.get('x-ratelimit-remaining'), '0');
        const reset = Number(r.headers.get('x-ratelimit-reset'));
        assert.ok(reset >= 1 && reset <= 60, `X-RateLimit-Reset ${reset}`);
      }
      const reqs = await seen();
      assert.equal(reqs.length, 3, 'refused calls never reach the provider');
      for (const x of reqs) assert.equal(x.authorization, `Bearer ${expectedKey()}`);
      // Another key of the same owner is not limited by this one.
      expectStatus(await call('POST', '/api/v1/chat', { apiKey: key, body: calls[0][1] }), 200);
    });

    test('a key made without rate_limit_per_minute gets the deployment default (the seed\'s 10 a minute)', async () => {
      const plain = expectStatus(await api(s.url, 'POST', '/api/v1/api-keys', { token: owner.token, body: { name: 'default limit' } }), 201);
      assert.equal(plain.rate_limit_per_minute, null);
      const body = { messages: [{ role: 'user', content: 'hi' }], model: 'gpt-3.5-turbo' };
      for (let i = 1; i <= 10; i++) {
        const r = await call('POST', '/api/v1/chat', { apiKey: plain.key, body });
        expectStatus(r, 200);
        assert.equal(r.headers.get('x-ratelimit-limit'), '10');
        assert.equal(r.headers.get('x-ratelimit-remaining'), String(10 - i));
      }
      expectStatus(await call('POST', '/api/v1/chat', { apiKey: plain.key, body }), 429, 'RATE_LIMIT_EXCEEDED');
      // The owner's own JWT calls are not a key's: the key default does not apply to them.
      expectStatus(await call('POST', '/api/v1/chat', { token: owner.token, body }), 200);
    });

    // Usage tracking (seed: GET /api/v1/usage/{key_id}, GET /api/v1/usage/{key_id}/summary?days=30).
    // Calls are recorded off the request path (four times a second): poll.
    const pollUsage = async (route, auth, done) => {
      let r;
      for (let i = 0; i < 60; i++) {
        r = await call('GET', route, auth);
        if (r.status === 200 && done(r.body)) return r;
        await sleep(100);
      }
      return r;
    };
    const SUMMARY_FIELDS = ['total_requests', 'total_tokens', 'total_prompt_tokens', 'total_completion_tokens'];

    test('usage records: GET /api/v1/usage/{key_id} lists the calls made with the key, newest first; others get 404', async () => {
      const r = await pollUsage(`/api/v1/usage/${limited.id}`, { apiKey: key }, (b) => b.items?.length >= 3);
      const body = expectStatus(r, 200);
      assert.ok(Array.isArray(body.items), JSON.stringify(body).slice(0, 300));
      assert.equal(body.items.length, 3, 'the three admitted calls, not the refused ones');
      const times = body.items.map((x) => Date.parse(x.created_at));
      for (const t of times) assert.ok(!Number.isNaN(t), 'created_at');
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
      // Each record names its route (as `route` or `endpoint`), the model, the provider and the status.
      const routes = body.items.map((x) => String(x.route ?? x.endpoint));
      ['translate', 'summarize', 'chat'].forEach((name, i) => assert.match(routes[i], new RegExp(name), JSON.stringify(routes)));
      const expected = [...limitedUsage].reverse();
      body.items.forEach((x, i) => {
        assert.equal(x.model, 'gpt-3.5-turbo');
        assert.equal(x.provider, 'mock');
        assert.equal(x.status, 200);
        assert.equal(x.prompt_tokens, expected[i].prompt_tokens);
        assert.equal(x.completion_tokens, expected[i].completion_tokens);
        assert.equal(x.total_tokens, expected[i].total_tokens);
        assert.equal(typeof x.latency_ms, 'number');
      });
      // The owner reads it with their JWT too; a stranger and a missing key get 404.
      assert.equal(expectStatus(await call('GET', `/api/v1/usage/${limited.id}`, { token: owner.token }), 200).items.length, 3);
      expectStatus(await call('GET', `/api/v1/usage/${limited.id}`, { token: stranger.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', '/api/v1/usage/NoSuchKeyId0000000000', { token: owner.token }), 404, 'NOT_FOUND');
      expectStatus(await call('GET', `/api/v1/usage/${limited.id}`), 401, 'UNAUTHORIZED');
      // The journey's main key: every call it made reached the records (they are many).
      const main = await pollUsage(`/api/v1/usage/${created.id}`, { apiKey: key }, (b) => b.items?.length >= 5);
      assert.ok(expectStatus(main, 200).items.length >= 5);
      for (const x of main.body.items) assert.equal(typeof x.total_tokens, 'number');
    });

    test('usage summary: GET /api/v1/usage/{key_id}/summary?days=30 totals requests and tokens', async () => {
      const r = await pollUsage(`/api/v1/usage/${limited.id}/summary?days=30`, { apiKey: key }, (b) => b.total_requests >= 3);
      const body = expectStatus(r, 200);
      for (const f of SUMMARY_FIELDS) assert.equal(typeof body[f], 'number', f);
      assert.equal(body.total_requests, 3);
      const sum = (f) => limitedUsage.reduce((a, u) => a + u[f], 0);
      assert.equal(body.total_prompt_tokens, sum('prompt_tokens'));
      assert.equal(body.total_completion_tokens, sum('completion_tokens'));
      assert.equal(body.total_tokens, sum('total_tokens'));
      assert.equal(body.total_tokens, body.total_prompt_tokens + body.total_completion_tokens);
      assert.ok(isTime(body.period_start) && isTime(body.period_end));
      const span = Date.parse(body.period_end) - Date.parse(body.period_start);
      assert.ok(Math.abs(span - 30 * 86400e3) <= 86400e3, `the period covers 30 days: ${body.period_start} – ${body.period_end}`);
      assert.ok(Date.parse(body.period_end) >= Date.now() - 86400e3);

      const main = expectStatus(await pollUsage(`/api/v1/usage/${created.id}/summary?days=30`, { token: owner.token }, (b) => b.total_requests >= 5), 200);
      assert.ok(main.total_requests >= 5 && main.total_tokens > 0);
      assert.equal(main.total_tokens, main.total_prompt_tokens + main.total_completion_tokens);
      expectStatus(await call('GET', `/api/v1/usage/${limited.id}/summary?days=30`, { token: stranger.token }), 404, 'NOT_FOUND');
    });

    test('the key shows when it was last used', async () => {
      // Written in batches every 5 s (docs/IDENTITY.md); the key has been in use for a while.
      let body;
      for (let i = 0; i < 40; i++) {
        body = expectStatus(await call('GET', `/api/v1/api-keys/${created.id}`, { token: owner.token }), 200);
        if (body.last_used_at) break;
        await sleep(200);
      }
      assert.ok(isTime(body.last_used_at), 'last_used_at was never recorded');
      assert.ok(Date.parse(body.last_used_at) >= Date.parse(created.created_at));
    });

    test('revoke the key (DELETE): 204, listed as revoked, refused with 401, never re-activated', async () => {
      expectStatus(await call('DELETE', `/api/v1/api-keys/${created.id}`, { token: stranger.token }), 404, 'NOT_FOUND');
      expectStatus(await call('DELETE', `/api/v1/api-keys/${created.id}`, { token: owner.token }), 204);
      const got = expectStatus(await call('GET', `/api/v1/api-keys/${created.id}`, { token: owner.token }), 200);
      assert.equal(got.status, 'revoked');
      assert.equal(got.is_active, false);
      assert.ok(isTime(got.revoked_at));

      await s.mock.reset();
      for (const auth of [{ apiKey: key }, { token: key }]) {
        const r = await call('POST', '/api/v1/chat', { ...auth, body: { messages: [{ role: 'user', content: 'still there?' }], model: 'gpt-3.5-turbo' } });
        expectStatus(r, 401, 'UNAUTHORIZED');
      }
      expectStatus(await call('GET', '/api/v1/api-keys', { apiKey: key }), 401, 'UNAUTHORIZED');
      assert.deepEqual(await seen(), []);
      const again = await call('PATCH', `/api/v1/api-keys/${created.id}`, { token: owner.token, body: { is_active: true } });
      expectStatus(again, 409, 'CONFLICT');
      expectStatus(await call('POST', '/api/v1/chat', { apiKey: key, body: { messages: [{ role: 'user', content: 'x' }] } }), 401, 'UNAUTHORIZED');
    });

    test('no response other than the creation and no log line contains the service key or a provider key', () => {
      assert.ok(transcript.length > 40, 'the journey recorded its responses');
      const secrets = [key, ownKey, s.systemKey];
      const fragments = secrets.flatMap((k) => [k, k.slice(-12), k.slice(10, 22)]);
      for (const text of transcript) {
        for (const f of fragments) assert.ok(!text.includes(f), 'a response contains a secret');
      }
      expectNoSecretsInLogs(fragments);
    });
  });
}
