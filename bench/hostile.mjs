#!/usr/bin/env node
// Hostile clients against the release build, on loopback: the acceptance figures of the
// hardening work, each against its target. Started by `bench/run hostile`, which sets PARLEY_BIN
// and PARLEY_MOCK_BIN (read by tests/integration/harness.mjs) and raises the fd limit first.
//   1. 1 000 clients ask for the largest linked-in file (GET /docs/swagger-ui-bundle.js, identity,
//      then gzip) and never read: parley's RSS before, at its peak while they stay and 5 s after
//      they leave; /health p50/p99 meanwhile (200 requests, one at a time, from 127.0.0.2).
//   2. 10 000 idle sockets from 127.0.0.1: how many are admitted and how many refused (503); then
//      200 GET /health, each on a new connection from 127.0.0.2, while they stay.
//   3. 500 duplicate registrations kept in flight (each answered one replaced by the next; on a
//      worker thread of its own) while another client sends GET /api/v1/users/me one at a time,
//      200 over 5 s: its p50/p99 without and during the flood, with the registration allowance
//      raised and at its default.
//   4. kill -9 under 32 concurrent chat calls (tests/hostile/usage.test.mjs): acknowledged calls,
//      those without a usage row after a restart, and how long before the kill the oldest of them
//      was answered.
// Prints a markdown table: figure, target, measured, whether the target holds.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import {
  PARLEY_BIN, adminToken, chatLoadThenKill, createServiceKey, sleep, startParley, startStack, statusOf,
} from '../tests/integration/harness.mjs';

const ASSET = '/docs/swagger-ui-bundle.js';
const QUIET = { PARLEY_LOG_ACCESS: 'false', PARLEY_LOG_LEVEL: 'warn' };
const log = (...a) => console.error('[hostile]', ...a);

const rssKiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const mib = (kib) => (kib / 1024).toFixed(1);

// Nearest-rank percentile of a list of numbers.
function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const ms = (v) => (v === undefined ? '—' : v.toFixed(2));

// One GET through `agent` (keep-alive) or on a new connection (agent false); resolves with
// {status, ms} (status 'error' or 'timeout' when there was no answer).
function timedGet({ port, path: p, headers = {}, localAddress = '127.0.0.2', agent = false }) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const done = (status) => resolve({ status, ms: performance.now() - t0 });
    const req = http.get({ host: '127.0.0.1', port, path: p, headers, localAddress, agent }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode));
      res.on('error', () => done('error'));
    });
    req.setTimeout(20000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done(e.message === 'timeout' ? 'timeout' : 'error'));
  });
}

// Requests one at a time (see timedGet), the i-th sent no earlier than i × intervalMs after the
// first, until `count` are answered and `more()` (if given) returns false; resolves with
// {latencies (ms), sentAt (performance.now() of each), statuses: {code: n}}.
async function sequential(count, { intervalMs = 0, more = () => false, ...target }) {
  const latencies = [];
  const sentAt = [];
  const statuses = {};
  const start = performance.now();
  for (let i = 0; i < count || more(); i++) {
    const wait = start + i * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    sentAt.push(performance.now());
    const { status, ms: took } = await timedGet(target);
    latencies.push(took);
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return { latencies, sentAt, statuses };
}
const oneSocketAgent = () => new http.Agent({ keepAlive: true, maxSockets: 1 });
const statusText = (s) => Object.entries(s).map(([k, v]) => `${v}×${k}`).join(', ');

// Samples parley's RSS every 50 ms until stop() is called; stop() returns the peak (KiB).
function rssSampler(pid) {
  let peak = rssKiB(pid);
  const timer = setInterval(() => { try { peak = Math.max(peak, rssKiB(pid)); } catch { /* exited */ } }, 50);
  return () => { clearInterval(timer); try { peak = Math.max(peak, rssKiB(pid)); } catch { /* exited */ } return peak; };
}

const rows = [];  // [figure, target, measured, holds ('yes' | 'NO' | '—')]
const verdict = (ok) => (ok ? 'yes' : 'NO');

// ---- 1. clients that never read the largest file ------------------------------------------------

// parley's user + system CPU time so far, in clock ticks (100 a second).
const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return Number(f[11]) + Number(f[12]);
};
// Memory held by TCP socket buffers, machine-wide (/proc/net/sockstat counts 4 KiB pages).
const tcpMemMiB = () => Number(readFileSync('/proc/net/sockstat', 'utf8').match(/TCP:.* mem (\d+)/)[1]) * 4 / 1024;

