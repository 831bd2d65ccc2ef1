// Test harness: starts the real parley binary (and helpers) on ephemeral loopback ports with
// temporary data dirs, and gives tests raw-socket and HTTP helpers.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PARLEY_BIN = process.env.PARLEY_BIN ?? path.join(ROOT, 'build/debug/bin/parley');
export const MOCK_BIN = process.env.PARLEY_MOCK_BIN ?? path.join(ROOT, 'build/debug/bin/parley-mock');

// Which database the integration run uses: SQLite in the temp data dir, or the PostgreSQL server the
// test runner started (PARLEY_TEST_POSTGRES_URL). Each parley instance gets a fresh PG schema-less
// database name so runs do not see each other's rows.
export const BACKEND = process.env.PARLEY_TEST_POSTGRES_URL ? 'postgres' : 'sqlite';

export function tempDir(prefix = 'parley-test-') {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

// The Redis server the test runner started for this tier (PARLEY_TEST_REDIS_URL), if any: every
// instance then keeps its limits there (PARLEY_REDIS_URL), unless the test names PARLEY_REDIS_URL in
// its own env (`PARLEY_REDIS_URL: undefined` keeps an instance on in-memory limits). Ids are random,
// so instances on different databases never share a limit in it.
export const TEST_REDIS_URL = process.env.PARLEY_TEST_REDIS_URL || null;

let pgCounter = 0;
async function freshPostgresUrl() {
  const base = process.env.PARLEY_TEST_POSTGRES_URL;
  const name = `parley_it_${process.pid}_${Date.now()}_${pgCounter++}`;
  const { execFileSync } = await import('node:child_process');
  const u = new URL(base);
  execFileSync('psql', [base, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE DATABASE ${name}`], { stdio: 'pipe' });
  u.pathname = `/${name}`;
  return u.toString();
}

// Starts `parley serve`. Options: env (extra environment), args (extra flags), dataDir (reuse one),
// databaseUrl (reuse one), expectExit (resolve when it exits instead of waiting for the URL).
export async function startParley(options = {}) {
  const dataDir = options.dataDir ?? tempDir();
  let databaseUrl = options.databaseUrl;
  if (!databaseUrl && BACKEND === 'postgres') databaseUrl = await freshPostgresUrl();
  const env = {
    PATH: process.env.PATH,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=1',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
    PARLEY_WORKERS: '2',
    ...(databaseUrl ? { PARLEY_DATABASE_URL: databaseUrl } : {}),
    ...(TEST_REDIS_URL && !(options.env && 'PARLEY_REDIS_URL' in options.env) ? { PARLEY_REDIS_URL: TEST_REDIS_URL } : {}),
    ...options.env,
  };
  const args = ['serve', '--listen', options.listen ?? '127.0.0.1:0', '--data-dir', dataDir, ...(options.args ?? [])];
  const proc = spawn(options.bin ?? PARLEY_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const instance = {
    proc, dataDir, databaseUrl, stdout: '', stderr: '', url: null, port: null,
    exited: new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  proc.stdout.on('data', (d) => { instance.stdout += d; });
  proc.stderr.on('data', (d) => { instance.stderr += d; });
  collectedLogs.push(instance);
  if (options.expectExit) {
    const r = await instance.exited;
    return { ...instance, ...r };
  }
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`parley did not start in time:\n${instance.stderr}`)), 30000);
    const check = () => {
      const m = instance.stdout.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        instance.url = m[1];
        instance.port = Number(new URL(m[1]).port);
        resolve();
      }
    };
    proc.stdout.on('data', check);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`parley exited (${code}) before listening:\n${instance.stderr}`)); });
  });
  instance.stop = async (signal = 'SIGTERM') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return instance.exited;
  };
  instance.cleanup = async () => {
    await instance.stop();
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  return instance;
}

// Every instance started in this process, so a test can scan all logs for secrets.
export const collectedLogs = [];

// Sends raw bytes and resolves with everything the server sent until it closed the connection or
// `timeoutMs` passed ({data, closed}).
export function rawRequest(port, payload, { timeoutMs = 5000, keepOpenAfterWrite = true } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); resolve({ data, closed: false }); }, timeoutMs);
    socket.on('connect', () => {
      for (const part of Array.isArray(payload) ? payload : [payload]) socket.write(part);
      if (!keepOpenAfterWrite) socket.end();
    });
    socket.on('data', (d) => { data += d.toString('latin1'); });
    socket.on('error', (e) => { clearTimeout(timer); if (e.code === 'ECONNRESET' || e.code === 'EPIPE') resolve({ data, closed: true }); else reject(e); });
    socket.on('close', () => { clearTimeout(timer); resolve({ data, closed: true }); });
  });
}

export function statusOf(raw) {
  const m = raw.match(/^HTTP\/1\.1 (\d{3})/);
  return m ? Number(m[1]) : null;
}

export function bodyOf(raw) {
  const i = raw.indexOf('\r\n\r\n');
  return i < 0 ? '' : raw.slice(i + 4);
}

export async function json(res) {
  const text = await res.text();
  try { return JSON.parse(text); } catch { throw new Error(`not JSON (${res.status}): ${text}`); }
}

export function expectErrorEnvelope(assert, body, code) {
  assert.ok(body.error, `no error envelope in ${JSON.stringify(body)}`);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(typeof body.error.type, 'string');
  assert.ok('param' in body.error);
  assert.equal(typeof body.error.request_id, 'string');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts parley-mock on an ephemeral loopback port with `args` (e.g. --require-key K). Resolves
// with {proc, url, stderr(), stop()}; stop() resolves once the process has exited.
export async function startMock(args = []) {
  const proc = spawn(MOCK_BIN, ['--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`parley-mock did not start:\n${err}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`parley-mock exited (${code}):\n${err}`)); });
  });
  return {
    proc,
    url,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    reset: () => fetch(`${url}/_mock/reset`, { method: 'POST' }).then((r) => r.text()),
    faults: async (list) => {
      const res = await fetch(`${url}/_mock/faults`, { method: 'POST', body: JSON.stringify({ faults: list }) });
      if (res.status !== 200) throw new Error(`faults refused (${res.status}): ${await res.text()}`);
      return json(res);
    },
    requests: async () => json(await fetch(`${url}/_mock/requests`)),
  };
}

