// Storage through the real binary: migrations, refusing a newer schema, durability across restarts
// and across kill -9 in the middle of writes. Runs on SQLite and (with PARLEY_TEST_POSTGRES_URL) PostgreSQL.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import path from 'node:path';
import { startParley, tempDir, json, PARLEY_BIN, BACKEND, sleep } from './harness.mjs';

const OPEN = { PARLEY_AUTH_OPEN_REGISTRATION: 'true' };

function migrate(dataDir, databaseUrl) {
  const env = { ...process.env, ...(databaseUrl ? { PARLEY_DATABASE_URL: databaseUrl } : {}) };
  return spawnSync(PARLEY_BIN, ['migrate', '--data-dir', dataDir], { encoding: 'utf8', env });
}

function sql(p, statement) {
  if (BACKEND === 'postgres') {
    return execFileSync('psql', [p.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-tAc', statement]).toString().trim();
  }
  return execFileSync('sqlite3', [path.join(p.dataDir, 'parley.db'), statement]).toString().trim();
}

async function register(url, i) {
  const res = await fetch(`${url}/api/v1/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: `user_${i}`, email: `user_${i}@example.com`, password: `password-${i}-long` }),
  });
  return res;
}

async function login(url, username, password) {
  return fetch(`${url}/api/v1/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }),
  });
}

describe(`storage (${BACKEND})`, () => {
  test('migrate applies the schema once and is idempotent', async () => {
    const p = await startParley();
    await p.stop();
    const first = migrate(p.dataDir, p.databaseUrl);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /schema version \d+ \(0 migration\(s\) applied\)/);
    const second = migrate(p.dataDir, p.databaseUrl);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
    const versions = sql(p, 'SELECT COUNT(*) FROM schema_migrations');
    assert.ok(Number(versions) >= 1);
    await p.cleanup();
  });

  test('migrate on an empty database applies every migration', async () => {
    const dataDir = tempDir();
    let url;
    if (BACKEND === 'postgres') {
      const p = await startParley();
      await p.stop();
      url = p.databaseUrl;
      sql(p, 'DROP SCHEMA public CASCADE; CREATE SCHEMA public');
    }
    const r = migrate(dataDir, url);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /schema version (\d+) \((\d+) migration\(s\) applied\)/);
    const [, version, applied] = r.stdout.match(/schema version (\d+) \((\d+)/);
    assert.equal(version, applied);
  });

  test('a database newer than this parley is refused at start', async () => {
    const p = await startParley();
    await p.stop();
    sql(p, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', 0)");
    const r = await startParley({ dataDir: p.dataDir, databaseUrl: p.databaseUrl, expectExit: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /newer/);
    await p.cleanup();
  });

  test('data survives a restart', async () => {
    const p = await startParley({ env: OPEN });
    assert.equal((await register(p.url, 1)).status, 201);
    await p.stop();
    const q = await startParley({ dataDir: p.dataDir, databaseUrl: p.databaseUrl, env: OPEN });
    const res = await login(q.url, 'user_1', 'password-1-long');
    assert.equal(res.status, 200);
    assert.ok((await json(res)).access_token);
    await q.cleanup();
  });

  test('kill -9 during writes loses no acknowledged write and leaves a sound database', async () => {
    const p = await startParley({ env: OPEN });
    const acknowledged = [];
    let stop = false;
    const writers = [0, 1].map(async (w) => {
      for (let i = 0; !stop && i < 200; i++) {
        const n = w * 1000 + i;
        try {
          const res = await register(p.url, n);
          if (res.status === 201) acknowledged.push(n);
        } catch { return; }
      }
    });
    await sleep(1500);
    p.proc.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    await p.exited;
    assert.ok(acknowledged.length > 0, 'no write was acknowledged before the kill');
    if (BACKEND === 'sqlite') {
      assert.equal(sql(p, 'PRAGMA integrity_check'), 'ok');
    }
    const users = new Set(sql(p, 'SELECT username FROM users').split('\n'));
    for (const n of acknowledged) assert.ok(users.has(`user_${n}`), `acknowledged user_${n} was lost`);
    const q = await startParley({ dataDir: p.dataDir, databaseUrl: p.databaseUrl, env: OPEN });
    assert.equal((await fetch(`${q.url}/health/ready`)).status, 200);
    await q.cleanup();
  });
});
