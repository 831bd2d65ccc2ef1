// HTTPS_PROXY / NO_PROXY for provider calls: an https:// provider is reached through a CONNECT
// tunnel of the configured proxy, unless NO_PROXY names its host. The proxy here records the
// CONNECT lines and refuses the tunnel, so no TLS server or network is needed.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startParley, adminToken, json, expectErrorEnvelope, tempDir, BACKEND, providerKey } from './harness.mjs';

function startRecordingProxy() {
  const lines = [];
  const server = net.createServer((socket) => {
    let head = '';
    socket.on('data', (d) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      lines.push(head.slice(0, end).split('\r\n'));
      socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, lines, port: server.address().port })));
}

const CONFIG = `
[[providers]]
name = "remote"
base_url = "https://provider.example.test/v1"
credentials = "system"
api_key_env = "REMOTE_KEY"
models = ["remote-model"]
[providers.retry]
max_retries = 1
base_delay_ms = 10
max_delay_ms = 20
[providers.timeouts]
connect_ms = 2000
total_ms = 5000
`;

describe(`provider calls through a proxy (${BACKEND})`, () => {
  let proxy;
  before(async () => { proxy = await startRecordingProxy(); });
  after(() => proxy.server.close());

  async function callWith(env) {
    const dir = tempDir();
    const config = path.join(dir, 'parley.toml');
    writeFileSync(config, CONFIG);
    const p = await startParley({ args: ['--config', config], env: { REMOTE_KEY: providerKey('remote-proxytest'), ...env } });
    try {
      const token = await adminToken(p.url, 'proxyadmin');
      const res = await fetch(`${p.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ model: 'remote-model', messages: [{ role: 'user', content: 'through the proxy' }] }),
      });
      return { status: res.status, body: await json(res), logs: p.stdout + p.stderr };
    } finally {
      await p.cleanup();
    }
  }

  test('an https provider is tunnelled with CONNECT, with the proxy credentials, never the key', async () => {
    proxy.lines.length = 0;
    const r = await callWith({ HTTPS_PROXY: `http://puser:ppass@127.0.0.1:${proxy.port}` });
    assert.equal(r.status, 503);
    expectErrorEnvelope(assert, r.body, 'OPENAI_CONNECTION_ERROR');
    assert.equal(proxy.lines.length, 2, 'one attempt and one retry, each through the proxy');
    for (const lines of proxy.lines) {
      assert.equal(lines[0], 'CONNECT provider.example.test:443 HTTP/1.1');
      assert.ok(lines.includes(`Proxy-Authorization: Basic ${Buffer.from('puser:ppass').toString('base64')}`));
      assert.ok(!lines.join('\n').includes('sk-remote'), 'the provider key travels only inside TLS');
    }
    assert.ok(!r.logs.includes('ppass'));
  });

  test('NO_PROXY sends matching hosts direct', async () => {
    proxy.lines.length = 0;
    const r = await callWith({ https_proxy: `http://127.0.0.1:${proxy.port}`, NO_PROXY: 'localhost,.example.test' });
    assert.equal(r.status, 503);
    assert.equal(proxy.lines.length, 0);
  });
});