// Registers the first user (who becomes admin) and logs in; returns the access token.
export async function adminToken(url, username = 'admin', password = 'correct horse battery') {
  const reg = await fetch(`${url}/api/v1/auth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, email: `${username}@example.com`, password }),
  });
  if (reg.status !== 201) throw new Error(`register failed (${reg.status}): ${await reg.text()}`);
  const res = await fetch(`${url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  const body = await json(res);
  if (res.status !== 200 || typeof body.access_token !== 'string') throw new Error(`login failed (${res.status})`);
  return body.access_token;
}

// Creates a service key (ai_…) owned by the token's user; returns the whole record, `key` included.
export async function createServiceKey(url, token, name = 'e2e') {
  const res = await fetch(`${url}/api/v1/api-keys`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ name }),
  });
  const body = await json(res);
  if (res.status !== 201 || typeof body.key !== 'string') throw new Error(`service key creation failed (${res.status})`);
  return body;
}

// A config file with one provider, "mock", at `mockUrl` (models gpt-*, mock-*, text-embedding-*),
// whose system key is read from `keyEnv`; fast retries (base 40 ms) so that tests stay short.
// `providerLines`: more keys of the provider's table (e.g. prices); `retry` / `timeouts`: keys that
// replace the defaults below; `extraConfig`: text after the provider (other tables).
export function mockProviderConfig(mockUrl, {
  credentials = 'system', keyEnv = 'MOCK_SYSTEM_KEY', extraConfig = '', providerLines = '', retry = {}, timeouts = {},
} = {}) {
  const table = (values) => Object.entries(values).map(([k, v]) => `${k} = ${v}`).join('\n');
  const file = path.join(tempDir('parley-config-'), 'parley.toml');
  writeFileSync(file, `
[[providers]]
name = "mock"
base_url = "${mockUrl}/v1"
credentials = "${credentials}"
api_key_env = "${keyEnv}"
models = ["gpt-*", "mock-*", "text-embedding-*"]
${providerLines}
[providers.retry]
${table({ max_retries: 3, base_delay_ms: 40, max_delay_ms: 400, retry_after_cap_ms: 400, ...retry })}
[providers.timeouts]
${table({ first_byte_ms: 3000, total_ms: 15000, ...timeouts })}
${extraConfig}`);
  return file;
}

// A made-up provider key: `sk-<who>-<random>`; never a real one.
export const providerKey = (who) => `sk-${who}-${randomBytes(16).toString('hex')}`;

// parley + parley-mock (`mockArgs`: extra flags for the mock). `credentials`: "system", "byok" or "byok_or_system" for the provider named
// "mock" (models "gpt-*" and "mock-*"); the demo provider stays on. `mockKeys`: the keys the mock
// accepts (none: any). Retries are fast (base 40 ms) so journeys stay short.
export async function startStack({ credentials = 'system', mockKeys = [], mockArgs = [], env = {}, extraConfig = '' } = {}) {
  const systemKey = providerKey('system');
  const mock = await startMock([...(mockKeys.length ? ['--require-key', [...mockKeys, systemKey].join(',')] : []), ...mockArgs]);
  const config = mockProviderConfig(mock.url, { credentials, keyEnv: 'JOURNEY_SYSTEM_KEY', extraConfig });
  let p;
  try {
    p = await startParley({ args: ['--config', config], env: { JOURNEY_SYSTEM_KEY: systemKey, ...env } });
  } catch (e) {
    await mock.stop();  // a mock left running would keep the test file from ever ending
    throw e;
  }
  return {
    p, mock, systemKey, url: p.url,
    stop: async () => { await p.stop(); await mock.stop(); },
  };
}

