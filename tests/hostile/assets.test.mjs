// Slow readers of large answers: the linked-in files are served from the binary's own bytes, so
// clients that never read hold no copy each; revalidation is a 304; gzip is precompressed; the
// files the /docs page links are versioned by content and cached as immutable.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { gunzipSync } from 'node:zlib';
import { startParley, sleep, BACKEND } from '../integration/harness.mjs';

const rssKiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);

describe(`static files (${BACKEND})`, () => {
  let p;
  before(async () => { p = await startParley(); });
  after(async () => { await p.cleanup(); });

  test('gzip when accepted, the same bytes when decompressed, an ETag and a 304 on revalidation', async () => {
    const plain = await fetch(`${p.url}/docs/swagger-ui-bundle.js`, { headers: { 'Accept-Encoding': 'identity' } });
    assert.equal(plain.status, 200);
    const original = Buffer.from(await plain.arrayBuffer());
    assert.ok(original.length > 500_000);
    const etag = plain.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{16}"$/);
    assert.match(plain.headers.get('cache-control'), /max-age=/);
    assert.equal(plain.headers.get('vary'), 'Accept-Encoding');

    const raw = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: p.port });
      const chunks = [];
      s.on('connect', () => s.write('GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n'));
      s.on('data', (d) => chunks.push(d));
      s.on('close', () => resolve(Buffer.concat(chunks)));
    });
    const split = raw.indexOf('\r\n\r\n');
    const head = raw.subarray(0, split).toString('latin1');
    assert.match(head, /Content-Encoding: gzip/i);
    const body = raw.subarray(split + 4);
    assert.ok(body.length < original.length / 2, `compressed ${body.length} of ${original.length}`);
    assert.ok(gunzipSync(body).equals(original));

    const again = await fetch(`${p.url}/docs/swagger-ui-bundle.js`, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
  });

  test('the /docs page links its files by content version; those answers are immutable, others revalidate', async () => {
    const page = await (await fetch(`${p.url}/docs`)).text();
    const links = [...page.matchAll(/(?:href|src)="(\/docs\/[^"]+)"/g)].map((m) => m[1]);
    assert.equal(links.length, 3, page);
    for (const link of links) {
      assert.match(link, /\?v=[0-9a-f]{16}$/);
      const versioned = await fetch(`${p.url}${link}`);
      assert.equal(versioned.status, 200);
      assert.equal(versioned.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.equal(`"${link.split('?v=')[1]}"`, versioned.headers.get('etag'), 'the version is the content tag');
      await versioned.arrayBuffer();
      const bare = await fetch(`${p.url}${link.split('?')[0]}`);
      assert.equal(bare.headers.get('cache-control'), 'public, max-age=3600');
      await bare.arrayBuffer();
      const stale = await fetch(`${p.url}${link.split('?')[0]}?v=0000000000000000`);
      assert.equal(stale.headers.get('cache-control'), 'public, max-age=3600', 'an old version is not promised for ever');
      await stale.arrayBuffer();
    }
  });

  test('500 clients that never read the largest file add little memory, and /health answers meanwhile', async () => {
    const before = rssKiB(p.proc.pid);
    const sockets = [];
    for (let i = 0; i < 500; i++) {
      const s = net.connect({ host: '127.0.0.1', port: p.port });
      s.on('error', () => {});
      s.pause();  // never read: the answer stays in the kernel's buffers and parley's
      s.write('GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n\r\n');
      sockets.push(s);
    }
    await sleep(1500);
    const during = rssKiB(p.proc.pid);
    const health = await fetch(`${p.url}/health`);
    assert.equal(health.status, 200);
    for (const s of sockets) s.destroy();
    const grew = (during - before) / 1024;
    console.log(`RSS with 500 non-reading clients of a 1.7 MB file: +${grew.toFixed(1)} MiB`);
    assert.ok(grew < 50, `RSS grew by ${grew.toFixed(1)} MiB`);
  });
});
