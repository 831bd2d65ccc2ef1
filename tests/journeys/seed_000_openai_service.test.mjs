// Journey for seed 000 ("Story 4.6: OpenAI service for API calls"): an AI feature that calls the
// provider with the user's own key, loaded from encrypted storage, with retries and backoff on
// transient failures, precise error codes, and never a key in a response or a log.
//
// The story's order, walked through parley's HTTP API against the real binary and parley-mock:
//   no key configured → 400 API_KEY_NOT_CONFIGURED; the user stores the key (masked on read);
//   chat reaches the provider with exactly that key; 429/500/503 retried with growing backoff
//   (max 3 retries), 400/401/403/404 never; provider 401/403 → 400 INVALID_API_KEY; timeouts and
//   network failures → OPENAI_TIMEOUT / OPENAI_CONNECTION_ERROR; undecryptable key → 500
//   API_KEY_DECRYPTION_FAILED; the key never in a response, a log or the database in plain text.
// PRODUCT.md wins over the seed: other upstream failures are 502 (not 500) OPENAI_API_ERROR, and
// the model default is the offline demo model (not gpt-3.5-turbo).
//
// Each credential mode gets its own stack: "byok" (the story's mode: the user's key only),
// "byok_or_system" (own key when stored, else the deployment key) and "system" (the deployment key
// always; the vault is never consulted). Every provider call asserts which key the provider saw.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  startStack, api, expectStatus, signUp, sseEvents, providerKey, expectNoSecretsInLogs, BACKEND,
} from './lib.mjs';
import { startParley, sleep } from '../integration/harness.mjs';

const fernetKey = () => `${randomBytes(32).toString('base64url')}=`;

// A loopback port nothing listens on: the "unreachable provider".
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// Every file under `dir`, as one latin1 string (the SQLite database, its WAL, …).
function allBytesUnder(dir) {
  let out = '';
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const st = statSync(file);
    if (st.isDirectory()) out += allBytesUnder(file);
    else if (st.isFile()) out += readFileSync(file).toString('latin1');
  }
  return out;
}

const USER_TEXT = 'Generate three interview questions about C++';
const MESSAGES = [
  { role: 'system', content: 'You are an interviewer.' },
  { role: 'user', content: USER_TEXT },
];
const words = (s) => s.split(/\s+/).filter(Boolean).length;

