// A provider that answers exactly at the first-byte deadline: for each call either the answer or
// the deadline wins, thousands of times a second. Whichever wins, the client gets a 200 or a 504
// OPENAI_TIMEOUT and parley keeps serving (a deadline whose wait fired just as its exchange ended
// once ran its handler on a destroyed object).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { BACKEND, adminToken, createServiceKey, startMock, startParley, mockProviderConfig } from '../integration/harness.mjs';

describe(`answers racing the first-byte deadline (${BACKEND})`, () => {
  let p; let mock; let key;
  before(async () => {
    mock = await startMock(['--ttfb-ms', '40', '--record-limit', '0']);
    const config = mockProviderConfig(mock.url, { keyEnv: 'RACE_KEY' });
    // No retries and a first-byte deadline equal to the mock's delay.
    writeFileSync(config, readFileSync(config, 'utf8')
      .replace(/max_retries = \d+/, 'max_retries = 0')
      .replace(/first_byte_ms = \d+/, 'first_byte_ms = 40'));
    p = await startParley({ args: ['--config', config], env: { RACE_KEY: 'sk-race', PARLEY_LOG_ACCESS: 'false' } });
    key = (await createServiceKey(p.url, await adminToken(p.url))).key;
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  test('200 calls at a time for 3 s: each a 200 or a 504 OPENAI_TIMEOUT, and the server lives', async () => {
    const statuses = {};
    let exited = null;
    p.exited.then((r) => { exited = r; });
    const until = Date.now() + 3000;
    while (Date.now() < until && !exited) {
      await Promise.all(Array.from({ length: 200 }, async () => {
        const res = await fetch(`${p.url}/v1/chat/completions`, {
          method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'race' }] }),
        }).catch(() => null);
        const body = res ? await res.text() : 'no answer';
        const status = res?.status ?? 'none';
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status === 504) assert.equal(JSON.parse(body).error.code, 'OPENAI_TIMEOUT');
        else assert.equal(status, 200, body);
      }));
    }
    assert.equal(exited, null, `parley exited: ${JSON.stringify(exited)}`);
    assert.ok((statuses[200] ?? 0) + (statuses[504] ?? 0) > 0, JSON.stringify(statuses));
    const health = await fetch(`${p.url}/health`);
    assert.equal(health.status, 200);
  });
});
