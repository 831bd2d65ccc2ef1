// parley's limits (docs/LIMITS.md) as the official openai npm SDK sees them: a key over its
// requests-per-minute limit gets a RateLimitError (429) carrying Retry-After and the x-ratelimit-*
// headers, the SDK retries a 429 on its own before giving up, a call over a tokens-per-minute limit
// on its own is a BadRequest-class 422 it never retries, and a budget that is used up is a 402 it
// never retries either. Every attempt the SDK makes is counted by a fetch wrapped around its own.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { startParley, tempDir, json } from '../integration/harness.mjs';
import { startMock, writeProviderConfig, adminToken } from './setup.mjs';

const SYSTEM_KEY = `sk-mock${randomBytes(20).toString('hex')}`;

// An SDK client for `apiKey` whose every HTTP attempt is recorded in `attempts`
// ({ at, status, retryAfter }). `onResponse` may add headers to what the SDK reads.
function client(baseURL, apiKey, { maxRetries, attempts, onResponse } = {}) {
  const wrapped = async (url, init) => {
    const at = Date.now();
    let res = await fetch(url, init);
    attempts?.push({ at, status: res.status, retryAfter: res.headers.get('retry-after') });
    if (onResponse) res = onResponse(res) ?? res;
    return res;
  };
  return new OpenAI({ apiKey, baseURL, maxRetries, timeout: 20000, organization: null, project: null, fetch: wrapped });
}

const ask = (c, extra = {}) => c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }], ...extra });

