// The administration pages: an admin manages users (create, search, role, deactivate, limits,
// delete) and reads the audit log; a manager reads users read-only and the audit log (filtered by
// a range of days too); an ordinary user sees neither. Each browser action is checked against
// parley's API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser, signIn, call, PHONE,
} from './harness.mjs';

let stack;
let browser;
let root; // the administrator (first user)
let mona; // a manager
let ursula; // an ordinary user
let bob = { username: 'bob', password: 'bobs long password' }; // created in the browser

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
  root = await makeUser(stack.url, 'root');
  mona = await makeUser(stack.url, 'mona', { adminToken: root.token, role: 'manager' });
  ursula = await makeUser(stack.url, 'ursula', { adminToken: root.token });
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

// POST /api/v1/auth/token as `username` → the status.
async function tokenStatus(username, password) {
  const res = await fetch(`${stack.url}/api/v1/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  const body = await res.json();
  return { status: res.status, token: body.access_token };
}

// Polls `check` (an async function returning truthy) until it holds: for server state that the
// page changed, read through the API.
async function eventually(check, what) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`never true: ${what}`);
}

// At phone width, only tables may scroll sideways (inside their .table-wrap).
async function noSideways(page, what) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `${what} scrolls sideways (${width}px): only tables may`);
}

const auditRows = (page) => page.locator('.admin-audit-table tbody tr');
const userRow = (page, username) => page.getByRole('row').filter({ has: page.getByRole('link', { name: username, exact: true }) });

test('an admin creates, finds, promotes, deactivates and reactivates a user', async () => {
  const page = await openPage(browser, stack.url);
  await signIn(page, 'root');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  await userRow(page, 'mona').waitFor();
  await expectAccessible(assert, page, 'users page');

  // Create: the dialog, its form, a refusal shown in place, then success.
  await page.getByRole('button', { name: 'Create user' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a user' });
  await dialog.waitFor();
  await expectAccessible(assert, page, 'create-user dialog');
  await dialog.getByLabel('Username').fill('ursula');
  await dialog.getByLabel('Email').fill('someone@example.com');
  await dialog.getByLabel('Password', { exact: true }).fill(bob.password);
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await dialog.getByRole('alert').filter({ hasText: /taken|exists|already/i }).waitFor();
  await dialog.getByLabel('Username').fill(bob.username);
  await dialog.getByLabel('Email').fill('bob@example.com');
  await dialog.getByLabel('Role').selectOption('user');
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('status').filter({ hasText: 'Created bob' }).waitFor();
  assert.equal(await dialog.isVisible(), false);
  const found = await call(stack.url, 'GET', '/api/v1/users?search=bob', { token: root.token });
  assert.equal(found.body.total, 1);
  assert.equal(found.body.items[0].role, 'user');
  assert.equal(found.body.items[0].is_active, true);
  bob.id = found.body.items[0].id;

  // Search narrows the table.
  await page.getByLabel('Search users').fill('bo');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByText('matching “bo”').waitFor();
  await userRow(page, 'bob').waitFor();
  assert.equal(await userRow(page, 'ursula').count(), 0);
  assert.equal(await userRow(page, 'mona').count(), 0);

  // Role: user → manager.
  await page.getByLabel('Role of bob').selectOption('manager');
  await page.getByRole('status').filter({ hasText: 'bob is now manager' }).waitFor();
  const promoted = await call(stack.url, 'GET', `/api/v1/users/${bob.id}`, { token: root.token });
  assert.equal(promoted.body.role, 'manager');
  assert.equal(await page.getByLabel('Role of bob').inputValue(), 'manager');

  // Deactivate (confirmed): bob cannot sign in; cancelling first changes nothing.
  assert.equal((await tokenStatus('bob', bob.password)).status, 200);
  await page.getByRole('button', { name: 'Deactivate bob' }).click();
  const confirm = page.getByRole('dialog', { name: 'Deactivate bob?' });
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  assert.equal((await call(stack.url, 'GET', `/api/v1/users/${bob.id}`, { token: root.token })).body.is_active, true);
  await page.getByRole('button', { name: 'Deactivate bob' }).click();
  await confirm.getByText('cannot sign in').waitFor();
  await confirm.getByRole('button', { name: 'Deactivate' }).click();
  await userRow(page, 'bob').getByText('Inactive').waitFor();
  await page.getByRole('status').filter({ hasText: 'bob is deactivated' }).waitFor();
  assert.equal((await call(stack.url, 'GET', `/api/v1/users/${bob.id}`, { token: root.token })).body.is_active, false);
  const refused = await tokenStatus('bob', bob.password);
  assert.ok(refused.status === 401 || refused.status === 403, `deactivated login: ${refused.status}`);

  // Reactivate.
  await page.getByRole('button', { name: 'Activate bob' }).click();
  await page.getByRole('dialog', { name: 'Activate bob?' }).getByRole('button', { name: 'Activate' }).click();
  await userRow(page, 'bob').getByText('Active', { exact: true }).waitFor();
  assert.equal((await call(stack.url, 'GET', `/api/v1/users/${bob.id}`, { token: root.token })).body.is_active, true);
  assert.equal((await tokenStatus('bob', bob.password)).status, 200);

  // The admin's own row offers no role or account controls (parley refuses them on oneself).
  await page.getByRole('button', { name: 'Show all' }).click();
  await userRow(page, 'root').waitFor();
  assert.equal(await page.getByLabel('Role of root').count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Delete root' }).count(), 0);
  await screenshot(page, 'admin-users');
  expectNoProblems(assert, page);
  await page.context().close();
});

test("an admin edits a user's limits and sees what is in use now", async () => {
  const page = await openPage(browser, stack.url);
  await signIn(page, 'root');
  await page.goto(`/console#/admin/users/${bob.id}`);
  await page.getByRole('heading', { name: 'bob', level: 1 }).waitFor();
  assert.equal(await page.getByLabel('Role', { exact: true }).inputValue(), 'manager');
  // bob signed in (through the API) in the previous test: the audit log knows when.
  await page.waitForFunction(() => {
    const t = document.querySelector('[data-testid="last-sign-in"]')?.textContent;
    return t && t !== '…' && t !== 'never' && t !== 'unknown';
  });

  const form = page.getByRole('form', { name: 'Limits of bob' });
  await form.getByLabel('Requests per minute').fill('30');
  await form.getByLabel('Token budget per period').fill('100000');
  await form.getByLabel('Spend budget per period (USD)').fill('2.5');
  await form.getByLabel('Budget period').selectOption('day');
  await form.getByRole('button', { name: 'Save limits' }).click();
  await page.getByRole('status').filter({ hasText: 'Limits of bob saved' }).waitFor();
  const limits = await call(stack.url, 'GET', `/api/v1/users/${bob.id}/limits`, { token: root.token });
  assert.equal(limits.status, 200);
  assert.equal(limits.body.rate_limit_per_minute, 30);
  assert.equal(limits.body.tokens_per_minute, null);
  assert.equal(limits.body.token_budget, 100000);
  assert.equal(limits.body.spend_budget_usd, 2.5);
  assert.equal(limits.body.budget_period, 'day');

  // In use now: the settings, then a call of bob's counted in the last minute (after "Refresh use").
  const inUse = page.getByRole('table', { name: /In use now/ });
  const rpm = inUse.getByRole('row').filter({ hasText: 'Requests per minute' });
  await rpm.getByRole('cell', { name: '30', exact: true }).waitFor();
  await inUse.getByRole('row').filter({ hasText: 'Token budget' }).getByText('per day').waitFor();
  const { token } = await tokenStatus('bob', bob.password);
  const chat = await call(stack.url, 'POST', '/v1/chat/completions', {
    token, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] },
  });
  assert.equal(chat.status, 200, JSON.stringify(chat.body));
  const now = await call(stack.url, 'GET', `/api/v1/users/${bob.id}/limits`, { token: root.token });
  assert.equal(now.body.in_use.requests_last_minute, 1);
  await page.getByRole('button', { name: 'Refresh use' }).click();
  await rpm.getByRole('cell', { name: '1', exact: true }).waitFor();

  // Emptying a field removes that limit (PUT replaces them all).
  await form.getByLabel('Requests per minute').fill('');
  await form.getByRole('button', { name: 'Save limits' }).click();
  await eventually(async () => {
    const r = await call(stack.url, 'GET', `/api/v1/users/${bob.id}/limits`, { token: root.token });
    return r.body.rate_limit_per_minute === null && r.body.token_budget === 100000;
  }, 'the rate limit is removed');
  await rpm.getByRole('cell', { name: 'no limit' }).waitFor();

  // A refused value is shown with parley's message.
  await form.getByLabel('Token budget per period').fill('-5');
  await form.evaluate((f) => f.setAttribute('novalidate', ''));
  await form.getByRole('button', { name: 'Save limits' }).click();
  await form.getByRole('alert').waitFor();
  assert.equal(await form.getByLabel('Token budget per period').getAttribute('aria-invalid'), 'true');

  await expectAccessible(assert, page, 'user detail page');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('an admin deletes a user after a warning', async () => {
  const carol = await makeUser(stack.url, 'carol', { adminToken: root.token });
  const page = await openPage(browser, stack.url);
  await signIn(page, 'root');
  await page.goto('/console#/admin/users');
  await page.getByRole('button', { name: 'Delete carol' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete carol?' });
  await confirm.getByText('everything they own').waitFor();
  await confirm.getByRole('button', { name: 'Delete user' }).click();
  await page.getByRole('status').filter({ hasText: 'carol was deleted' }).waitFor();
  await userRow(page, 'carol').waitFor({ state: 'detached' });
  assert.equal((await call(stack.url, 'GET', `/api/v1/users/${carol.id}`, { token: root.token })).status, 404);
  assert.equal((await tokenStatus('carol', carol.password)).status, 401);

  // Deleting from the user's own page returns to the list.
  await page.goto(`/console#/admin/users/${bob.id}`);
  await page.getByRole('heading', { name: 'bob', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Delete bob' }).click();
  await page.getByRole('dialog', { name: 'Delete bob?' }).getByRole('button', { name: 'Delete user' }).click();
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  await userRow(page, 'mona').waitFor();
  assert.equal(await userRow(page, 'bob').count(), 0);
  assert.equal((await call(stack.url, 'GET', `/api/v1/users/${bob.id}`, { token: root.token })).status, 404);
  expectNoProblems(assert, page);
  await page.context().close();
});

// (axe checks the audit page in the date-range test below, with its filters in use.)
test('the audit log lists those actions, filters them by action and user, loads more, and fits a phone', async () => {
  // Enough events that the log spans more than one page (50 events): ursula makes service keys.
  for (let i = 0; i < 45; i++) {
    const key = await call(stack.url, 'POST', '/api/v1/api-keys', { token: ursula.token, body: { name: `k${i}` } });
    assert.equal(key.status, 201);
  }
  const all = await call(stack.url, 'GET', '/api/v1/audit?limit=200', { token: root.token });
  assert.ok(all.body.total > 50, String(all.body.total));

  const page = await openPage(browser, stack.url);
  await signIn(page, 'root');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
  const rows = auditRows(page);
  await page.getByText(/Showing 50 of \d+ events/).waitFor();
  // Newest first: the first row is the admin's own sign-in just now.
  assert.equal(await rows.first().getAttribute('data-action'), 'auth.login.succeeded');

  await page.getByRole('button', { name: 'Load more events' }).click();
  await page.getByText(new RegExp(`Showing ${Math.min(100, all.body.total + 1)} of`)).waitFor();
  const recorded = ['user.created', 'user.role_changed', 'user.deactivated', 'user.activated', 'user.limits_changed', 'user.deleted'];
  for (const action of recorded) {
    assert.ok((await page.locator(`.admin-audit-table tbody tr[data-action="${action}"]`).count()) >= 1, action);
  }

  // Filter by acting user: the admin's own account changes.
  await page.getByLabel('Acting user').fill('root');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByText(/events matching the filters/).waitFor();
  assert.equal(await rows.filter({ hasNot: page.getByRole('cell', { name: 'root', exact: true }) }).count(), 0);
  await page.locator('.admin-audit-table tbody tr[data-action="user.role_changed"]').waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, 'admin-audit');
  await page.getByLabel('Acting user').fill('');

  // Filter by action: only role changes remain, bob's among them (he is deleted: his id is shown).
  await page.getByLabel('Action').selectOption('user.role_changed');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByText(/Showing 1 of 1 events matching/).waitFor();
  const changed = rows.first();
  assert.equal(await changed.getAttribute('data-action'), 'user.role_changed');
  await changed.getByText('user → manager').waitFor();
  await changed.getByText('root', { exact: true }).waitFor();
  await changed.getByText(bob.id).waitFor();
  await changed.getByText('(deleted)').waitFor();
  await changed.getByText(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/).waitFor();

  // Filter by acting user: ursula's sign-in and keys only.
  await page.getByLabel('Action').selectOption('');
  await page.getByLabel('Acting user').fill('ursula');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  const ursulas = await call(stack.url, 'GET', `/api/v1/audit?actor_user_id=${ursula.id}`, { token: root.token });
  await page.getByText(new RegExp(`Showing ${Math.min(50, ursulas.body.total)} of ${ursulas.body.total} events`)).waitFor();
  const actions = await rows.evaluateAll((trs) => [...new Set(trs.map((tr) => tr.dataset.action))]);
  assert.deepEqual(actions.sort(), ['api_key.created', 'auth.login.succeeded']);
  await page.getByLabel('Acting user').fill('nobody-here');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('alert').filter({ hasText: 'No user is named' }).waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByText(/Showing 50 of \d+ events\./).waitFor();

  // A user's page links to their events.
  await page.goto(`/console#/admin/users/${mona.id}`);
  await page.getByRole('link', { name: 'Audit events by mona' }).click();
  await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
  await page.getByText(/events matching the filters/).waitFor();
  await eventually(async () => (await page.getByLabel('Acting user').inputValue()) === 'mona', 'the filter names mona');

  // At phone width: both pages and the create dialog, without sideways scrolling outside tables.
  await page.setViewportSize(PHONE);
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByText(/Showing 50 of \d+ events\./).waitFor();
  await noSideways(page, 'the audit page');
  await page.goto('/console#/admin/users');
  await userRow(page, 'mona').waitFor();
  await noSideways(page, 'the users page');
  await page.getByRole('button', { name: 'Create user' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a user' });
  await dialog.getByLabel('Username').waitFor();
  assert.ok((await dialog.boundingBox()).width <= PHONE.width);
  await expectAccessible(assert, page, 'users page with the create dialog (phone)');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a manager reads users and limits without controls, and parley refuses their changes', async () => {
  const page = await openPage(browser, stack.url);
  await signIn(page, 'mona');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
  await userRow(page, 'ursula').waitFor();
  await page.getByText('only an administrator can create, change or delete').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Create user' }).count(), 0);
  assert.equal(await page.getByRole('combobox', { name: /^Role of/ }).count(), 0);
  assert.equal(await page.getByRole('button', { name: /^(Delete|Deactivate|Activate) / }).count(), 0);
  await userRow(page, 'ursula').getByText('User', { exact: true }).waitFor();
  await expectAccessible(assert, page, 'users page (manager)');

  await userRow(page, 'ursula').getByRole('link', { name: 'ursula' }).click();
  await page.getByRole('heading', { name: 'ursula', level: 1 }).waitFor();
  await page.getByRole('table', { name: /In use now/ }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Save limits' }).count(), 0);
  assert.equal(await page.getByRole('textbox').count() + (await page.getByRole('spinbutton').count()), 0);

  // Managers read the audit log: ursula's last sign-in, and her events from her page.
  await page.waitForFunction(() => {
    const t = document.querySelector('[data-testid="last-sign-in"]')?.textContent;
    return t && t !== '…' && t !== 'never' && t !== 'unknown';
  });
  await page.getByRole('link', { name: 'Audit events by ursula' }).click();
  await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
  const theirs = await call(stack.url, 'GET', `/api/v1/audit?actor_user_id=${ursula.id}`, { token: mona.token });
  assert.equal(theirs.status, 200);
  assert.ok(theirs.body.total > 0);
  const n = theirs.body.total;
  await page.getByText(`Showing ${Math.min(50, n)} of ${n} events matching the filters.`).waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByText(/Showing 50 of \d+ events\./).waitFor();
  await auditRows(page).filter({ has: page.getByRole('cell', { name: 'mona', exact: true }) }).first().waitFor();
  assert.equal(await page.getByText(/administrators only/).count(), 0);

  // What the page does not offer, parley refuses.
  const t = mona.token;
  const u = `/api/v1/users/${ursula.id}`;
  assert.equal((await call(stack.url, 'PATCH', u, { token: t, body: { role: 'admin' } })).status, 403);
  assert.equal((await call(stack.url, 'PATCH', u, { token: t, body: { is_active: false } })).status, 403);
  assert.equal((await call(stack.url, 'DELETE', u, { token: t })).status, 403);
  assert.equal((await call(stack.url, 'PUT', `${u}/limits`, { token: t, body: { rate_limit_per_minute: 1 } })).status, 403);
  const create = await call(stack.url, 'POST', '/api/v1/users', {
    token: t, body: { username: 'mallory', email: 'mallory@example.com', password: 'correct horse battery' },
  });
  assert.equal(create.status, 403);
  assert.equal((await call(stack.url, 'GET', u, { token: root.token })).body.role, 'user');
  expectNoProblems(assert, page);
  await page.context().close();
});

// The day of `ms` in a time zone, as <input type="date"> writes it (YYYY-MM-DD).
const dayIn = (timeZone, ms = Date.now()) => new Intl.DateTimeFormat('en-CA', { timeZone }).format(ms);

test('the audit log filters by a range of days in the browser\'s time zone', async () => {
  // India has no clock changes: its days start at 18:30 UTC of the day before.
  const zone = 'Asia/Kolkata';
  const startOf = (day) => new Date(`${day}T00:00:00+05:30`).toISOString();
  const nextDay = (day) => dayIn(zone, Date.parse(startOf(day)) + 86400000);
  const page = await openPage(browser, stack.url);
  await (await page.context().newCDPSession(page)).send('Emulation.setTimezoneOverride', { timezoneId: zone });
  const asked = []; // [since, until] of each audit request the page makes
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.pathname !== '/api/v1/audit') return;
    asked.push([url.searchParams.get('since'), url.searchParams.get('until')]);
  });
  await signIn(page, 'mona'); // a manager
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
  await page.getByText(/Showing 50 of \d+ events\./).waitFor();
  const form = page.getByRole('form', { name: 'Filter events' });
  const apply = () => form.getByRole('button', { name: 'Apply filters' }).click();

  // From today: today's events, this sign-in first, more than a page of them.
  const today = dayIn(zone);
  await form.getByLabel('From').fill(today);
  await apply();
  const todays = await call(stack.url, 'GET', `/api/v1/audit?since=${startOf(today)}`, { token: mona.token });
  assert.equal(todays.status, 200);
  assert.ok(todays.body.total > 50, String(todays.body.total));
  const total = todays.body.total;
  await page.getByText(new RegExp(`Showing 50 of ${total} events matching the filters \\(from .+ on\\)\\.`)).waitFor();
  assert.deepEqual(asked.at(-1), [startOf(today), null]);
  const first = auditRows(page).first();
  assert.equal(await first.getAttribute('data-action'), 'auth.login.succeeded');
  await first.getByRole('cell', { name: 'mona', exact: true }).first().waitFor();
  await expectAccessible(assert, page, 'audit page with a date range');
  // Load more keeps the range.
  await page.getByRole('button', { name: 'Load more events' }).click();
  await page.getByText(new RegExp(`Showing ${Math.min(100, total)} of ${total} events`)).waitFor();
  assert.deepEqual(asked.at(-1), [startOf(today), null]);

  // A range entirely in the past: none, said in words; `until` is the start of the day after "To".
  await form.getByLabel('From').fill('2020-01-01');
  await form.getByLabel('To').fill('2020-01-31');
  await apply();
  await page.getByText(/^No events match the filters \(from .*2020 to .*2020\)\.$/).waitFor();
  assert.deepEqual(asked.at(-1), [startOf('2020-01-01'), startOf('2020-02-01')]);
  assert.equal(await auditRows(page).count(), 0);
  const pastQuery = `since=${startOf('2020-01-01')}&until=${startOf('2020-02-01')}`;
  assert.equal((await call(stack.url, 'GET', `/api/v1/audit?${pastQuery}`, { token: mona.token })).body.total, 0);

  // Up to today, from a past day: today's events again ("To" is included).
  await form.getByLabel('To').fill(today);
  await apply();
  await page.getByText(/Showing 50 of \d+ events matching the filters \(from .+ to .+\)\./).waitFor();
  assert.deepEqual(asked.at(-1), [startOf('2020-01-01'), startOf(nextDay(today))]);

  // At phone width, "To" before "From": said beside the fields, the field marked, nothing asked of
  // parley, the events of the range in force still shown.
  await page.setViewportSize(PHONE);
  const requests = asked.length;
  await form.getByLabel('From').fill(nextDay(today));
  await apply();
  await page.getByRole('alert').filter({ hasText: '“To” is before “From”' }).waitFor();
  const to = form.getByLabel('To');
  assert.equal(await to.getAttribute('aria-invalid'), 'true');
  assert.match(await to.getAttribute('aria-describedby'), /admin-audit-to-error/);
  assert.equal(asked.length, requests);
  assert.equal(await auditRows(page).count(), 50);
  await expectAccessible(assert, page, 'audit page with filters and a date error (phone)');
  await noSideways(page, 'the audit page with a date error');
  await to.scrollIntoViewIfNeeded();
  await screenshot(page, 'admin-audit-range-phone');

  // "Clear filters" drops the range and the message.
  await form.getByRole('button', { name: 'Clear filters' }).click();
  await page.getByText(/Showing 50 of \d+ events\./).waitFor();
  assert.equal(await form.getByLabel('From').inputValue(), '');
  assert.equal(await page.getByRole('alert').count(), 0);
  assert.deepEqual(asked.at(-1), [null, null]);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('an ordinary user has no administration pages and fetches no user data', async () => {
  const page = await openPage(browser, stack.url);
  const seen = [];
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if ((path.startsWith('/api/v1/users') && path !== '/api/v1/users/me') || path.startsWith('/api/v1/audit')) {
      seen.push(`${r.status()} ${path}`);
    }
  });
  await signIn(page, 'ursula');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link').first().waitFor();
  assert.equal(await nav.getByRole('link', { name: 'Users' }).count(), 0);
  assert.equal(await nav.getByRole('link', { name: 'Audit log' }).count(), 0);
  for (const hash of [`#/admin/users`, `#/admin/users/${mona.id}`, '#/admin/audit']) {
    await page.goto(`/console${hash}`);
    await page.getByRole('heading', { name: 'Not available' }).waitFor();
  }
  // Only this user's own records may have been read (other pages read /users/<own id>/…).
  const foreign = seen.filter((s) => !s.includes(`/api/v1/users/${ursula.id}`));
  assert.deepEqual(foreign.filter((s) => !s.startsWith('403 ')), [], 'no user data was fetched');
  assert.equal((await call(stack.url, 'GET', '/api/v1/users', { token: ursula.token })).status, 403);
  assert.equal((await call(stack.url, 'GET', '/api/v1/audit', { token: ursula.token })).status, 403);
  assert.equal((await call(stack.url, 'GET', `/api/v1/users/${mona.id}/limits`, { token: ursula.token })).status, 404);
  expectNoProblems(assert, page);
  await page.context().close();
});
