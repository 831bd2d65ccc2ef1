#!/usr/bin/env node
// bench/run ws: realtime chat over WebSocket (docs/REALTIME.md) against the release build, on
// loopback, with parley-mock as the provider.
//   1. 10,000 idle authenticated sockets (one user, `?token=`): how many are admitted; parley's RSS
//      (VmRSS) before, with them open, after they closed and with 10,000 opened again (memory that
//      is not reused would show there); memory per socket; parley's open file descriptors before,
//      with them open and after they closed (leaked sockets).
//   2. Answers streaming at once, 100 and then 1,000 (parley-mock --chunk-delay-ms 20, a message of
//      48 words: the mock answers "mock reply: " and the words, one word an event, so 50 tokens an
//      answer), on three paths: parley over WebSocket (one socket per answer), parley over SSE
//      (POST …/messages with "stream": true, keep-alive connections) and straight from parley-mock
//      (POST /v1/chat/completions streamed: the mock's own pacing and the client's own cost under
//      the same load). Per path: answers completed, tokens/s delivered over all answers, time to
//      first token, token lateness — a token's arrival against the time the mock's pacing gives
//      it, the answer's first token + (n − 1) × 20 ms (arrival − expected) — p50/p99, and
//      inter-arrival − 20 ms p50/p99; CPU per token of parley, the mock and this client.
//   3. The same answers on both transports at once: each asked for on one and followed live on the
//      other (WebSocket send_message → SSE GET …/stream; SSE POST → WebSocket reconnect), the
//      difference between a token's arrival over WebSocket and over SSE, p1/p50/p99: free of the
//      mock's pacing and of the machine's load, which both clients see alike.
// The paths run in turn (WebSocket and SSE alternate which goes first), each once parley's CPU is
// idle again, --rounds times after a warm-up; the tables give medians and the WS/SSE ratios are
// taken within each round.
// Usage: node bench/ws.mjs [BIN_DIR] [--sockets N] [--streams N] [--light-streams N] [--words N]
//                          [--chunk-delay-ms N] [--rounds N] [--workers N]
// The client sockets need file descriptors: raise `ulimit -n` first (bench/run does).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const binDir = path.resolve(args[0] && !args[0].startsWith('--') ? args[0] : 'build/release/bin');
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SOCKETS = opt('--sockets', 10000);
const STREAMS = opt('--streams', 1000);
const LIGHT = opt('--light-streams', 100);  // 0: the heavy level only
const WORDS = opt('--words', 48);
const DELAY = opt('--chunk-delay-ms', 20);
const ROUNDS = opt('--rounds', 3);
const WORKERS = opt('--workers', 2);
process.env.PARLEY_BIN = path.join(binDir, 'parley');  // read by the harness when it is imported
process.env.PARLEY_MOCK_BIN = path.join(binDir, 'parley-mock');
const { PARLEY_BIN, adminToken, sleep, startMock, startParley } =
  await import('../tests/integration/harness.mjs');

const log = (...a) => console.error('[ws]', ...a);
const TOKENS = WORDS + 2;  // "mock", "reply:", then the words
const CONTENT = Array.from({ length: WORDS }, (_, i) => `word${i}`).join(' ');
const MODEL = 'mock-1';
let MOCK_PID;  // parley-mock's, for its CPU time

const rssKiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return Number(f[11]) + Number(f[12]);  // utime + stime, 100 a second
};
const mib = (kib) => (kib / 1024).toFixed(1);
// Nearest-rank percentile.
function pct(values, p) {
  const s = Float64Array.from(values).sort();
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : NaN;
}
const median = (xs) => pct(xs, 50);
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '—');
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '—');
const thousands = (v) => Math.round(v).toLocaleString('en-US').replace(/,/g, ' ');

// Waits until parley is idle — at most 2 ticks of CPU in each of two 250 ms periods in a row
// (an answer's last saves and its text's indexing run after its last token) — 20 s at most.
async function quiet(pid) {
  const until = performance.now() + 20000;
  let calm = 0;
  while (calm < 2 && performance.now() < until) {
    const t = cpuTicks(pid);
    await sleep(250);
    calm = cpuTicks(pid) - t <= 2 ? calm + 1 : 0;
  }
}

// ---- sockets ------------------------------------------------------------------------------------

