// "My provider key" and "Preferences". Two providers take the user's own key here: "mock" (byok:
// required) and "spare" (byok_or_system: optional), both served by one parley-mock that accepts
// only the keys below and the system key (--require-key). The page lists both with their models and
// wording, sets a key with the provider's verification (a refused key is not stored), shows it
// masked only, replaces and deletes it; a deployment where no provider takes user keys says so.
// Preferences: saved, read back after a reload and through the API, a server validation error at
// its field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser,
  signIn, call, PHONE,
} from './harness.mjs';
import { mockProviderConfig, providerKey, startMock, startParley } from '../integration/harness.mjs';

// Made-up provider keys: parley-mock accepts GOOD_KEY and SPARE_KEY only (and the system key).
// Made fresh for each run (harness providerKey: `sk-<who>-<random>`), never real keys.
const GOOD_KEY = providerKey('account-good');
const SPARE_KEY = providerKey('account-spare');
const SPARE_KEY_2 = providerKey('account-spare-2');
const WRONG_KEY = providerKey('account-wrong');
const OLD_KEY = providerKey('old-openai');
// The masked form parley shows: the first characters, an ellipsis, the last four.
const maskedOf = (key) => new RegExp(`^sk-.{1,3}${key.slice(-4)}$`);
const chatWith = (model) => ({ model, messages: [{ role: 'user', content: 'hello there' }] });

let stack;
let browser;
let alice;
let bob;

// parley with the providers "mock" (byok, models gpt-*, mock-*, text-embedding-*) and "spare"
// (byok_or_system, models spare-*), both at one parley-mock; the console of PARLEY_CONSOLE_DIR.
async function startTwoProviders() {
  const systemKey = providerKey('system');
  const mock = await startMock(['--require-key', [GOOD_KEY, SPARE_KEY, SPARE_KEY_2, systemKey].join(',')]);
  const spare = `
[[providers]]
name = "spare"
base_url = "${mock.url}/v1"
credentials = "byok_or_system"
api_key_env = "ACCOUNT_SYSTEM_KEY"
models = ["spare-*"]
`;
  const config = mockProviderConfig(mock.url, {
    credentials: 'byok', keyEnv: 'ACCOUNT_SYSTEM_KEY', extraConfig: spare,
  });
  const dir = process.env.PARLEY_CONSOLE_DIR;
  let p;
  try {
    p = await startParley({
      args: ['--config', config],
      env: { ACCOUNT_SYSTEM_KEY: systemKey, ...(dir ? { PARLEY_CONSOLE_DIR: dir } : {}) },
    });
  } catch (e) {
    await mock.stop();
    throw e;
  }
  return { url: p.url, mock, systemKey, stop: async () => { await p.stop(); await mock.stop(); } };
}

