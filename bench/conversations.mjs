// bench/run conversations: the cost of stored conversations, on loopback, against parley-mock
// answering at once (release binaries, SQLite).
//   1. Posting a message (non-streamed): requests/s and parley's CPU µs per message, with 10 and
//      with 10,000 messages stored in each conversation. Building the model context reads a bounded
//      number of rows, so the two should cost the same.
//   2. Listing and searching one user's 100,000 conversations holding 1,000,000 messages:
//      p50/p99 of GET …/conversations (first page, a deep cursor page) and of ?q= with a word in
//      1 message, in 1,000 messages and in every message.
// Usage: node bench/conversations.mjs BIN_DIR [--duration S] [--clients N]
// Rows for part 2 are written straight into the database file with the sqlite3 shell (the API
// would take minutes for a million messages); part 1 seeds its long histories the same way.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const binDir = path.resolve(args[0] ?? 'build/release/bin');
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const DURATION = opt('--duration', 5);
const CLIENTS = opt('--clients', 16);
const ROUNDS = opt('--rounds', 3);  // posting rounds; 0 measures listing and searching only

function start(bin, argv, env) {
  const proc = spawn(bin, argv, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve({ proc, url: `http://127.0.0.1:${m[1]}` });
    });
    proc.stderr.on('data', () => {});
    proc.on('exit', (code) => reject(new Error(`${bin} exited (${code}) before listening`)));
  });
}

async function call(url, method, route, token, body) {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;  // utime + stime, clock ticks of 10 ms
}