// Opens one socket; resolves with {ws, state: 'open' | 'refused <status>' | 'error' | …} once parley
// sent `connected` (or refused). Later frames go to `ws.onFrame(message, arrivedAt)`.
function openSocket(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let settled = false;
    const settle = (state) => { if (!settled) { settled = true; resolve({ ws, state }); } };
    ws.onFrame = null;
    ws.on('message', (data) => {
      const at = performance.now();
      const m = JSON.parse(data);
      if (!settled) settle(m.type === 'connected' ? 'open' : `unexpected ${m.type}`);
      else if (ws.onFrame) ws.onFrame(m, at);
    });
    ws.on('unexpected-response', (req, res) => { res.resume(); settle(`refused ${res.statusCode}`); ws.terminate(); });
    ws.on('error', () => settle('error'));
    ws.on('close', () => settle('closed'));
  });
}

async function openMany(url, n, batch = 500) {
  const out = [];
  for (let start = 0; start < n; start += batch) {
    const part = [];
    for (let i = start; i < Math.min(n, start + batch); i++) part.push(openSocket(url));
    out.push(...await Promise.all(part));
  }
  return out;
}

async function closeAll(sockets, timeoutMs = 10000) {
  await Promise.race([
    Promise.all(sockets.map(({ ws }) => new Promise((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      ws.once('close', resolve);
      ws.close(1000);
    }))),
    sleep(timeoutMs),
  ]);
  for (const { ws } of sockets) ws.terminate();
}

// Sends one message and resolves with the answer carrying the same id and type `expect`.
function request(ws, type, id, data, expect) {
  return new Promise((resolve, reject) => {
    ws.onFrame = (m) => {
      if (m.id !== id) return;
      ws.onFrame = null;
      if (m.type === expect) resolve(m.data);
      else reject(new Error(`${type}: ${JSON.stringify(m)}`));
    };
    ws.send(JSON.stringify({ type, id, data }));
  });
}

// ---- 1. idle sockets ----------------------------------------------------------------------------

async function idleSockets(p, wsUrl) {
  await closeAll(await openMany(wsUrl, 200));  // warm-up: the paths and allocators in use once
  await sleep(1000);
  const before = { rss: rssKiB(p.proc.pid), fds: fdCount(p.proc.pid) };
  const t0 = performance.now();
  const sockets = await openMany(wsUrl, SOCKETS);
  const openedIn = (performance.now() - t0) / 1000;
  await sleep(2000);
  const states = {};
  for (const s of sockets) states[s.state] = (states[s.state] ?? 0) + 1;
  const stillOpen = sockets.filter((s) => s.state === 'open' && s.ws.readyState === WebSocket.OPEN).length;
  const open = { rss: rssKiB(p.proc.pid), fds: fdCount(p.proc.pid) };
  await closeAll(sockets);
  await sleep(3000);
  const after = { rss: rssKiB(p.proc.pid), fds: fdCount(p.proc.pid) };
  // The same number again: memory held by the first wave and not reused would add up here.
  const again = await openMany(wsUrl, SOCKETS);
  await sleep(2000);
  const second = { rss: rssKiB(p.proc.pid), admitted: again.filter((s) => s.state === 'open').length };
  await closeAll(again);
  await sleep(3000);
  const final = { rss: rssKiB(p.proc.pid), fds: fdCount(p.proc.pid) };
  return { before, open, after, second, final, states, admitted: states.open ?? 0, stillOpen, openedIn };
}

// ---- 2. streaming -------------------------------------------------------------------------------

// One answer's token arrival times → its samples. `sent`: when it was asked for.
function answerSamples(sent, times) {
  const lateness = [];
  const gaps = [];
  for (let n = 1; n < times.length; n++) {
    lateness.push(times[n] - (times[0] + n * DELAY));
    gaps.push(times[n] - times[n - 1] - DELAY);
  }
  return { ttft: times.length ? times[0] - sent : NaN, lateness, gaps };
}