for (const credentials of ['byok', 'byok_or_system', 'system']) {
  describe(`seed 000 OpenAI service layer, credentials = "${credentials}" (${BACKEND})`, () => {
    const ownKey = providerKey('learner');
    const bobKey = providerKey('bob');
    const refusedKey = providerKey('refused'); // the mock does not accept it
    const fernetA = fernetKey();
    const fernetB = fernetKey();
    let s; let p; let restarted; let admin; let learner; let bob;
    const transcript = []; // every response body this journey received

    const call = async (method, route, opts) => {
      const r = await api(p.url, method, route, opts);
      transcript.push(r.text);
      return r;
    };
    const chat = (user, body = {}) => call('POST', '/api/v1/chat', {
      token: user.token, body: { model: 'gpt-3.5-turbo', messages: MESSAGES, temperature: 0.7, ...body },
    });
    const setKey = (user, key, extra = {}) => call('PUT', `/api/v1/users/${user.id}/api-key`, {
      token: user.token, body: { api_key: key, provider: 'mock', ...extra },
    });
    const seenKeys = async () => (await s.mock.requests()).map((r) => r.authorization);
    // The key the provider must see for a user whose own key is `own` (null: none stored).
    const whose = (own) => (credentials === 'system' ? s.systemKey : own ?? s.systemKey);

    before(async () => {
      const offlinePort = await closedPort();
      s = await startStack({
        credentials,
        mockKeys: [ownKey, bobKey],
        env: { PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_ENCRYPTION_KEYS: fernetA },
        // A second provider that nobody answers at: network failures without a fault.
        extraConfig: `
[[providers]]
name = "offline"
base_url = "http://127.0.0.1:${offlinePort}/v1"
credentials = "${credentials}"
api_key_env = "JOURNEY_SYSTEM_KEY"
models = ["offline-*"]
[providers.retry]
max_retries = 3
base_delay_ms = 20
max_delay_ms = 100
[providers.timeouts]
first_byte_ms = 1000
total_ms = 5000
`,
      });
      p = s.p;
      admin = await signUp(p.url, 'admin');
      learner = await signUp(p.url, 'learner');
      bob = await signUp(p.url, 'bob');
      assert.notEqual(admin.id, learner.id);
    });
    after(async () => {
      await restarted?.stop();
      await s?.stop();
    });

    test('a user who has not configured a key: byok refuses before any provider call, otherwise the deployment key serves', async () => {
      await s.mock.reset();
      expectStatus(await call('GET', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: learner.token }), 404, 'NOT_FOUND');
      const r = await chat(learner);
      const streamed = await call('POST', '/api/v1/chat/stream', { token: learner.token, body: { model: 'gpt-3.5-turbo', messages: MESSAGES } });
      if (credentials === 'byok') {
        const body = expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        assert.equal(body.error.type, 'invalid_request_error');
        assert.match(body.error.message, /api[- ]key/i, 'the message must tell the user to configure the key');
        assert.equal(r.headers.get('x-request-id'), body.error.request_id);
        // Refused before the stream starts: an ordinary JSON error, not SSE.
        expectStatus(streamed, 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await seenKeys(), [], 'nothing may reach the provider without a key');
      } else {
        expectStatus(r, 200);
        assert.equal(r.body.content, `mock reply: ${USER_TEXT}`);
        expectStatus(streamed, 200);
        assert.equal(sseEvents(streamed.text).at(-1).done, true);
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`, `Bearer ${s.systemKey}`]);
      }
    });

    test('the user stores their key (PUT /api/v1/users/{user_id}/api-key): only the masked form is ever shown', async () => {
      // Malformed keys are refused without echoing the value.
      const short = `sk-${randomBytes(2).toString('hex')}`; // 7 characters: below the 8 minimum
      const bad = await setKey(learner, short);
      assert.equal(expectStatus(bad, 422, 'VALIDATION_ERROR').error.param, 'api_key');
      assert.ok(!bad.text.includes(short), 'the refusal repeats the key');

      // verify: true tries the key with the provider first; a key it refuses is not stored.
      await s.mock.reset();
      const refused = await setKey(learner, refusedKey, { verify: true });
      expectStatus(refused, 400, 'INVALID_API_KEY');
      assert.ok(!refused.text.includes(refusedKey));
      assert.deepEqual((await s.mock.requests()).map((r) => [r.method, r.path, r.authorization]),
        [['GET', '/v1/models', `Bearer ${refusedKey}`]]);
      expectStatus(await call('GET', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: learner.token }), 404, 'NOT_FOUND');

      // The real key, verified, is stored; the answer is the masked form only.
      await s.mock.reset();
      const put = await setKey(learner, ownKey, { verify: true });
      const stored = expectStatus(put, 200);
      assert.deepEqual((await s.mock.requests()).map((r) => r.authorization), [`Bearer ${ownKey}`]);
      assert.deepEqual(Object.keys(stored).sort(), ['api_key_masked', 'created_at', 'provider', 'updated_at']);
      assert.equal(stored.provider, 'mock');
      assert.equal(stored.api_key_masked, `sk-…${ownKey.slice(-4)}`);
      assert.ok(!Number.isNaN(Date.parse(stored.created_at)) && !Number.isNaN(Date.parse(stored.updated_at)));
      assert.equal(put.headers.get('cache-control'), 'no-store');
      assert.ok(!put.text.includes(ownKey.slice(3, -4)), 'the PUT answer reveals the key');

      const got = await call('GET', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: learner.token });
      assert.deepEqual(expectStatus(got, 200), stored);
      assert.equal(got.headers.get('cache-control'), 'no-store');
      // The key is per provider: none is set for the default provider "openai".
      expectStatus(await call('GET', `/api/v1/users/${learner.id}/api-key`, { token: learner.token }), 404, 'NOT_FOUND');
      // Another user cannot even learn that the key exists.
      expectStatus(await call('GET', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: bob.token }), 404, 'NOT_FOUND');
    });

    test(`chat completion (messages, model, temperature, max_tokens) reaches the provider with ${credentials === 'system' ? 'the deployment key' : 'exactly the user\'s key'}`, async () => {
      await s.mock.reset();
      const r = await chat(learner, { max_tokens: 50 });
      const body = expectStatus(r, 200);
      assert.equal(body.content, `mock reply: ${USER_TEXT}`);
      assert.equal(body.model, 'gpt-3.5-turbo');
      assert.equal(body.usage.prompt_tokens, MESSAGES.reduce((n, m) => n + words(m.content), 0));
      assert.equal(body.usage.completion_tokens, words(body.content));
      assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
      assert.equal(typeof body.latency_ms, 'number');

      const seen = await s.mock.requests();
      assert.equal(seen.length, 1);
      assert.equal(seen[0].path, '/v1/chat/completions');
      assert.equal(seen[0].authorization, `Bearer ${whose(ownKey)}`);
      const sent = JSON.parse(seen[0].body);
      assert.equal(sent.model, 'gpt-3.5-turbo');
      assert.equal(sent.temperature, 0.7);
      assert.equal(sent.max_tokens, 50);
      assert.deepEqual(sent.messages, MESSAGES);

      // max_tokens is honoured by the provider (the mock keeps the first N words).
      await s.mock.reset();
      expectStatus(await chat(learner, { max_tokens: 3 }), 200);
      assert.equal(JSON.parse((await s.mock.requests())[0].body).max_tokens, 3);

      // The streamed form, which the story prepares for, uses the same key.
      await s.mock.reset();
      const st = await call('POST', '/api/v1/chat/stream', { token: learner.token, body: { model: 'gpt-3.5-turbo', messages: MESSAGES } });
      expectStatus(st, 200);
      const events = sseEvents(st.text);
      assert.equal(events.filter((e) => 'token' in e).map((e) => e.token).join(''), `mock reply: ${USER_TEXT}`);
      assert.equal(events.filter((e) => e.done || e.error).length, 1);
      assert.equal(events.at(-1).full_text, `mock reply: ${USER_TEXT}`);
      assert.deepEqual(await seenKeys(), [`Bearer ${whose(ownKey)}`]);

      // Without a model parley answers with its offline default (PRODUCT.md: demo), not the provider.
      await s.mock.reset();
      const d = expectStatus(await call('POST', '/api/v1/chat', { token: learner.token, body: { messages: MESSAGES } }), 200);
      assert.equal(d.model, 'demo');
      assert.deepEqual(await seenKeys(), []);
    });

    test('each user reaches the provider with their own key, never another user\'s', async () => {
      expectStatus(await setKey(bob, bobKey), 200);
      await s.mock.reset();
      const jobs = [];
      for (let i = 0; i < 8; i++) {
        for (const [u, tag] of [[learner, 'learner'], [bob, 'bob']]) {
          jobs.push(call('POST', '/api/v1/chat', { token: u.token, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${tag}-${i}` }] } })
            .then((r) => expectStatus(r, 200)));
        }
      }
      await Promise.all(jobs);
      const seen = await s.mock.requests();
      assert.equal(seen.length, 16);
      for (const r of seen) {
        const own = /learner-\d/.test(r.body) ? ownKey : bobKey;
        assert.equal(r.authorization, `Bearer ${whose(own)}`, 'a request went out with the wrong key');
      }
    });

    test('429, 500 and 503 are retried with growing backoff, every attempt with the same key, and the answer arrives', async () => {
      await s.mock.reset();
      await s.mock.faults([{ status: 429 }, { status: 500 }, { status: 503 }]);
      const r = await chat(learner);
      assert.equal(expectStatus(r, 200).content, `mock reply: ${USER_TEXT}`);
      const seen = await s.mock.requests();
      assert.equal(seen.length, 4, 'three retries, then the answer');
      for (const x of seen) assert.equal(x.authorization, `Bearer ${whose(ownKey)}`);
      const gaps = seen.slice(1).map((x, i) => x.received_at_ms - seen[i].received_at_ms);
      // base 40 ms ±20 %, doubling: about 40, 80, 160 ms.
      assert.ok(gaps[0] >= 25, `first backoff too short: ${gaps}`);
      assert.ok(gaps[1] > gaps[0] && gaps[2] > gaps[1], `backoff does not grow: ${gaps}`);

      // 502 and 504 are transient too.
      for (const status of [502, 504]) {
        await s.mock.reset();
        await s.mock.faults([{ status }]);
        expectStatus(await chat(learner), 200);
        assert.equal((await s.mock.requests()).length, 2, `${status} was not retried`);
      }
    });

    test('a provider that keeps answering 429 ends after 3 retries in 429 OPENAI_RATE_LIMIT; each retry is logged, without the key', async () => {
      await s.mock.reset();
      await s.mock.faults(Array.from({ length: 6 }, () => ({ status: 429 })));
      const r = await chat(learner);
      const body = expectStatus(r, 429, 'OPENAI_RATE_LIMIT');
      assert.equal(body.error.type, 'rate_limit_error');
      assert.equal((await s.mock.requests()).length, 4, 'at most 3 retries');
      await s.mock.reset(); // the unused faults
      const id = body.error.request_id;
      let lines = [];
      for (let i = 0; i < 20 && lines.length < 3; i++) {
        lines = p.stderr.split('\n').filter((l) => l.includes(id) && /retry/i.test(l));
        if (lines.length < 3) await sleep(50);
      }
      assert.equal(lines.length, 3, `expected 3 logged retries for ${id}:\n${lines.join('\n')}`);
      for (const l of lines) assert.ok(!l.includes(ownKey) && !l.includes(s.systemKey));
    });

    test('persistent server errors end after 3 retries in 502 OPENAI_API_ERROR', async () => {
      await s.mock.reset();
      await s.mock.faults(Array.from({ length: 4 }, () => ({ status: 503 })));
      expectStatus(await chat(learner), 502, 'OPENAI_API_ERROR');
      const seen = await s.mock.requests();
      assert.equal(seen.length, 4);
      for (const x of seen) assert.equal(x.authorization, `Bearer ${whose(ownKey)}`);
    });

    test('client errors are never retried: provider 401/403 → 400 INVALID_API_KEY, 400/404 → 502 OPENAI_API_ERROR', async () => {
      for (const [status, ours, code] of [[401, 400, 'INVALID_API_KEY'], [403, 400, 'INVALID_API_KEY'], [400, 502, 'OPENAI_API_ERROR'], [404, 502, 'OPENAI_API_ERROR']]) {
        await s.mock.reset();
        // The provider's 401 body quotes the key, as OpenAI's does; parley must never relay it.
        const quoted = { error: { message: `Incorrect API key provided: ${whose(ownKey)}`, type: 'invalid_request_error', code: 'invalid_api_key' } };
        await s.mock.faults([{ status, body: quoted }]);
        const r = await chat(learner);
        const body = expectStatus(r, ours, code);
        if (code === 'INVALID_API_KEY') assert.match(body.error.message, /key/i, 'the message must point at the key');
        assert.ok(!r.text.includes(whose(ownKey)), `provider ${status}: the answer contains the key`);
        assert.equal((await s.mock.requests()).length, 1, `provider ${status} was retried`);
      }
      await s.mock.reset();
    });

    test('a stored key the provider refuses (its real 401) is 400 INVALID_API_KEY asking to check the key, never retried', async () => {
      expectStatus(await setKey(learner, refusedKey), 200); // stored without verify
      await s.mock.reset();
      const r = await chat(learner);
      if (credentials === 'system') {
        expectStatus(r, 200); // the deployment key is used, the user's key is not consulted
      } else {
        expectStatus(r, 400, 'INVALID_API_KEY');
        assert.ok(!r.text.includes(refusedKey) && !r.text.includes(refusedKey.slice(-12)));
      }
      assert.deepEqual(await seenKeys(), [`Bearer ${whose(refusedKey)}`]);
      // The user fixes the configuration and is served again.
      expectStatus(await setKey(learner, ownKey), 200);
      await s.mock.reset();
      expectStatus(await chat(learner), 200);
      assert.deepEqual(await seenKeys(), [`Bearer ${whose(ownKey)}`]);
    });

    test('a provider that never answers is 504 OPENAI_TIMEOUT within the deadline', async () => {
      await s.mock.reset();
      await s.mock.faults([{ hang: true }]);
      const t0 = Date.now();
      const r = await chat(learner);
      expectStatus(r, 504, 'OPENAI_TIMEOUT');
      assert.ok(Date.now() - t0 < 15000, 'the request outlived its deadline');
      const seen = await s.mock.requests();
      assert.ok(seen.length >= 1);
      for (const x of seen) assert.equal(x.authorization, `Bearer ${whose(ownKey)}`);
      await s.mock.reset();
    });

    test('network failures are retried, then 503 OPENAI_CONNECTION_ERROR; an unreachable provider is the same', async () => {
      // One dropped connection: retried, answered.
      await s.mock.reset();
      await s.mock.faults([{ reset: true }]);
      expectStatus(await chat(learner), 200);
      assert.deepEqual(await seenKeys(), [`Bearer ${whose(ownKey)}`, `Bearer ${whose(ownKey)}`]);
      // Every attempt dropped: 1 + 3 retries (each logged), then the error; exactly 4 requests
      // reach the provider, pooled keep-alive connections or not.
      await s.mock.reset();
      await s.mock.faults(Array.from({ length: 10 }, () => ({ reset: true })));
      const r0 = await chat(learner);
      const id = expectStatus(r0, 503, 'OPENAI_CONNECTION_ERROR').error.request_id;
      const attempts = await s.mock.requests();
      assert.equal(attempts.length, 4, `${attempts.length} requests for at most 3 retries`);
      for (const x of attempts) assert.equal(x.authorization, `Bearer ${whose(ownKey)}`);
      await s.mock.reset();
      let retries = [];
      for (let i = 0; i < 20 && retries.length < 3; i++) {
        retries = p.stderr.split('\n').filter((l) => l.includes(id) && /retry/i.test(l));
        if (retries.length < 3) await sleep(50);
      }
      assert.equal(retries.length, 3, `expected 3 logged retries for ${id}`);

      // A provider with nothing listening. Keys are per provider: byok needs one for it too.
      const offline = () => chat(learner, { model: 'offline-1' });
      if (credentials === 'byok') {
        expectStatus(await offline(), 400, 'API_KEY_NOT_CONFIGURED');
        expectStatus(await call('PUT', `/api/v1/users/${learner.id}/api-key`, { token: learner.token, body: { api_key: ownKey, provider: 'offline' } }), 200);
      }
      const r = await offline();
      expectStatus(r, 503, 'OPENAI_CONNECTION_ERROR');
      assert.equal(r.body.error.type, 'api_error');
    });

    test('a stored key that no longer decrypts is 500 API_KEY_DECRYPTION_FAILED asking to set it again; setting it again recovers', async () => {
      // Same database, other encryption keys: the stored token no longer opens.
      await p.stop();
      const args = p.proc.spawnargs;
      const config = args[args.indexOf('--config') + 1];
      restarted = await startParley({
        dataDir: p.dataDir, databaseUrl: p.databaseUrl, args: ['--config', config],
        env: { JOURNEY_SYSTEM_KEY: s.systemKey, PARLEY_AUTH_OPEN_REGISTRATION: 'true', PARLEY_ENCRYPTION_KEYS: fernetB },
      });
      p = restarted;
      await s.mock.reset();
      const r = await chat(learner);
      if (credentials === 'system') {
        expectStatus(r, 200); // the vault is not read at all
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
      } else {
        const body = expectStatus(r, 500, 'API_KEY_DECRYPTION_FAILED');
        assert.match(body.error.message, /set your API key again/i);
        for (const k of [fernetA, fernetB, ownKey]) assert.ok(!r.text.includes(k), 'the error exposes a key');
        assert.deepEqual(await seenKeys(), [], 'nothing may reach the provider');
      }
      // The masked form is still readable (it is not encrypted); setting the key again works.
      assert.equal(expectStatus(await call('GET', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: learner.token }), 200).api_key_masked, `sk-…${ownKey.slice(-4)}`);
      expectStatus(await setKey(learner, ownKey), 200);
      expectStatus(await setKey(bob, bobKey), 200);
      await s.mock.reset();
      expectStatus(await chat(learner), 200);
      assert.deepEqual(await seenKeys(), [`Bearer ${whose(ownKey)}`]);
    });

    test('at rest the key exists only encrypted: the database never holds it in plain text', async () => {
      let stored;
      if (p.databaseUrl) {
        stored = execFileSync('pg_dump', ['--data-only', p.databaseUrl], { encoding: 'utf8', maxBuffer: 64 << 20 });
        assert.match(stored, /sk-…/, 'the dump does not hold the masked hint: wrong database?');
      } else {
        stored = allBytesUnder(p.dataDir);
      }
      for (const k of [ownKey, bobKey, refusedKey]) {
        assert.ok(!stored.includes(k) && !stored.includes(k.slice(3, -4)), 'a provider key is stored in plain text');
      }
    });

    test(`the user deletes their key: ${credentials === 'byok' ? '400 API_KEY_NOT_CONFIGURED again' : credentials === 'byok_or_system' ? 'back to the deployment key' : 'still the deployment key'}`, async () => {
      const del = await call('DELETE', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: learner.token });
      expectStatus(del, 204);
      expectStatus(await call('GET', `/api/v1/users/${learner.id}/api-key?provider=mock`, { token: learner.token }), 404, 'NOT_FOUND');
      await s.mock.reset();
      const r = await chat(learner);
      if (credentials === 'byok') {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        assert.deepEqual(await seenKeys(), []);
      } else {
        expectStatus(r, 200);
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
      }
      // Bob's key is untouched.
      await s.mock.reset();
      expectStatus(await chat(bob), 200);
      assert.deepEqual(await seenKeys(), [`Bearer ${whose(bobKey)}`]);
    });

    test('no response and no log line contains a provider key or a fragment of one', () => {
      assert.ok(transcript.length > 40, 'the journey recorded its responses');
      const secrets = [ownKey, bobKey, refusedKey, s.systemKey];
      const fragments = secrets.flatMap((k) => [k, k.slice(-12), k.slice(8, 20)]);
      for (const text of transcript) {
        for (const f of fragments) assert.ok(!text.includes(f), 'a response contains a provider key');
      }
      expectNoSecretsInLogs([...fragments, fernetA, fernetB]);
    });
  });
}