// The non-readers ask at once; parley then writes each answer until the kernel's buffers for
// that socket are full (on loopback about 1.6 MB each: the whole identity answer). That "fill"
// is timed: it ends when parley's CPU time stops growing (≤ 3 ticks in 500 ms). /health is sent
// from the moment the non-readers connect, on a keep-alive connection opened before them, one
// request every 25 ms at most, until 200 have been answered and the fill has been over for 2 s;
// one more /health on a new connection is opened 100 ms after them (it queues for accept
// behind them).
async function nonReaders(encoding) {
  const CLIENTS = 1000;
  const p = await startParley({ env: QUIET });
  try {
    // Warm-up: the file once, read whole, and a few /health, so that "before" is a served state.
    await sequential(1, { port: p.port, path: ASSET, headers: { 'Accept-Encoding': encoding } });
    const agent = oneSocketAgent();
    await sequential(20, { port: p.port, path: '/health', agent });
    await sleep(500);
    const before = rssKiB(p.proc.pid);
    const tcpBefore = tcpMemMiB();
    const stop = rssSampler(p.proc.pid);
    let tcpPeak = tcpBefore;
    const t0 = performance.now();
    let fillEnd = null;
    let fillTicks = null;
    const ticks = [cpuTicks(p.proc.pid)];
    const watch = setInterval(() => {
      tcpPeak = Math.max(tcpPeak, tcpMemMiB());
      ticks.push(cpuTicks(p.proc.pid));
      if (fillEnd === null && ticks.length > 3 && ticks.at(-1) - ticks.at(-3) <= 3) {
        fillEnd = performance.now() - 500;
        fillTicks = ticks.at(-3) - ticks[0];
      }
    }, 250);
    const sockets = [];
    for (let i = 0; i < CLIENTS; i++) {
      const s = net.connect({ host: '127.0.0.1', port: p.port });
      s.on('error', () => {});
      s.pause();  // never read: the answer stays in the kernel's buffers and parley's
      s.write(`GET ${ASSET} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: ${encoding}\r\n\r\n`);
      sockets.push(s);
    }
    const fresh = sleep(100).then(() => timedGet({ port: p.port, path: '/health', localAddress: '127.0.0.3' }));
    const health = await sequential(200, {
      port: p.port, path: '/health', agent, intervalMs: 25,
      more: () => fillEnd === null ? performance.now() - t0 < 30000 : performance.now() - fillEnd < 2000,
    });
    const newConnection = await fresh;
    agent.destroy();
    clearInterval(watch);
    const open = sockets.filter((s) => !s.destroyed).length;
    const peak = stop();
    for (const s of sockets) s.destroy();
    await sleep(5000);
    const after = rssKiB(p.proc.pid);
    const fillMs = (fillEnd ?? performance.now()) - t0;
    const inFill = health.latencies.filter((_, i) => health.sentAt[i] < t0 + fillMs);
    return { before, peak, after, health, inFill, fillMs, fillCpuS: (fillTicks ?? ticks.at(-1) - ticks[0]) / 100, newConnection, open, CLIENTS, tcpAdded: tcpPeak - tcpBefore };
  } finally {
    await p.cleanup();
  }
}

// ---- 2. idle sockets from one address -----------------------------------------------------------

async function idleSockets() {
  const SOCKETS = 10000;
  // The header timeout (10 s by default, counted from accept for a new connection) would close
  // the admitted idle sockets during the measurement; it is raised so that they stay throughout.
  const p = await startParley({ env: { ...QUIET, PARLEY_HTTP_HEADER_TIMEOUT_MS: '120000' } });
  const sockets = [];
  try {
    const state = [];  // per socket: 'open' | 'refused' | 'error' | 'closed'
    const t0 = performance.now();
    const BATCH = 500;
    for (let start = 0; start < SOCKETS; start += BATCH) {
      const batch = [];
      for (let i = start; i < Math.min(SOCKETS, start + BATCH); i++) {
        batch.push(new Promise((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: p.port, localAddress: '127.0.0.1' });
          sockets.push(s);
          state[i] = 'pending';
          let data = '';
          s.on('connect', () => { if (state[i] === 'pending') state[i] = 'open'; resolve(); });
          s.on('data', (d) => {
            data += d.toString('latin1');
            if (statusOf(data) === 503) state[i] = 'refused';
          });
          s.on('error', () => { if (state[i] !== 'refused') state[i] = 'error'; resolve(); });
          s.on('close', () => { if (state[i] === 'open' || state[i] === 'pending') state[i] = 'closed'; resolve(); });
        }));
      }
      await Promise.all(batch);
    }
    const openedIn = (performance.now() - t0) / 1000;
    await sleep(1500);  // refusals still in flight arrive
    const count = (k) => state.filter((x) => x === k).length;
    const admitted = count('open');
    const refused = count('refused');
    const other = SOCKETS - admitted - refused;
    const health = await sequential(200, { port: p.port, path: '/health', headers: { Connection: 'close' } });
    const stillOpen = state.filter((x) => x === 'open').length;
    return { SOCKETS, admitted, refused, other, stillOpen, health, openedIn, fds: fdCount(p.proc.pid) };
  } finally {
    for (const s of sockets) s.destroy();
    await p.cleanup();
  }
}
function fdCount(pid) {
  try { return execFileSync('ls', [`/proc/${pid}/fd`], { encoding: 'utf8' }).split('\n').filter(Boolean).length; } catch { return null; }
}