// Keeps `clients` /v1 chat calls in flight (service key `key`) for `ms`, then kills parley with
// SIGKILL and waits for it to exit. Returns { acknowledged: [[request_id, answered at (ms)]],
// killedAt } for the calls answered 200 before the kill.
export async function chatLoadThenKill(p, key, { clients = 32, ms = 3000 } = {}) {
  const acknowledged = [];
  let running = true;
  const worker = async () => {
    while (running) {
      try {
        const res = await fetch(`${p.url}/v1/chat/completions`, {
          method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count me' }] }),
        });
        await res.text();
        if (res.status === 200) acknowledged.push([res.headers.get('x-request-id'), Date.now()]);
      } catch { return; }  // the server is gone
    }
  };
  const workers = Array.from({ length: clients }, worker);
  await sleep(ms);
  const killedAt = Date.now();
  p.proc.kill('SIGKILL');
  await p.exited;
  running = false;
  await Promise.all(workers);
  return { acknowledged, killedAt };
}

// ---- Redis -------------------------------------------------------------------------------------

// Servers started by startRedis and not stopped yet. They are daemons (not our children), so they
// are killed when this process exits or is stopped by SIGINT/SIGTERM, whatever the tests did.
const redisServers = new Set();
function killRedisServers() {
  for (const server of redisServers) {
    try { process.kill(server.pid, 'SIGCONT'); process.kill(server.pid, 'SIGKILL'); } catch { /* gone */ }
    rmSync(server.dir, { recursive: true, force: true });
  }
  redisServers.clear();
}
let redisCleanupRegistered = false;
function registerRedisCleanup() {
  if (redisCleanupRegistered) return;
  redisCleanupRegistered = true;
  process.on('exit', killRedisServers);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { killRedisServers(); process.exit(signal === 'SIGINT' ? 130 : 143); });
  }
}

function runRedisScript(args) {
  return new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'tests/harness/redis.sh'), args, { timeout: 30000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis.sh ${args[0]} failed: ${error.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

// Starts a private redis-server (tests/harness/redis.sh: loopback, a free port, no persistence).
// Resolves with {url, pid, dir, stop(), pause(), resume()}: url is redis://127.0.0.1:PORT/0; pause()
// stops the server with SIGSTOP, so that clients' connections stay open but nothing answers (an
// unreachable Redis), resume() continues it (SIGCONT); stop() resumes it if paused, stops it and
// removes its directory. Servers left running are killed when the test process ends.
export async function startRedis() {
  registerRedisCleanup();
  const dir = tempDir('parley-redis-');
  let url;
  try {
    url = await runRedisScript(['start', dir]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const pid = Number(readFileSync(path.join(dir, 'redis.pid'), 'utf8').trim());
  const server = {
    url, pid, dir, paused: false,
    pause: () => { process.kill(pid, 'SIGSTOP'); server.paused = true; },
    resume: () => { process.kill(pid, 'SIGCONT'); server.paused = false; },
    stop: async () => {
      if (!redisServers.has(server)) return;
      redisServers.delete(server);
      try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      server.paused = false;
      try {
        await runRedisScript(['stop', dir]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  redisServers.add(server);
  return server;
}

// Checks that `buf` is a RIFF/WAVE file (the RIFF size covering it, a PCM fmt chunk, samples) and
// returns the text of its LIST/INFO/ICMT chunk (the demo provider and parley-mock put the spoken
// text there), or null.
export function wavComment(buf) {
  assert.ok(buf.length >= 44, `${buf.length} bytes are no WAV file`);
  assert.equal(buf.subarray(0, 4).toString('latin1'), 'RIFF', 'RIFF header');
  assert.equal(buf.subarray(8, 12).toString('latin1'), 'WAVE', 'WAVE form');
  assert.equal(buf.readUInt32LE(4) + 8, buf.length, 'the RIFF size covers the file');
  let pcm = false;
  let samples = 0;
  let comment = null;
  for (let pos = 12; pos + 8 <= buf.length;) {
    const id = buf.subarray(pos, pos + 4).toString('latin1');
    const size = buf.readUInt32LE(pos + 4);
    const body = buf.subarray(pos + 8, Math.min(buf.length, pos + 8 + size));
    if (id === 'fmt ') pcm = body.readUInt16LE(0) === 1;
    if (id === 'data') samples = size;
    if (id === 'LIST' && body.subarray(0, 4).toString('latin1') === 'INFO') {
      for (let sub = 4; sub + 8 <= body.length;) {
        const n = body.readUInt32LE(sub + 4);
        if (body.subarray(sub, sub + 4).toString('latin1') === 'ICMT') {
          comment = body.subarray(sub + 8, sub + 8 + n).toString('utf8').replace(/\0+$/, '');
        }
        sub += 8 + n + (n % 2);
      }
    }
    pos += 8 + size + (size % 2);
  }
  assert.ok(pcm, 'a PCM fmt chunk');
  assert.ok(samples > 0, 'the WAV file has samples');
  return comment;
}
