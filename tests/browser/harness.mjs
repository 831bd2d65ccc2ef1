// Shared setup of the browser tier: parley + parley-mock (tests/integration/harness.mjs), Debian's
// Chromium driven headless by playwright-core, an accessibility scan with axe-core, screenshots,
// and a watch on every page for script errors, CSP violations and requests to other origins.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { ROOT, startStack as startIntegrationStack, json } from '../integration/harness.mjs';

export { json };

// parley + parley-mock (startStack's options: credentials, mockArgs, env, extraConfig). With
// PARLEY_CONSOLE_DIR set (a `vite build --outDir` of web/console), parley serves that build of the
// console instead of its linked-in one: for working on the console without relinking.
export function startStack(options = {}) {
  const dir = process.env.PARLEY_CONSOLE_DIR;
  return startIntegrationStack({ ...options, env: { ...(dir ? { PARLEY_CONSOLE_DIR: dir } : {}), ...(options.env ?? {}) } });
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
export const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = process.env.PARLEY_SCREENSHOT_DIR ?? path.join(ROOT, 'build/screenshots');

// Chromium headless, without any of its background traffic (this machine has no network: those
// connections would only fail, and tests must send nothing off the loopback).
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
      '--disable-dev-shm-usage',
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

// A new browser context and page on parley at `baseURL`. The page records its problems in
// `page.problems`: uncaught errors, console errors (CSP violations included), requests to any
// other origin. Call expectNoProblems(page) at the end of a test.
export async function openPage(browser, baseURL, { viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ baseURL, viewport });
  const page = await context.newPage();
  page.problems = [];
  const origin = new URL(baseURL).origin;
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    // A failed API call is logged by the browser as a "Failed to load resource" error: the tests
    // that expect one (401, 404, …) check the UI instead.
    if (/Failed to load resource: the server responded with a status of [45]\d\d/.test(text)) return;
    page.problems.push(`console error: ${text}`);
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:')) page.problems.push(`request to another origin: ${u}`);
  });
  return page;
}

export function expectNoProblems(assert, page) {
  assert.deepEqual(page.problems, [], `the page had problems:\n${page.problems.join('\n')}`);
}

// Runs axe-core on the page as it is now; fails on any serious or critical violation.
export async function expectAccessible(assert, page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
    }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${label}: accessibility violations:\n${JSON.stringify(bad, null, 2)}`);
}

// Saves a screenshot as <SCREENSHOT_DIR>/<name>.png.
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: false });
}

// Calls parley's API directly (setup and checks beside the browser): {status, body}.
export async function call(url, method, route, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${url}${route}`, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

// Registers a user through the API (the first becomes admin) and returns {id, username, password,
// token}. `role`: set by `adminToken` (an admin's access token) when given.
export async function makeUser(url, username, { adminToken = null, role = null, password = 'correct horse battery' } = {}) {
  const email = `${username}@example.com`;
  if (adminToken) {
    const r = await call(url, 'POST', '/api/v1/users', { token: adminToken, body: { username, email, password, role: role ?? 'user' } });
    if (r.status !== 201) throw new Error(`user creation failed (${r.status}): ${JSON.stringify(r.body)}`);
  } else {
    const r = await call(url, 'POST', '/api/v1/auth/register', { body: { username, email, password } });
    if (r.status !== 201) throw new Error(`register failed (${r.status}): ${JSON.stringify(r.body)}`);
  }
  const res = await fetch(`${url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  const tokens = await res.json();
  if (res.status !== 200) throw new Error(`login failed (${res.status})`);
  const me = await call(url, 'GET', '/api/v1/users/me', { token: tokens.access_token });
  return { id: me.body.id, username, password, token: tokens.access_token, role: me.body.role };
}

// Signs in through the sign-in form and waits for the console's shell.
export async function signIn(page, username, password = 'correct horse battery') {
  await page.goto('/console');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}
