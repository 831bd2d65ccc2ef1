// Routing and fallbacks (docs/GATEWAY.md): several providers serving one model are its deployments;
// a deployment that fails through its own fault (5xx, 429, timeout, connection) is cooled and the
// request moves to the next candidate, then to the model's fallback models. Real parley, real
// parley-mock instances: each provider has its own system key, so the requests a mock recorded are
// told apart by their Authorization header.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, startMock, adminToken, createServiceKey, json, tempDir, BACKEND, sleep, providerKey } from './harness.mjs';

const COOLDOWN_MS = 2000;

// name → [mock, weight, extra lines]; each provider serves one model, "<scenario>-model".
function providerToml(name, url, model, weight, { firstByteMs = 3000, retryAfterCapMs = 400 } = {}) {
  return `
[[providers]]
name = "${name}"
base_url = "${url}/v1"
credentials = "system"
api_key_env = "${envOf(name)}"
models = ["${model}"]
weight = ${weight}
[providers.retry]
max_retries = 2
base_delay_ms = 20
max_delay_ms = 100
retry_after_cap_ms = ${retryAfterCapMs}
[providers.timeouts]
first_byte_ms = ${firstByteMs}
total_ms = 15000
[providers.prices]
"${model}" = [1, 2]
`;
}
const envOf = (name) => `KEY_${name.replace(/-/g, '_').toUpperCase()}`;
const keys = new Map();  // fresh per run
const keyOf = (name) => {
  if (!keys.has(name)) keys.set(name, providerKey(`routing-${name}`));
  return keys.get(name);
};

// SSE data payloads of a body.
const events = (text) => text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));

