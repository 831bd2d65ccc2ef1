// "My provider key" and "Preferences": a provider key set with the provider's verification (parley-mock
// accepts one key only), refused keys not stored, the secret never in the page, deletion; preferences
// saved, read back after a reload and through the API, a server validation error at its field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser,
  signIn, call, PHONE,
} from './harness.mjs';

// Made-up provider keys: parley-mock accepts GOOD_KEY only (--require-key); the provider is "mock".
const GOOD_KEY = 'sk-account-good-7f3a9c2e41b8d605';
const WRONG_KEY = 'sk-account-wrong-0d9e8f7a6b5c4321';
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] };

let stack;
let browser;
let alice;
let bob;

before(async () => {
  stack = await startStack({ credentials: 'byok', mockKeys: [GOOD_KEY] });
  browser = await launchBrowser();
  const root = await makeUser(stack.url, 'root'); // the first user is the admin
  alice = await makeUser(stack.url, 'alice', { adminToken: root.token });
  bob = await makeUser(stack.url, 'bob', { adminToken: root.token });
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

const keyRoute = (u, provider = 'mock') => `/api/v1/users/${u.id}/api-key?provider=${provider}`;

test('a provider key is verified with the provider, shown masked only, and deleted', async () => {
  const page = await openPage(browser, stack.url);
  await signIn(page, alice.username);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My provider key' }).click();
  await page.getByRole('heading', { name: 'My provider key', level: 1 }).waitFor();

  // No key yet: the page says what a provider key is for; the API agrees (API_KEY_NOT_CONFIGURED).
  await page.getByText('No key is set for “openai” yet').waitFor();
  await page.getByLabel('Provider', { exact: true }).fill('mock');
  await page.getByRole('button', { name: 'Show this provider' }).click();
  const empty = page.getByTestId('no-provider-key');
  await empty.getByText('No key is set for “mock” yet').waitFor();
  assert.match(await empty.textContent(), /API_KEY_NOT_CONFIGURED/);
  assert.match(await empty.textContent(), /your own API key from a model provider/);
  const before = await call(stack.url, 'POST', '/v1/chat/completions', { token: alice.token, body: CHAT });
  assert.equal(before.status, 400);
  assert.equal(before.body.error.code, 'API_KEY_NOT_CONFIGURED');
  await expectAccessible(assert, page, 'provider key page, no key');

  // A key the provider refuses: a clear message, the field emptied, nothing stored.
  const keyField = page.getByLabel('API key for “mock”');
  assert.equal(await keyField.getAttribute('type'), 'password');
  assert.equal(await page.getByLabel('Verify with the provider before saving').isChecked(), true);
  await keyField.fill(WRONG_KEY);
  await page.getByRole('button', { name: 'Save key' }).click();
  const refused = page.getByRole('alert').filter({ hasText: 'The provider refused this key' });
  await refused.waitFor();
  assert.match(await refused.textContent(), /INVALID_API_KEY/);
  assert.equal(await keyField.inputValue(), '', 'the refused key leaves the field');
  assert.equal((await call(stack.url, 'GET', keyRoute(alice), { token: alice.token })).status, 404, 'not stored');
  assert.ok(!(await page.content()).includes(WRONG_KEY));

  // The right key: verified, stored, shown masked; the secret appears nowhere in the page.
  await keyField.fill(GOOD_KEY);
  await page.getByRole('button', { name: 'Save key' }).click();
  await page.getByRole('status').filter({ hasText: 'The provider accepted the key' }).waitFor();
  const masked = await page.getByTestId('masked-key').textContent();
  assert.match(masked, /^sk-.{1,3}d605$/, `masked form: ${masked}`);
  const stored = await call(stack.url, 'GET', keyRoute(alice), { token: alice.token });
  assert.equal(stored.status, 200);
  assert.equal(stored.body.api_key_masked, masked);
  assert.equal(stored.body.provider, 'mock');
  assert.equal(await keyField.inputValue(), '');
  assert.ok(!(await page.content()).includes(GOOD_KEY), 'the key is not in the DOM');
  assert.ok(!(await page.content()).includes('7f3a9c2e41b8'), 'no part of the key beyond the mask');
  const chat = await call(stack.url, 'POST', '/v1/chat/completions', { token: alice.token, body: CHAT });
  assert.equal(chat.status, 200, 'the stored key is the one the provider accepts');
  await page.getByRole('heading', { name: 'Replace the key' }).waitFor();
  await expectAccessible(assert, page, 'provider key page, key set');
  await screenshot(page, 'provider-key');

  // After a reload the page shows the stored key (masked) for the provider in the address.
  await page.goto('/console#/provider-key/mock');
  await page.getByTestId('masked-key').waitFor();
  assert.equal(await page.getByTestId('masked-key').textContent(), masked);
  assert.ok(!(await page.content()).includes(GOOD_KEY));

  // Another user does not see it.
  assert.equal((await call(stack.url, 'GET', keyRoute(alice), { token: bob.token })).status, 404);

  // Delete, after a confirmation.
  await page.getByRole('button', { name: 'Delete key' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete the provider key?' });
  await dialog.waitFor();
  await expectAccessible(assert, page, 'provider key delete dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await call(stack.url, 'GET', keyRoute(alice), { token: alice.token })).status, 200, 'cancel keeps it');
  await page.getByRole('button', { name: 'Delete key' }).click();
  await dialog.getByRole('button', { name: 'Delete key' }).click();
  await page.getByTestId('no-provider-key').waitFor();
  await page.getByRole('status').filter({ hasText: 'The key is deleted.' }).waitFor();
  assert.equal((await call(stack.url, 'GET', keyRoute(alice), { token: alice.token })).status, 404);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a key saved without verification is stored as typed', async () => {
  const page = await openPage(browser, stack.url, { viewport: PHONE });
  await signIn(page, bob.username);
  await page.goto('/console#/provider-key/mock');
  await page.getByTestId('no-provider-key').waitFor();
  await page.getByLabel('Verify with the provider before saving').uncheck();
  // The provider would refuse it, but nobody asks the provider.
  await page.getByLabel('API key for “mock”').fill(WRONG_KEY);
  await page.getByRole('button', { name: 'Save key' }).click();
  await page.getByRole('status').filter({ hasText: 'not verified' }).waitFor();
  await page.getByTestId('masked-key').waitFor();
  assert.ok(!(await page.content()).includes(WRONG_KEY));
  assert.equal((await call(stack.url, 'GET', keyRoute(bob), { token: bob.token })).status, 200);
  await expectAccessible(assert, page, 'provider key page at phone width');
  expectNoProblems(assert, page);
  await page.context().close();
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
