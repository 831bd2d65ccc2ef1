// bench/run usage: reading usage with 10,000,000 usage rows stored (release binary; SQLite, or
// PostgreSQL with --postgres URL).
//   p50/p99 of the summaries (GET /api/v1/usage/{key_id}/summary for 30 and 366 days, a user's of
//   30 days over their 20 keys, the whole deployment's of 30 days) and of record pages (the newest
//   page of a key, a page 25,000 deep by cursor, the deployment's newest page), and the time of
//   one 100,000-row CSV export. Target: summary p99 ≤ 50 ms.
// Usage: node bench/usage.mjs BIN_DIR [--rows N] [--requests N] [--postgres URL]
// The rows are written straight into the database (a recursive CTE in the sqlite3 shell, or
// generate_series in psql) with their daily rollups summed from them in SQL: through the API it
// would take hours. 200 keys (20 of them the bench user's real keys, the others of 90 other users),
// 4 models, spread evenly over the last 90 days, one call in 10 without a key, one in 50 failed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const binDir = path.resolve(args[0] ?? 'build/release/bin');
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROWS = Number(opt('--rows', 10_000_000));
const REQUESTS = Number(opt('--requests', 300));
const POSTGRES = opt('--postgres', process.env.PARLEY_BENCH_POSTGRES_URL ?? '');
const KEYS = 200;
const OWN_KEYS = 20;
const DAY = 86_400_000;

function start(bin, argv, env) {
  const proc = spawn(bin, argv, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve({ proc, url: `http://127.0.0.1:${m[1]}` });
    });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => reject(new Error(`${bin} exited (${code}) before listening: ${err}`)));
  });
}

