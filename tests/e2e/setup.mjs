// Shared setup of the end-to-end tests: parley-mock instances (the fake OpenAI provider), a parley
// configured with [[providers]] entries pointing at them, an admin session and a service key.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { MOCK_BIN, json } from '../integration/harness.mjs';

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

// Writes parley.toml into `dir` with one [[providers]] table per entry of `providers`
// ({name, url, models, keyEnv}); every provider uses the system key from `keyEnv`, short retry
// delays and short timeouts. Returns the file's path.
export function writeProviderConfig(dir, providers) {
  const tables = providers.map((p) => `
[[providers]]
name = "${p.name}"
base_url = "${p.url}/v1"
credentials = "system"
api_key_env = "${p.keyEnv}"
models = [${p.models.map((m) => JSON.stringify(m)).join(', ')}]
[providers.retry]
max_retries = 3
base_delay_ms = 50
max_delay_ms = 400
[providers.timeouts]
first_byte_ms = 5000
total_ms = 20000
`);
  const file = path.join(dir, 'parley.toml');
  writeFileSync(file, tables.join(''));
  return file;
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

// The words of `s` as parley-mock splits them (runs of non-ASCII-whitespace characters).
export function words(s) {
  return s.split(/[ \t\n\r\f\v]+/).filter((w) => w.length > 0);
}

// parley-mock's reply to a conversation whose last user message is `lastUser`.
export function mockReply(lastUser) {
  return ['mock', 'reply:', ...words(lastUser)].join(' ');
}