// Runs `one(i)` for every stream at once; each resolves with {ok, sent, times, end}. Returns the
// run's figures.
async function measureRun(streams, one, pid) {
  const cpu0 = pid ? cpuTicks(pid) : 0;
  const mock0 = cpuTicks(MOCK_PID);
  const client0 = process.cpuUsage();
  const answers = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
  const cpu = pid ? cpuTicks(pid) - cpu0 : 0;
  const mockCpu = cpuTicks(MOCK_PID) - mock0;
  const client = process.cpuUsage(client0);
  const ok = answers.filter((a) => a.ok && a.times.length === TOKENS);
  const first = Math.min(...answers.map((a) => a.sent));
  const last = Math.max(...answers.map((a) => a.end));
  const tokens = answers.reduce((n, a) => n + a.times.length, 0);
  const lateness = [];
  const gaps = [];
  const ttft = [];
  for (const a of ok) {
    const s = answerSamples(a.sent, a.times);
    for (const x of s.lateness) lateness.push(x);
    for (const x of s.gaps) gaps.push(x);
    ttft.push(s.ttft);
  }
  return {
    ok: ok.length,
    failed: streams - ok.length,
    errors: [...new Set(answers.filter((a) => !a.ok || a.times.length !== TOKENS).map((a) => a.error ?? `${a.times.length} tokens`))].slice(0, 3),
    tokensPerS: tokens / ((last - first) / 1000),
    ttft50: pct(ttft, 50), ttft99: pct(ttft, 99),
    late50: pct(lateness, 50), late99: pct(lateness, 99),
    gap50: pct(gaps, 50), gap99: pct(gaps, 99),
    cpuUsPerToken: pid ? (cpu * 10000) / Math.max(tokens, 1) : NaN,
    mockUsPerToken: (mockCpu * 10000) / Math.max(tokens, 1),
    clientUsPerToken: (client.user + client.system) / Math.max(tokens, 1),
    seconds: (last - first) / 1000,
  };
}

function wsRun(socks, round, pid) {
  return measureRun(socks.length, (i) => new Promise((resolve) => {
    const { ws, conversation } = socks[i];
    const id = `r${round}-${i}`;
    const times = [];
    let sent;
    const timer = setTimeout(() => done(false, 'timeout'), 60000);
    function done(ok, error) {
      clearTimeout(timer);
      ws.onFrame = null;
      resolve({ ok, error, sent, times, end: performance.now() });
    }
    ws.onFrame = (m, at) => {
      if (m.id !== id) return;
      if (m.type === 'token') times.push(at);
      else if (m.type === 'message_complete') done(m.data.status === 'complete', m.data.status);
      else if (m.type === 'error') done(false, m.data.code);
    };
    sent = performance.now();
    ws.send(JSON.stringify({ type: 'send_message', id, data: { conversation_id: conversation, content: CONTENT } }));
  }), pid);
}

// An SSE request whose events are handed to `onEvent(data, arrivedAt, times, eventNumber)` (the
// number from `id: <message_id>:<n>`, if any); resolves with {ok, error, sent, times, end} once
// the stream ends; `onEvent` returns 'done' for the terminal event of a complete answer, an error
// text for a failed one. `onHead(res, arrivedAt)` sees the response head.
function sse(agent, url, { method = 'POST', headers = {}, body, onHead, onEvent }) {
  return new Promise((resolve) => {
    const times = [];
    let ok = false;
    let error;
    let finished = false;
    const sent = performance.now();
    const finish = () => { if (!finished) { finished = true; resolve({ ok, error, sent, times, end: performance.now() }); } };
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(url, {
      method, agent,
      headers: { ...(data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}), ...headers },
    }, (res) => {
      if (res.statusCode !== 200) { error = `HTTP ${res.statusCode}`; res.resume(); res.on('end', finish); return; }
      if (onHead) onHead(res, performance.now());
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        const at = performance.now();
        buf += chunk;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const lines = buf.slice(0, end).split('\n');
          buf = buf.slice(end + 2);
          const line = lines.find((l) => l.startsWith('data:'));
          if (!line) continue;
          const id = lines.find((l) => l.startsWith('id:'));
          const r = onEvent(line.slice(5).trim(), at, times, id ? Number(id.slice(id.lastIndexOf(':') + 1)) : NaN);
          if (r === 'done') ok = true;
          else if (r) error = r;
        }
      });
      res.on('end', finish);
      res.on('error', () => { error = 'response error'; finish(); });
    });
    req.setTimeout(60000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { error = e.message; finish(); });
    req.end(data);
  });
}

// parley's SSE events: tokens (their arrival in `times`, and in `byEvent` when given), then the
// terminal event.
const parleyEvent = (byEvent) => (data, at, times, n) => {
  const e = JSON.parse(data);
  if (typeof e.token === 'string') { times.push(at); byEvent?.set(n, at); return null; }
  if (e.done) return e.status === 'complete' ? 'done' : e.status;
  return e.error?.code ?? e.status ?? 'unexpected event';
};

