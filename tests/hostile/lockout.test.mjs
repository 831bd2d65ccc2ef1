// Nobody can lock anyone out: failed logins slow down the (account, address) pair that failed and
// the address, with growing delays; the owner logs in from an address that did not fail. Behind a
// configured reverse proxy the client's address comes from X-Forwarded-For / Forwarded; from any
// other peer those headers are ignored.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startParley, BACKEND } from '../integration/harness.mjs';

// POST /api/v1/auth/token from a chosen local address, with extra headers.
function login(port, localAddress, username, password, headers = {}) {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams({ grant_type: 'password', username, password }).toString();
    const req = http.request({
      host: '127.0.0.1', port, localAddress, method: 'POST', path: '/api/v1/auth/token', agent: false,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe(`failed logins behind a trusted proxy (${BACKEND})`, () => {
  let p;
  const password = 'the right password for admin';
  before(async () => {
    p = await startParley({
      env: {
        PARLEY_HTTP_TRUSTED_PROXIES: '127.0.0.2',
        PARLEY_AUTH_LOGIN_MAX_FAILURES_PER_USER: '3',
        PARLEY_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS: '10',
      },
    });
    const reg = await fetch(`${p.url}/api/v1/auth/register`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'admin', email: 'admin@example.com', password }),
    });
    assert.equal(reg.status, 201);
  });
  after(async () => { await p.cleanup(); });

  test('an attacker failing on the admin account is slowed; the admin, from elsewhere, logs in at once', async () => {
    const attacker = { 'X-Forwarded-For': '203.0.113.9' };
    for (let i = 0; i < 3; i++) assert.equal((await login(p.port, '127.0.0.2', 'admin', `guess ${i}`, attacker)).status, 401);
    const slowed = await login(p.port, '127.0.0.2', 'admin', password, attacker);
    assert.equal(slowed.status, 429, slowed.text);
    assert.ok(Number(slowed.headers['retry-after']) >= 1);
    // The owner, behind the same proxy from another address: not locked out.
    const owner = await login(p.port, '127.0.0.2', 'admin', password, { 'X-Forwarded-For': '198.51.100.7' });
    assert.equal(owner.status, 200, owner.text);
    // RFC 7239 Forwarded is read the same way.
    const viaForwarded = await login(p.port, '127.0.0.2', 'admin', password, { Forwarded: 'for="[2001:db8::7]:4711";proto=https' });
    assert.equal(viaForwarded.status, 200, viaForwarded.text);
  });

  test('the delay grows with each further failure of the pair', async () => {
    const from = { 'X-Forwarded-For': '203.0.113.44' };
    for (let i = 0; i < 3; i++) assert.equal((await login(p.port, '127.0.0.2', 'admin', `nope ${i}`, from)).status, 401);
    const first = await login(p.port, '127.0.0.2', 'admin', 'nope again', from);
    assert.equal(first.status, 429);
    const firstWait = Number(first.headers['retry-after']);
    await new Promise((r) => setTimeout(r, firstWait * 1000 + 50));
    assert.equal((await login(p.port, '127.0.0.2', 'admin', 'wrong once more', from)).status, 401);
    const second = await login(p.port, '127.0.0.2', 'admin', 'and again', from);
    assert.equal(second.status, 429);
    assert.ok(Number(second.headers['retry-after']) > firstWait, `${second.headers['retry-after']} after ${firstWait}`);
  });

  test('from a peer that is not a trusted proxy, X-Forwarded-For is ignored: rotating it does not escape the limit', async () => {
    let limited = null;
    for (let i = 0; i < 12 && !limited; i++) {
      const r = await login(p.port, '127.0.0.1', `ghost${i}`, 'whatever', { 'X-Forwarded-For': `192.0.2.${i + 1}` });
      if (r.status === 429) limited = i;
      else assert.equal(r.status, 401);
    }
    assert.equal(limited, 10, 'the address counter (10) applied to the real peer');
  });
});