function sql(db, script) {
  const r = spawnSync('sqlite3', [db], { input: `PRAGMA busy_timeout = 60000;\n${script}`, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3: ${r.stderr}`);
  return r.stdout.trim().split('\n').slice(-1)[0] ?? '';  // the last line: PRAGMA prints its value first
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function latencies(n, fn) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p99: pct(times, 99) };
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-conv-'));
const db = path.join(dataDir, 'parley.db');
const config = path.join(dataDir, 'parley.toml');
const mock = await start(path.join(binDir, 'parley-mock'), ['--listen', '127.0.0.1:0', '--record-limit', '0'], {});
writeFileSync(config, `[[providers]]\nname = "mock"\nbase_url = "${mock.url}/v1"\ncredentials = "system"\napi_key_env = "BENCH_KEY"\nmodels = ["mock-*"]\n`);
const parley = await start(path.join(binDir, 'parley'),
  ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--config', config],
  { BENCH_KEY: 'sk-bench', PARLEY_LOG_ACCESS: 'false', PARLEY_WORKERS: '2', PARLEY_DATABASE_SQLITE_SYNCHRONOUS: 'normal' });
const url = parley.url;

try {
  const password = 'correct horse battery';
  await call(url, 'POST', '/api/v1/auth/register', null, { username: 'bench', email: 'bench@example.com', password });
  const login = await fetch(`${url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'bench', password }).toString(),
  });
  const { access_token: token } = await login.json();
  const me = (await call(url, 'GET', '/api/v1/users/me', token)).body;

  // ---- 1. posting a message ----
  async function conversations(prefix, stored) {
    const ids = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = await call(url, 'POST', `/api/v1/users/${me.id}/conversations`, token, { title: `${prefix} ${i}`, model: 'mock-1' });
      ids.push(c.body.id);
    }
    const values = ids.map((id) => `'${id}'`).join(',');
    sql(db, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${stored - 1}),
      c(id) AS (SELECT value FROM json_each('[${ids.map((id) => `"${id}"`).join(',')}]'))
      INSERT INTO messages (id, conversation_id, role, content, status, active, prompt_tokens, completion_tokens,
                            event_lengths, created_at, updated_at)
      SELECT c.id || '-' || n.i, c.id, CASE n.i % 2 WHEN 0 THEN 'user' ELSE 'assistant' END,
             'stored message ' || n.i || ' of a long history', 'complete', 1, 0, 0, '', 1700000000000 + n.i,
             1700000000000 + n.i FROM c, n;
      UPDATE conversations SET message_count = ${stored} WHERE id IN (${values});`);
    return ids;
  }
  async function posting(ids) {
    let done = 0;
    let failed = 0;
    const until = Date.now() + DURATION * 1000;
    const cpu0 = cpuSeconds(parley.proc.pid);
    const t0 = Date.now();
    await Promise.all(ids.map(async (id) => {
      while (Date.now() < until) {
        const r = await call(url, 'POST', `/api/v1/conversations/${id}/messages`, token, { content: 'what comes next in the story' });
        if (r.status === 201) done++;
        else failed++;
      }
    }));
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(parley.proc.pid) - cpu0;
    return { rps: done / seconds, cpuUs: (cpu * 1e6) / Math.max(done, 1), done, failed };
  }
  const small = await conversations('short', 10);
  const large = await conversations('long', 10000);
  await posting(small.slice(0, 2));  // warm-up
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push({ short: await posting(small), long: await posting(large) });
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  if (rounds.length) printPosting(rounds);
  function printPosting(rounds) {
  console.log(`\n### Posting a message (non-streamed), ${CLIENTS} clients, ${DURATION} s × 3 rounds, medians\n`);
  console.log('| stored messages per conversation | messages/s | parley CPU µs per message | failed |');
  console.log('|---|---|---|---|');
  for (const [name, label] of [['short', '10'], ['long', '10,000']]) {
    const xs = rounds.map((r) => r[name]);
    console.log(`| ${label} | ${med(xs.map((x) => x.rps)).toFixed(0)} | ${med(xs.map((x) => x.cpuUs)).toFixed(0)} | ${xs.reduce((a, x) => a + x.failed, 0)} |`);
  }
  const ratio = med(rounds.map((r) => r.long.rps / r.short.rps));
  console.log(`\nlong/short throughput ratio: ${ratio.toFixed(2)} (rounds: ${rounds.map((r) => (r.long.rps / r.short.rps).toFixed(2)).join(', ')})`);
  }

  // ---- 2. listing and searching ----
  const t0 = Date.now();
  sql(db, `BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
    INSERT INTO conversations (id, user_id, title, metadata, status, message_count, created_at, updated_at)
    SELECT 'bc' || i, '${me.id}', 'Conversation ' || i || ' about topic' || (i % 100), '{}',
           CASE i % 10 WHEN 0 THEN 'ended' ELSE 'active' END, 10, 1600000000000 + i, 1600000000000 + i FROM n;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
    INSERT INTO messages (id, conversation_id, role, content, status, active, prompt_tokens, completion_tokens,
                          event_lengths, created_at, updated_at)
    SELECT 'bm' || i, 'bc' || (i / 10 + 1), CASE i % 2 WHEN 0 THEN 'user' ELSE 'assistant' END,
           'common words in message ' || i || ' with rare' || (i % 1000) || ' and unique' || i, 'complete', 1, 0, 0, '',
           1600000000000 + i, 1600000000000 + i FROM n;
    COMMIT;`);
  const seeded = (Date.now() - t0) / 1000;
  const counts = sql(db, 'SELECT (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM messages);');
  const list = (route) => async () => {
    const r = await call(url, 'GET', route, token);
    if (r.status !== 200) throw new Error(`${route}: ${r.status}`);
    return r.body;
  };
  const base = `/api/v1/users/${me.id}/conversations`;
  const deep = (await call(url, 'GET', `${base}?limit=100&offset=50000`, token)).body.items.at(-1);
  const cursor = encodeURIComponent(`${Date.parse(deep.updated_at)}.${deep.id}`);
  const cases = [
    ['first page (limit 20)', `${base}?limit=20`],
    ['a page 50,000 deep by cursor', `${base}?limit=20&cursor=${cursor}`],
    ['a page 50,000 deep by offset', `${base}?limit=20&offset=50000`],
    ['status=ended', `${base}?limit=20&status=ended`],
    ['q: a word in 1 message', `${base}?q=unique777777`],
    ['q: a word in 1,000 messages', `${base}?q=rare123`],
    ['q: a title word in 1,000 titles', `${base}?q=topic42`],
    ['q: a word in every message', `${base}?q=common`],
  ];
  console.log(`\n### Listing and searching one user's conversations (${counts.replace('|', ' conversations, ')} messages; seeded in ${seeded.toFixed(0)} s)\n`);
  console.log('| request | p50 ms | p99 ms | total |');
  console.log('|---|---|---|---|');
  for (const [label, route] of cases) {
    const first = await list(route)();
    const n = label.includes('every message') ? 20 : 100;
    const { p50, p99 } = await latencies(n, list(route));
    console.log(`| ${label} | ${p50.toFixed(1)} | ${p99.toFixed(1)} | ${first.total} |`);
  }
} finally {
  parley.proc.kill('SIGTERM');
  mock.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dataDir, { recursive: true, force: true });
}