async function call(url, method, route, token, body) {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

function sql(script, databaseUrl, db) {
  const r = POSTGRES
    ? spawnSync('psql', [databaseUrl, '-v', 'ON_ERROR_STOP=1', '-qAt'], { input: script, encoding: 'utf8' })
    : spawnSync('sqlite3', [db], { input: `PRAGMA busy_timeout = 60000;\n${script}`, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sql: ${r.stderr}`);
  return r.stdout.trim().split('\n').slice(-1)[0] ?? '';
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function latencies(n, fn) {
  for (let i = 0; i < Math.min(20, n); i++) await fn();  // warm-up
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p99: pct(times, 99) };
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-usage-'));
const db = path.join(dataDir, 'parley.db');
let databaseUrl = '';
if (POSTGRES) {
  const name = `parley_bench_usage_${process.pid}`;
  spawnSync('psql', [POSTGRES, '-qc', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
  const u = new URL(POSTGRES);
  u.pathname = `/${name}`;
  databaseUrl = u.toString();
}
const env = {
  PARLEY_LOG_ACCESS: 'false', PARLEY_WORKERS: '2', PARLEY_DATABASE_SQLITE_SYNCHRONOUS: 'normal',
  ...(databaseUrl ? { PARLEY_DATABASE_URL: databaseUrl } : {}),
};
const serve = () => start(path.join(binDir, 'parley'), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], env);

let parley = await serve();
try {
  let url = parley.url;
  const password = 'correct horse battery';
  await call(url, 'POST', '/api/v1/auth/register', null, { username: 'bench', email: 'bench@example.com', password });
  const login = async () => {
    const res = await fetch(`${url}/api/v1/auth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'bench', password }).toString(),
    });
    return (await res.json()).access_token;
  };
  let token = await login();
  const me = await call(url, 'GET', '/api/v1/users/me', token);
  const ownKeys = [];
  for (let i = 0; i < OWN_KEYS; i++) ownKeys.push((await call(url, 'POST', '/api/v1/api-keys', token, { name: `bench ${i}` })).id);
  parley.proc.kill('SIGTERM');
  await new Promise((r) => parley.proc.on('exit', r));

  // ---- seeding ----
  const now = Date.now();
  const first = now - 90 * DAY;
  const span = now - first;
  const keyRows = Array.from({ length: KEYS }, (_, k) => `(${k}, '${k < OWN_KEYS ? ownKeys[k] : `bk${k}`}', '${k < OWN_KEYS ? me.id : `bu${Math.floor(k / 2)}`}')`);
  const generator = POSTGRES ? `generate_series(0, ${ROWS - 1}) AS g(i)` : 'n';
  const rowsSelect = `
    SELECT bk.user_id, CASE WHEN i % 10 = 9 THEN NULL ELSE bk.key_id END, 'mock',
           CASE (i / 7) % 4 WHEN 0 THEN 'gpt-4o-mini' WHEN 1 THEN 'gpt-4o' WHEN 2 THEN 'mock-large' ELSE 'text-embedding-3-small' END,
           'chat.completions', CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, i % 2, 10 + i % 90, 5 + i % 40, 15 + i % 90 + i % 40,
           100 + i % 400, (10 + i % 90) * 150 + (5 + i % 40) * 600, NULL, ${first} + (i * ${span}) / ${ROWS}
    FROM ${generator} JOIN bench_keys bk ON bk.k = i % ${KEYS}`;
  const columns = 'user_id, api_key_id, provider, model, endpoint, status, streamed, prompt_tokens, completion_tokens, total_tokens, latency_ms, cost_nanos, request_id, created_at';
  const rollup = `INSERT INTO usage_daily (day, user_id, api_key_id, provider, model, requests, errors, prompt_tokens,
      completion_tokens, total_tokens, cost_nanos, latency_ms_sum)
    SELECT created_at - created_at % ${DAY}, user_id, COALESCE(api_key_id, ''), provider, model, COUNT(*),
           SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),
           SUM(cost_nanos), SUM(latency_ms)
    FROM usage_events GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO usage_daily_models (day, provider, model, requests, errors, prompt_tokens, completion_tokens, total_tokens,
      cost_nanos, latency_ms_sum)
    SELECT day, provider, model, SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),
           SUM(cost_nanos), SUM(latency_ms_sum)
    FROM usage_daily GROUP BY day, provider, model;`;
  const indexes = POSTGRES
    ? ['usage_events_key_time ON usage_events (api_key_id, created_at, id)', 'usage_events_user_time ON usage_events (user_id, created_at, id)', 'usage_events_time ON usage_events (created_at, id)']
    : ['usage_events_key_time ON usage_events (api_key_id, created_at)', 'usage_events_user_time ON usage_events (user_id, created_at)', 'usage_events_time ON usage_events (created_at)'];
  const t0 = Date.now();
  // The indexes are dropped while the rows go in and built again after (a sort instead of
  // 10 million ordered inserts each).
  sql(`${POSTGRES ? 'SET synchronous_commit = off;' : 'PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;'}
    BEGIN;
    CREATE TEMP TABLE bench_keys (k INTEGER PRIMARY KEY, key_id TEXT, user_id TEXT);
    INSERT INTO bench_keys VALUES ${keyRows.join(', ')};
    ${indexes.map((i) => `DROP INDEX ${i.split(' ')[0]};`).join('\n')}
    ${POSTGRES ? '' : `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS - 1})`}
    INSERT INTO usage_events (${columns}) ${rowsSelect};
    ${indexes.map((i) => `CREATE INDEX ${i};`).join('\n')}
    ${rollup}
    COMMIT;
    ${POSTGRES ? 'ANALYZE usage_events; ANALYZE usage_daily;' : 'ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);'}`, databaseUrl, db);
  const seeded = (Date.now() - t0) / 1000;
  const counts = sql('SELECT (SELECT COUNT(*) FROM usage_events) || \' \' || (SELECT COUNT(*) FROM usage_daily);', databaseUrl, db).split(' ');

  parley = await serve();
  url = parley.url;
  token = await login();
  const key = ownKeys[3];
  const get = (route) => () => call(url, 'GET', route, token);
  // The cursor 25,000 records deep in the key's history (or its last page's), by following pages.
  let depth = 0;
  let deep = null;
  while (depth < 25000) {
    const page = await call(url, 'GET', `/api/v1/usage/${key}?limit=500${deep ? `&cursor=${deep}` : ''}`, token);
    if (!page.next_cursor) break;
    depth += page.items.length;
    deep = encodeURIComponent(page.next_cursor);
  }
  const summary = await call(url, 'GET', `/api/v1/usage/${key}/summary?days=366`, token);
  const cases = [
    ['key summary, 30 days', `/api/v1/usage/${key}/summary?days=30`],
    ['key summary, 366 days', `/api/v1/usage/${key}/summary?days=366`],
    [`user summary (${OWN_KEYS} keys), 30 days`, `/api/v1/users/${me.id}/usage/summary?days=30`],
    ['deployment summary, 30 days', '/api/v1/usage/summary?days=30'],
    ['deployment summary, 90 days', '/api/v1/usage/summary?days=90'],
    ['key records, newest 50', `/api/v1/usage/${key}?limit=50`],
    [`key records, 50 from ${depth.toLocaleString('en')} deep (cursor)`, `/api/v1/usage/${key}?limit=50${deep ? `&cursor=${deep}` : ''}`],
    ['deployment records, newest 50', '/api/v1/usage?limit=50'],
  ];
  console.log(`\n### Reading usage, ${counts[0]} usage rows, ${counts[1]} rollup rows (${POSTGRES ? 'PostgreSQL' : 'SQLite'}; seeded in ${seeded.toFixed(0)} s)\n`);
  console.log(`The key read holds ${summary.total_requests} calls; ${REQUESTS} sequential requests per line.\n`);
  console.log('| request | p50 ms | p99 ms |');
  console.log('|---|---|---|');
  for (const [label, route] of cases) {
    const { p50, p99 } = await latencies(REQUESTS, get(route));
    console.log(`| ${label} | ${p50.toFixed(1)} | ${p99.toFixed(1)} |`);
  }
  const e0 = Date.now();
  const csv = await call(url, 'GET', `/api/v1/usage/${key}?format=csv&limit=100000`, token);
  const exportMs = Date.now() - e0;
  console.log(`| CSV export of ${csv.split('\r\n').length - 2} records (one request) | ${exportMs} (total) | — |`);
} finally {
  parley.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dataDir, { recursive: true, force: true });
  if (databaseUrl) spawnSync('psql', [POSTGRES, '-qc', `DROP DATABASE IF EXISTS ${new URL(databaseUrl).pathname.slice(1)}`]);
}
