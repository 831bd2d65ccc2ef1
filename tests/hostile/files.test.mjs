// Hostile clients and careless deployments (issue: "no slot, memory, lockout or accounting can be
// taken from the others"): file modes of the data directory.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, tempDir, BACKEND } from '../integration/harness.mjs';

const modeOf = (f) => statSync(f).mode & 0o777;

describe('the data directory is private to the service user', { skip: BACKEND !== 'sqlite' && 'SQLite only' }, () => {
  test('a new data directory is 0700 and every file in it 0600, the database -wal and -shm included', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const p = await startParley({ dataDir });
    try {
      // A write makes sure the WAL files exist.
      const reg = await fetch(`${p.url}/api/v1/auth/register`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'admin', email: 'admin@example.com', password: 'correct horse battery' }),
      });
      assert.equal(reg.status, 201);
      assert.equal(modeOf(dataDir), 0o700);
      for (const f of ['parley.db', 'parley.db-wal', 'parley.db-shm', 'encryption.keys', 'jwt.secret']) {
        assert.equal(modeOf(path.join(dataDir, f)), 0o600, f);
      }
    } finally {
      await p.stop();
    }
  });

  test('a data directory and database made with wider modes are narrowed at start', async () => {
    const dataDir = path.join(tempDir(), 'data');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const first = await startParley({ dataDir });
    await first.stop();
    chmodSync(dataDir, 0o755);
    chmodSync(path.join(dataDir, 'parley.db'), 0o644);
    writeFileSync(path.join(dataDir, 'unrelated.txt'), 'left alone');
    const p = await startParley({ dataDir });
    try {
      assert.equal(modeOf(dataDir), 0o700);
      assert.equal(modeOf(path.join(dataDir, 'parley.db')), 0o600);
    } finally {
      await p.stop();
    }
  });
});
