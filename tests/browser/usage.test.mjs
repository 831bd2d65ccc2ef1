// The Usage page (#/usage): totals, charts and per-model numbers equal to the API's summaries,
// the recent calls with "load more", the key scope, the periods, the CSV export, and who may see
// which scope (a user: only their own; a manager: any user; an admin: the whole deployment).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser, signIn, call, PHONE,
} from './harness.mjs';

// Prices (USD per 1M tokens) large enough that a few short calls cost something visible; demo
// has none (it costs 0).
const PRICES = `
[providers.prices]
"gpt-4o-mini" = [150, 600]
"mock-*" = [2500, 10000]
`;

let stack;
let browser;
let admin;
let alice;
let bob;
let mia; // a manager
let ciKey; // alice's service key that makes calls
const ALICE_CALLS = 26; // > 25, the page's page size
const BOB_CALLS = 2;

const summaryOf = async (route, token, days = 30) => {
  const r = await call(stack.url, 'GET', `${route}?days=${days}`, { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};

// Polls `fn` until it returns something truthy (usage is recorded in batches, a few times a
// second): at most 10 s.
async function until(fn, what) {
  const end = Date.now() + 10000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The first UTC day of a period of `days` days (as the page and the summaries count it).
function periodStart(days) {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() - (days - 1));
  return d.toISOString().slice(0, 10);
}

async function apiCsv(route, token, days = 30) {
  const res = await fetch(`${stack.url}${route}?format=csv&since=${periodStart(days)}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return res.text();
}

async function chat(token, model, text) {
  const r = await call(stack.url, 'POST', '/v1/chat/completions', {
    token, body: { model, messages: [{ role: 'user', content: text }] },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

before(async () => {
  stack = await startStack({ extraConfig: PRICES });
  browser = await launchBrowser();
  admin = await makeUser(stack.url, 'root');
  alice = await makeUser(stack.url, 'alice', { adminToken: admin.token });
  bob = await makeUser(stack.url, 'bob', { adminToken: admin.token });
  mia = await makeUser(stack.url, 'mia', { adminToken: admin.token, role: 'manager' });

  // alice: a service key used on three models, another key never used, and chat with her token.
  const k = await call(stack.url, 'POST', '/api/v1/api-keys', { token: alice.token, body: { name: 'ci' } });
  assert.equal(k.status, 201, JSON.stringify(k.body));
  ciKey = k.body;
  const spare = await call(stack.url, 'POST', '/api/v1/api-keys', { token: alice.token, body: { name: 'spare' } });
  assert.equal(spare.status, 201);
  for (let i = 0; i < 10; i++) await chat(ciKey.key, 'gpt-4o-mini', `question number ${i}`);
  for (let i = 0; i < 8; i++) await chat(ciKey.key, 'mock-x', `another longer question number ${i}`);
  for (let i = 0; i < 4; i++) await chat(ciKey.key, 'demo', `hello ${i}`);
  for (let i = 0; i < 4; i++) {
    const model = i === 0 ? 'mock-x' : 'demo';
    const r = await call(stack.url, 'POST', '/api/v1/chat', {
      token: alice.token, body: { model, messages: [{ role: 'user', content: `console chat ${i}` }] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  // bob: two calls of his own, the newest of the deployment.
  for (let i = 0; i < BOB_CALLS; i++) {
    const r = await call(stack.url, 'POST', '/api/v1/chat', {
      token: bob.token, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `bob asks ${i}` }] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await until(async () => {
    const all = await summaryOf('/api/v1/usage/summary', admin.token);
    return all.total_requests === ALICE_CALLS + BOB_CALLS;
  }, 'the usage to be recorded');
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

// The totals on the page: the machine-readable values of the <data> elements.
async function totals(page) {
  const value = async (id) => Number(await page.getByTestId(`total-${id}`).getAttribute('value'));
  return { requests: await value('requests'), tokens: await value('tokens'), cost: await value('cost') };
}

async function expectTotals(page, s) {
  await page.getByTestId('total-requests').and(page.locator(`[value="${s.total_requests}"]`)).waitFor();
  assert.deepEqual(await totals(page), {
    requests: s.total_requests, tokens: s.total_tokens, cost: s.total_cost_usd,
  });
  // The visible numbers too (whatever the locale's digit grouping).
  const digits = async (id) => (await page.getByTestId(`total-${id}`).textContent()).replace(/\D/g, '');
  assert.equal(await digits('requests'), String(s.total_requests));
  assert.equal(await digits('tokens'), String(s.total_tokens));
  assert.match(await page.getByTestId('total-cost').textContent(), /^\$\d/);
}

// Waits until the four charts are drawn: every canvas has some painted pixel.
async function chartsDrawn(page) {
  await page.waitForFunction(() => {
    const canvases = [...document.querySelectorAll('.usage-chart canvas')];
    return (
      canvases.length === 4 &&
      canvases.every((c) => {
        if (!c.width || !c.height) return false;
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
        return false;
      })
    );
  });
}

async function openUsage(who, { viewport } = {}) {
  const page = await openPage(browser, stack.url, viewport ? { viewport } : {});
  await signIn(page, who.username);
  if (viewport === PHONE) await page.getByRole('button', { name: 'Menu' }).click();
  await page.getByRole('link', { name: 'Usage', exact: true }).click();
  await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
  return page;
}

const callRows = (page) => page.locator('table.usage-calls tbody tr');

test('my usage: totals, charts and the per-model table match the summary; 7 / 30 / 90 days switch', async () => {
  const page = await openUsage(alice);
  const route = `/api/v1/users/${alice.id}/usage/summary`;
  const s30 = await summaryOf(route, alice.token, 30);
  assert.equal(s30.total_requests, ALICE_CALLS);
  assert.ok(s30.total_cost_usd > 0, 'the prices make the calls cost something');
  await expectTotals(page, s30);
  await page.getByRole('heading', { name: 'My usage' }).waitFor();
  await chartsDrawn(page);

  // The charts are images with a summary of their data as their name.
  const charts = page.getByRole('img');
  assert.equal(await charts.count(), 4);
  const perModel = await page.getByRole('img', { name: /requests per model/ }).getAttribute('aria-label');
  for (const m of s30.by_model) assert.ok(perModel.includes(`${m.model} ${m.requests}`), perModel);
  const perDay = await page.getByRole('img', { name: /requests per day/ }).getAttribute('aria-label');
  assert.match(perDay, /26 in total/);

  // The per-model table lists every model with the summary's numbers.
  const models = page.getByRole('table', { name: 'Per model' });
  for (const m of s30.by_model) {
    const header = page.getByRole('rowheader', { name: m.model, exact: true });
    const row = models.getByRole('row').filter({ has: header });
    await row.waitFor();
    assert.equal((await row.getByRole('cell').nth(1).textContent()).replace(/\D/g, ''), String(m.requests));
  }
  assert.deepEqual(s30.by_model.map((m) => m.model).sort(), ['demo', 'gpt-4o-mini', 'mock-x']);

  // The day tables behind the disclosures: one row per day of the period.
  const dayRows = page.locator('table.usage-day-table').first().locator('tbody tr');
  assert.equal(await dayRows.count(), 30);
  for (const days of [7, 90, 30]) {
    await page.getByRole('radio', { name: `${days} days` }).check();
    await until(async () => (await dayRows.count()) === days, `${days} day rows`);
    await expectTotals(page, await summaryOf(route, alice.token, days));
  }
  await chartsDrawn(page);
  await screenshot(page, 'usage');
  for (const d of await page.locator('.usage-chart details').all()) await d.locator('summary').click();
  await expectAccessible(assert, page, 'usage page (data tables open)');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('recent calls page with "load more"; a key scope narrows to that key', async () => {
  const page = await openUsage(alice);
  const route = `/api/v1/users/${alice.id}/usage?limit=100`;
  const records = await call(stack.url, 'GET', route, { token: alice.token });
  assert.equal(records.body.items.length, ALICE_CALLS);
  await until(async () => (await callRows(page).count()) === 25, 'the first page of calls');
  // Newest first, as the API lists them: the first row is the last console chat (demo, "chat").
  const first = callRows(page).first();
  assert.equal(await first.getByRole('cell').nth(1).textContent(), records.body.items[0].model);
  assert.equal(await first.getByRole('cell').nth(2).textContent(), records.body.items[0].endpoint);
  assert.match(await first.getByRole('cell').nth(6).textContent(), /signed in/);
  await page.getByRole('button', { name: 'Load more' }).click();
  await until(async () => (await callRows(page).count()) === ALICE_CALLS, 'the second page of calls');
  await page.getByText('(all of this period)').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Load more' }).count(), 0);
  const last = callRows(page).last();
  assert.equal(await last.getByRole('cell').nth(1).textContent(), 'gpt-4o-mini');
  assert.match(await last.getByRole('cell').nth(6).textContent(), /^ci \(ai_/);

  // The key scope: the key's own summary and calls only.
  const keyLabel = `ci (${ciKey.key_prefix}…)`;
  await page.getByLabel('Scope').selectOption({ label: keyLabel });
  await page.waitForURL(/#\/usage\/key\//);
  await page.getByRole('heading', { name: `Service key ${keyLabel}` }).waitFor();
  const ks = await summaryOf(`/api/v1/usage/${ciKey.id}/summary`, alice.token);
  assert.equal(ks.total_requests, 22);
  await expectTotals(page, ks);
  await until(async () => (await callRows(page).count()) === 22, 'the key\'s calls');
  const keyCells = await callRows(page).locator('td:last-child').allTextContents();
  assert.deepEqual(new Set(keyCells), new Set([keyLabel]));
  assert.equal(await page.getByRole('button', { name: 'Load more' }).count(), 0);
  const modelRows = page.getByRole('table', { name: 'Per model' }).getByRole('row');
  assert.equal(await modelRows.count(), 4, 'three models and a header');
  // Back to all of alice's usage.
  await page.getByLabel('Scope').selectOption({ label: 'My usage' });
  await expectTotals(page, await summaryOf(`/api/v1/users/${alice.id}/usage/summary`, alice.token));
  expectNoProblems(assert, page);
  await page.context().close();
});

test('CSV export downloads the scope\'s records as the API gives them', async () => {
  const page = await openUsage(alice);
  await page.getByTestId('total-requests').waitFor();
  const download = async () => {
    const [d] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    return { name: d.suggestedFilename(), text: readFileSync(await d.path(), 'utf8') };
  };
  const mine = await download();
  assert.equal(mine.name, 'usage-alice-30d.csv');
  const expected = await apiCsv(`/api/v1/users/${alice.id}/usage`, alice.token);
  assert.equal(mine.text, expected);
  const lines = mine.text.trim().split('\r\n');
  assert.equal(lines.length, ALICE_CALLS + 1, 'a header and one row per call');
  assert.match(lines[0], /^id,created_at,request_id,user_id,api_key_id,provider,model/);
  await page.getByRole('status').filter({ hasText: 'Saved usage-alice-30d.csv' }).waitFor();

  await page.getByRole('radio', { name: '7 days' }).check();
  await page.getByLabel('Scope').selectOption({ label: `ci (${ciKey.key_prefix}…)` });
  await page.getByRole('heading', { name: /Service key ci/ }).waitFor();
  const key = await download();
  assert.equal(key.name, `usage-key-${ciKey.key_prefix}-7d.csv`);
  assert.equal(key.text, await apiCsv(`/api/v1/usage/${ciKey.id}`, alice.token, 7));
  assert.equal(key.text.trim().split('\r\n').length, 23);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('an ordinary user sees only their own usage, in the page and through the API', async () => {
  const page = await openUsage(bob);
  const forbidden = [];
  page.on('request', (r) => {
    const p = new URL(r.url()).pathname;
    if (/^\/api\/v1\/usage(\/|$)/.test(p) || p.startsWith(`/api/v1/users/${alice.id}`)) forbidden.push(p);
  });
  await expectTotals(page, await summaryOf(`/api/v1/users/${bob.id}/usage/summary`, bob.token));
  assert.equal((await totals(page)).requests, BOB_CALLS);
  const options = await page.getByLabel('Scope').locator('option').allTextContents();
  assert.deepEqual(options, ['My usage'], 'no "A user", no "Everyone", no keys (bob has none)');
  await until(async () => (await callRows(page).count()) === BOB_CALLS, 'bob\'s calls');

  // Forcing the scopes by address: refused, without asking the API.
  for (const hash of ['#/usage/all', `#/usage/user/${alice.id}`]) {
    await page.evaluate((h) => {
      location.hash = h;
    }, hash);
    await page.getByRole('alert').filter({ hasText: 'administrators and managers only' }).waitFor();
    assert.equal(await page.getByTestId('total-requests').count(), 0);
    assert.equal(await callRows(page).count(), 0);
  }
  // Another user's key: the API answers 404, and the page shows no data.
  await page.evaluate((id) => {
    location.hash = `#/usage/key/${id}`;
  }, ciKey.id);
  await page.getByRole('alert').filter({ hasText: 'Not found' }).first().waitFor();
  assert.equal(await page.getByTestId('total-requests').count(), 0);
  assert.equal(await callRows(page).count(), 0);
  assert.deepEqual(forbidden.filter((p) => !p.startsWith(`/api/v1/usage/${ciKey.id}`)), []);
  await expectAccessible(assert, page, 'usage page, refused scope');

  // The API refuses the same to bob.
  for (const route of ['/api/v1/usage', '/api/v1/usage/summary']) {
    const r = await call(stack.url, 'GET', route, { token: bob.token });
    assert.equal(r.status, 403, route);
  }
  for (const route of [
    `/api/v1/users/${alice.id}/usage`, `/api/v1/users/${alice.id}/usage/summary`,
    `/api/v1/usage/${ciKey.id}`, `/api/v1/usage/${ciKey.id}/summary`,
  ]) {
    const r = await call(stack.url, 'GET', route, { token: bob.token });
    assert.equal(r.status, 404, route);
  }
  expectNoProblems(assert, page);
  await page.context().close();
});

test('an admin sees the whole deployment, both users included', async () => {
  const page = await openUsage(admin);
  const options = await page.getByLabel('Scope').locator('option').allTextContents();
  assert.ok(options.includes('A user…') && options.includes('Everyone (deployment)'), options.join(', '));
  await page.getByLabel('Scope').selectOption({ label: 'Everyone (deployment)' });
  await page.getByRole('heading', { name: 'Everyone (deployment)' }).waitFor();
  const all = await summaryOf('/api/v1/usage/summary', admin.token);
  assert.equal(all.total_requests, ALICE_CALLS + BOB_CALLS);
  await expectTotals(page, all);
  await chartsDrawn(page);
  await until(async () => (await callRows(page).count()) === 25, 'the first page of calls');
  const users = new Set(await callRows(page).locator('td:nth-child(2)').allTextContents());
  assert.deepEqual([...users].sort(), ['alice', 'bob']);
  await expectAccessible(assert, page, 'usage page, deployment');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a manager reads another user\'s usage (phone width)', async () => {
  const page = await openUsage(mia, { viewport: PHONE });
  await page.getByLabel('Scope').selectOption({ label: 'A user…' });
  await page.getByLabel('Find a user').fill('ali');
  await page.getByRole('button', { name: /^alice/ }).click();
  await page.getByRole('heading', { name: 'Usage of alice' }).waitFor();
  assert.match(page.url(), new RegExp(`#/usage/user/${alice.id}$`));
  await expectTotals(page, await summaryOf(`/api/v1/users/${alice.id}/usage/summary`, mia.token));
  await chartsDrawn(page);
  assert.equal(await page.getByRole('button', { name: /^alice/ }).getAttribute('aria-pressed'), 'true');
  await expectAccessible(assert, page, 'usage page, phone');
  await page.getByRole('heading', { name: 'Usage of alice' }).evaluate((h) => h.scrollIntoView());
  await screenshot(page, 'usage-phone');
  // The page fits the phone's width (wide tables scroll inside their own box).
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
  expectNoProblems(assert, page);
  await page.context().close();
});
