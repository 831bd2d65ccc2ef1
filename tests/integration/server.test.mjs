// The foundation through the real binary: HTTP limits and protocol edge cases, middleware,
// operations routes, configuration, secrets, migrations and graceful shutdown.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { statSync, existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  startParley, rawRequest, statusOf, bodyOf, json, expectErrorEnvelope, tempDir, PARLEY_BIN, BACKEND, sleep,
} from './harness.mjs';

describe(`server (${BACKEND})`, () => {
  let p;
  before(async () => {
    p = await startParley({
      env: {
        PARLEY_HTTP_CORS_ORIGINS: 'https://app.example',
        PARLEY_HTTP_HEADER_TIMEOUT_MS: '500',
        PARLEY_HTTP_BODY_TIMEOUT_MS: '500',
      },
    });
  });
  after(async () => { await p.cleanup(); });

  test('GET /health answers ok with the version', async () => {
    const res = await fetch(`${p.url}/health`);
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.status, 'ok');
    assert.match(body.version, /^\d+\.\d+\.\d+/);
  });

  test('GET /health/ready checks the database', async () => {
    const res = await fetch(`${p.url}/health/ready`);
    assert.equal(res.status, 200);
    const body = await json(res);
    assert.equal(body.status, 'ready');
    assert.equal(body.checks.database, 'ok');
  });

  test('unknown path is 404 in the error envelope', async () => {
    const res = await fetch(`${p.url}/no/such/path`);
    assert.equal(res.status, 404);
    expectErrorEnvelope(assert, await json(res), 'NOT_FOUND');
  });

  test('wrong method is 405 with Allow', async () => {
    const res = await fetch(`${p.url}/health`, { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    expectErrorEnvelope(assert, await json(res), 'METHOD_NOT_ALLOWED');
  });

  test('HEAD is answered by the GET route without a body', async () => {
    const r = await rawRequest(p.port, 'HEAD /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(r.data), 200);
    assert.equal(bodyOf(r.data), '');
  });

  test('a body over the limit is 413', async () => {
    const big = 'x'.repeat(1024 * 1024 + 10);
    const r = await rawRequest(p.port,
      `POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`);
    assert.equal(statusOf(r.data), 413);
    expectErrorEnvelope(assert, JSON.parse(bodyOf(r.data)), 'PAYLOAD_TOO_LARGE');
  });

  test('a chunked body over the limit is 413', async () => {
    const chunk = 'x'.repeat(600 * 1024);
    const c = `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    const r = await rawRequest(p.port, [
      'POST /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', c, c, '0\r\n\r\n']);
    assert.equal(statusOf(r.data), 413);
  });

  test('a header block over 16 KiB is 431', async () => {
    const r = await rawRequest(p.port, `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    assert.equal(statusOf(r.data), 431);
    expectErrorEnvelope(assert, JSON.parse(bodyOf(r.data)), 'HEADER_TOO_LARGE');
  });

  test('Content-Length with Transfer-Encoding is 400 and the connection is closed', async () => {
    const r = await rawRequest(p.port,
      'POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.equal(statusOf(r.data), 400);
    assert.equal(r.closed, true);
    // The smuggled second request must not have been answered.
    assert.equal((r.data.match(/HTTP\/1\.1 /g) || []).length, 1);
  });

  // RFC 9112 §6.1: a request whose Transfer-Encoding does not end in chunked has no knowable body
  // length. Read as an empty body, the bytes after it would run as a second request.
  for (const te of ['identity', 'gzip', 'xchunked', 'chunked, gzip', 'gzip, chunked', 'chunked, chunked', '']) {
    test(`Transfer-Encoding "${te}" is 400 and the bytes after it never run as a request`, async () => {
      const r = await rawRequest(p.port,
        `POST /api/v1/auth/logout HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: ${te}\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n`,
        { timeoutMs: 3000 });
      assert.equal(statusOf(r.data), 400, r.data);
      expectErrorEnvelope(assert, JSON.parse(bodyOf(r.data)), 'BAD_REQUEST');
      assert.equal(r.closed, true);
      assert.equal((r.data.match(/HTTP\/1\.1 /g) || []).length, 1, r.data);
    });
  }

  test('Transfer-Encoding split over two fields is read as one list', async () => {
    const r = await rawRequest(p.port,
      'POST /api/v1/auth/logout HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n',
      { timeoutMs: 3000 });
    assert.equal(statusOf(r.data), 400, r.data);
    assert.equal(r.closed, true);
  });

  test('Transfer-Encoding on an HTTP/1.0 request is 400', async () => {
    const r = await rawRequest(p.port,
      'POST /health HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', { timeoutMs: 3000 });
    assert.equal(statusOf(r.data), 400, r.data);
    assert.equal(r.closed, true);
  });

  test('a plain chunked body with a small trailer is read and the connection kept', async () => {
    const r = await rawRequest(p.port,
      'POST /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n',
      { timeoutMs: 1500 });
    assert.equal(statusOf(r.data), 405, r.data);
    assert.equal((r.data.match(/HTTP\/1\.1 /g) || []).length, 2, r.data);
  });

  // A trailer field of 64 KiB or more made Beast's field container throw inside a completion
  // handler, which ended the process. No authentication is needed to send one.
  for (const size of [65535, 70000, 1 << 20]) {
    test(`a chunk trailer of ${size} bytes is 431 and the server keeps serving`, async () => {
      const r = await rawRequest(p.port,
        `POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: ${'t'.repeat(size)}\r\n\r\n`,
        { timeoutMs: 5000 });
      assert.equal(statusOf(r.data), 431, r.data.slice(0, 300));
      expectErrorEnvelope(assert, JSON.parse(bodyOf(r.data)), 'HEADER_TOO_LARGE');
      assert.equal(r.closed, true);
      assert.equal((await fetch(`${p.url}/health`)).status, 200);
      assert.equal(p.proc.exitCode, null);
    });
  }

  // Beast asserted when the last chunk arrived split after its first line; the debug build aborted.
  test('a last chunk that arrives in pieces ends the body normally', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: p.port });
    await new Promise((resolve) => socket.on('connect', resolve));
    let data = '';
    socket.on('data', (d) => { data += d.toString('latin1'); });
    socket.setNoDelay(true);
    for (const piece of ['POST /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', '0\r\n', '\r', '\n']) {
      socket.write(piece);
      await sleep(60);
    }
    for (let i = 0; i < 50 && !data.includes('\r\n\r\n'); i++) await sleep(20);
    socket.destroy();
    assert.equal(statusOf(data), 405, data);
    assert.equal((await fetch(`${p.url}/health`)).status, 200);
    assert.equal(p.proc.exitCode, null);
  });

  test('a second Host header is 400 (RFC 9112 §3.2)', async () => {
    const r = await rawRequest(p.port, 'GET /health HTTP/1.1\r\nHost: localhost\r\nHost: other.example\r\n\r\n', { timeoutMs: 3000 });
    assert.equal(statusOf(r.data), 400, r.data);
    assert.equal(r.closed, true);
  });

  for (const [name, line] of [
    ['garbage request line', 'HELLO\r\n\r\n'],
    ['bad version', 'GET /health HTTP/9.9\r\nHost: localhost\r\n\r\n'],
    ['space in target', 'GET /he alth HTTP/1.1\r\nHost: localhost\r\n\r\n'],
    ['bad header line', 'GET /health HTTP/1.1\r\nHost localhost\r\n\r\n'],
    ['binary junk', '\x00\x01\x02\x03\xff\xfe\r\n\r\n'],
    ['bad chunk size', 'POST /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
  ]) {
    test(`malformed request (${name}) gets 400 and the server keeps serving`, async () => {
      const r = await rawRequest(p.port, line, { timeoutMs: 3000 });
      assert.equal(statusOf(r.data), 400, r.data);
      assert.equal(r.closed, true);
      const res = await fetch(`${p.url}/health`);
      assert.equal(res.status, 200);
    });
  }

  test('missing Host header is 400; an untrusted Host is 400', async () => {
    const a = await rawRequest(p.port, 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(a.data), 400);
    const b = await rawRequest(p.port, 'GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(b.data), 400);
    assert.match(bodyOf(b.data), /Host not allowed/);
  });

  test('a slow header is answered 408', async () => {
    const r = await rawRequest(p.port, 'GET /health HTTP/1.1\r\nHost: local', { timeoutMs: 4000 });
    assert.equal(statusOf(r.data), 408);
    assert.equal(r.closed, true);
  });

  test('a slow body is answered 408', async () => {
    const r = await rawRequest(p.port, 'POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc', { timeoutMs: 4000 });
    assert.equal(statusOf(r.data), 408);
  });

  test('keep-alive serves several requests on one connection', async () => {
    const req = 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n';
    const r = await rawRequest(p.port, [req, req, req.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')]);
    assert.equal((r.data.match(/HTTP\/1\.1 200/g) || []).length, 3);
    assert.equal(r.closed, true);
  });

  test('X-Request-ID is echoed, or generated when absent or invalid', async () => {
    const a = await fetch(`${p.url}/health`, { headers: { 'X-Request-ID': 'trace-abc.123' } });
    assert.equal(a.headers.get('x-request-id'), 'trace-abc.123');
    const b = await fetch(`${p.url}/health`);
    assert.match(b.headers.get('x-request-id'), /^req_[0-9a-f]+$/);
    const c = await fetch(`${p.url}/health`, { headers: { 'X-Request-ID': 'bad id with spaces' } });
    assert.match(c.headers.get('x-request-id'), /^req_/);
    const e = await fetch(`${p.url}/nope`, { headers: { 'X-Request-ID': 'err-1' } });
    assert.equal((await json(e)).error.request_id, 'err-1');
  });

  test('security headers are on every response', async () => {
    for (const url of [`${p.url}/health`, `${p.url}/missing`]) {
      const res = await fetch(url);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      assert.ok(res.headers.get('content-security-policy'));
    }
  });

  test('CORS preflight from a configured origin is allowed; others are refused', async () => {
    const ok = await fetch(`${p.url}/health`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(ok.headers.get('access-control-allow-methods'), /GET/);
    assert.equal(ok.headers.get('access-control-allow-headers'), 'authorization');
    const simple = await fetch(`${p.url}/health`, { headers: { Origin: 'https://app.example' } });
    assert.equal(simple.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(simple.headers.get('access-control-expose-headers'), /X-Request-ID/);
    const bad = await fetch(`${p.url}/health`, {
      method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'GET' },
    });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers.get('access-control-allow-origin'), null);
    const other = await fetch(`${p.url}/health`, { headers: { Origin: 'https://evil.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  test('GET /metrics exposes requests, durations, in-flight, connections and build info', async () => {
    await fetch(`${p.url}/health`);
    await fetch(`${p.url}/nope`);
    const res = await fetch(`${p.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    const text = await res.text();
    assert.match(text, /parley_http_requests_total\{route="\/health",method="GET",status="200"\} \d+/);
    assert.match(text, /parley_http_requests_total\{route="unmatched",method="GET",status="404"\} \d+/);
    assert.match(text, /parley_http_request_duration_seconds_bucket\{route="\/health",le="\+Inf"\} \d+/);
    assert.match(text, /parley_http_request_duration_seconds_count\{route="\/health"\} \d+/);
    assert.match(text, /parley_http_requests_in_flight [1-9]/);
    assert.match(text, /parley_http_open_connections [1-9]/);
    assert.match(text, /parley_build_info\{version="[^"]+"\} 1/);
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      assert.match(line, /^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$/, line);
    }
  });

  test('GET /docs serves the interactive page and its assets from this server', async () => {
    const res = await fetch(`${p.url}/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/html/);
    const html = await res.text();
    assert.match(html, /swagger-ui/);
    assert.doesNotMatch(html, /https?:\/\//);
    assert.match(res.headers.get('content-security-policy'), /script-src 'self'/);
    for (const asset of ['swagger-ui-bundle.js', 'swagger-ui.css', 'init.js']) {
      const a = await fetch(`${p.url}/docs/${asset}`);
      assert.equal(a.status, 200, asset);
      assert.ok((await a.text()).length > 100, asset);
    }
    assert.equal((await fetch(`${p.url}/docs/other.js`)).status, 404);
  });

  test('the access log has one line per request without auth headers or bodies', async () => {
    await fetch(`${p.url}/health`, { headers: { 'X-Request-ID': 'log-probe-1', Authorization: 'Bearer topsecretvalue123' } });
    await sleep(1500);
    const lines = p.stderr.split('\n').filter((l) => l.includes('request_id=log-probe-1'));
    assert.equal(lines.length, 1, p.stderr);
    assert.match(lines[0], /method=GET route=\/health status=200 duration_ms=[0-9.]+ bytes=\d+/);
    assert.doesNotMatch(p.stderr, /topsecretvalue123/);
  });
});

describe(`header limit above 64 KiB (${BACKEND})`, () => {
  let p;
  before(async () => { p = await startParley({ env: { PARLEY_HTTP_MAX_HEADER_BYTES: String(256 * 1024) } }); });
  after(async () => { await p.cleanup(); });

  // Beast stores a field in at most 64 KiB; with a larger header limit one long field used to
  // throw std::length_error past the event loop.
  for (const [name, payload] of [
    ['header field', `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`],
    ['trailer field', `POST /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`],
  ]) {
    test(`one ${name} of 70,000 bytes is 431 and the server keeps serving`, async () => {
      const r = await rawRequest(p.port, payload, { timeoutMs: 5000 });
      assert.equal(statusOf(r.data), 431, r.data.slice(0, 300));
      assert.equal((await fetch(`${p.url}/health`)).status, 200);
      assert.equal(p.proc.exitCode, null);
    });
  }

  test('a 60 KiB header field within the limit is served', async () => {
    const r = await rawRequest(p.port, `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(60000)}\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
    assert.equal(statusOf(r.data), 200, r.data.slice(0, 300));
  });
});

describe('openapi', () => {
  let p;
  before(async () => { p = await startParley(); });
  after(async () => { await p.cleanup(); });

  test('GET /openapi.json is a valid OpenAPI 3.1 document', async () => {
    const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
    const doc = await json(await fetch(`${p.url}/openapi.json`));
    assert.equal(doc.openapi, '3.1.0');
    await SwaggerParser.validate(structuredClone(doc));
  });

  test('every registered route is documented', async () => {
    const doc = await json(await fetch(`${p.url}/openapi.json`));
    const routes = execFileSync(PARLEY_BIN, ['routes']).toString().trim().split('\n');
    assert.ok(routes.length >= 6);
    for (const line of routes) {
      const [method, route] = line.split(' ');
      assert.ok(doc.paths[route], `${route} missing from openapi.json`);
      assert.ok(doc.paths[route][method.toLowerCase()], `${method} ${route} missing from openapi.json`);
    }
  });
});

describe('configuration and start-up', () => {
  test('invalid configuration names the key and exits non-zero before binding', async () => {
    const r = spawnSync(PARLEY_BIN, ['serve', '--listen', '127.0.0.1:notaport', '--data-dir', tempDir()], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /listen/);
    const e = spawnSync(PARLEY_BIN, ['serve', '--data-dir', tempDir()], { encoding: 'utf8', env: { ...process.env, PARLEY_HTTP_MAX_BODY_BYTES: 'huge' } });
    assert.equal(e.status, 2);
    assert.match(e.stderr, /http\.max_body_bytes/);
    assert.match(e.stderr, /PARLEY_HTTP_MAX_BODY_BYTES/);
  });

  test('an unknown key in the config file is refused', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'parley.toml');
    writeFileSync(file, 'listen = "127.0.0.1:0"\n[http]\nmax_bodyy_bytes = 5\n');
    const r = spawnSync(PARLEY_BIN, ['config', 'check', '--config', file], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /http\.max_bodyy_bytes/);
  });

  test('config check prints the effective configuration with secrets masked', async () => {
    const r = spawnSync(PARLEY_BIN, ['config', 'check', '--listen', '127.0.0.1:9999'], {
      encoding: 'utf8',
      env: { ...process.env, PARLEY_JWT_SECRET: 'jwt-secret-never-shown', PARLEY_DATABASE_URL: 'postgresql://u:dbpassword@127.0.0.1:1/x' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /listen = "127\.0\.0\.1:9999"\s+# flag/);
    assert.match(r.stdout, /secrets\.jwt_secret = "\[set/);
    assert.doesNotMatch(r.stdout, /jwt-secret-never-shown|dbpassword/);
  });

  test('version and --help work on every subcommand', async () => {
    const v = spawnSync(PARLEY_BIN, ['version'], { encoding: 'utf8' });
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^parley \d+\.\d+\.\d+/);
    for (const sub of [[], ['serve'], ['migrate'], ['config', 'check'], ['version']]) {
      const h = spawnSync(PARLEY_BIN, [...sub, '--help'], { encoding: 'utf8' });
      assert.equal(h.status, 0, sub.join(' '));
      assert.match(h.stdout, /Usage|OPTIONS|Options/i);
    }
  });

  test('first start creates secrets with mode 0600 and warns', async () => {
    const p = await startParley();
    try {
      for (const f of ['encryption.keys', 'jwt.secret']) {
        const st = statSync(path.join(p.dataDir, f));
        assert.equal(st.mode & 0o777, 0o600, f);
      }
      assert.match(p.stderr, /PARLEY_ENCRYPTION_KEYS/);
      assert.match(p.stderr, /generated new secrets/);
    } finally {
      await p.cleanup();
    }
  });

  test('explicit secrets are used and no secret files are written', async () => {
    const p = await startParley({
      env: { PARLEY_ENCRYPTION_KEYS: 'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=', PARLEY_JWT_SECRET: 'x'.repeat(40) },
    });
    try {
      assert.equal(existsSync(path.join(p.dataDir, 'encryption.keys')), false);
      assert.equal(existsSync(path.join(p.dataDir, 'jwt.secret')), false);
    } finally {
      await p.cleanup();
    }
  });

  test('--log-format json writes one JSON object per line', async () => {
    const p = await startParley({ args: ['--log-format', 'json'] });
    await fetch(`${p.url}/health`);
    await p.stop();
    const lines = p.stderr.trim().split('\n').filter(Boolean);
    assert.ok(lines.length >= 2);
    for (const line of lines) {
      const o = JSON.parse(line);
      assert.ok(o.ts && o.level && typeof o.msg === 'string', line);
    }
    await p.cleanup();
  });

  test('a port in use is reported and exits non-zero', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = server.address().port;
    const r = await startParley({ listen: `127.0.0.1:${port}`, expectExit: true });
    server.close();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot listen/);
  });
});

describe(`graceful shutdown (${BACKEND})`, () => {
  test('SIGTERM lets an in-flight request finish, refuses new connections and exits 0', async () => {
    const p = await startParley({ env: { PARLEY_HTTP_BODY_TIMEOUT_MS: '5000' } });
    const socket = net.connect({ host: '127.0.0.1', port: p.port });
    await new Promise((r) => socket.once('connect', r));
    let data = '';
    socket.on('data', (d) => { data += d; });
    const closed = new Promise((r) => socket.on('close', r));
    // Start a request whose body is still arriving, then ask the server to stop.
    socket.write('POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345');
    await sleep(200);
    p.proc.kill('SIGTERM');
    await sleep(300);
    // New connections are refused while draining.
    await assert.rejects(fetch(`${p.url}/health`));
    socket.write('67890');
    await closed;
    assert.equal(statusOf(data), 405);
    assert.match(data, /Connection: close/i);
    const { code } = await p.exited;
    assert.equal(code, 0);
    await p.cleanup();
  });

  test('idle keep-alive connections do not hold up shutdown', async () => {
    const p = await startParley({ env: { PARLEY_HTTP_DRAIN_TIMEOUT_MS: '20000' } });
    const socket = net.connect({ host: '127.0.0.1', port: p.port });
    await new Promise((r) => socket.once('connect', r));
    socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await sleep(200);
    const t0 = Date.now();
    p.proc.kill('SIGTERM');
    const { code } = await p.exited;
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 5000, 'shutdown waited for an idle connection');
    socket.destroy();
    await p.cleanup();
  });
});
