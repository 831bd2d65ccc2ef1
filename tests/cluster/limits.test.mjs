// Limits shared by two parley instances through one Redis (docs/LIMITS.md): every count is exact
// over both instances, whatever instance a call lands on, under concurrency.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, createKey, createUser, api, chat, chatBody, reservationOf, spread, histogram, codeOf,
  eventually, sleep, stopInstances,
} from './lib.mjs';

let c;
before(async () => { c = await startCluster(); });
after(async () => { await c?.stop(); });

// Runs `n` chat calls of `key` (or keys[i % 2] on instance i % 2) over both instances, `concurrency`
// at a time, and checks that exactly `limit` are admitted and the rest refused with 429.
async function exactRpm({ keys, n, concurrency, limit, body = chatBody({ maxTokens: 4 }) }) {
  const results = await spread(c.instances, n, concurrency, (inst, i) => chat(inst, keys[i % keys.length], body));
  const h = histogram(results);
  const ok = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length + limited.length, n, `only 200 and 429 expected: ${JSON.stringify(h)}`);
  assert.equal(ok.length, limit, `admitted over both instances (${JSON.stringify(h)})`);
  assert.equal(limited.length, n - limit);
  for (const r of limited) {
    assert.equal(codeOf(r), 'RATE_LIMIT_EXCEEDED', JSON.stringify(r.body));
    assert.equal(r.body.error.type, 'rate_limit_error');
    assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After ${r.headers.get('retry-after')}`);
  }
  // Both instances admitted some: the limit is one count, not one instance's.
  assert.ok(ok.some((r) => r.instance === 'A') && ok.some((r) => r.instance === 'B'),
    `admitted by A ${ok.filter((r) => r.instance === 'A').length}, by B ${ok.filter((r) => r.instance === 'B').length}`);
  return results;
}

describe('requests per minute over two instances', () => {
  test('a key limited to 200/min: 600 calls, 50 in flight over both instances → exactly 200 admitted', async () => {
    const key = await createKey(c, { rate_limit_per_minute: 200 });
    const results = await exactRpm({ keys: [key.key], n: 600, concurrency: 50, limit: 200 });
    // The headers count the one shared window: no two admitted calls saw the same "remaining".
    const remaining = results.filter((r) => r.status === 200).map((r) => Number(r.headers.get('x-ratelimit-remaining-requests')));
    assert.ok(remaining.every((v) => Number.isInteger(v) && v >= 0 && v < 200), `remaining ${remaining.slice(0, 10)}`);
    assert.equal(new Set(remaining).size, remaining.length, 'two admitted calls saw the same remaining count');
    for (const r of results.filter((x) => x.status === 429)) {
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '200');
      assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
    }
  });

  test('a user limited to 150/min, one key on each instance: 450 calls → exactly 150 admitted', async () => {
    const user = await createUser(c, 'cluster_rpm_user');
    const limits = await api(c.a, 'PUT', `/api/v1/users/${user.id}/limits`, {
      token: c.admin, body: { rate_limit_per_minute: 150 },
    });
    assert.equal(limits.status, 200, JSON.stringify(limits.body));
    const k1 = await createKey(c, { user_id: user.id }, { on: c.a });
    const k2 = await createKey(c, { user_id: user.id }, { on: c.b });
    // Request i goes to instance i % 2 with key i % 2: key 1 only on A, key 2 only on B.
    await exactRpm({ keys: [k1.key, k2.key], n: 450, concurrency: 50, limit: 150 });
  });

  test('"544 of 1,022 admitted under 100/min": 1,022 calls over both instances → exactly 100', async () => {
    const key = await createKey(c, { rate_limit_per_minute: 100 });
    await exactRpm({ keys: [key.key], n: 1022, concurrency: 64, limit: 100 });
  });

  test('failed calls count: 15 of the admitted calls fail at the provider, still exactly 40 of 40/min', async () => {
    const key = await createKey(c, { rate_limit_per_minute: 40 });
    await c.mock.reset();
    await c.mock.faults(Array.from({ length: 15 }, () => ({ status: 500 })));
    const body = chatBody({ maxTokens: 4 });
    const results = await spread(c.instances, 120, 20, (inst) => chat(inst, key.key, body));
    await c.mock.reset();
    const h = histogram(results);
    const admitted = results.filter((r) => r.status !== 429);
    const failed = admitted.filter((r) => r.status !== 200);
    assert.equal(admitted.length, 40, `admitted ${JSON.stringify(h)}`);
    assert.equal(failed.length, 15, `failed at the provider ${JSON.stringify(h)}`);
    assert.ok(failed.every((r) => r.status >= 500), JSON.stringify(h));
    // The window is full: the failures were not given back.
    const after = await chat(c.b, key.key, body);
    assert.equal(after.status, 429, JSON.stringify(after.body));
  });
});

describe('tokens per minute over two instances', () => {
  test('every admission counts the reservations made on both instances (no local-memory TPM check)', async () => {
    const maxTokens = 100;
    const body = chatBody({ content: 'count my tokens', maxTokens });
    const reservation = reservationOf(body, maxTokens);
    const tpm = reservation * 20 + Math.floor(reservation / 2);  // room for exactly 20 reservations
    const key = await createKey(c, { tokens_per_minute: tpm });
    // Every admitted call is held at the mock for 1.5 s, so that no reservation is settled (and
    // shrunk to the real usage) before all 120 calls are decided.
    await c.mock.reset();
    await c.mock.faults(Array.from({ length: 100 }, () => ({ delay_ms: 1500 })));
    const results = await spread(c.instances, 120, 120, (inst) => chat(inst, key.key, body));
    await c.mock.reset();
    const h = histogram(results);
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    assert.equal(ok.length + limited.length, 120, JSON.stringify(h));
    assert.ok(ok.some((r) => r.instance === 'A') && ok.some((r) => r.instance === 'B'), JSON.stringify(h));
    for (const r of limited) assert.equal(codeOf(r), 'RATE_LIMIT_EXCEEDED', JSON.stringify(r.body));
    // What each admission left (x-ratelimit-remaining-tokens): the reservations are one shared sum.
    const remaining = ok.map((r) => Number(r.headers.get('x-ratelimit-remaining-tokens')));
    assert.ok(remaining.every((v) => Number.isInteger(v) && v >= 0), `remaining-tokens ${remaining}`);
    const reserved = tpm - Math.max(...remaining);
    assert.equal(reserved, reservation, `one call reserved ${reserved} tokens; docs/LIMITS.md: bytes/4 + max_tokens = ${reservation}`);
    assert.ok(ok.length * reservation <= tpm, `${ok.length} × ${reservation} tokens admitted under ${tpm}/min`);
    assert.equal(ok.length, 20, `admitted ${JSON.stringify(h)}`);
    assert.deepEqual([...remaining].sort((x, y) => y - x), Array.from({ length: 20 }, (_, k) => tpm - (k + 1) * reservation),
      'the admissions did not see one shared token window');
    for (const r of limited) {
      assert.equal(r.headers.get('x-ratelimit-limit-tokens'), String(tpm));
      assert.ok(Number(r.headers.get('x-ratelimit-remaining-tokens')) < reservation, r.headers.get('x-ratelimit-remaining-tokens'));
    }
  });

  test('reservations do not leak: after failed and abandoned calls, with none in flight, a tight TPM is all available', async () => {
    const tpm = 1000;
    const maxTokens = 200;
    const body = chatBody({ content: 'leak probe', maxTokens });
    const reservation = reservationOf(body, maxTokens);
    const fit = Math.floor(tpm / reservation);  // calls that fit in the minute at once
    assert.ok(fit >= 3, `${reservation}`);
    const key = await createKey(c, { tokens_per_minute: tpm });
    await c.mock.reset();
    // Waves of `fit` calls at once, half on each instance; each wave fits only if the previous
    // wave's reservations were released. A release is sent after the answer, so a call refused
    // right after the previous wave is tried again for a while; a leaked reservation would stay
    // for limits.reservation_ttl_s.
    const wave = async (fault, what, send = (inst) => chat(inst, key.key, body)) => {
      await c.mock.faults(Array.from({ length: fit }, () => fault));
      const results = await spread(c.instances, fit, fit, async (inst) => {
        const until = Date.now() + 3000;
        for (;;) {
          const r = await send(inst);
          if (r.status !== 429 || Date.now() > until) return r;
          await sleep(100);
        }
      });
      const h = histogram(results);
      assert.ok(results.every((r) => r.status !== 429), `${what}: a wave refused for 3 s (${JSON.stringify(h)}): a reservation leaked`);
      return results;
    };
    const failed = await wave({ status: 500 }, 'provider 500');
    assert.ok(failed.every((r) => r.status >= 500), JSON.stringify(histogram(failed)));
    const reset = await wave({ reset: true }, 'connection reset');
    assert.ok(reset.every((r) => r.status >= 500), JSON.stringify(histogram(reset)));
    const malformed = await wave({ malformed: true }, 'malformed answer');
    assert.ok(malformed.every((r) => r.status >= 500), JSON.stringify(histogram(malformed)));
    // Clients that leave mid-call (the provider answers 700 ms after the call came).
    await wave({ delay_ms: 700 }, 'abandoned', async (inst) => {
      try {
        return await chat(inst, key.key, body, { signal: AbortSignal.timeout(250) });
      } catch {
        return { status: 'aborted' };
      }
    });
    await sleep(1000);  // the abandoned calls are answered by the mock and settled
    assert.equal((await c.mock.faults([])).queued, 0);
    // Now one call that needs (nearly) the whole minute: admitted only if nothing leaked. The
    // abandoned calls' real usage (a few tokens each) may stay counted; a reservation may not.
    const bigMax = tpm - 100 - Math.ceil(Buffer.byteLength(chatBody({ content: 'leak probe', maxTokens: tpm })) / 4);
    const big = chatBody({ content: 'leak probe', maxTokens: bigMax });
    assert.ok(reservationOf(big, bigMax) + reservation > tpm);
    let probe;
    await eventually('the whole token minute available again', async () => {
      probe = await chat(c.instances[Math.floor(Math.random() * 2)], key.key, big);
      return probe.status === 200;
    }, { timeoutMs: 3000, everyMs: 200 }).catch((e) => {
      throw new Error(`${e.message}: last ${probe.status} ${JSON.stringify(probe.body)} remaining-tokens ${probe.headers.get('x-ratelimit-remaining-tokens')}`);
    });
  });
});

describe('token budget over two instances', () => {
  test('a token budget under concurrent load on both instances is not overrun', async () => {
    // 20 one-letter words and max_tokens 22: the mock answers 20 prompt + 22 completion tokens, a
    // little under the reservation, so a correct limiter ends at most at the budget.
    const maxTokens = 22;
    const body = chatBody({ content: Array(20).fill('x').join(' '), maxTokens });
    const reservation = reservationOf(body, maxTokens);
    const budget = 3000;
    const key = await createKey(c, { token_budget: budget, budget_period: 'total' });
    await c.mock.reset();
    const results = await spread(c.instances, 300, 40, (inst) => chat(inst, key.key, body));
    const h = histogram(results);
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 402);
    assert.equal(ok.length + refused.length, 300, JSON.stringify(h));
    for (const r of refused) {
      assert.equal(codeOf(r), 'BUDGET_EXCEEDED', JSON.stringify(r.body));
      assert.equal(r.body.error.type, 'insufficient_quota');
    }
    const perCall = ok.map((r) => r.body.usage.total_tokens);
    assert.ok(perCall.every((t) => t <= reservation), `a call used more than its reservation (${reservation}): ${perCall}`);
    // Calls one at a time until refused: then the budget is used up to less than one reservation.
    for (let i = 0; i < 40; i++) {
      const r = await chat(c.instances[i % 2], key.key, body);
      if (r.status === 402) break;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      ok.push(r);
    }
    const used = ok.reduce((s, r) => s + r.body.usage.total_tokens, 0);
    assert.ok(used <= budget, `used ${used} tokens of a budget of ${budget} (${ok.length} calls)`);
    assert.ok(budget - used < reservation + reservation, `only ${used} of ${budget} used when calls were refused`);
    // Both instances refuse now.
    for (const inst of c.instances) assert.equal((await chat(inst, key.key, body)).status, 402);
    // The usage routes agree once the records are written (off the request path).
    const summary = await api(c.a, 'GET', `/api/v1/usage/${key.id}/summary`, { token: c.admin });
    if (summary.status === 200) {
      const totalOf = (s) => s?.total_tokens ?? s?.totals?.total_tokens ?? s?.total?.total_tokens;
      let total;
      await eventually('the usage summary', async () => {
        total = totalOf((await api(c.a, 'GET', `/api/v1/usage/${key.id}/summary`, { token: c.admin })).body);
        return total === used;
      }, { timeoutMs: 3000, everyMs: 250 }).catch(() => {
        assert.fail(`GET /api/v1/usage/{key_id}/summary says ${total} tokens, the answers ${used}`);
      });
    }
  });
});

describe('revocation over two instances', () => {
  test('a key revoked on instance A is refused on instance B within 1 s', async () => {
    const key = await createKey(c, {});
    const body = chatBody({ maxTokens: 4 });
    assert.equal((await chat(c.b, key.key, body)).status, 200);  // B knows (and caches) the key
    assert.equal((await chat(c.a, key.key, body)).status, 200);
    const del = await api(c.a, 'DELETE', `/api/v1/api-keys/${key.id}`, { token: c.admin });
    assert.equal(del.status, 204, JSON.stringify(del.body));
    const revokedAt = Date.now();
    assert.equal((await chat(c.a, key.key, body)).status, 401);
    let last;
    for (;;) {
      last = await chat(c.b, key.key, body);
      if (last.status === 401) break;
      assert.equal(last.status, 200, JSON.stringify(last.body));
      assert.ok(Date.now() - revokedAt < 1000, 'instance B still accepts the revoked key after 1 s');
      await sleep(50);
    }
    const elapsed = Date.now() - revokedAt;
    assert.ok(elapsed < 1000, `refused on B after ${elapsed} ms`);
    assert.ok(codeOf(last), `no error envelope: ${JSON.stringify(last.body)}`);
  });
});

test('both instances stop cleanly on SIGTERM: exit 0, no sanitizer report', async () => {
  const problems = await stopInstances(c);
  assert.equal(problems.length, 0, problems.join('\n\n'));
});
