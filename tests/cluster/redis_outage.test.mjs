// Redis unreachable (docs/LIMITS.md, "Many instances: Redis"): the server is paused with SIGSTOP, so
// connections stay open and nothing answers — the worst case, a dead peer rather than a refused
// connection. Instance A runs limits.redis_failure = fail_closed, instance B fail_open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, createKey, api, chat, chatBody, spread, histogram, codeOf, metric, eventually, stopInstances,
} from './lib.mjs';

const TIMEOUT_MS = 300;
// "Does not hang": a call waits at most redis.timeout_ms on Redis; the margin covers the rest of the
// call on a sanitizer build sharing two cores.
const BOUND_MS = TIMEOUT_MS + 1700;

let c;
before(async () => {
  c = await startCluster({
    env: { PARLEY_REDIS_TIMEOUT_MS: String(TIMEOUT_MS) },
    envA: { PARLEY_LIMITS_REDIS_FAILURE: 'fail_closed' },
    envB: { PARLEY_LIMITS_REDIS_FAILURE: 'fail_open' },
  });
});
after(async () => { await c?.stop(); });

const ERRORS = 'parley_limiter_redis_errors_total';
const BACK = /redis/i;
const BACK_WORDS = /\b(back|reconnected|available again|restored|recovered|reachable)\b/i;