// Resolves with the error the promise rejects with (and fails if it resolves).
async function rejection(promise) {
  try {
    const value = await promise;
    assert.fail(`expected an error, got ${JSON.stringify(value).slice(0, 200)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
}

// Milliseconds of an OpenAI reset value (`1s`, `6m0s`, `120ms`).
function resetMs(value) {
  const ms = /^(\d+(?:\.\d+)?)ms$/.exec(value ?? '');
  if (ms) return Number(ms[1]);
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(value ?? '');
  assert.ok(m && value, `not an OpenAI reset value: ${JSON.stringify(value)}`);
  return (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000;
}

describe('openai SDK against parley\'s limits', { timeout: 90000 }, () => {
  let mock; let p; let dir; let token; let base;

  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    dir = tempDir('parley-e2e-limits-');
    const config = writeProviderConfig(dir, [
      { name: 'mock', url: mock.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['gpt-4o-mini', 'text-embedding-3-small', 'mock-*'] },
    ]);
    p = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY } });
    token = await adminToken(p.url);
    base = `${p.url}/v1`;
  });

  after(async () => {
    if (p) await p.cleanup();
    if (mock) await mock.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const keyWith = async (fields) => {
    const res = await fetch(`${p.url}/api/v1/api-keys`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: `sdk-${randomBytes(4).toString('hex')}`, ...fields }),
    });
    const body = await json(res);
    assert.equal(res.status, 201, JSON.stringify(body));
    return body.key;
  };

  test('maxRetries 0: the call over the limit is a RateLimitError (429) with retry-after and x-ratelimit-* headers', async () => {
    const key = await keyWith({ rate_limit_per_minute: 2 });
    const attempts = [];
    const c = client(base, key, { maxRetries: 0, attempts });
    // The answers it lets through say what is left, as OpenAI's own headers do.
    for (const left of [1, 0]) {
      const { data, response } = await ask(c).withResponse();
      assert.equal(data.choices[0].message.content, 'mock reply: hello');
      assert.equal(response.headers.get('x-ratelimit-limit-requests'), '2');
      assert.equal(response.headers.get('x-ratelimit-remaining-requests'), String(left));
    }
    const err = await rejection(ask(c));
    assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'RATE_LIMIT_EXCEEDED');
    assert.equal(err.type, 'rate_limit_error');
    assert.match(err.message, /\b2\b/);
    const h = err.headers;
    assert.match(h['retry-after'] ?? '', /^\d+$/);
    assert.ok(Number(h['retry-after']) >= 1 && Number(h['retry-after']) <= 60, `retry-after ${h['retry-after']}`);
    assert.equal(h['x-ratelimit-limit-requests'], '2');
    assert.equal(h['x-ratelimit-remaining-requests'], '0');
    const reset = resetMs(h['x-ratelimit-reset-requests']);
    assert.ok(reset > 0 && reset <= 60000, `x-ratelimit-reset-requests ${h['x-ratelimit-reset-requests']}`);
    assert.equal(h['x-ratelimit-limit'], '2');
    assert.equal(h['x-ratelimit-remaining'], '0');
    assert.match(err.request_id ?? '', /\S/, 'the SDK reads the request id');
    assert.equal(attempts.length, 3, 'maxRetries 0: no retry');
    // Streaming is refused the same way, before any chunk.
    const streamErr = await rejection((async () => { for await (const _ of await ask(c, { stream: true })) { /* never */ } })());
    assert.ok(streamErr instanceof OpenAI.RateLimitError);
  });

  test('maxRetries 1: the SDK waits and retries the 429 once, then throws RateLimitError; the provider saw only the admitted call', async () => {
    const key = await keyWith({ rate_limit_per_minute: 1 });
    await mock.reset();
    const attempts = [];
    // parley's Retry-After (and its retry-after-ms, which the SDK prefers) is up to 60 s: until the
    // oldest call leaves the window. So that the test does not wait a minute, the SDK reads
    // `retry-after-ms: 300` instead; what parley sent is checked on the recorded attempts.
    const c = client(base, key, {
      maxRetries: 1,
      attempts,
      onResponse: (res) => {
        if (res.status !== 429) return res;
        const headers = new Headers(res.headers);
        headers.set('retry-after-ms', '300');
        return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
      },
    });
    await ask(c);
    const err = await rejection(ask(c));
    assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${err?.constructor?.name}`);
    assert.equal(err.status, 429);
    assert.deepEqual(attempts.map((a) => a.status), [200, 429, 429], 'one admitted call, then the refusal and one retry');
    assert.ok(attempts[2].at - attempts[1].at >= 250, `the SDK waited before retrying (${attempts[2].at - attempts[1].at} ms)`);
    for (const a of attempts.slice(1)) assert.ok(Number(a.retryAfter) >= 1 && Number(a.retryAfter) <= 60, `Retry-After ${a.retryAfter}`);
    assert.equal((await mock.requests()).length, 1, 'the refused attempts never reached the provider');
  });

  test('a call whose max_tokens alone exceeds the tokens-per-minute limit is a 422 the SDK does not retry', async () => {
    const key = await keyWith({ tokens_per_minute: 1000 });
    const attempts = [];
    const c = client(base, key, { maxRetries: 2, attempts });
    const err = await rejection(ask(c, { max_tokens: 5000 }));
    assert.ok(err instanceof OpenAI.UnprocessableEntityError, `expected UnprocessableEntityError, got ${err?.constructor?.name}`);
    assert.equal(err.status, 422);
    assert.equal(err.code, 'VALIDATION_ERROR');
    assert.equal(err.param, 'max_tokens');
    assert.equal(attempts.length, 1);
    // One that fits passes and reports the tokens left.
    const { response } = await ask(c, { max_tokens: 100 }).withResponse();
    assert.equal(response.headers.get('x-ratelimit-limit-tokens'), '1000');
    assert.match(response.headers.get('x-ratelimit-remaining-tokens') ?? '', /^\d+$/);
    resetMs(response.headers.get('x-ratelimit-reset-tokens'));
  });

  test('a used-up token budget is a 402 (insufficient_quota) that the SDK does not retry', async () => {
    const key = await keyWith({ token_budget: 40, budget_period: 'total' });
    const attempts = [];
    const c = client(base, key, { maxRetries: 2, attempts });
    let err = null;
    for (let i = 0; i < 20 && !err; i++) {
      try { await ask(c, { max_tokens: 3 }); } catch (e) { err = e; }
    }
    assert.ok(err, 'the budget was never used up');
    assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.ok(!(err instanceof OpenAI.RateLimitError), 'a budget is not a rate limit');
    assert.equal(err.status, 402);
    assert.equal(err.code, 'BUDGET_EXCEEDED');
    assert.equal(err.type, 'insufficient_quota');
    assert.equal(attempts.at(-1).status, 402);
    assert.equal(attempts.filter((a) => a.status === 402).length, 1, 'a 402 is never retried');
  });

  test('embeddings are limited like completions', async () => {
    const key = await keyWith({ rate_limit_per_minute: 1 });
    const c = client(base, key, { maxRetries: 0 });
    const ok = await c.embeddings.create({ model: 'text-embedding-3-small', input: 'one' });
    assert.equal(ok.data.length, 1);
    const err = await rejection(c.embeddings.create({ model: 'text-embedding-3-small', input: 'two' }));
    assert.ok(err instanceof OpenAI.RateLimitError);
    assert.equal(err.headers['x-ratelimit-remaining-requests'], '0');
  });
});