function sseRun(agent, base, token, conversations, pid) {
  return measureRun(conversations.length, (i) => sse(agent, `${base}/api/v1/conversations/${conversations[i]}/messages`,
    { headers: { Authorization: `Bearer ${token}` }, body: { content: CONTENT, stream: true }, onEvent: parleyEvent() }), pid);
}

function directRun(agent, mockUrl, streams) {
  return measureRun(streams, () => sse(agent, `${mockUrl}/v1/chat/completions`, {
    headers: { Authorization: 'Bearer sk-bench' },
    body: { model: MODEL, stream: true, messages: [{ role: 'user', content: CONTENT }] },
    onEvent: (data, at, times) => {
      if (data === '[DONE]') return 'done';
      const content = JSON.parse(data).choices?.[0]?.delta?.content;
      if (content) times.push(at);
      return null;
    },
  }), null);
}

// The same answers on both transports: each answer is asked for on one (`first`: 'ws' sends
// `send_message`, 'sse' POSTs with "stream": true) and followed live on the other as soon as its
// id is known (GET …/messages/{id}/stream, or `reconnect` with the message id). For every token
// that reached the asking client after the follower was attached: its arrival over WebSocket −
// its arrival over SSE. Both clients run in this process and read the same tokens at the same
// moments from the same generation, so the mock's pacing and the machine's load cancel out.
async function pairRun(first, socks, conversations, agent, base, token, round) {
  const one = (i) => new Promise((resolve) => {
    const { ws } = socks[i];
    const conversation = first === 'ws' ? socks[i].conversation : conversations[i];
    const id = `p${round}-${i}`;
    const wsAt = new Map();
    const sseAt = new Map();
    let joined = Infinity;  // when the follower was attached
    let pending = 2;
    let ok = true;
    let error;
    const timer = setTimeout(() => { ok = false; error = 'timeout'; pending = 1; end(); }, 60000);
    function end(failure) {
      if (failure) { ok = false; error ??= failure; }
      if (--pending > 0) return;
      clearTimeout(timer);
      ws.onFrame = null;
      const deltas = [];
      let excluded = 0;
      for (const [n, w] of wsAt) {
        const s = sseAt.get(n);
        if (s === undefined) continue;
        if ((first === 'ws' ? w : s) <= joined) { excluded++; continue; }
        deltas.push(w - s);
      }
      resolve({ ok: ok && wsAt.size === TOKENS && sseAt.size === TOKENS, error, deltas, excluded });
    }
    const follow = (messageId, at) => sse(agent, `${base}/api/v1/conversations/${conversation}/messages/${messageId}/stream`, {
      method: 'GET', headers: { Authorization: `Bearer ${token}` }, onHead: (res, t) => { joined = t; }, onEvent: parleyEvent(sseAt),
    }).then((r) => end(r.ok ? null : r.error ?? 'follower failed'));
    ws.onFrame = (m, at) => {
      if (m.id !== id) return;
      if (m.type === 'message_saved' && first === 'ws') follow(m.data.answer_message_id, at);
      else if (m.type === 'reconnected') joined = at;
      else if (m.type === 'token') wsAt.set(m.data.event, at);
      else if (m.type === 'message_complete') end(m.data.status === 'complete' ? null : m.data.status);
      else if (m.type === 'error') end(m.data.code);
    };
    if (first === 'ws') {
      ws.send(JSON.stringify({ type: 'send_message', id, data: { conversation_id: conversation, content: CONTENT } }));
    } else {
      sse(agent, `${base}/api/v1/conversations/${conversation}/messages`, {
        headers: { Authorization: `Bearer ${token}` }, body: { content: CONTENT, stream: true }, onEvent: parleyEvent(sseAt),
        onHead: (res) => ws.send(JSON.stringify({ type: 'reconnect', id, data: { conversation_id: conversation, message_id: res.headers['x-message-id'] } })),
      }).then((r) => end(r.ok ? null : r.error ?? 'failed'));
    }
  });
  const pairs = await Promise.all(socks.map((_, i) => one(i)));
  const deltas = [];
  for (const x of pairs) for (const d of x.deltas) deltas.push(d);
  const okPairs = pairs.filter((x) => x.ok);
  return {
    ok: okPairs.length, failed: pairs.length - okPairs.length,
    errors: [...new Set(pairs.filter((x) => !x.ok).map((x) => x.error ?? 'incomplete'))].slice(0, 3),
    compared: deltas.length, excluded: pairs.reduce((n, x) => n + x.excluded, 0),
    d1: pct(deltas, 1), d50: pct(deltas, 50), d99: pct(deltas, 99),
    wsFirst: deltas.filter((d) => d < 0).length / Math.max(deltas.length, 1),
  };
}