test('Redis paused: fail_closed answers 503 and fail_open admits, neither hangs nor counts alone; after resume the shared counts apply again', async () => {
  const body = chatBody({ maxTokens: 4 });
  const rpm = 20;
  const closedKey = await createKey(c, { rate_limit_per_minute: rpm });  // used on A during the outage
  const openKey = await createKey(c, { rate_limit_per_minute: rpm });    // used on B during the outage
  const probeKey = await createKey(c, { rate_limit_per_minute: 1000000 });  // limited, never refused

  // Before: 3 calls of each key on each instance are counted in Redis.
  for (const key of [closedKey, openKey]) {
    const before = await spread(c.instances, 6, 6, (inst) => chat(inst, key.key, body));
    assert.deepEqual(histogram(before), { 200: 6 });
  }
  const errorsBefore = [await metric(c.a, ERRORS), await metric(c.b, ERRORS)];
  const logLengths = [c.a.stderr.length, c.b.stderr.length];

  c.redis.pause();
  let duringA;
  let duringB;
  try {
    // fail_closed: refused with 503 SERVICE_UNAVAILABLE, Retry-After: 1, within the bound.
    duringA = await spread([c.a], 8, 4, (inst) => chat(inst, closedKey.key, body, { signal: AbortSignal.timeout(10000) }));
    // fail_open: admitted without limits — more calls than the key's whole minute.
    duringB = await spread([c.b], rpm + 5, 5, (inst) => chat(inst, openKey.key, body, { signal: AbortSignal.timeout(10000) }));
    // Routes that are not limited do not wait on Redis at all.
    const health = await api(c.a, 'GET', '/health');
    assert.equal(health.status, 200);
    const models = await api(c.a, 'GET', '/v1/models', { token: closedKey.key });
    assert.equal(models.status, 200, JSON.stringify(models.body));
  } finally {
    c.redis.resume();
  }
  assert.deepEqual(histogram(duringA), { 503: 8 }, 'fail_closed: every call refused, none counted in memory');
  for (const r of duringA) {
    assert.equal(codeOf(r), 'SERVICE_UNAVAILABLE', JSON.stringify(r.body));
    assert.equal(r.headers.get('retry-after'), '1');
    assert.ok(r.ms < BOUND_MS, `a fail_closed call took ${r.ms} ms (redis.timeout_ms ${TIMEOUT_MS})`);
  }
  assert.deepEqual(histogram(duringB), { 200: rpm + 5 }, 'fail_open: every call admitted, none limited in memory');
  for (const r of duringB) assert.ok(r.ms < BOUND_MS, `a fail_open call took ${r.ms} ms (redis.timeout_ms ${TIMEOUT_MS})`);

  // Each instance logged the outage once, and counted its Redis errors (checked last).
  for (const [inst, from] of [[c.a, logLengths[0]], [c.b, logLengths[1]]]) {
    const warnings = inst.stderr.slice(from).split('\n').filter((l) => /redis/i.test(l) && /unreachable|lost|down|cannot|failed/i.test(l));
    assert.equal(warnings.length, 1, `instance ${inst.name}: one warning when Redis went away, got:\n${warnings.join('\n')}`);
  }
  const errorsAfter = [await metric(c.a, ERRORS), await metric(c.b, ERRORS)];

  // Back: each instance logs it (a limited call may be what notices it).
  const backLogged = (inst, from) => inst.stderr.slice(from).split('\n').some((l) => BACK.test(l) && BACK_WORDS.test(l));
  await eventually('both instances log that Redis is back', async () => {
    await Promise.all(c.instances.map((inst) => chat(inst, probeKey.key, body)));
    return backLogged(c.a, logLengths[0]) && backLogged(c.b, logLengths[1]);
  }, { timeoutMs: 5000, everyMs: 200 }).catch((e) => {
    throw new Error(`${e.message}\nA:\n${c.a.stderr.slice(logLengths[0]).split('\n').filter((l) => BACK.test(l)).join('\n')}\n` +
      `B:\n${c.b.stderr.slice(logLengths[1]).split('\n').filter((l) => BACK.test(l)).join('\n')}`);
  });
  await eventually('calls admitted through Redis on both instances', async () => {
    const rs = await Promise.all(c.instances.map((inst) => chat(inst, probeKey.key, body)));
    return rs.every((r) => r.status === 200);
  }, { timeoutMs: 3000, everyMs: 100 });

  // The counts are the shared ones: the 6 calls made before the outage still count, on both
  // instances together, and the refused calls of the outage do not.
  const afterClosed = await spread(c.instances, 40, 10, (inst) => chat(inst, closedKey.key, body));
  assert.equal(afterClosed.filter((r) => r.status === 200).length, rpm - 6,
    `closedKey after the outage: ${JSON.stringify(histogram(afterClosed))} (${rpm} per minute, 6 used before, the outage's 503s must not count)`);
  assert.equal(afterClosed.filter((r) => r.status === 429).length, 40 - (rpm - 6));
  // The fail_open calls were admitted: whether Redis learnt of them or not, the key's limit applies
  // again over both instances, at most what was left before the outage.
  const afterOpen = await spread(c.instances, 40, 10, (inst) => chat(inst, openKey.key, body));
  const openAdmitted = afterOpen.filter((r) => r.status === 200).length;
  assert.ok(openAdmitted <= rpm - 6, `openKey after the outage: ${JSON.stringify(histogram(afterOpen))}`);
  assert.equal(openAdmitted + afterOpen.filter((r) => r.status === 429).length, 40, JSON.stringify(histogram(afterOpen)));

  assert.ok(errorsAfter[0] > errorsBefore[0], `${ERRORS} on A did not rise (${errorsBefore[0]} → ${errorsAfter[0]})`);
  assert.ok(errorsAfter[1] > errorsBefore[1], `${ERRORS} on B did not rise (${errorsBefore[1]} → ${errorsAfter[1]})`);
});

test('a Redis that stays away: calls keep failing fast (no pile-up), and the instance comes back by itself', async () => {
  const body = chatBody({ maxTokens: 4 });
  const key = await createKey(c, { rate_limit_per_minute: 1000 });
  assert.equal((await chat(c.a, key.key, body)).status, 200);
  c.redis.pause();
  let results;
  try {
    // 3 s of calls, 8 at a time, on the fail_closed instance: every one answered within the bound.
    const until = Date.now() + 3000;
    results = [];
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (Date.now() < until) results.push(await chat(c.a, key.key, body, { signal: AbortSignal.timeout(10000) }));
    }));
  } finally {
    c.redis.resume();
  }
  assert.deepEqual(Object.keys(histogram(results)), ['503'], JSON.stringify(histogram(results)));
  const slowest = Math.max(...results.map((r) => r.ms));
  assert.ok(slowest < BOUND_MS, `slowest fail_closed call ${slowest} ms`);
  await eventually('A admits again', async () => (await chat(c.a, key.key, body)).status === 200, { timeoutMs: 5000, everyMs: 100 });
});

test('both instances stop cleanly on SIGTERM: exit 0, no sanitizer report', async () => {
  const problems = await stopInstances(c);
  assert.equal(problems.length, 0, problems.join('\n\n'));
});