// ---- 3. registration flood ----------------------------------------------------------------------

function postJson(agent, port, route, body) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port, path: route, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); res.on('error', () => resolve('error')); });
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve('error'));
    req.end(data);
  });
}

// The flood runs on a worker thread with its own event loop, so that the measuring client's
// answers do not queue behind the flood's in one loop: `inFlight` duplicates in flight at all
// times (half a taken username, half a taken email) until the main thread says stop; then it
// posts {sent, statuses}.
async function floodWorker({ port, inFlight }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const statuses = {};
  let running = true;
  let sent = 0;
  parentPort.once('message', () => { running = false; });
  await Promise.all(Array.from({ length: inFlight }, async (_, w) => {
    while (running) {
      const i = sent++;
      const dupName = i % 2 === 0;
      const status = await postJson(agent, port, '/api/v1/auth/register', {
        username: dupName ? 'taken' : `fresh${w}x${i}`,
        email: dupName ? `other${i}@example.com` : 'taken@example.com',
        password: 'correct horse battery',
      });
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }));
  agent.destroy();
  parentPort.postMessage({ sent, statuses });
}

async function registrationFlood(allowance) {
  const IN_FLIGHT = 500;
  const env = { ...QUIET, PARLEY_AUTH_OPEN_REGISTRATION: 'true' };
  if (allowance) env.PARLEY_AUTH_REGISTRATIONS_PER_ADDRESS = String(allowance);
  const p = await startParley({ env });
  try {
    const token = await adminToken(p.url, 'taken', 'correct horse battery');
    const me = { port: p.port, path: '/api/v1/users/me', headers: { Authorization: `Bearer ${token}` } };
    const agent = oneSocketAgent();
    await sequential(20, { ...me, agent });  // warm-up
    // 200 requests spread over 5 s, so that the flood is sampled throughout.
    const quiet = await sequential(200, { ...me, agent, intervalMs: 25 });
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { port: p.port, inFlight: IN_FLIGHT } });
    const done = new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    await new Promise((resolve) => worker.once('online', resolve));
    const t0 = performance.now();
    await sleep(500);  // the flood is under way
    const during = await sequential(200, { ...me, agent, intervalMs: 25 });
    const seconds = (performance.now() - t0) / 1000;
    worker.postMessage('stop');
    const { sent, statuses } = await done;
    await worker.terminate();
    agent.destroy();
    return { quiet, during, statuses, sent, seconds };
  } finally {
    await p.cleanup();
  }
}

// ---- 4. kill -9 and usage rows ------------------------------------------------------------------

async function usageAfterKill() {
  const stack = await startStack({ mockArgs: ['--record-limit', '0'], env: QUIET });
  const { p } = stack;
  let restarted;
  try {
    const key = (await createServiceKey(p.url, await adminToken(p.url))).key;
    const { acknowledged, killedAt } = await chatLoadThenKill(p, key);
    // Restart on the same data dir (the WAL is recovered), then read the rows.
    const t0 = performance.now();
    restarted = await startParley({ dataDir: p.dataDir, env: QUIET });
    const restartMs = performance.now() - t0;
    const ready = (await fetch(`${restarted.url}/health/ready`)).status;
    const rowIds = new Set(execFileSync('sqlite3', [path.join(p.dataDir, 'parley.db'), 'SELECT request_id FROM usage_events'], { encoding: 'utf8' })
      .split('\n').filter(Boolean));
    const missing = acknowledged.filter(([id]) => !rowIds.has(id));
    const oldestAge = missing.length ? killedAt - Math.min(...missing.map(([, at]) => at)) : 0;
    const olderThan1s = missing.filter(([, at]) => at < killedAt - 1000).length;
    return { acknowledged: acknowledged.length, rows: rowIds.size, missing: missing.length, oldestAge, olderThan1s, restartMs, ready };
  } finally {
    if (restarted) await restarted.stop();
    await stack.stop();
    rmSync(p.dataDir, { recursive: true, force: true });
  }
}

// ---- run and report -----------------------------------------------------------------------------