async function streaming(p, mock, wsUrl, token) {
  const opened = await openMany(wsUrl, STREAMS);
  const bad = opened.filter((s) => s.state !== 'open');
  if (bad.length) throw new Error(`${bad.length} streaming sockets not admitted: ${bad[0].state}`);
  // Each socket starts two conversations: one for its WebSocket answers, one for the SSE answers.
  const socks = [];
  const sseConversations = [];
  await Promise.all(opened.map(async ({ ws }, i) => {
    const a = await request(ws, 'start_conversation', `c${i}a`, { title: `ws ${i}`, model: MODEL }, 'conversation_started');
    const b = await request(ws, 'start_conversation', `c${i}b`, { title: `sse ${i}`, model: MODEL }, 'conversation_started');
    socks[i] = { ws, conversation: a.conversation_id };
    sseConversations[i] = b.conversation_id;
  }));
  const sseAgent = new http.Agent({ keepAlive: true, maxSockets: STREAMS });
  const directAgent = new http.Agent({ keepAlive: true, maxSockets: STREAMS });
  const pid = p.proc.pid;
  const paths = {
    direct: (n) => directRun(directAgent, mock.url, n),
    ws: (n, r) => wsRun(socks.slice(0, n), r, pid),
    sse: (n) => sseRun(sseAgent, p.url, token, sseConversations.slice(0, n), pid),
    wsAsks: (n, r) => pairRun('ws', socks.slice(0, n), sseConversations, sseAgent, p.url, token, r),
    sseAsks: (n, r) => pairRun('sse', socks.slice(0, n), sseConversations, sseAgent, p.url, token, r),
  };
  log(`warm-up: ${STREAMS} answers on each path`);
  for (const name of ['direct', 'ws', 'sse']) { await paths[name](STREAMS, `w.${name}`); await quiet(pid); }
  const levels = [];
  for (const n of [LIGHT, STREAMS]) {
    if (!n) continue;
    const runs = { direct: [], ws: [], sse: [], wsAsks: [], sseAsks: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['direct', 'ws', 'sse', 'wsAsks', 'sseAsks'] : ['direct', 'sse', 'ws', 'sseAsks', 'wsAsks'];
      for (const name of order) {
        const res = await paths[name](n, `${n}.${r}.${name}`);
        const failed = res.failed ? `; failed ${res.failed} (${res.errors.join(', ')})` : '';
        if (res.compared !== undefined) {
          log(`${n} at once, round ${r + 1}, ${name}: ${res.ok} complete, ${res.compared} tokens compared (${res.excluded} before the follower), WS − SSE p1 ${f2(res.d1)} p50 ${f2(res.d50)} p99 ${f2(res.d99)} ms${failed}`);
        } else {
          log(`${n} at once, round ${r + 1}, ${name}: ${res.ok} complete, ${thousands(res.tokensPerS)} tokens/s, lateness p50 ${f1(res.late50)} p99 ${f1(res.late99)} ms, ${res.seconds.toFixed(1)} s${failed}`);
        }
        runs[name].push(res);
        await quiet(pid);  // each path starts with parley idle
      }
    }
    levels.push({ n, runs });
  }
  await closeAll(opened);
  sseAgent.destroy();
  directAgent.destroy();
  return levels;
}

// ---- run and report -----------------------------------------------------------------------------

