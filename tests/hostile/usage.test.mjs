// Usage is money once budgets exist: after a kill -9 under load, every call acknowledged more than
// a second before the kill has its usage row (docs/OPERATIONS.md, "Usage accounting": the bound
// is one flush tick of 250 ms plus one write).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { BACKEND, adminToken, chatLoadThenKill, createServiceKey, startStack } from '../integration/harness.mjs';

describe('usage rows survive kill -9', { skip: BACKEND !== 'sqlite' && 'reads the SQLite file' }, () => {
  let stack; let p; let mock; let key;
  before(async () => {
    stack = await startStack({ mockArgs: ['--record-limit', '0'], env: { PARLEY_LOG_ACCESS: 'false' } });
    ({ p, mock } = stack);
    key = (await createServiceKey(p.url, await adminToken(p.url))).key;
  });
  after(async () => { await stack.stop(); });

  test('every call acknowledged over a second before the kill has its usage row', async () => {
    const { acknowledged, killedAt } = await chatLoadThenKill(p, key);
    const rows = new Set(execFileSync('sqlite3', [path.join(p.dataDir, 'parley.db'), 'SELECT request_id FROM usage_events'], { encoding: 'utf8' })
      .split('\n').filter(Boolean));
    const old = acknowledged.filter(([, at]) => at < killedAt - 1000);
    const lost = acknowledged.filter(([id]) => !rows.has(id));
    const lostOld = old.filter(([id]) => !rows.has(id));
    console.log(`usage after kill -9: ${acknowledged.length} acknowledged, ${rows.size} rows, ${lost.length} without a row (all within the last second: ${lostOld.length === 0})`);
    assert.ok(old.length > 100, `too little load to judge: ${old.length} calls`);
    assert.equal(lostOld.length, 0, `${lostOld.length} calls acknowledged over a second before the kill have no usage row`);
  });
});