async function main() {
  const started = performance.now();
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  log(`binary ${PARLEY_BIN}; load average ${load()}`);

  for (const encoding of ['identity', 'gzip']) {
    log(`1. 1000 non-reading clients of ${ASSET} (${encoding})`);
    const r = await nonReaders(encoding);
    const added = (r.peak - r.before) / 1024;
    const h = r.health.latencies;
    const ok200 = r.health.statuses[200] === h.length;
    rows.push([`${r.CLIENTS} non-reading clients of the 1.7 MB bundle (${encoding}): parley RSS before / peak / 5 s after they left (MiB)`,
      '≤ 50 MB added',
      `${mib(r.before)} / ${mib(r.peak)} / ${mib(r.after)}: +${added.toFixed(1)} at peak, +${((r.after - r.before) / 1024).toFixed(1)} after (kernel TCP buffers +${r.tcpAdded.toFixed(0)} MiB; ${r.open} of ${r.CLIENTS} still connected at the end)`,
      verdict(added <= 50)]);
    rows.push([`… meanwhile GET /health, one at a time on a keep-alive connection (${encoding}): p50 / p99 / max ms`,
      'p99 ≤ 50 ms',
      `${ms(pct(h, 50))} / ${ms(pct(h, 99))} / ${ms(Math.max(...h))} over ${h.length} (${statusText(r.health.statuses)}); while parley filled the sockets (${(r.fillMs / 1000).toFixed(1)} s, ${r.fillCpuS.toFixed(1)} s CPU): ${r.inFill.length} requests, p50 ${ms(pct(r.inFill, 50))}, max ${ms(Math.max(0, ...r.inFill))}`,
      verdict(ok200 && pct(h, 99) <= 50)]);
    rows.push([`… GET /health on a new connection opened 100 ms after them (${encoding}): ms`,
      '— (not a target)', `${ms(r.newConnection.ms)} (${r.newConnection.status})`, '—']);
  }

  {
    log('2. 10000 idle sockets from 127.0.0.1');
    const r = await idleSockets();
    const h50 = pct(r.health.latencies, 50);
    const h99 = pct(r.health.latencies, 99);
    const ok200 = r.health.statuses[200] === 200;
    rows.push([`${r.SOCKETS} idle sockets from 127.0.0.1: admitted / refused 503 / other`,
      `admitted ≤ the per-address cap (2 000)`,
      `${r.admitted} / ${r.refused} / ${r.other} (opened in ${r.openedIn.toFixed(1)} s; ${r.stillOpen} still open after the /health run; parley fds ${r.fds})`,
      verdict(r.admitted <= 2000 && r.refused + r.admitted === r.SOCKETS)]);
    rows.push(['… meanwhile GET /health from 127.0.0.2, 200 on new connections: p50 / p99 ms',
      '200 answered 200, p99 ≤ 50 ms', `${ms(h50)} / ${ms(h99)} (${statusText(r.health.statuses)})`, verdict(ok200 && h99 <= 50)]);
  }

  for (const [allowance, label] of [[1000000, 'allowance raised to 1 000 000'], [null, 'default allowance']]) {
    log(`3. registration flood, ${label}`);
    const r = await registrationFlood(allowance);
    const q50 = pct(r.quiet.latencies, 50);
    const q99 = pct(r.quiet.latencies, 99);
    const d50 = pct(r.during.latencies, 50);
    const d99 = pct(r.during.latencies, 99);
    const ok200 = r.during.statuses[200] === 200 && r.quiet.statuses[200] === 200;
    rows.push([`500 duplicate registrations in flight (${label}): GET /api/v1/users/me p50 / p99 ms without → during`,
      'p99 ≤ 100 ms during',
      `${ms(q50)} / ${ms(q99)} → ${ms(d50)} / ${ms(d99)} (flood: ${r.sent} registrations in ${r.seconds.toFixed(1)} s, ${statusText(r.statuses)}${!allowance && !r.statuses[429] ? '; no 429: this build has no per-address allowance' : ''})`,
      verdict(ok200 && d99 <= 100)]);
  }

  {
    log('4. kill -9 under 32 concurrent chat calls');
    const r = await usageAfterKill();
    rows.push(['kill -9 after 3 s of 32 concurrent chat calls: acknowledged / without a usage row / oldest of those, answered before the kill',
      'none answered > 1 s before the kill',
      `${r.acknowledged} / ${r.missing} / ${r.missing ? `${r.oldestAge} ms` : '—'} (${r.rows} rows; restart listened in ${r.restartMs.toFixed(0)} ms, /health/ready ${r.ready})`,
      verdict(r.olderThan1s === 0 && r.acknowledged > 100)]);
  }

  console.log();
  console.log('## hostile clients (release build, loopback)');
  console.log(`# ${os.cpus().length} cores; load average at the end ${load()}; suite took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log('| figure | target | measured | holds |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

if (isMainThread) await main();
else await floodWorker(workerData);
