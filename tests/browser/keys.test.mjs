// "Service keys": a new key shown once (copy button, warning) and never again, the key used on /v1
// and its "last used" time, limits edited, revoked keys refused, another user's keys out of sight,
// the phone layout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser,
  signIn, call, PHONE,
} from './harness.mjs';

const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello from a key' }] };

let stack;
let browser;
let alice;
let bob;
let carol;
let secret; // the key created in the browser (kept by the test only, to use it)
let keyId;

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
  const root = await makeUser(stack.url, 'root'); // the first user is the admin
  alice = await makeUser(stack.url, 'alice', { adminToken: root.token });
  bob = await makeUser(stack.url, 'bob', { adminToken: root.token });
  carol = await makeUser(stack.url, 'carol', { adminToken: root.token });
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

// Calls /v1/chat/completions with a service key: the status.
async function chatWith(key) {
  const res = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(CHAT),
  });
  await res.text();
  return res.status;
}

// Polls `check` (an async predicate) every 200 ms until it holds, for at most `ms`.
async function until(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function openKeys(user, options) {
  const page = await openPage(browser, stack.url, options);
  await signIn(page, user.username);
  await page.goto('/console#/keys');
  await page.getByRole('heading', { name: 'Service keys', level: 1 }).waitFor();
  return page;
}

const rowOf = (page, name) =>
  page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });

