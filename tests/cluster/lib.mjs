// The cluster tier's stack: one PostgreSQL, one Redis, parley-mock and two parley instances that
// share the database, the Redis and the secrets (JWT secret, encryption keys), each with its own data
// directory — what two replicas behind a load balancer look like. See docs/LIMITS.md, "Many
// instances: Redis".
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import {
  ROOT, startParley, startMock, startRedis, tempDir, adminToken, sleep, mockProviderConfig,
} from '../integration/harness.mjs';

export { sleep };

function run(file, args, options = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 60000, ...options }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

// A database for this test file: a fresh one on the runner's server (PARLEY_TEST_POSTGRES_URL), or a
// private server started with tests/harness/postgres.sh. Resolves with {url, stop()}.
export async function startPostgres() {
  const base = process.env.PARLEY_TEST_POSTGRES_URL;
  if (base) {
    const name = `parley_cluster_${process.pid}_${Date.now()}`;
    await run('psql', [base, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE DATABASE ${name}`]);
    const u = new URL(base);
    u.pathname = `/${name}`;
    return { url: u.toString(), stop: async () => {} };
  }
  const dir = tempDir('parley-cluster-pg-');
  const script = path.join(ROOT, 'tests/harness/postgres.sh');
  let url;
  try {
    url = await run(script, ['start', dir]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try { await run(script, ['stop', dir]); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
  return { url, stop };
}

// The provider "mock" at parley-mock, with its system key in MOCK_SYSTEM_KEY. No retries: a fault
// queued at the mock is exactly one failed call.
function providerConfig(mockUrl) {
  return mockProviderConfig(mockUrl, { retry: { max_retries: 0 }, timeouts: { first_byte_ms: 5000 } });
}

// Starts the stack. `env` goes to both instances, `envA` / `envB` to one each (e.g.
// PARLEY_LIMITS_REDIS_FAILURE). Resolves with {a, b, instances: [a, b], redis, mock, pg, admin, stop()};
// `admin` is the first user's access token (valid on both: the same JWT secret).
export async function startCluster({ env = {}, envA = {}, envB = {}, mockArgs = [] } = {}) {
  const started = [];
  const stopAll = async () => {
    for (const s of started.reverse()) {
      try { await s(); } catch { /* keep stopping the others */ }
    }
  };
  try {
    const pg = await startPostgres();
    started.push(pg.stop);
    const redis = await startRedis();
    started.push(redis.stop);
    const mock = await startMock(mockArgs);
    started.push(mock.stop);
    const config = providerConfig(mock.url);
    started.push(async () => rmSync(path.dirname(config), { recursive: true, force: true }));
    const shared = {
      PARLEY_JWT_SECRET: randomBytes(32).toString('hex'),
      PARLEY_ENCRYPTION_KEYS: `${randomBytes(32).toString('base64url')}=`,
      MOCK_SYSTEM_KEY: `sk-cluster-${randomBytes(16).toString('hex')}`,
      PARLEY_REDIS_URL: redis.url,
      // A loaded test machine can take longer than the default 250 ms to answer; the outage tests
      // set their own bound.
      PARLEY_REDIS_TIMEOUT_MS: '2000',
      ...env,
    };
    const args = ['--config', config];
    // One after the other: the first applies the migrations.
    const a = await startParley({ databaseUrl: pg.url, args, env: { ...shared, ...envA } });
    started.push(a.cleanup);
    const b = await startParley({ databaseUrl: pg.url, args, env: { ...shared, ...envB } });
    started.push(b.cleanup);
    a.name = 'A';
    b.name = 'B';
    const admin = await adminToken(a.url);
    return { a, b, instances: [a, b], redis, mock, pg, admin, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

// One HTTP call: {status, headers, body (parsed JSON, or the text), ms}. `token` is a bearer token
// (access token or service key).
export async function api(instance, method, route, { token, body, signal, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const t0 = Date.now();
  const res = await fetch(`${instance.url}${route}`, { method, headers: h, body: payload, signal });
  const text = await res.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: parsed, ms: Date.now() - t0 };
}

function expect(r, status, what) {
  if (r.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
  }
  return r.body;
}

// A service key with `fields` (rate_limit_per_minute, tokens_per_minute, token_budget, …), owned by
// the token's user or by `user_id`.
export async function createKey(cluster, fields = {}, { token = cluster.admin, on = cluster.a } = {}) {
  const name = `cluster-${randomBytes(4).toString('hex')}`;
  return expect(await api(on, 'POST', '/api/v1/api-keys', { token, body: { name, ...fields } }), 201, 'key creation');
}

// A user with role user, made by the admin.
export async function createUser(cluster, name) {
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const user = expect(await api(cluster.a, 'POST', '/api/v1/users', {
    token: cluster.admin, body: { username: name, email: `${name}@example.com`, password },
  }), 201, 'user creation');
  return { ...user, password };
}

// The /v1 chat request body: `content` as the user message, `max_tokens`. Its length in bytes is
// padded with spaces (outside any string) to a multiple of 4, so that its estimate (bytes / 4,
// docs/LIMITS.md) has no rounding.
export function chatBody({ content = 'hello there', maxTokens = 16, model = 'gpt-4o-mini', stream = false } = {}) {
  let body = JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: maxTokens, ...(stream ? { stream } : {}) });
  while (Buffer.byteLength(body) % 4 !== 0) body += ' ';
  return body;
}

// The tokens docs/LIMITS.md says a /v1 call with this body reserves: body bytes / 4 + max_tokens.
export function reservationOf(body, maxTokens) {
  return Math.ceil(Buffer.byteLength(body) / 4) + maxTokens;
}

// POST /v1/chat/completions with the service key `key` and the raw JSON `body`.
export function chat(instance, key, body, { signal } = {}) {
  return api(instance, 'POST', '/v1/chat/completions', { token: key, body, signal });
}

// Sends `n` requests with at most `concurrency` in flight; request i goes to instances[i % length]
// (so both instances serve the same scope at the same time). `send(instance, i)` makes the call.
// Resolves with the results in request order, each with `instance` (its name) and `i`.
export async function spread(instances, n, concurrency, send) {
  const results = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const instance = instances[i % instances.length];
      const r = await send(instance, i);
      results[i] = { ...r, instance: instance.name, i };
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return results;
}

// {status: count} of `results`, for messages.
export function histogram(results) {
  const h = {};
  for (const r of results) h[r.status] = (h[r.status] ?? 0) + 1;
  return h;
}

// Each result's error code (or null).
export const codeOf = (r) => (r.body && typeof r.body === 'object' && r.body.error ? r.body.error.code : null);

// The sum of the samples of metric `name` (all label sets) in the instance's /metrics.
export async function metric(instance, name) {
  const res = await fetch(`${instance.url}/metrics`);
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

// Waits (bounded) until `check()` is truthy; resolves with the elapsed ms, or throws naming `what`.
export async function eventually(what, check, { timeoutMs = 5000, everyMs = 50 } = {}) {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

// Stops both instances with SIGTERM, as a deployment does, and resolves with what went wrong: an
// exit other than 0, or a sanitizer report (its first lines) in an instance's log.
export async function stopInstances(cluster) {
  const problems = [];
  for (const instance of cluster.instances) {
    const exit = await instance.stop();
    if (exit.code !== 0) problems.push(`instance ${instance.name} exited with ${JSON.stringify(exit)}`);
    const lines = instance.stderr.split('\n');
    const at = lines.findIndex((l) => /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/.test(l));
    if (at >= 0) {
      const frames = lines.slice(at, at + 40).filter((l) => /Sanitizer|runtime error|freed by|allocated by|#\d+ .*(parley::|src\/)/.test(l));
      problems.push(`instance ${instance.name}:\n${frames.slice(0, 16).join('\n')}`);
    }
  }
  return problems;
}
