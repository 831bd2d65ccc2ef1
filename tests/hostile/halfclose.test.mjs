// A client that shuts down its sending side after a complete request (as some HTTP/1.1 clients and
// load balancers do) still gets its answer: a FIN after a full request is not a disconnect.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { BACKEND, adminToken, sleep, startStack } from '../integration/harness.mjs';

// Sends the request, half-closes, and collects everything until the server closes.
function halfClosed(port, method, route, token, body) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    s.on('connect', () => {
      const text = JSON.stringify(body);
      s.write(`${method} ${route} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
      s.end();  // FIN: nothing more to send, still reading
    });
    s.on('data', (d) => { data += d.toString('utf8'); });
    s.on('close', () => resolve(data));
    s.on('error', reject);
    setTimeout(() => { s.destroy(); resolve(data); }, 10000);
  });
}

// The final response's status line, after any interim 1xx.
function finalStatus(raw) {
  const codes = [...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
  return codes.find((c) => c >= 200) ?? null;
}

describe(`half-closed clients (${BACKEND})`, () => {
  let stack; let p; let mock; let token;
  before(async () => {
    stack = await startStack({ mockArgs: ['--ttfb-ms', '400'] });
    ({ p, mock } = stack);
    token = await adminToken(p.url);
  });
  after(async () => { await stack.stop(); });

  test('POST /api/v1/chat answered to a client that half-closed', async () => {
    const raw = await halfClosed(p.port, 'POST', '/api/v1/chat', token, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still here' }] });
    assert.equal(finalStatus(raw), 200, raw);
    assert.match(raw, /mock reply: still here/);
  });

  test('POST /v1/chat/completions answered to a client that half-closed', async () => {
    const raw = await halfClosed(p.port, 'POST', '/v1/chat/completions', token, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'gateway too' }] });
    assert.equal(finalStatus(raw), 200, raw);
    assert.match(raw, /mock reply: gateway too/);
  });

  test('a streamed answer reaches a client that half-closed, whole', async () => {
    const raw = await halfClosed(p.port, 'POST', '/api/v1/chat/stream', token, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream on' }] });
    assert.equal(finalStatus(raw), 200, raw);
    assert.match(raw, /"done":\s*true/);
  });

  test('a client that closes outright still cancels the provider call', async () => {
    await mock.reset();
    await mock.faults([{ hang: true }]);
    const s = net.connect({ host: '127.0.0.1', port: p.port });
    await new Promise((r) => s.on('connect', r));
    const text = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'gone' }] });
    s.write(`POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
    for (let i = 0; i < 50 && (await mock.requests()).length === 0; i++) await sleep(20);
    s.destroy();
    // parley logs the request as 499 once it noticed; the access log line says so.
    let seen = false;
    for (let i = 0; i < 50 && !seen; i++) {
      await sleep(50);
      seen = /route=\/api\/v1\/chat status=499/.test(p.stderr);
    }
    assert.ok(seen, 'the provider call was not cancelled');
  });
});