before(async () => {
  stack = await startTwoProviders();
  browser = await launchBrowser();
  const root = await makeUser(stack.url, 'root'); // the first user is the admin
  alice = await makeUser(stack.url, 'alice', { adminToken: root.token });
  bob = await makeUser(stack.url, 'bob', { adminToken: root.token });
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

const keysRoute = (u) => `/api/v1/users/${u.id}/provider-keys`;
const storedKeys = async (u, token = u.token) => {
  const r = await call(stack.url, 'GET', keysRoute(u), { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.data;
};
// The row of a provider in the table (its row header is the provider's name).
const row = (page, name) =>
  page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });
// A chat completion with `user`'s token: {status, body}.
const chatAs = (user, model) =>
  call(stack.url, 'POST', '/v1/chat/completions', { token: user.token, body: chatWith(model) });

test('the providers that take the user\'s key are listed; a key is verified, shown masked only, and deleted', async () => {
  const page = await openPage(browser, stack.url);
  await signIn(page, alice.username);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My provider key' }).click();
  await page.getByRole('heading', { name: 'My provider key', level: 1 }).waitFor();

  // Both providers, with their models and whether the user's key is required or optional; the
  // built-in "demo" provider (server key only) is not listed.
  const table = page.getByRole('table');
  await row(page, 'mock').waitFor();
  assert.equal(await table.getByRole('rowheader').count(), 2);
  assert.deepEqual(await table.getByRole('rowheader').allTextContents(), ['mock', 'spare']);
  const mockRow = row(page, 'mock');
  const spareRow = row(page, 'spare');
  assert.match(await mockRow.textContent(), /gpt-\*.*mock-\*.*text-embedding-\*/);
  assert.match(await mockRow.textContent(), /Required: its models answer only with your key/);
  assert.match(await spareRow.textContent(), /spare-\*/);
  assert.match(await spareRow.textContent(), /Optional: the server's key is used when you set none/);
  assert.match(await mockRow.getByTestId('no-key').textContent(), /No key.*API_KEY_NOT_CONFIGURED/);
  assert.match(await spareRow.getByTestId('no-key').textContent(), /No key.*server's key is used/);
  const deleteMock = mockRow.getByRole('button', { name: 'Delete key for mock' });
  assert.equal(await deleteMock.count(), 0, 'nothing to delete yet');

  // No key for the required provider: the page says what that means; the API agrees.
  const missing = page.getByTestId('missing-keys');
  assert.match(await missing.textContent(), /You have no key yet for “mock”.*API_KEY_NOT_CONFIGURED/s);
  let r = await chatAs(alice, 'gpt-4o-mini');
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'API_KEY_NOT_CONFIGURED');
  r = await chatAs(alice, 'spare-1');
  assert.equal(r.status, 200, 'the optional provider answers with the server key');
  await expectAccessible(assert, page, 'provider key page, no key');

  // A key the provider refuses: a clear message, the field emptied, nothing stored.
  await mockRow.getByRole('button', { name: 'Set key for mock' }).click();
  const dialog = page.getByRole('dialog', { name: 'Set your key for “mock”' });
  await dialog.waitFor();
  const keyField = dialog.getByLabel('API key for “mock”');
  assert.equal(await keyField.getAttribute('type'), 'password');
  assert.equal(await dialog.getByLabel('Verify with the provider before saving').isChecked(), true);
  await expectAccessible(assert, page, 'provider key page, set dialog');
  await keyField.fill(WRONG_KEY);
  await dialog.getByRole('button', { name: 'Save key' }).click();
  const refused = dialog.getByRole('alert').filter({ hasText: 'The provider refused this key' });
  await refused.waitFor();
  assert.match(await refused.textContent(), /INVALID_API_KEY/);
  assert.equal(await keyField.inputValue(), '', 'the refused key leaves the field');
  assert.deepEqual(await storedKeys(alice), [], 'not stored');
  assert.ok(!(await page.content()).includes(WRONG_KEY));

  // The right key: verified, stored, listed masked; the secret appears nowhere in the page.
  await keyField.fill(GOOD_KEY);
  await dialog.getByRole('button', { name: 'Save key' }).click();
  await page.getByRole('status').filter({ hasText: 'The provider accepted the key for “mock”' }).waitFor();
  assert.equal(await dialog.count(), 0, 'the dialog is closed');
  assert.equal(await page.locator('input[type="password"]').count(), 0, 'the key field left with the dialog');
  const masked = await mockRow.getByTestId('masked-key').textContent();
  assert.match(masked, maskedOf(GOOD_KEY), `masked form: ${masked}`);
  const stored = await storedKeys(alice);
  assert.equal(stored.length, 1);
  assert.equal(stored[0].provider, 'mock');
  assert.equal(stored[0].api_key_masked, masked);
  assert.ok(!(await page.content()).includes(GOOD_KEY), 'the key is not in the DOM');
  assert.ok(!(await page.content()).includes('7f3a9c2e41b8'), 'no part of the key beyond the mask');
  assert.equal(await page.getByTestId('missing-keys').count(), 0);
  assert.equal(await spareRow.getByTestId('masked-key').count(), 0, 'the other provider still has none');
  r = await chatAs(alice, 'gpt-4o-mini');
  assert.equal(r.status, 200, 'the stored key is the one the provider accepts');
  await mockRow.getByRole('button', { name: 'Replace key for mock' }).waitFor();
  await expectAccessible(assert, page, 'provider key page, key set');
  await screenshot(page, 'provider-key');

  // After a reload at the provider's address: the key listed (masked), that row's button focused.
  await page.goto('/console#/provider-key/mock');
  await mockRow.getByTestId('masked-key').waitFor();
  assert.equal(await mockRow.getByTestId('masked-key').textContent(), masked);
  assert.ok(!(await page.content()).includes(GOOD_KEY));
  await page.waitForFunction(() => document.activeElement?.textContent === 'Replace key for mock');

  // Another user does not see it.
  assert.equal((await call(stack.url, 'GET', keysRoute(alice), { token: bob.token })).status, 404);

  // Delete, after a confirmation.
  await deleteMock.click();
  const confirm = page.getByRole('dialog', { name: 'Delete the provider key?' });
  await confirm.waitFor();
  assert.match(await confirm.textContent(), /API_KEY_NOT_CONFIGURED/);
  await expectAccessible(assert, page, 'provider key delete dialog');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await storedKeys(alice)).length, 1, 'cancel keeps it');
  await deleteMock.click();
  await confirm.getByRole('button', { name: 'Delete key' }).click();
  await page.getByRole('status').filter({ hasText: 'The key for “mock” is deleted.' }).waitFor();
  await mockRow.getByTestId('no-key').waitFor();
  await page.getByTestId('missing-keys').waitFor();
  assert.deepEqual(await storedKeys(alice), []);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('at phone width, an optional provider\'s key is saved without verification, replaced, used, and deleted', async () => {
  const page = await openPage(browser, stack.url, { viewport: PHONE });
  await signIn(page, bob.username);
  await page.goto('/console#/provider-key');
  const spareRow = row(page, 'spare');
  await spareRow.getByTestId('no-key').waitFor();

  // Without verification: nobody asks the provider, the key is stored as typed.
  await stack.mock.reset();
  await spareRow.getByRole('button', { name: 'Set key for spare' }).click();
  let dialog = page.getByRole('dialog', { name: 'Set your key for “spare”' });
  await dialog.getByLabel('Verify with the provider before saving').uncheck();
  await dialog.getByLabel('API key for “spare”').fill(SPARE_KEY);
  await dialog.getByRole('button', { name: 'Save key' }).click();
  await page.getByRole('status').filter({ hasText: 'The key for “spare” is saved (not verified).' })
    .waitFor();
  assert.match(await spareRow.getByTestId('masked-key').textContent(), maskedOf(SPARE_KEY));
  assert.deepEqual(await stack.mock.requests(), [], 'not verified: the provider was not asked');
  const first = (await storedKeys(bob))[0];
  assert.equal(first.provider, 'spare');
  assert.ok(!(await page.content()).includes(SPARE_KEY));
  await expectAccessible(assert, page, 'provider key page at phone width');
  await screenshot(page, 'provider-key-phone');

  // Replaced (verified this time): first added stays, the new key is the one sent to the provider.
  await spareRow.getByRole('button', { name: 'Replace key for spare' }).click();
  dialog = page.getByRole('dialog', { name: 'Replace your key for “spare”' });
  await dialog.waitFor();
  await expectAccessible(assert, page, 'replace dialog at phone width');
  await dialog.getByLabel('API key for “spare”').fill(SPARE_KEY_2);
  await dialog.getByRole('button', { name: 'Replace key' }).click();
  await page.getByRole('status').filter({ hasText: 'The provider accepted the key for “spare”' }).waitFor();
  await spareRow.getByText(/^First added /).waitFor();
  assert.match(await spareRow.getByTestId('masked-key').textContent(), maskedOf(SPARE_KEY_2));
  const second = (await storedKeys(bob))[0];
  assert.equal(second.created_at, first.created_at);
  assert.notEqual(second.updated_at, first.updated_at);
  await stack.mock.reset();
  const r = await chatAs(bob, 'spare-1');
  assert.equal(r.status, 200);
  assert.deepEqual((await stack.mock.requests()).map((q) => q.authorization), [`Bearer ${SPARE_KEY_2}`]);
  assert.ok(!(await page.content()).includes(SPARE_KEY_2));

  // Deleted: the server's key answers again.
  await spareRow.getByRole('button', { name: 'Delete key for spare' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete the provider key?' });
  assert.match(await confirm.textContent(), /server's key/);
  await confirm.getByRole('button', { name: 'Delete key' }).click();
  await spareRow.getByTestId('no-key').waitFor();
  assert.deepEqual(await storedKeys(bob), []);
  await stack.mock.reset();
  assert.equal((await chatAs(bob, 'spare-1')).status, 200);
  assert.deepEqual((await stack.mock.requests()).map((q) => q.authorization), [`Bearer ${stack.systemKey}`]);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('where no provider takes user keys the page says so, and lists keys kept from before for deletion', async () => {
  const system = await startStack({ credentials: 'system' });
  try {
    const root = await makeUser(system.url, 'root');
    // A key kept for a provider this deployment does not have (e.g. set before a change of setup).
    const put = await call(system.url, 'PUT', `/api/v1/users/${root.id}/api-key`, {
      token: root.token, body: { api_key: OLD_KEY, provider: 'openai' },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const page = await openPage(browser, system.url);
    await signIn(page, root.username);
    await page.goto('/console#/provider-key');
    const none = page.getByTestId('no-user-key-providers');
    await none.waitFor();
    assert.match(await none.textContent(), /No provider here takes your own key/);
    assert.match(await none.textContent(), /server's keys/);
    assert.equal(await page.getByRole('table').count(), 0);
    await page.getByRole('heading', { name: 'Other stored keys' }).waitFor();
    const old = page.getByRole('listitem').filter({ hasText: 'openai' });
    assert.match(await old.getByTestId('masked-key').textContent(), maskedOf(OLD_KEY));
    await expectAccessible(assert, page, 'provider key page, no provider takes user keys');
    await old.getByRole('button', { name: 'Delete key for openai' }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete the provider key?' });
    await confirm.getByRole('button', { name: 'Delete key' }).click();
    await page.getByRole('status').filter({ hasText: 'The key for “openai” is deleted.' }).waitFor();
    await page.getByRole('heading', { name: 'Other stored keys' }).waitFor({ state: 'detached' });
    const left = await call(system.url, 'GET', `/api/v1/users/${root.id}/provider-keys`, { token: root.token });
    assert.deepEqual(left.body.data, []);
    expectNoProblems(assert, page);
    await page.context().close();
  } finally {
    await system.stop();
  }
});

test('preferences are saved, read back after a reload and through the API; a bad value is shown at its field', async () => {
  const page = await openPage(browser, stack.url);
  await signIn(page, alice.username);
  await page.goto('/console#/preferences');
  await page.getByRole('heading', { name: 'Preferences', level: 1 }).waitFor();
  await page.getByText('You are using the defaults.').waitFor();
  const model = page.getByLabel('Default model');
  assert.equal(await model.inputValue(), '', 'the server default');
  const options = await model.locator('option').allTextContents();
  assert.deepEqual([options[0], options.at(-1)], ['Server default', 'Another model…']);
  assert.ok(options.includes('demo (demo)'), `the models of GET /v1/models are offered: ${options}`);
  await expectAccessible(assert, page, 'preferences page');

  await page.getByLabel('Language').fill('pt-BR');
  await page.getByLabel('Voice').selectOption('nova');
  // The mock provider serves "mock-*" (a prefix, so /v1/models names none of them): typed in.
  await model.selectOption({ label: 'Another model…' });
  await page.getByLabel('Model name').fill('mock-1');
  await page.getByLabel('System prompt').fill('Answer like a pirate.');
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await page.getByRole('status').filter({ hasText: 'Preferences saved.' }).waitFor();
  const saved = await call(stack.url, 'GET', `/api/v1/users/${alice.id}/preferences`, { token: alice.token });
  assert.equal(saved.status, 200);
  assert.equal(saved.body.language, 'pt-BR');
  assert.equal(saved.body.tts_voice, 'nova');
  assert.equal(saved.body.default_model, 'mock-1');
  assert.equal(saved.body.system_prompt, 'Answer like a pirate.');
  await expectAccessible(assert, page, 'preferences page, another model');
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, 'preferences');

  await page.reload();
  await page.getByText(/^Last saved /).waitFor();
  assert.equal(await page.getByLabel('Language').inputValue(), 'pt-BR');
  assert.equal(await page.getByLabel('Voice').inputValue(), 'nova');
  assert.equal(await page.getByLabel('Model name').inputValue(), 'mock-1');
  assert.equal(await page.getByLabel('System prompt').inputValue(), 'Answer like a pirate.');

  // The server refuses a language that is not a tag: its message sits at the field, nothing changes.
  const language = page.getByLabel('Language');
  await language.fill('x');
  await page.getByRole('button', { name: 'Save preferences' }).click();
  const fieldError = page.locator('#pref-language-error');
  await fieldError.waitFor();
  assert.match(await fieldError.textContent(), /language must/);
  assert.equal(await language.getAttribute('aria-invalid'), 'true');
  assert.match(await language.getAttribute('aria-describedby'), /pref-language-error/);
  assert.equal(await page.locator('#pref-tts_voice-error').count(), 0, 'other fields carry no error');
  await expectAccessible(assert, page, 'preferences page with a field error');
  const unchanged = await call(stack.url, 'GET', `/api/v1/users/${alice.id}/preferences`, { token: alice.token });
  assert.equal(unchanged.body.language, 'pt-BR');

  // A listed model, then the server default and no prompt (both unset: null).
  await language.fill('en');
  await page.getByLabel('Default model').selectOption('demo');
  assert.equal(await page.getByLabel('Model name').count(), 0);
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await page.getByRole('status').filter({ hasText: 'Preferences saved.' }).waitFor();
  assert.equal(await fieldError.count(), 0);
  let now = await call(stack.url, 'GET', `/api/v1/users/${alice.id}/preferences`, { token: alice.token });
  assert.equal(now.body.default_model, 'demo');
  assert.equal(now.body.language, 'en');
  await page.getByLabel('Default model').selectOption('');
  await page.getByLabel('System prompt').fill('');
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await page.getByRole('status').filter({ hasText: 'Preferences saved.' }).waitFor();
  now = await call(stack.url, 'GET', `/api/v1/users/${alice.id}/preferences`, { token: alice.token });
  assert.equal(now.body.default_model, null);
  assert.equal(now.body.system_prompt, null);
  assert.equal(now.body.tts_voice, 'nova', 'untouched fields keep their value');
  expectNoProblems(assert, page);
  await page.context().close();
});
