// Hostile clients: one client must not take every connection slot, a silent socket is not held
// for the idle timeout, and error messages do not reflect the request.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startParley, rawRequest, statusOf, bodyOf, sleep, BACKEND } from '../integration/harness.mjs';

function connect(port, localAddress) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// GET /health on its own connection from `localAddress`; resolves with the status (or null).
function healthFrom(port, localAddress) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    let data = '';
    s.on('connect', () => s.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    s.on('data', (d) => { data += d; });
    s.on('close', () => resolve(statusOf(data)));
    s.on('error', () => resolve(null));
    setTimeout(() => { s.destroy(); resolve(statusOf(data)); }, 5000);
  });
}

describe(`connection slots (${BACKEND})`, () => {
  let p;
  before(async () => {
    p = await startParley({
      env: { PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '50', PARLEY_HTTP_HEADER_TIMEOUT_MS: '800', PARLEY_HTTP_IDLE_TIMEOUT_MS: '60000' },
    });
  });
  after(async () => { await p.cleanup(); });

  test('idle sockets from one address stop at its cap; other addresses are still served', async () => {
    const hogs = [];
    try {
      for (let i = 0; i < 50; i++) hogs.push(await connect(p.port, '127.0.0.1'));
      // The 51st from the same address is refused with 503 and Retry-After.
      const refused = await rawRequest(p.port, 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n', { timeoutMs: 3000 });
      assert.equal(statusOf(refused.data), 503, refused.data);
      assert.match(refused.data, /Retry-After: 1/i);
      // Another client (another loopback address) is served meanwhile.
      assert.equal(await healthFrom(p.port, '127.0.0.2'), 200);
    } finally {
      for (const s of hogs) s.destroy();
    }
    // Once the hog leaves, its address is served again.
    await sleep(200);
    assert.equal(await healthFrom(p.port, '127.0.0.1'), 200);
  });

  test('a socket that never sends a byte is closed after the header timeout, not the idle timeout', async () => {
    const s = await connect(p.port, '127.0.0.1');
    const closed = new Promise((resolve) => s.on('close', () => resolve(true)));
    const result = await Promise.race([closed, sleep(5000).then(() => false)]);
    s.destroy();
    assert.equal(result, true, 'the silent socket was still open after 5 s (header timeout 0.8 s)');
  });

  test('a keep-alive connection between requests may stay idle longer than the header timeout', async () => {
    const s = await connect(p.port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => { data += d; });
    s.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await sleep(1500);
    s.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await sleep(300);
    s.destroy();
    assert.equal((data.match(/HTTP\/1\.1 200/g) || []).length, 2, data);
  });

  test('a 404 does not reflect the path it was asked for', async () => {
    const r = await rawRequest(p.port, 'GET /%3Cscript%3Ealert(1)%3C/script%3E/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(r.data), 404);
    const body = bodyOf(r.data);
    assert.doesNotMatch(body, /script|alert/i);
    assert.equal(JSON.parse(body).error.code, 'NOT_FOUND');
  });
});