async function main() {
  const started = performance.now();
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  log(`binary ${PARLEY_BIN}; load average ${load()}`);
  const mock = await startMock(['--chunk-delay-ms', String(DELAY), '--record-limit', '0']);
  MOCK_PID = mock.proc.pid;
  // The provider as tests/integration/harness.mjs configures it (system key from MOCK_SYSTEM_KEY),
  // with the default timeouts: the harness's 3 s first-byte deadline is shorter than what 1 000
  // answers asked for at once can take on 2 shared cores.
  const configDir = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-ws-'));
  const config = path.join(configDir, 'parley.toml');
  writeFileSync(config, `[[providers]]\nname = "mock"\nbase_url = "${mock.url}/v1"\ncredentials = "system"\napi_key_env = "MOCK_SYSTEM_KEY"\nmodels = ["mock-*"]\n`);
  const limit = String(SOCKETS + 2 * STREAMS + 1000);
  const p = await startParley({
    args: ['--config', config],
    env: {
      MOCK_SYSTEM_KEY: 'sk-bench',
      PARLEY_WORKERS: String(WORKERS),
      PARLEY_LOG_ACCESS: 'false',
      PARLEY_LOG_LEVEL: 'warn',
      PARLEY_DATABASE_SQLITE_SYNCHRONOUS: 'normal',
      PARLEY_HTTP_MAX_CONNECTIONS: limit,
      PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS: limit,
      PARLEY_REALTIME_MAX_CONNECTIONS: limit,
      PARLEY_REALTIME_CONNECTIONS_PER_USER: limit,
    },
  });
  let stopping = false;
  p.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(`parley exited during the run (code ${code}, signal ${signal}); its last stderr lines:\n${p.stderr.split('\n').slice(-20).join('\n')}`);
    mock.proc.kill('SIGTERM');
    rmSync(p.dataDir, { recursive: true, force: true });
    rmSync(configDir, { recursive: true, force: true });
    process.exit(1);
  });
  let idle;
  let levels;
  try {
    const token = await adminToken(p.url, 'bench');
    const me = await (await fetch(`${p.url}/api/v1/users/me`, { headers: { Authorization: `Bearer ${token}` } })).json();
    const wsUrl = `ws://127.0.0.1:${p.port}/ws/chat/${me.id}?token=${encodeURIComponent(token)}`;
    log(`1. ${SOCKETS} idle sockets`);
    idle = await idleSockets(p, wsUrl);
    log(`2. ${LIGHT ? `${LIGHT} and ` : ''}${STREAMS} answers streaming at once, ${ROUNDS} rounds`);
    levels = await streaming(p, mock, wsUrl, token);
  } finally {
    stopping = true;
    await p.cleanup();
    await mock.stop();
    rmSync(configDir, { recursive: true, force: true });
  }

  const perSocket = (idle.open.rss - idle.before.rss) / SOCKETS;
  const verdict = (ok) => (ok ? 'yes' : '**no**');
  const states = Object.entries(idle.states).filter(([k]) => k !== 'open').map(([k, v]) => `${v} ${k}`).join(', ') || 'none refused';
  console.log();
  console.log('## Realtime (WebSocket)');
  console.log(`# ${os.cpus().length} cores; parley with ${WORKERS} workers, SQLite synchronous=normal; load average at the end ${load()}; suite took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log();
  console.log(`### ${thousands(SOCKETS)} idle authenticated sockets (one user, ?token=)`);
  console.log('| figure | target | measured | holds |');
  console.log('|---|---|---|---|');
  console.log(`| admitted (\`connected\` received) | all | ${idle.admitted} of ${SOCKETS} (${states}; opened in ${idle.openedIn.toFixed(1)} s, batches of 500; ${idle.stillOpen} still open 2 s later) | ${verdict(idle.admitted === SOCKETS && idle.stillOpen === SOCKETS)} |`);
  console.log(`| memory per idle socket: parley RSS with them open − before, ÷ ${thousands(SOCKETS)} (KiB) | ≤ 16 (stretch 8) | ${perSocket.toFixed(1)} (${mib(idle.before.rss)} → ${mib(idle.open.rss)} MiB) | ${verdict(perSocket <= 16)}${perSocket <= 8 ? ' (stretch too)' : ''} |`);
  console.log(`| parley RSS 3 s after they closed / with ${thousands(SOCKETS)} opened again / after those closed (MiB) | the second wave reuses the first's memory | ${mib(idle.after.rss)} / ${mib(idle.second.rss)} (${idle.second.admitted} admitted) / ${mib(idle.final.rss)} | ${verdict(idle.second.rss - idle.open.rss <= (idle.open.rss - idle.before.rss) / 4)} |`);
  console.log(`| parley open fds before / with them open / after they closed / after the second wave | back to before | ${idle.before.fds} / ${idle.open.fds} / ${idle.after.fds} / ${idle.final.fds} | ${verdict(idle.after.fds <= idle.before.fds + 5 && idle.final.fds <= idle.before.fds + 5)} |`);

  const label = { direct: 'direct to parley-mock (SSE)', ws: 'parley WebSocket', sse: 'parley SSE (`POST …/messages`)' };
  for (const { n, runs } of levels) {
    const med = (name, key) => median(runs[name].map((x) => x[key]));
    console.log();
    console.log(`### ${thousands(n)} answers streaming at once (parley-mock --chunk-delay-ms ${DELAY}, ${TOKENS} tokens an answer: at most ${thousands((n * 1000) / DELAY)} tokens/s), ${ROUNDS} rounds, medians`);
    console.log('| path | answers complete | tokens/s, all answers | time to first token p50 / p99 ms | token lateness p50 / p99 ms | inter-arrival − 20 ms p50 / p99 | CPU µs per token: parley / mock / client |');
    console.log('|---|---|---|---|---|---|---|');
    for (const name of ['direct', 'ws', 'sse']) {
      const xs = runs[name];
      const complete = xs.reduce((k, x) => k + x.ok, 0);
      console.log(`| ${label[name]} | ${complete} of ${xs.length * n} | ${thousands(med(name, 'tokensPerS'))} | ${f1(med(name, 'ttft50'))} / ${f1(med(name, 'ttft99'))} | ${f1(med(name, 'late50'))} / ${f1(med(name, 'late99'))} | ${f1(med(name, 'gap50'))} / ${f1(med(name, 'gap99'))} | ${name === 'direct' ? '—' : f1(med(name, 'cpuUsPerToken'))} / ${f1(med(name, 'mockUsPerToken'))} / ${f1(med(name, 'clientUsPerToken'))} |`);
    }
    const ratios = (key) => runs.ws.map((x, r) => x[key] / runs.sse[r][key]);
    const added = (name, key) => f1(median(runs[name].map((x, r) => x[key] - runs.direct[r][key])));
    const [r50, r99, tput] = [ratios('late50'), ratios('late99'), ratios('tokensPerS')];
    console.log();
    console.log(`WS/SSE (${thousands(n)} at once): token lateness p50 **${f2(median(r50))}** (rounds: ${r50.map(f2).join(', ')}), p99 **${f2(median(r99))}** (rounds: ${r99.map(f2).join(', ')}); tokens/s ${f2(median(tput))} (rounds: ${tput.map(f2).join(', ')}).`);
    console.log(`Lateness added over direct, per round then the median: WebSocket p50 ${added('ws', 'late50')} / p99 ${added('ws', 'late99')} ms, SSE p50 ${added('sse', 'late50')} / p99 ${added('sse', 'late99')} ms.`);
    console.log();
    console.log(`The same ${thousands(n)} answers on both transports at once (asked for on one, followed live on the other), ${ROUNDS} rounds, medians:`);
    console.log();
    console.log('| asked over → followed over | answers complete on both | tokens compared | WS − SSE arrival of the same token p1 / p50 / p99 ms | tokens first over WS |');
    console.log('|---|---|---|---|---|');
    for (const [name, text] of [['wsAsks', 'WebSocket `send_message` → SSE `GET …/stream`'], ['sseAsks', 'SSE `POST …/messages` → WebSocket `reconnect`']]) {
      const xs = runs[name];
      console.log(`| ${text} | ${xs.reduce((k, x) => k + x.ok, 0)} of ${xs.length * n} | ${thousands(median(xs.map((x) => x.compared)))} | ${f2(median(xs.map((x) => x.d1)))} / ${f2(median(xs.map((x) => x.d50)))} / ${f2(median(xs.map((x) => x.d99)))} | ${(100 * median(xs.map((x) => x.wsFirst))).toFixed(0)} % |`);
    }
    for (const name of ['direct', 'ws', 'sse', 'wsAsks', 'sseAsks']) {
      const failed = runs[name].filter((x) => x.failed);
      if (failed.length) console.error(`warning: ${n} at once, ${name}: failed answers ${failed.map((x) => `${x.failed} (${x.errors.join(', ')})`).join('; ')}`);
    }
  }
  console.log();
  console.log(`Token lateness: the n-th token's arrival − (the answer's first token's arrival + (n − 1) × ${DELAY} ms), tokens 2…${TOKENS} of every complete answer; inter-arrival: the gap to the previous token − ${DELAY} ms (negative: tokens that arrived together). Time to first token: from the request written (WebSocket: \`send_message\` sent) to the first token.`);
}

await main();
