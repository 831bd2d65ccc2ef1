// Shared pieces of the journey tier: each tests/journeys/seed_*.test.mjs walks one source service's
// documented user flow (../shared/seeds/) over HTTP against the built binary (PARLEY_BIN, debug or
// release) and parley-mock, in the order its README gives, with every credential mode it allows.
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { BACKEND, collectedLogs, providerKey, startStack } from '../integration/harness.mjs';

export { BACKEND, collectedLogs, providerKey, startStack };

// One HTTP call; the body is parsed as JSON when it is JSON. `token`: a JWT or a service key sent
// as Bearer; `apiKey`: a service key sent as X-API-Key; `form`: urlencoded body.
export async function api(url, method, route, { token, apiKey, body, form, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (apiKey) h['X-API-Key'] = apiKey;
  let payload;
  if (form) {
    h['Content-Type'] = 'application/x-www-form-urlencoded';
    payload = new URLSearchParams(form).toString();
  } else if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`${url}${route}`, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON: SSE or text */ }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

// Asserts the status, and for errors our envelope with `code`.
export function expectStatus(r, status, code) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text.slice(0, 500)}`);
  if (code) {
    assert.ok(r.body?.error, `no error envelope: ${r.text.slice(0, 500)}`);
    assert.equal(r.body.error.code, code);
    assert.equal(typeof r.body.error.message, 'string');
    assert.equal(typeof r.body.error.type, 'string');
    assert.ok('param' in r.body.error);
    assert.equal(typeof r.body.error.request_id, 'string');
  }
  return r.body;
}

// Registers (open registration, or the first user, who becomes admin) and logs in with the OAuth2
// password form. Returns { token, refresh, id, username, password }.
export async function signUp(url, username, password = 'correct horse battery staple') {
  const reg = await api(url, 'POST', '/api/v1/auth/register', { body: { username, email: `${username}@example.com`, password } });
  expectStatus(reg, 201);
  const login = await api(url, 'POST', '/api/v1/auth/token', { form: { grant_type: 'password', username, password } });
  expectStatus(login, 200);
  return { token: login.body.access_token, refresh: login.body.refresh_token, id: reg.body.id, username, password };
}

// The events of an SSE body (the blocks with `data: …`, whatever their `id:`) as parsed JSON
// ([DONE] as the string).
export function sseEvents(text) {
  return sseBlocks(text).map((b) => b.data);
}

// No log line of any instance started in this process contains any of `secrets`.
export function expectNoSecretsInLogs(secrets) {
  for (const inst of collectedLogs) {
    for (const s of secrets) {
      assert.ok(!inst.stderr.includes(s) && !inst.stdout.includes(s), 'a secret reached a log');
    }
  }
}

// The blocks of an SSE body that carry data, with their `id:` line: [{ id, data }] (id null when
// the block has none; data parsed as JSON, [DONE] as the string).
export function sseBlocks(text) {
  return text.split('\n\n').map((b) => b.trim()).filter((b) => b.split('\n').some((l) => l.startsWith('data: ')))
    .map((block) => {
      const lines = block.split('\n');
      const id = lines.find((l) => l.startsWith('id: '))?.slice(4) ?? null;
      const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      return { id, data: data === '[DONE]' ? data : JSON.parse(data) };
    });
}

// One HTTP call whose answer may be an SSE stream read with its event ids. `stopAfter`: drop the
// connection once that many `token` events arrived (a client that goes away mid-answer); else read
// to the end. Returns { status, headers (a Headers), text, body (parsed when JSON), events
// ([{ id, data }] of the complete blocks received) }, so expectStatus works on it too.
export function sseRequest(url, method, route, { token, body, headers = {}, stopAfter = Infinity } = {}) {
  const u = new URL(route, url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        ...headers,
      },
    }, (res) => {
      let text = '';
      let finished = false;
      const complete = () => text.slice(0, text.lastIndexOf('\n\n') + 2);
      const finish = () => {
        if (finished) return;
        finished = true;
        let parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch { /* SSE */ }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: res.statusCode, headers: h, text, body: parsed, events: sseBlocks(complete()) });
      };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (stopAfter === Infinity) return;
        if (sseBlocks(complete()).filter((e) => e.data?.token !== undefined).length >= stopAfter) {
          text = complete();
          finish();
          req.destroy();
        }
      });
      res.on('end', finish);
      res.on('close', finish);
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
    req.end(payload);
  });
}

// A WebSocket upgrade that must be refused: resolves with parley's HTTP answer ({status, headers,
// text, body}, as api() gives it, so expectStatus applies); fails if the socket opens. `options`
// go to the ws client (headers, origin, protocolVersion, ...).
export function refusedUpgrade(url, { protocols, ...options } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.on('error', () => {}); // the handshake is abandoned below
    ws.once('open', () => { ws.terminate(); reject(new Error(`the upgrade of ${url.replace(/token=[^&]*/, 'token=…')} was accepted`)); });
    ws.once('unexpected-response', (req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        req.destroy();
        let body = null;
        try { body = JSON.parse(text); } catch { /* not JSON: the assertion shows the text */ }
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: res.statusCode, headers, text, body });
      });
    });
  });
}
