// Journey: seed 002, "AI Chat Backend" (../shared/seeds/002_*.txt), through the web console in
// Chromium — the seed's React frontend, where a user stores their own OpenAI key in "profile
// settings" and chats with the AI, the history kept. Once per credential mode of the provider
// ("system", "byok", "byok_or_system"), each with its own parley + parley-mock (which accepts only
// alice's key and the system key: --require-key):
//
//   an admin creates alice (API) → alice signs in in the browser
//   → byok: her first message is refused with API_KEY_NOT_CONFIGURED (the seed's "400 - No API
//     Key", lines 182-188), she follows the link to "My provider key", sets her key with the
//     provider's verification (lines 21-27) and chats;
//     system: no key is asked for (the page says no provider takes one); both answers use the
//     server's key;
//     byok_or_system: the first answer comes with the server's key, then she sets her own and the
//     second comes with hers (which Authorization the mock received tells)
//   → two messages in one conversation, both answers shown (the mock's "mock reply: …")
//   → a reload shows the history (lines 47-50); the API shows the conversation and its four
//     messages (lines 67-80); bob sees none of it, in the API or the browser (lines 94-96).
//
// The console is the one linked into PARLEY_BIN, or the build in PARLEY_CONSOLE_DIR when set.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, makeUser, signIn, call,
} from '../browser/harness.mjs';
import { BACKEND, expectNoSecretsInLogs, providerKey } from './lib.mjs';

const MODEL = 'gpt-3.5-turbo'; // the seed's model: parley's default here, served by the provider "mock"
const DEFAULTS = `[defaults]\nmodel = "${MODEL}"\n`;
const FIRST = 'Hello AI'; // the seed's example message (line 165)
const SECOND = 'How are you today?';
const reply = (text) => `mock reply: ${text}`;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

