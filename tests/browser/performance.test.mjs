// The console's weight and first load: the bytes a browser downloads (gzip, as served) and, in
// headless Chromium against a local parley, the time to the first contentful paint and to a usable
// page (the sign-in form, then the chat page after sign-in). Sizes are checked against the budget
// (250 KB of gzipped JavaScript); times are only recorded (build/console-performance.json and the
// test output), never asserted. docs/PERFORMANCE.md quotes them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ROOT } from '../integration/harness.mjs';
import { startStack, launchBrowser, openPage, makeUser, expectNoProblems } from './harness.mjs';

let stack;
let browser;
const record = {};

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
  mkdirSync(path.join(ROOT, 'build'), { recursive: true });
  writeFileSync(path.join(ROOT, 'build/console-performance.json'), `${JSON.stringify(record, null, 2)}\n`);
  console.log(`console performance: ${JSON.stringify(record)}`);
});

// The bytes on the wire (node:http does not decompress, unlike fetch).
function served(route, gzip) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${stack.url}${route}`, { headers: gzip ? { 'Accept-Encoding': 'gzip' } : {} }, (res) => {
      let bytes = 0;
      res.on('data', (d) => { bytes += d.length; });
      res.on('end', () => resolve({ status: res.statusCode, bytes, encoding: res.headers['content-encoding'] ?? null }));
    });
    req.on('error', reject);
  });
}

test('the console JavaScript stays within 250 KB gzipped', async () => {
  const html = await (await fetch(`${stack.url}/console`)).text();
  const js = html.match(/src="([^"]+console\.js[^"]*)"/)[1];
  const css = html.match(/href="([^"]+console\.css[^"]*)"/)[1];
  const jsGz = await served(js, true);
  const jsRaw = await served(js, false);
  const cssGz = await served(css, true);
  assert.equal(jsGz.status, 200);
  record.js_bytes = jsRaw.bytes;
  record.js_gzip_bytes = jsGz.encoding === 'gzip' ? jsGz.bytes : null;
  record.css_gzip_bytes = cssGz.encoding === 'gzip' ? cssGz.bytes : null;
  record.html_bytes = Buffer.byteLength(html);
  // A console served from PARLEY_CONSOLE_DIR is not compressed: count its raw size then.
  assert.ok((record.js_gzip_bytes ?? jsRaw.bytes) <= 250 * 1024, `console.js is ${record.js_gzip_bytes ?? jsRaw.bytes} bytes gzipped`);
});

test('first load in headless Chromium (recorded, not asserted)', async () => {
  const user = await makeUser(stack.url, 'perf');
  const samples = [];
  for (let i = 0; i < 5; i += 1) {
    const page = await openPage(browser, stack.url);
    const t0 = Date.now();
    await page.goto('/console');
    await page.getByLabel('Username').waitFor();
    const formMs = Date.now() - t0;
    const paint = await page.evaluate(() => {
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      const nav = performance.getEntriesByType('navigation')[0];
      return { fcp: fcp ? fcp.startTime : null, domContentLoaded: nav ? nav.domContentLoadedEventEnd : null };
    });
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    const t1 = Date.now();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    samples.push({ fcp_ms: paint.fcp, dom_content_loaded_ms: paint.domContentLoaded, sign_in_form_ms: formMs, signed_in_ms: Date.now() - t1 });
    expectNoProblems(assert, page);
    await page.context().close();
  }
  const median = (k) => {
    const v = samples.map((s) => s[k]).filter((x) => x !== null).sort((a, b) => a - b);
    return v.length ? Math.round(v[Math.floor(v.length / 2)]) : null;
  };
  record.first_contentful_paint_ms = median('fcp_ms');
  record.dom_content_loaded_ms = median('dom_content_loaded_ms');
  record.sign_in_form_visible_ms = median('sign_in_form_ms');
  record.sign_in_to_chat_ms = median('signed_in_ms');
  record.samples = samples.length;
  record.parley = process.env.PARLEY_BIN ? path.basename(path.dirname(path.dirname(process.env.PARLEY_BIN))) : 'debug';
  assert.ok(record.first_contentful_paint_ms !== null, 'Chromium reported a first contentful paint');
});