test('a new key is shown once, with a copy button and a warning, and never again', async () => {
  const page = await openKeys(alice);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.url });
  await page.getByTestId('keys-empty').getByText('You have no service keys yet.').waitFor();
  await expectAccessible(assert, page, 'keys page, empty');

  await page.getByRole('button', { name: 'Create key' }).click();
  const create = page.getByRole('dialog', { name: 'Create a service key' });
  await create.waitFor();
  await create.getByLabel('Name').fill('CI pipeline');
  await create.getByLabel('Requests per minute').fill('60');
  await create.getByLabel('Token budget').fill('100000');
  await create.getByLabel('Budget period').selectOption('day');
  await expectAccessible(assert, page, 'create key dialog');
  await create.getByRole('button', { name: 'Create key' }).click();

  const shown = page.getByRole('dialog', { name: 'Your new service key' });
  await shown.waitFor();
  await shown.getByText('it will not be shown again').waitFor();
  secret = await shown.getByLabel('Key “CI pipeline”').inputValue();
  assert.match(secret, /^ai_[0-9A-Za-z]{40}$/);
  await shown.getByRole('button', { name: 'Copy key' }).click();
  await shown.getByRole('status').filter({ hasText: 'Copied to the clipboard.' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await expectAccessible(assert, page, 'new key dialog');
  await shown.getByRole('button', { name: 'I have copied it, close' }).click();
  await shown.waitFor({ state: 'hidden' });

  // The list shows the key's prefix only; the secret is nowhere in the page, nor after a reload.
  const row = rowOf(page, 'CI pipeline');
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(`${secret.slice(0, 10)}…`));
  assert.match(await row.textContent(), /Active/);
  assert.match(await row.textContent(), /60 req\/min/);
  assert.match(await row.textContent(), /Token budget: 100,000 per day/);
  assert.ok(!(await page.content()).includes(secret), 'the key is gone from the DOM');
  assert.ok(!(await page.content()).includes(secret.slice(10)), 'no part of it beyond the prefix');
  await page.reload();
  await rowOf(page, 'CI pipeline').waitFor();
  assert.ok(!(await page.content()).includes(secret.slice(10)), 'not after a reload either');

  const list = await call(stack.url, 'GET', '/api/v1/api-keys', { token: alice.token });
  assert.equal(list.body.total, 1);
  keyId = list.body.items[0].id;
  assert.equal(list.body.items[0].rate_limit_per_minute, 60);
  assert.equal(list.body.items[0].token_budget, 100000);
  assert.equal(list.body.items[0].budget_period, 'day');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('the key works on /v1 and its "last used" time appears', async () => {
  assert.ok(secret, 'made by the test before');
  assert.equal(await chatWith(secret), 200);
  // last_used_at is written in batches (every 5 s): wait for the API to report it, then the page.
  await until(async () => {
    const k = await call(stack.url, 'GET', `/api/v1/api-keys/${keyId}`, { token: alice.token });
    return k.body.last_used_at !== null;
  }, 15000, 'last_used_at');
  const page = await openKeys(alice);
  const lastUsed = rowOf(page, 'CI pipeline').locator('td[data-label="Last used"]');
  await lastUsed.waitFor();
  assert.notEqual((await lastUsed.textContent()).trim(), 'Never');
  assert.match(await lastUsed.textContent(), /\d/);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('limits are edited in a dialog and saved with PATCH', async () => {
  const page = await openKeys(alice);
  await rowOf(page, 'CI pipeline').getByRole('button', { name: 'Edit limits of CI pipeline' }).click();
  const dialog = page.getByRole('dialog', { name: 'Edit limits of “CI pipeline”' });
  await dialog.waitFor();
  assert.equal(await dialog.getByLabel('Requests per minute').inputValue(), '60');
  assert.equal(await dialog.getByLabel('Budget period').inputValue(), 'day');
  await expectAccessible(assert, page, 'edit limits dialog');
  await dialog.getByLabel('Requests per minute').fill('0');
  await dialog.getByLabel('Tokens per minute').fill('5000');
  await dialog.getByLabel('Token budget').fill('');
  await dialog.getByLabel('Spend budget (USD)').fill('2.5');
  await dialog.getByLabel('Budget period').selectOption('month');

  // A value the server refuses (a blank name) is shown at its field; nothing is saved.
  await dialog.getByLabel('Name').fill('   ');
  await dialog.getByRole('button', { name: 'Save limits' }).click();
  await dialog.locator('#key-edit-name-error').waitFor();
  assert.equal(await dialog.getByLabel('Name').getAttribute('aria-invalid'), 'true');
  const kept = await call(stack.url, 'GET', `/api/v1/api-keys/${keyId}`, { token: alice.token });
  assert.equal(kept.body.tokens_per_minute, null);
  await dialog.getByLabel('Name').fill('CI pipeline');
  await dialog.getByRole('button', { name: 'Save limits' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByRole('status').filter({ hasText: 'The limits of “CI pipeline” are saved.' }).waitFor();
  const row = rowOf(page, 'CI pipeline');
  assert.match(await row.textContent(), /Requests: no limit/);
  assert.match(await row.textContent(), /Tokens: 5,000 tokens\/min/);
  assert.match(await row.textContent(), /Spend budget: \$2\.50* per month/);
  assert.doesNotMatch(await row.textContent(), /Token budget/);

  const k = await call(stack.url, 'GET', `/api/v1/api-keys/${keyId}`, { token: alice.token });
  assert.equal(k.body.rate_limit_per_minute, 0);
  assert.equal(k.body.tokens_per_minute, 5000);
  assert.equal(k.body.token_budget, null);
  assert.equal(k.body.spend_budget_usd, 2.5);
  assert.equal(k.body.budget_period, 'month');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a revoked key is marked revoked and refused by /v1', async () => {
  const page = await openKeys(alice);
  const row = rowOf(page, 'CI pipeline');
  await row.getByRole('button', { name: 'Revoke CI pipeline' }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke this key?' });
  await confirm.waitFor();
  await expectAccessible(assert, page, 'revoke dialog');
  await confirm.getByRole('button', { name: 'Revoke key' }).click();
  await page.getByRole('status').filter({ hasText: 'is revoked' }).waitFor();
  await row.getByText('Revoked', { exact: true }).waitFor();
  assert.equal(await row.getByRole('button').count(), 0, 'nothing more to do with a revoked key');
  const k = await call(stack.url, 'GET', `/api/v1/api-keys/${keyId}`, { token: alice.token });
  assert.equal(k.body.status, 'revoked');
  assert.equal(await chatWith(secret), 401);
  expectNoProblems(assert, page);
  await page.context().close();
});

test("another user sees none of alice's keys", async () => {
  const page = await openKeys(bob);
  await page.getByTestId('keys-empty').waitFor();
  assert.equal(await page.getByRole('table').count(), 0);
  assert.ok(!(await page.content()).includes('CI pipeline'));
  assert.equal((await call(stack.url, 'GET', `/api/v1/api-keys/${keyId}`, { token: bob.token })).status, 404);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a long list shows the newest 100 keys and more on request', async () => {
  for (let i = 1; i <= 103; i++) {
    const r = await call(stack.url, 'POST', '/api/v1/api-keys', { token: carol.token, body: { name: `key ${i}` } });
    assert.equal(r.status, 201);
  }
  const page = await openKeys(carol);
  await page.getByText('Showing the newest 100 of 103 keys.').waitFor();
  assert.equal(await page.getByRole('row').count(), 101);
  await rowOf(page, 'key 103').waitFor(); // newest first
  assert.equal(await rowOf(page, 'key 1').count(), 0);
  await page.getByRole('button', { name: 'Show more' }).click();
  await rowOf(page, 'key 1').waitFor();
  assert.equal(await page.getByRole('row').count(), 104);
  assert.equal(await page.getByRole('button', { name: 'Show more' }).count(), 0);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a list of keys on desktop and at phone width', async () => {
  // Two more keys for alice (one deactivated), made through the API.
  const more = [['Nightly report', { tokens_per_minute: 20000 }], ['Staging', { spend_budget_usd: 5 }]];
  for (const [name, body] of more) {
    const r = await call(stack.url, 'POST', '/api/v1/api-keys', { token: alice.token, body: { name, ...body } });
    assert.equal(r.status, 201);
  }
  let page = await openKeys(alice);
  await rowOf(page, 'Staging').getByRole('button', { name: 'Deactivate Staging' }).click();
  await rowOf(page, 'Staging').getByText('Inactive', { exact: true }).waitFor();
  assert.equal(await page.getByRole('row').count(), 4, 'a header row and three keys');
  await screenshot(page, 'keys');
  expectNoProblems(assert, page);
  await page.context().close();

  page = await openKeys(alice, { viewport: PHONE });
  const row = rowOf(page, 'Nightly report');
  await row.waitFor();
  // Each key is a card: no sideways scrolling needed to reach its actions.
  const revoke = row.getByRole('button', { name: 'Revoke Nightly report' });
  const box = await revoke.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `revoke button on screen: ${JSON.stringify(box)}`);
  const overflow = await page.evaluate(() => {
    const root = document.documentElement;
    return root.scrollWidth - root.clientWidth;
  });
  assert.ok(overflow <= 0, `no horizontal overflow (${overflow}px)`);
  await expectAccessible(assert, page, 'keys page at phone width');
  await screenshot(page, 'keys-phone');

  // A key with an expiry, made at phone width: the local time typed in becomes an RFC 3339 instant.
  await page.getByRole('button', { name: 'Create key' }).click();
  const create = page.getByRole('dialog', { name: 'Create a service key' });
  await create.waitFor();
  await expectAccessible(assert, page, 'create key dialog at phone width');
  const local = `${new Date().getFullYear() + 1}-06-30T18:45`;
  await create.getByLabel('Name').fill('Temporary');
  await create.getByLabel('Expires (optional)').fill(local);
  await create.getByRole('button', { name: 'Create key' }).click();
  const shown = page.getByRole('dialog', { name: 'Your new service key' });
  await shown.getByRole('button', { name: 'Copy key' }).waitFor();
  await shown.getByRole('button', { name: 'I have copied it, close' }).click();
  const temporary = rowOf(page, 'Temporary');
  await temporary.waitFor();
  assert.notEqual((await temporary.locator('td[data-label="Expires"]').textContent()).trim(), 'Never');
  const expected = await page.evaluate((v) => new Date(v).toISOString(), local);
  const keys = await call(stack.url, 'GET', '/api/v1/api-keys', { token: alice.token });
  const made = keys.body.items.find((k) => k.name === 'Temporary');
  assert.equal(Date.parse(made.expires_at), Date.parse(expected));
  expectNoProblems(assert, page);
  await page.context().close();
});