for (const mode of ['system', 'byok', 'byok_or_system']) {
  describe(`seed 002 in the console, credentials = "${mode}" (${BACKEND})`, () => {
    let s;
    let alice;
    let bob;
    let cid; // alice's conversation
    const aliceKey = providerKey('alice');

    before(async () => {
      s = await startStack({ credentials: mode, mockKeys: [aliceKey], extraConfig: DEFAULTS });
      const ops = await makeUser(s.url, 'ops'); // the deployment's first account: admin
      alice = await makeUser(s.url, 'alice', { adminToken: ops.token });
      bob = await makeUser(s.url, 'bob', { adminToken: ops.token });
    });
    after(async () => {
      await s?.stop();
    });

    // The Authorization headers parley-mock received since its last reset.
    const seenKeys = async () => (await s.mock.requests()).map((r) => r.authorization);
    const log = (page) => page.getByRole('log', { name: 'Messages' });
    const answered = (page, text) =>
      log(page).locator('article[data-role="assistant"][data-status="complete"]')
        .filter({ hasText: reply(text) });
    const nav = (page) => page.getByRole('navigation', { name: 'Main' });

    // Types a message, sends it with the Send button and waits for its complete answer.
    async function chat(page, text) {
      await page.getByLabel('Message', { exact: true }).fill(text);
      await page.getByRole('button', { name: 'Send' }).click();
      await answered(page, text).waitFor();
    }

    // From the chat, "My provider key": sets alice's key for "mock" with the provider's check on.
    async function setKeyInConsole(page, { link }) {
      await link.click();
      await page.getByRole('heading', { name: 'My provider key', level: 1 }).waitFor();
      const row = page.getByRole('row')
        .filter({ has: page.getByRole('rowheader', { name: 'mock', exact: true }) });
      await row.getByTestId('no-key').waitFor();
      assert.match(
        await row.textContent(),
        mode === 'byok'
          ? /Required: its models answer only with your key/
          : /Optional: the server's key is used when you set none/,
      );
      await row.getByRole('button', { name: 'Set key for mock' }).click();
      const dialog = page.getByRole('dialog', { name: 'Set your key for “mock”' });
      assert.equal(await dialog.getByLabel('Verify with the provider before saving').isChecked(), true);
      await dialog.getByLabel('API key for “mock”').fill(aliceKey);
      await dialog.getByRole('button', { name: 'Save key' }).click();
      await page.getByRole('status').filter({ hasText: 'The provider accepted the key for “mock”' })
        .waitFor();
      const masked = `${aliceKey.slice(0, 3)}…${aliceKey.slice(-4)}`;
      assert.equal(await row.getByTestId('masked-key').textContent(), masked);
      assert.ok(!(await page.content()).includes(aliceKey), 'the key is not in the page');
      // Back to the conversation, picked from the list of the chat page.
      await nav(page).getByRole('link', { name: 'Chat' }).click();
      const list = page.getByRole('complementary', { name: 'Conversations' });
      await list.getByRole('link', { name: new RegExp(FIRST) }).click();
      await page.waitForURL((u) => u.hash === `#/chat/${cid}`);
      await page.getByLabel('Message', { exact: true }).waitFor();
    }

    test('alice, created by an admin, signs in and chats twice; a reload shows the history', async () => {
      const page = await openPage(browser, s.url);
      await signIn(page, alice.username);
      await page.getByLabel('Message', { exact: true }).waitFor(); // the chat is the first page
      await s.mock.reset();

      if (mode === 'system') {
        // Nothing to set: the key page says so.
        await nav(page).getByRole('link', { name: 'My provider key' }).click();
        await page.getByTestId('no-user-key-providers').waitFor();
        await nav(page).getByRole('link', { name: 'Chat' }).click();
      }

      // The first message: it creates the conversation (titled by the message).
      await page.getByLabel('Message', { exact: true }).fill(FIRST);
      await page.getByRole('button', { name: 'Send' }).click();
      await page.waitForURL(/#\/chat\/[A-Za-z0-9]{22}$/);
      cid = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);

      if (mode === 'byok') {
        // No key yet: the seed's "No API key configured" in the console's words, with the way out.
        const alert = page.getByRole('alert').filter({ hasText: 'No provider key is set for your account' });
        await alert.waitFor();
        assert.equal(await alert.getAttribute('data-code'), 'API_KEY_NOT_CONFIGURED');
        const box = page.getByLabel('Message', { exact: true });
        assert.equal(await box.inputValue(), FIRST, 'the text is given back');
        assert.equal(await log(page).locator('article').count(), 0, 'nothing stored');
        assert.deepEqual(await seenKeys(), [], 'nothing reached the provider');
        await setKeyInConsole(page, { link: page.getByRole('link', { name: 'Set your provider key' }) });
        await s.mock.reset(); // forget the verification call
        await chat(page, FIRST);
      } else {
        await answered(page, FIRST).waitFor();
      }
      if (mode === 'byok_or_system') {
        // The server's key answered; now alice brings her own.
        assert.deepEqual(await seenKeys(), [`Bearer ${s.systemKey}`]);
        await s.mock.reset();
        await setKeyInConsole(page, { link: nav(page).getByRole('link', { name: 'My provider key' }) });
        await s.mock.reset();
      }
      await chat(page, SECOND);

      const expected = {
        system: [s.systemKey, s.systemKey],
        byok: [aliceKey, aliceKey],
        byok_or_system: [aliceKey], // the first answer's (system) key was checked above
      }[mode].map((k) => `Bearer ${k}`);
      assert.deepEqual(await seenKeys(), expected, 'the key the provider received');

      // Both exchanges, in order; and again after a reload (the stored history).
      const shown = async () =>
        log(page).locator('article').evaluateAll((as) =>
          as.map((a) => [a.dataset.role, a.dataset.status, a.querySelector('.chat-body').textContent.trim()]));
      const want = [
        ['user', 'complete', FIRST], ['assistant', 'complete', reply(FIRST)],
        ['user', 'complete', SECOND], ['assistant', 'complete', reply(SECOND)],
      ];
      assert.deepEqual(await shown(), want);
      await page.reload();
      await log(page).locator('article').nth(3).waitFor();
      assert.deepEqual(await shown(), want, 'the history after a reload');
      assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), FIRST);
      assert.ok(!(await page.content()).includes(aliceKey));
      expectNoProblems(assert, page);
      await page.context().close();
    });

    test('the API shows the conversation and its four messages', async () => {
      const list = await call(s.url, 'GET', `/api/v1/users/${alice.id}/conversations`, { token: alice.token });
      assert.equal(list.status, 200, JSON.stringify(list.body));
      assert.deepEqual(list.body.items.map((c) => [c.id, c.title, c.message_count]), [[cid, FIRST, 4]]);
      const msgs = await call(s.url, 'GET', `/api/v1/conversations/${cid}/messages?limit=200`, {
        token: alice.token,
      });
      assert.equal(msgs.status, 200, JSON.stringify(msgs.body));
      assert.deepEqual(
        msgs.body.items.map((m) => [m.role, m.content, m.is_ai_message, m.sender_id, m.ai_model, m.status]),
        [
          ['user', FIRST, false, alice.id, null, 'complete'],
          ['assistant', reply(FIRST), true, null, MODEL, 'complete'],
          ['user', SECOND, false, alice.id, null, 'complete'],
          ['assistant', reply(SECOND), true, null, MODEL, 'complete'],
        ],
      );
      expectNoSecretsInLogs([aliceKey, s.systemKey]);
    });

    test('bob cannot see alice\'s conversation, in the API or in the console', async () => {
      const routes = [
        `/api/v1/users/${alice.id}/conversations/${cid}`, `/api/v1/conversations/${cid}/messages`,
      ];
      for (const route of routes) {
        const r = await call(s.url, 'GET', route, { token: bob.token });
        assert.equal(r.status, 404, route);
        assert.equal(r.body.error.code, 'NOT_FOUND');
      }
      const own = await call(s.url, 'GET', `/api/v1/users/${bob.id}/conversations`, { token: bob.token });
      assert.deepEqual(own.body.items, []);

      const page = await openPage(browser, s.url);
      await signIn(page, bob.username);
      await page.evaluate((h) => { location.hash = h; }, `#/chat/${cid}`);
      await page.getByRole('alert').filter({ hasText: 'This conversation does not exist, or it is not yours.' })
        .waitFor();
      const list = page.getByRole('complementary', { name: 'Conversations' });
      await list.getByRole('status').filter({ hasText: '0 conversations' }).waitFor();
      assert.equal(await list.getByRole('link').count(), 0);
      assert.ok(!(await page.content()).includes(reply(FIRST)));
      expectNoProblems(assert, page);
      await page.context().close();
    });
  });
}
