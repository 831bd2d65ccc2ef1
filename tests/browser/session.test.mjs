// The console's page, its headers and the browser session: sign in, reload, sign out, expiry,
// registration, CSRF refusals, phone width.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser, signIn, call, PHONE,
} from './harness.mjs';

let stack;
let browser;
let admin;
let alice;

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the console page is served at / and /console with a strict CSP and versioned assets', async () => {
  for (const route of ['/', '/console']) {
    const r = await call(stack.url, 'GET', route);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/html/);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(r.body, /<script>(?!<\/script>)|<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    const js = r.body.match(/src="(\/console\/console\.js\?v=[0-9a-f]+)"/);
    assert.ok(js, 'the script is linked with its version');
    const asset = await fetch(`${stack.url}${js[1]}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('cache-control'), /immutable/);
    await asset.arrayBuffer();
  }
  assert.equal((await call(stack.url, 'GET', '/console/nope.js')).status, 404);
});

test('the first user registers in the browser and becomes the administrator', async () => {
  const page = await openPage(browser, stack.url);
  await page.goto('/console');
  await page.getByText('the first account created becomes the administrator').waitFor();
  await expectAccessible(assert, page, 'sign-in page');
  await screenshot(page, 'sign-in');
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill('root');
  await page.getByLabel('Email').fill('root@example.com');
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.match(await page.getByTestId('who').textContent(), /root.*admin/);
  expectNoProblems(assert, page);
  await page.context().close();
  const res = await fetch(`${stack.url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'root', password: 'correct horse battery' }).toString(),
  });
  admin = { token: (await res.json()).access_token };
  const opts = await call(stack.url, 'GET', '/api/v1/auth/options');
  assert.deepEqual(opts.body, { registration: 'closed' });
});

test('a session survives a reload, keeps the refresh token out of reach of scripts, and ends on sign out', async () => {
  const u = await makeUser(stack.url, 'alice', { adminToken: admin.token });
  alice = u;
  const page = await openPage(browser, stack.url);
  await page.goto('/console');
  assert.equal(await page.getByRole('button', { name: 'Create an account' }).count(), 0, 'registration is closed');
  await signIn(page, u.username);
  const cookies = await page.context().cookies();
  const rt = cookies.find((c) => c.name === 'parley_refresh');
  assert.ok(rt, 'the refresh cookie is set');
  assert.equal(rt.httpOnly, true);
  assert.equal(rt.sameSite, 'Strict');
  assert.equal(rt.path, '/api/v1/auth/refresh');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts see no cookie');
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)), '{}{}');

  await page.reload();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.match(await page.getByTestId('who').textContent(), /alice/);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.equal((await page.context().cookies()).find((c) => c.name === 'parley_refresh'), undefined);
  // The revoked token cannot be replayed.
  const replay = await call(stack.url, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: rt.value } });
  assert.equal(replay.status, 401);
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a wrong password and an expired session show clear messages', async () => {
  const page = await openPage(browser, stack.url);
  await page.goto('/console');
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('wrong password here');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Incorrect username or password' }).waitFor();
  await signIn(page, 'alice');
  // The session is revoked elsewhere (the refresh cookie's family dies with a password change).
  const changed = await call(stack.url, 'PATCH', `/api/v1/users/${alice.id}`, {
    token: admin.token, body: { password: 'another long password' },
  });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  expectNoProblems(assert, page);
  await page.context().close();
});

test('cross-site session requests are refused and the JSON form still serves API clients', async () => {
  const form = new URLSearchParams({ username: 'root', password: 'correct horse battery' }).toString();
  const post = (headers) => fetch(`${stack.url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, body: form,
  });
  let r = await post({ 'X-Parley-Session': 'cookie', Origin: 'http://evil.example' });
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('set-cookie'), null);
  r = await post({ 'X-Parley-Session': 'cookie', 'Sec-Fetch-Site': 'cross-site' });
  assert.equal(r.status, 403);
  r = await post({});
  const body = await r.json();
  assert.equal(r.status, 200);
  assert.equal(typeof body.refresh_token, 'string', 'API clients still get the refresh token in JSON');
  assert.equal(r.headers.get('set-cookie'), null);
  // A refresh without the session header does not read the cookie.
  r = await fetch(`${stack.url}/api/v1/auth/refresh`, { method: 'POST', headers: { Cookie: `parley_refresh=${body.refresh_token}` } });
  assert.ok(r.status === 400 || r.status === 422, String(r.status));
  r = await fetch(`${stack.url}/api/v1/auth/refresh`, { method: 'DELETE' });
  assert.equal(r.status, 400);
});

test('at phone width the navigation folds behind a menu button', async () => {
  const page = await openPage(browser, stack.url, { viewport: PHONE });
  await signIn(page, 'root');
  const nav = page.getByRole('navigation', { name: 'Main' });
  assert.equal(await nav.isVisible(), false);
  await page.getByRole('button', { name: 'Menu' }).click();
  await nav.getByRole('link', { name: 'Usage' }).click();
  assert.match(page.url(), /#\/usage/);
  await expectAccessible(assert, page, 'phone layout');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('the access token is renewed through the cookie before it expires, without the user noticing', async () => {
  const short = await startStack({ env: { PARLEY_AUTH_ACCESS_TOKEN_TTL_S: '60' } });
  try {
    await makeUser(short.url, 'renewer');
    const page = await openPage(browser, short.url);
    await signIn(page, 'renewer');
    // expires_in 60 → the console renews about 30 s after signing in.
    const renewed = await page.waitForResponse(
      (r) => r.url().endsWith('/api/v1/auth/refresh') && r.request().method() === 'POST', { timeout: 50000 });
    assert.equal(renewed.status(), 200);
    assert.equal((await renewed.json()).refresh_token, undefined);
    await page.getByRole('link', { name: 'Service keys' }).click();
    await page.getByRole('heading', { name: 'Service keys' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign in' }).count(), 0, 'still signed in');
    expectNoProblems(assert, page);
    await page.context().close();
  } finally {
    await short.stop();
  }
});