describe(`routing and fallbacks (${BACKEND})`, () => {
  let p; let a; let b; let slow; let token; let key;
  const providers = [];
  before(async () => {
    a = await startMock();
    b = await startMock();
    slow = await startMock(['--ttfb-ms', '2000']);
    const dead = await startMock();  // its port, closed: a deployment that is down
    await dead.stop();
    const add = (name, mock, model, weight, opts) => {
      providers.push(name);
      return providerToml(name, typeof mock === 'string' ? mock : mock.url, model, weight, opts);
    };
    const config = path.join(tempDir(), 'parley.toml');
    writeFileSync(config, [
      add('half-a', a, 'half-model', 1), add('half-b', b, 'half-model', 1),
      add('down-a', dead.url, 'down-model', 10), add('down-b', b, 'down-model', 1),
      add('slow-a', slow, 'slow-model', 10, { firstByteMs: 300 }), add('slow-b', b, 'slow-model', 1),
      add('w-a', a, 'w-model', 3), add('w-b', b, 'w-model', 1),
      add('rc-a', a, 'rc-model', 1), add('rc-b', b, 'rc-model', 0),
      add('ra-a', a, 'ra-model', 1, { retryAfterCapMs: 60000 }), add('ra-b', b, 'ra-model', 0),
      add('fb-a', a, 'fb-model', 1), add('fb-b', b, 'fb-other', 1),
      add('st-a', a, 'st-model', 1), add('st-b', b, 'st-model', 0),
      add('mid-a', a, 'mid-model', 1), add('mid-b', b, 'mid-model', 0),
      add('rj-a', a, 'rj-model', 1), add('rj-b', b, 'rj-model', 0),
      add('ms-a', a, 'ms-model', 1), add('ms-b', b, 'ms-model', 0),
      add('pc-a', a, 'pc-model', 1), add('pc-b', b, 'pc-model', 0),
      add('rs-a', a, 'rs-model', 1), add('rs-b', b, 'rs-model', 0),
      `
[routing]
cooldown_ms = ${COOLDOWN_MS}
[routing.fallbacks]
"fb-model" = ["fb-other"]
`,
    ].join('\n'));
    const env = Object.fromEntries(providers.map((n) => [envOf(n), keyOf(n)]));
    p = await startParley({ args: ['--config', config], env });
    token = await adminToken(p.url);
    key = await createServiceKey(p.url, token, 'routing');
  });
  after(async () => {
    await p?.cleanup();
    await Promise.all([a, b, slow].filter(Boolean).map((m) => m.stop()));
  });

  const chat = (model, extra = {}) => fetch(`${p.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key.key}` },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'route me' }], ...extra }),
  });
  // Requests each provider received (a mock serves several providers; their keys differ).
  const received = async (mock, name) => (await mock.requests()).filter((r) => r.authorization === `Bearer ${keyOf(name)}`);
  const reset = () => Promise.all([a.reset(), b.reset(), slow.reset()]);
  const metrics = async () => (await fetch(`${p.url}/metrics`)).text();
  const metric = (text, line) => {
    const found = text.split('\n').find((l) => l.startsWith(`${line} `));
    return found ? Number(found.slice(line.length + 1)) : 0;
  };

  test('a deployment failing half its requests: every client succeeds, traffic moves', async () => {
    await reset();
    await a.faults(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? { status: 500 } : { delay_ms: 0 })));
    const by = { 'half-a': 0, 'half-b': 0 };
    for (let i = 0; i < 40; i++) {
      const res = await chat('half-model');
      assert.equal(res.status, 200, await res.text());
      assert.equal(res.headers.get('x-parley-model'), 'half-model');
      by[res.headers.get('x-parley-provider')]++;
    }
    const fellOver = metric(await metrics(), 'parley_provider_fallbacks_total{from="half-a",to="half-b",reason="server_error"}');
    assert.ok(fellOver >= 1, 'the failures moved to half-b');
    const toA = (await received(a, 'half-a')).length;
    const toB = (await received(b, 'half-b')).length;
    assert.equal(toA + toB, 40 + fellOver, 'one more request per failure, no retry of its own');
    assert.equal(by['half-b'], toB);
    assert.ok(toB > toA, `traffic moved to the healthy deployment (a ${toA}, b ${toB})`);
  });

  test('a deployment that is down: all succeed, it is cooled', async () => {
    await reset();
    for (let i = 0; i < 10; i++) {
      const res = await chat('down-model');
      assert.equal(res.status, 200, await res.text());
      assert.equal(res.headers.get('x-parley-provider'), 'down-b');
    }
    const text = await metrics();
    assert.ok(metric(text, 'parley_deployment_cooldowns_total{provider="down-a"}') >= 1);
    assert.ok(metric(text, 'parley_provider_fallbacks_total{from="down-a",to="down-b",reason="connect"}') >= 1);
    assert.equal((await received(b, 'down-b')).length, 10);
  });

  test('a slow deployment (first byte timeout): traffic moves', async () => {
    await reset();
    for (let i = 0; i < 4; i++) {
      const res = await chat('slow-model');
      assert.equal(res.status, 200, await res.text());
      assert.equal(res.headers.get('x-parley-provider'), 'slow-b');
    }
    assert.ok(metric(await metrics(), 'parley_provider_fallbacks_total{from="slow-a",to="slow-b",reason="timeout"}') >= 1);
    assert.equal((await received(b, 'slow-b')).length, 4);
    assert.ok((await received(slow, 'slow-a')).length <= 4);
  });

  test('weights 3:1 over 1,000 requests: 75 % ± 5 %', async () => {
    await reset();
    let next = 0;
    const worker = async () => {
      while (next < 1000) {
        next++;
        const res = await chat('w-model');
        await res.text();
        assert.equal(res.status, 200);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const toA = (await received(a, 'w-a')).length;
    const toB = (await received(b, 'w-b')).length;
    assert.equal(toA + toB, 1000);
    assert.ok(Math.abs(toA / 1000 - 0.75) <= 0.05, `w-a took ${toA} of 1000`);
  });

  test('cooldown and recovery; a Retry-After outlasts the cooldown', async () => {
    await reset();
    await a.faults([{ status: 500 }]);
    const first = await chat('rc-model');
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-parley-provider'), 'rc-b');
    const cooledAt = Date.now();
    assert.ok(metric(await metrics(), 'parley_deployments_cooling') >= 1);
    // While cooling, the standby (weight 0) answers first.
    const second = await chat('rc-model');
    assert.equal(second.headers.get('x-parley-provider'), 'rc-b');
    // ra-a asks for 30 s (its cap is 60 s): longer than routing.cooldown_ms.
    await a.faults([{ status: 429, retry_after: 30 }]);
    const limited = await chat('ra-model');
    assert.equal(limited.status, 200);
    assert.equal(limited.headers.get('x-parley-provider'), 'ra-b');
    // rc-a gets traffic again once its cooldown is over, not before.
    let back = null;
    for (let i = 0; i < 100 && !back; i++) {
      const res = await chat('rc-model');
      await res.text();
      if (res.headers.get('x-parley-provider') === 'rc-a') back = Date.now();
      else await sleep(100);
    }
    assert.ok(back, 'rc-a came back');
    assert.ok(back - cooledAt >= COOLDOWN_MS - 100, `back after ${back - cooledAt} ms`);
    // Past routing.cooldown_ms, ra-a still rests (Retry-After 30 s).
    const still = await chat('ra-model');
    assert.equal(still.headers.get('x-parley-provider'), 'ra-b');
    assert.equal((await received(a, 'ra-a')).length, 1);
  });

  test('fallback to another model when all deployments fail: headers and usage say so', async () => {
    await reset();
    await a.faults([{ status: 503 }]);
    const own = await createServiceKey(p.url, token, 'routing-fallback');
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${own.key}` },
      body: JSON.stringify({ model: 'fb-model', messages: [{ role: 'user', content: 'fall back please' }] }),
    });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(res.headers.get('x-parley-provider'), 'fb-b');
    assert.equal(res.headers.get('x-parley-model'), 'fb-other');
    const sent = await received(b, 'fb-b');
    assert.equal(sent.length, 1);
    assert.equal(JSON.parse(sent[0].body).model, 'fb-other', 'the body names the fallback model');
    assert.deepEqual(JSON.parse(sent[0].body).messages, [{ role: 'user', content: 'fall back please' }]);
    let items = [];
    for (let i = 0; i < 40 && items.length < 1; i++) {
      await sleep(100);
      items = (await json(await fetch(`${p.url}/api/v1/usage/${own.id}`, { headers: { Authorization: `Bearer ${token}` } }))).items;
    }
    assert.equal(items.length, 1);
    assert.equal(items[0].provider, 'fb-b');
    assert.equal(items[0].model, 'fb-other');
    assert.equal(items[0].status, 200);
    assert.ok(metric(await metrics(), 'parley_provider_fallbacks_total{from="fb-a",to="fb-b",reason="server_error"}') >= 1);
  });

  test('a stream falls over before its first event', async () => {
    await reset();
    await a.faults([{ status: 502 }]);
    const res = await chat('st-model', { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-parley-provider'), 'st-b');
    assert.equal(res.headers.get('x-parley-model'), 'st-model');
    const data = events(await res.text());
    assert.equal(data.at(-1), '[DONE]');
    assert.equal((await received(b, 'st-b')).length, 1);
  });

  test('a stream that breaks mid-way is not retried elsewhere', async () => {
    await reset();
    await a.faults([{ drop_after_chunks: 2 }]);
    const res = await chat('mid-model', { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-parley-provider'), 'mid-a');
    const data = events(await res.text());
    assert.ok(data.length >= 2);
    assert.ok(JSON.parse(data.at(-1)).error, 'the stream ends with an error event');
    assert.equal((await received(a, 'mid-a')).length, 1);
    assert.equal((await received(b, 'mid-b')).length, 0, 'the other deployment got no request');
  });

  test('the client\'s own 4xx is relayed, never moved', async () => {
    await reset();
    await a.faults([{ status: 400, body: { error: { message: 'bad tools schema', type: 'invalid_request_error', param: 'tools', code: null } } }]);
    const res = await chat('rj-model');
    const body = await json(res);
    assert.equal(res.status, 400);
    assert.equal(body.error.message, 'bad tools schema');
    assert.equal(res.headers.get('x-parley-provider'), 'rj-a');
    assert.equal((await received(b, 'rj-b')).length, 0);
  });

  test('/v1/messages and /api/v1/chat fall over too', async () => {
    await reset();
    await a.faults([{ status: 500 }, { status: 500 }]);
    const msg = await fetch(`${p.url}/v1/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'x-api-key': key.key, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'ms-model', max_tokens: 50, messages: [{ role: 'user', content: 'anthropic route' }] }),
    });
    const message = await json(msg);
    assert.equal(msg.status, 200, JSON.stringify(message));
    assert.equal(message.type, 'message');
    assert.equal(msg.headers.get('x-parley-provider'), 'ms-b');
    assert.equal((await received(b, 'ms-b')).length, 1);

    const own = await fetch(`${p.url}/api/v1/chat`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ model: 'pc-model', messages: [{ role: 'user', content: 'parley route' }] }),
    });
    const answer = await json(own);
    assert.equal(own.status, 200, JSON.stringify(answer));
    assert.match(answer.content, /parley route/);
    assert.equal((await received(a, 'pc-a')).length, 1);
    assert.equal((await received(b, 'pc-b')).length, 1);
  });

  test('/v1/responses falls over and says who answered, plain, stored and streamed', async () => {
    await reset();
    await a.faults([{ status: 500 }]);
    const responses = (body) => fetch(`${p.url}/v1/responses`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key.key}` },
      body: JSON.stringify({ model: 'rs-model', input: 'responses route', ...body }),
    });
    for (const body of [{ store: false }, {}]) {
      const res = await responses(body);
      const response = await json(res);
      assert.equal(res.status, 200, JSON.stringify(response));
      assert.equal(response.status, 'completed');
      assert.match(response.output[0].content[0].text, /responses route/);
      assert.equal(res.headers.get('x-parley-provider'), 'rs-b', JSON.stringify(body));
      assert.equal(res.headers.get('x-parley-model'), 'rs-model');
    }
    const streamed = await responses({ stream: true, store: false });
    assert.equal(streamed.status, 200);
    assert.equal(streamed.headers.get('x-parley-provider'), 'rs-b');
    assert.match(await streamed.text(), /event: response\.completed/);
    assert.equal((await received(a, 'rs-a')).length, 1, 'the failing deployment was tried once, then cooled');
    assert.equal((await received(b, 'rs-b')).length, 3);
  });

  test('no key in the logs', () => {
    for (const name of providers) assert.ok(!p.stderr.includes(keyOf(name)) && !p.stdout.includes(keyOf(name)));
    assert.match(p.stderr, /routing: fallback: provider=half-a model=half-model reason=server_error/);
  });
});
