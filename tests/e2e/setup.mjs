// Shared setup of the end-to-end tests: parley-mock instances (the fake OpenAI provider), a parley
// configured with [[providers]] entries pointing at them, an admin session and a service key.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startMock, adminToken, createServiceKey } from '../integration/harness.mjs';

export { startMock, adminToken, createServiceKey };

// Writes parley.toml into `dir` with one [[providers]] table per entry of `providers`
// ({name, url, models, keyEnv, kind}; kind "anthropic" or absent); every provider uses the system
// key from `keyEnv`, short retry delays and short timeouts. Returns the file's path.
export function writeProviderConfig(dir, providers) {
  const tables = providers.map((p) => `
[[providers]]
name = "${p.name}"
${p.kind ? `kind = "${p.kind}"\n` : ''}base_url = "${p.url}/v1"
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

// The words of `s` as parley-mock splits them (runs of non-ASCII-whitespace characters).
export function words(s) {
  return s.split(/[ \t\n\r\f\v]+/).filter((w) => w.length > 0);
}

// parley-mock's reply to a conversation whose last user message is `lastUser`.
export function mockReply(lastUser) {
  return ['mock', 'reply:', ...words(lastUser)].join(' ');
}
