// The Chat page in Chromium: answers streamed token by token, stop, regenerate, the model picker
// (listed models and a typed one), conversations (search, rename, end, delete), an answer followed
// again after a reload (its replay drawn at once), safe markdown, other users' conversations,
// error states, accessibility (phone width and dialogs too) and screenshots.
// parley-mock answers "mock reply: <the words of the last user message>", one SSE event per word,
// with --chunk-delay-ms between events so that streaming can be watched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, launchBrowser, openPage, expectNoProblems, expectAccessible, screenshot, makeUser, signIn, call, PHONE,
} from './harness.mjs';

const CHUNK_MS = 40;
const DEFAULTS = '[defaults]\nmodel = "gpt-4o-mini"\n'; // conversation messages go to the mock unless a model is picked

let stack;
let browser;
let admin;
let alice;
let bob;

before(async () => {
  stack = await startStack({ mockArgs: ['--chunk-delay-ms', String(CHUNK_MS)], extraConfig: DEFAULTS });
  browser = await launchBrowser();
  admin = await makeUser(stack.url, 'root');
  alice = await makeUser(stack.url, 'alice', { adminToken: admin.token });
  bob = await makeUser(stack.url, 'bob', { adminToken: admin.token });
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i + 1}`).join(' ');
const reply = (text) => `mock reply: ${text.split(/\s+/).filter(Boolean).join(' ')}`;
const conversations = (user) => `/api/v1/users/${user.id}/conversations`;
const messages = (cid) => `/api/v1/conversations/${cid}/messages`;

// Signs in and opens the chat page (optionally one conversation).
async function openChat(user, { viewport, conversation } = {}) {
  const page = await openPage(browser, stack.url, viewport ? { viewport } : {});
  await signIn(page, user.username);
  await page.evaluate((h) => { location.hash = h; }, conversation ? `#/chat/${conversation}` : '#/chat');
  await page.getByLabel('Message', { exact: true }).waitFor();
  return page;
}

const log = (page) => page.getByRole('log', { name: 'Messages' });
const answers = (page) => log(page).locator('article[data-role="assistant"]');
const conversationId = (page) => decodeURIComponent(new URL(page.url()).hash.split('/')[2] || '');

// The message id of the newest answer shown (null when there is none).
const lastAnswerId = (page) =>
  page.evaluate(() => [...document.querySelectorAll('.chat-log article[data-role="assistant"]')].pop()?.dataset.messageId ?? null);

// Types a message and sends it with Enter; returns the newest answer's id before (for watchAnswer).
async function send(page, text) {
  const before = await lastAnswerId(page);
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  return before;
}

// Watches the newest answer (one whose id is not `before`) until it is no longer generating: the
// distinct text lengths seen while it grew (and the texts, in order), whether the log was marked
// busy meanwhile, its final status and text. Polls the DOM on every animation frame (no timing
// involved).
async function watchAnswer(page, before = null) {
  const lengths = new Set();
  const texts = [];
  let busySeen = false;
  let prev = null;
  for (;;) {
    const handle = await page.waitForFunction(
      ([prevKey, beforeId]) => {
        const all = document.querySelectorAll('.chat-log article[data-role="assistant"]');
        const a = all[all.length - 1];
        if (!a || a.dataset.messageId === beforeId) return false;
        const text = a.querySelector('.chat-body').textContent;
        const key = `${a.dataset.status}:${text.length}`;
        if (key === prevKey) return false;
        return { key, status: a.dataset.status, text, busy: document.querySelector('.chat-log').getAttribute('aria-busy') };
      },
      [prev, before],
      { polling: 'raf', timeout: 20000 },
    );
    const seen = await handle.jsonValue();
    await handle.dispose();
    if (seen.status !== 'generating') {
      return { lengths, texts, busySeen, status: seen.status, text: seen.text };
    }
    if (seen.busy === 'true') busySeen = true;
    if (seen.text.length > 0) lengths.add(seen.text.length);
    if (seen.text.length > 0) texts.push(seen.text);
    prev = seen.key;
  }
}

// Runs in the page (addInitScript): the bodies of answer streams (…/messages/{id}/stream) reach the
// page one SSE event per animation frame, as over a slow network.
function slowStreams() {
  const fetchFirst = window.fetch;
  window.fetch = async (...args) => {
    const res = await fetchFirst(...args);
    const url = String(args[0]?.url ?? args[0]);
    if (!/\/messages\/[^/]+\/stream/.test(url) || !res.body) return res;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let buffered = '';
    const body = new ReadableStream({
      async pull(controller) {
        for (;;) {
          const end = buffered.indexOf('\n\n');
          if (end >= 0) {
            const event = buffered.slice(0, end + 2);
            buffered = buffered.slice(end + 2);
            await new Promise((resolve) => requestAnimationFrame(resolve));
            controller.enqueue(encoder.encode(event));
            return;
          }
          const { done, value } = await reader.read();
          if (done) {
            if (buffered) controller.enqueue(encoder.encode(buffered));
            controller.close();
            return;
          }
          buffered += decoder.decode(value, { stream: true });
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

async function waitForAnswerLength(page, atLeast) {
  await page.waitForFunction(
    (n) => {
      const all = document.querySelectorAll('.chat-log article[data-role="assistant"]');
      const a = all[all.length - 1];
      return a && a.dataset.status === 'generating' && a.querySelector('.chat-body').textContent.length >= n;
    },
    atLeast,
    { polling: 'raf', timeout: 20000 },
  );
}

async function storedMessages(user, cid) {
  const r = await call(stack.url, 'GET', `${messages(cid)}?limit=200`, { token: user.token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.items;
}

// Makes a conversation through the API with the given user messages (answered by the mock).
async function makeConversation(user, title, texts = []) {
  const c = await call(stack.url, 'POST', conversations(user), { token: user.token, body: { title } });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  for (const content of texts) {
    const r = await call(stack.url, 'POST', messages(c.body.id), { token: user.token, body: { content } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  return c.body.id;
}

test('an answer streams token by token; Enter sends, Shift+Enter is a new line', async () => {
  const page = await openChat(alice);
  const box = page.getByLabel('Message', { exact: true });
  await box.fill('first line');
  await box.press('Shift+Enter');
  await box.pressSequentially('second line');
  assert.equal(await box.inputValue(), 'first line\nsecond line');
  assert.equal(await answers(page).count(), 0, 'Shift+Enter sent nothing');
  const text = `${await box.inputValue()} ${words(16)}`;
  await box.fill(text);
  await box.press('Enter');

  const watched = await watchAnswer(page);
  assert.ok(watched.lengths.size >= 3, `the answer grew in steps: ${[...watched.lengths]}`);
  assert.ok(watched.busySeen, 'the log is aria-busy while the answer streams');
  assert.equal(watched.status, 'complete');
  assert.equal(watched.text, reply(text));
  assert.equal(await log(page).getAttribute('aria-busy'), 'false');
  assert.equal(await log(page).getAttribute('aria-live'), 'polite');
  assert.equal(await box.inputValue(), '', 'the input is cleared');

  // The conversation was created by the first message, is in the address, the list and the store.
  const cid = conversationId(page);
  assert.ok(cid, page.url());
  const stored = await storedMessages(alice, cid);
  assert.deepEqual(stored.map((m) => [m.role, m.content, m.status]), [
    ['user', text, 'complete'],
    ['assistant', reply(text), 'complete'],
  ]);
  assert.equal(stored[1].ai_model, 'gpt-4o-mini');
  await page.getByRole('complementary', { name: 'Conversations' }).getByRole('link', { name: /first line second line/ }).waitFor();
  expectNoProblems(assert, page);
  await page.context().close();
});

test('stop generating keeps the partial text (stored cancelled); regenerate makes a sibling answer', async () => {
  const page = await openChat(alice);
  const text = words(40, 'stop');
  await send(page, text);
  await waitForAnswerLength(page, 'mock reply: stop1 stop2 stop3'.length);
  await page.getByRole('button', { name: 'Stop generating' }).click();
  await answers(page).last().and(page.locator('[data-status="cancelled"]')).waitFor();
  const shown = await answers(page).last().locator('.chat-body').textContent();
  assert.ok(shown.startsWith('mock reply: stop1 stop2 stop3'), shown);
  assert.ok(shown.length < reply(text).length, 'the answer was cut short');
  await answers(page).last().getByText('Stopped').waitFor();
  const cid = conversationId(page);
  let stored = await storedMessages(alice, cid);
  assert.equal(stored[1].status, 'cancelled');
  assert.equal(stored[1].content, shown, 'the stored text is the text shown');
  await page.getByRole('button', { name: 'Send' }).waitFor();

  // Regenerate: a new answer to the same question, streamed; the old one stays as a sibling.
  const cancelledId = await lastAnswerId(page);
  await page.getByRole('button', { name: 'Regenerate' }).click();
  const again = await watchAnswer(page, cancelledId);
  assert.equal(again.status, 'complete');
  assert.equal(again.text, reply(text));
  assert.equal(await answers(page).count(), 1, 'the new answer takes the old one\'s place');
  stored = await storedMessages(alice, cid);
  assert.deepEqual(stored.map((m) => [m.role, m.status]), [['user', 'complete'], ['assistant', 'complete']]);
  const siblings = await call(stack.url, 'GET', `${messages(cid)}/${stored[1].id}/siblings`, { token: alice.token });
  assert.deepEqual(siblings.body.items.map((m) => [m.status, m.active]), [['cancelled', false], ['complete', true]]);
  // Both answers can be looked at.
  await page.getByText('Answer 2 of 2').waitFor();
  await page.getByRole('button', { name: 'Previous answer' }).click();
  await page.getByText('Answer 1 of 2').waitFor();
  assert.equal(await answers(page).last().locator('.chat-body').textContent(), shown);
  await page.getByRole('button', { name: 'Next answer' }).click();
  assert.equal(await answers(page).last().locator('.chat-body').textContent(), reply(text));
  expectNoProblems(assert, page);
  await page.context().close();
});

test('the model picker lists the models of /v1/models and the chosen model answers', async () => {
  const listed = await call(stack.url, 'GET', '/v1/models', { token: alice.token });
  assert.equal(listed.status, 200);
  const ids = listed.body.data.map((m) => m.id).sort();
  assert.ok(ids.includes('demo'), JSON.stringify(ids));
  const page = await openChat(alice);
  const picker = page.getByLabel('Model', { exact: true });
  const options = await picker.locator('option').evaluateAll((os) => os.map((o) => o.textContent));
  assert.deepEqual(options, ['Default model', ...ids, 'Another model…']);
  await picker.selectOption('demo');
  await send(page, 'hello model picker');
  const done = await watchAnswer(page);
  assert.equal(done.status, 'complete');
  assert.equal(done.text, 'This is the parley demo model. You said: hello model picker');
  const cid = conversationId(page);
  const stored = await storedMessages(alice, cid);
  assert.equal(stored[1].ai_model, 'demo');
  const conv = await call(stack.url, 'GET', `${conversations(alice)}/${cid}`, { token: alice.token });
  assert.equal(conv.body.model, 'demo', 'the conversation keeps the model picked');
  // Back to the default model: the conversation forgets it, the next answer comes from the mock.
  await picker.selectOption('');
  await page.waitForFunction(() => !document.querySelector('#chat-model').disabled);
  const demoId = await send(page, 'and now the default');
  assert.equal((await watchAnswer(page, demoId)).text, reply('and now the default'));
  const after = await storedMessages(alice, cid);
  assert.equal(after[3].ai_model, 'gpt-4o-mini');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('"Another model…": a name typed (served by a pattern) answers and is kept; an unknown one is refused', async () => {
  const erin = await makeUser(stack.url, 'erin', { adminToken: admin.token });
  const page = await openChat(erin);
  const picker = page.getByLabel('Model', { exact: true });
  const name = page.getByLabel('Model name');
  const box = page.getByLabel('Message', { exact: true });
  assert.equal(await name.count(), 0, 'no box for a name until "Another model…" is picked');
  await picker.selectOption({ label: 'Another model…' });
  await name.waitFor();
  assert.equal(await name.evaluate((el) => el === document.activeElement), true, 'the box has the focus');
  // The hint names the patterns the server routes (GET /api/v1/providers), which /v1/models leaves out.
  const hint = page.locator('#chat-model-hint');
  assert.match(await hint.textContent(), /^Also served: .*gpt-\*.*mock-\*/);
  assert.equal(await name.getAttribute('aria-describedby'), 'chat-model-hint');

  // An unknown model: refused before anything is stored; the message and the name stay.
  await name.fill('nosuch-model');
  await send(page, 'hello custom model');
  const alert = page.getByRole('alert').filter({ hasText: 'Unknown model "nosuch-model"' });
  await alert.waitFor();
  assert.ok(['VALIDATION_ERROR', 'MODEL_NOT_FOUND'].includes(await alert.getAttribute('data-code')));
  assert.equal(await box.inputValue(), 'hello custom model');
  assert.equal(await name.inputValue(), 'nosuch-model');
  assert.equal(await name.getAttribute('aria-invalid'), 'true');
  assert.equal(await name.evaluate((el) => el === document.activeElement), true, 'back in the box to fix it');
  let list = await call(stack.url, 'GET', conversations(erin), { token: erin.token });
  assert.equal(list.body.total, 0, 'no conversation was made');

  // A name a pattern serves ("mock-*"): the answer comes from it, and the conversation keeps it.
  await name.fill('mock-custom');
  const none = await send(page, 'hello custom model');
  const done = await watchAnswer(page, none);
  assert.equal(done.status, 'complete');
  assert.equal(done.text, reply('hello custom model'));
  await answers(page).last().getByText('mock-custom', { exact: true }).waitFor();
  assert.equal(await name.getAttribute('aria-invalid'), null);
  const cid = conversationId(page);
  let stored = await storedMessages(erin, cid);
  assert.deepEqual(stored.map((m) => [m.role, m.ai_model ?? null]), [
    ['user', null],
    ['assistant', 'mock-custom'],
  ]);
  let conv = await call(stack.url, 'GET', `${conversations(erin)}/${cid}`, { token: erin.token });
  assert.equal(conv.body.model, 'mock-custom');

  // In the conversation: a typo is refused (nothing stored, the conversation keeps its model).
  await name.fill('nosuch-model');
  const before = await send(page, 'second question');
  await alert.waitFor();
  assert.equal(await box.inputValue(), 'second question');
  assert.equal(await name.inputValue(), 'nosuch-model');
  assert.equal(await lastAnswerId(page), before);
  assert.equal((await storedMessages(erin, cid)).length, 2, 'nothing was stored');
  conv = await call(stack.url, 'GET', `${conversations(erin)}/${cid}`, { token: erin.token });
  assert.equal(conv.body.model, 'mock-custom');
  await name.fill('gpt-4o-custom');
  const kept = page.waitForResponse(
    (r) => r.request().method() === 'PATCH' && r.url().endsWith(`/conversations/${cid}`),
  );
  await box.press('Enter');
  assert.equal((await watchAnswer(page, before)).text, reply('second question'));
  stored = await storedMessages(erin, cid);
  assert.equal(stored[3].ai_model, 'gpt-4o-custom');
  assert.equal((await kept).status(), 200);
  conv = await call(stack.url, 'GET', `${conversations(erin)}/${cid}`, { token: erin.token });
  assert.equal(conv.body.model, 'gpt-4o-custom', 'the conversation keeps the model typed');

  // Opened again, the conversation shows its model in the box of "Another model…".
  await page.reload();
  await name.waitFor();
  assert.equal(await name.inputValue(), 'gpt-4o-custom');
  assert.equal(await picker.evaluate((el) => el.selectedOptions[0].textContent), 'Another model…');
  list = await call(stack.url, 'GET', conversations(erin), { token: erin.token });
  assert.equal(list.body.total, 1);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('conversations: search, open, rename, end (sending refused), delete with a confirmation', async () => {
  const apple = await makeConversation(alice, 'Apple pie', ['how to bake an apple pie']);
  const banana = await makeConversation(alice, 'Bread', ['banana bread with walnuts']);
  const page = await openChat(alice);
  const list = page.getByRole('complementary', { name: 'Conversations' });
  await list.getByRole('link', { name: /Apple pie/ }).waitFor();
  // Search by message text (full text, prefix of the last word).
  await list.getByLabel('Search conversations').fill('walnu');
  await list.getByText('1 found').waitFor();
  assert.deepEqual(await list.locator('.chat-conv-title').allTextContents(), ['Bread']);
  await list.getByRole('link', { name: /Bread/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Bread' }).waitFor();
  assert.equal(conversationId(page), banana);
  await log(page).getByText(reply('banana bread with walnuts')).waitFor();
  assert.equal(await list.getByRole('link', { name: /Bread/ }).getAttribute('aria-current'), 'page');

  // Rename.
  await page.getByRole('button', { name: 'Rename' }).click();
  const dialog = page.getByRole('dialog', { name: 'Rename the conversation' });
  await dialog.getByLabel('Title').fill('Banana bread');
  await expectAccessible(assert, page, 'rename dialog');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { level: 1, name: 'Banana bread' }).waitFor();
  let c = await call(stack.url, 'GET', `${conversations(alice)}/${banana}`, { token: alice.token });
  assert.equal(c.body.title, 'Banana bread');
  await list.getByLabel('Search conversations').fill('');
  await list.getByRole('link', { name: /Banana bread/ }).waitFor();

  // End: the input is disabled with a message; reopen works.
  await page.getByRole('button', { name: 'End conversation' }).click();
  await page.getByText('This conversation has ended').waitFor();
  assert.equal(await page.getByLabel('Message', { exact: true }).isDisabled(), true);
  c = await call(stack.url, 'GET', `${conversations(alice)}/${banana}`, { token: alice.token });
  assert.equal(c.body.status, 'ended');
  await page.getByRole('button', { name: 'Reopen' }).click();
  await page.getByRole('button', { name: 'End conversation' }).waitFor();
  assert.equal(await page.getByLabel('Message', { exact: true }).isDisabled(), false);

  // Ended elsewhere: the send is refused (409) and the page says so.
  const ended = await call(stack.url, 'POST', `${conversations(alice)}/${banana}/end`, { token: alice.token });
  assert.equal(ended.status, 200);
  await send(page, 'one more question');
  await page.getByRole('alert').filter({ hasText: 'has ended' }).waitFor();
  await page.getByText('This conversation has ended').waitFor();
  assert.equal(await page.getByLabel('Message', { exact: true }).isDisabled(), true);
  assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), 'one more question', 'the text is kept');
  assert.equal((await storedMessages(alice, banana)).length, 2, 'nothing was stored');

  // Delete, after a confirmation.
  await page.getByRole('button', { name: 'Delete' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete this conversation?' });
  await confirm.waitFor();
  await expectAccessible(assert, page, 'delete confirmation');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await call(stack.url, 'GET', `${conversations(alice)}/${banana}`, { token: alice.token })).status, 200);
  await page.getByRole('button', { name: 'Delete' }).click();
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await page.waitForURL(/#\/chat$/);
  await list.getByRole('link', { name: /Apple pie/ }).waitFor();
  await list.getByRole('link', { name: /Banana bread/ }).waitFor({ state: 'detached' });
  assert.equal((await call(stack.url, 'GET', `${conversations(alice)}/${banana}`, { token: alice.token })).status, 404);
  assert.equal((await call(stack.url, 'GET', `${conversations(alice)}/${apple}`, { token: alice.token })).status, 200);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a reload in the middle of an answer follows it on: the whole text, exactly once', async () => {
  const page = await openChat(alice);
  const text = words(60, 'again');
  await send(page, text);
  // Far enough for part of the answer to be stored (it is saved about once a second).
  await waitForAnswerLength(page, reply(words(30, 'again')).length);
  const shownBefore = (await answers(page).last().locator('.chat-body').textContent()).length;
  const cid = conversationId(page);
  const streams = [];
  page.on('request', (r) => {
    if (/\/messages\/[^/]+\/stream/.test(r.url())) streams.push(r.url());
  });
  // After the reload, the answer's events come as over a slow network: one event a frame, so that
  // a replay shown as it arrives would be typed out again.
  await page.addInitScript(slowStreams);
  await page.reload();
  await log(page).waitFor();
  const done = await watchAnswer(page);
  assert.equal(done.status, 'complete');
  assert.equal(done.text, reply(text));
  // Never anything twice: every text shown on the way is the answer's beginning.
  for (const t of done.texts) assert.ok(reply(text).startsWith(t), `shown: ${t}`);
  // The events before the reload are not typed out again: they come in one draw. Shorter than
  // what was shown before the reload there can only be the stored text (shown while they load).
  const shorter = [...done.lengths].filter((n) => n < shownBefore);
  assert.ok(shorter.length <= 1, `the replay was drawn in steps: ${shorter} (shown before: ${shownBefore})`);
  const whole = await log(page).textContent();
  assert.equal(whole.split(reply(text)).length - 1, 1, 'the answer is shown exactly once');
  assert.equal(await answers(page).count(), 1);
  assert.equal(streams.length, 1, `the page followed the answer's stream: ${streams}`);
  const stored = await storedMessages(alice, cid);
  assert.equal(stored[1].content, reply(text));
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a stream that breaks off is followed again from the last event shown', async () => {
  const page = await openChat(alice);
  // The answer's response is cut after its first 3 events (no terminal event): the page must
  // follow the rest with ?after=3.
  const resumed = [];
  page.on('request', (r) => {
    if (/\/stream\?after=/.test(r.url())) resumed.push(new URL(r.url()).search);
  });
  await page.route(/\/api\/v1\/conversations\/[^/]+\/messages$/, async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const res = await route.fetch();
    const events = (await res.text()).split('\n\n').filter((e) => e.trim());
    const headers = { ...res.headers() };
    delete headers['transfer-encoding'];
    delete headers['content-length'];
    return route.fulfill({ status: res.status(), headers, body: `${events.slice(0, 3).join('\n\n')}\n\n` });
  });
  const text = words(10, 'cut');
  await send(page, text);
  const done = await watchAnswer(page);
  assert.equal(done.status, 'complete');
  assert.equal(done.text, reply(text));
  assert.deepEqual(resumed, ['?after=3']);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('markdown is rendered safely: no HTML from the text, code in <pre><code>, safe links', async () => {
  const page = await openChat(alice);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.url });
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  const text = [
    'Look: <img src=x onerror=alert(1)> and <script>alert(2)</script> **bold words**',
    '',
    '<div style="color:red" onclick="alert(4)">styled</div>',
    '',
    '[a link](https://example.com/x) and [bad](javascript:alert(3)) ![pic](https://example.com/p.png)',
    '```js',
    'const x = 1 < 2;',
    '```',
  ].join('\n');
  await send(page, text);
  const done = await watchAnswer(page);
  assert.equal(done.status, 'complete');
  assert.ok(done.text.includes('<img src=x onerror=alert(1)>'), 'the answer shows the HTML as text');
  const found = await log(page).evaluate((el) => ({
    strong: el.querySelectorAll('strong').length,
    preCode: el.querySelectorAll('pre > code').length,
    img: el.querySelectorAll('img').length,
    script: el.querySelectorAll('script').length,
    div: el.querySelectorAll('.chat-body div:not(.chat-code)').length,
    styled: el.querySelectorAll('[style]').length,
    handlers: [...el.querySelectorAll('*')].filter((n) => [...n.attributes].some((a) => a.name.startsWith('on'))).length,
    links: [...el.querySelectorAll('a')].map((a) => [a.textContent, a.getAttribute('href'), a.getAttribute('rel')]),
    code: el.querySelector('pre > code')?.textContent,
  }));
  assert.ok(found.strong >= 2, 'bold in the question and the answer');
  assert.equal(found.preCode, 1, 'the fenced block of the question');
  assert.equal(found.code, 'const x = 1 < 2;\n');
  assert.equal(found.img, 0);
  assert.equal(found.script, 0);
  assert.equal(found.div, 0);
  assert.equal(found.styled, 0);
  assert.equal(found.handlers, 0);
  for (const [, href, rel] of found.links) {
    if (href) {
      assert.match(href, /^https:\/\/example\.com\//);
      assert.equal(rel, 'noopener noreferrer');
    }
  }
  assert.ok(found.links.some(([t, href]) => t === 'a link' && href === 'https://example.com/x'));
  assert.ok(found.links.some(([t, href]) => t === 'bad' && href === null), 'a javascript: link is plain text');
  await log(page).getByText('<script>alert(2)</script>').first().waitFor();
  // The copy button of the code block copies its text.
  await log(page).getByRole('button', { name: 'Copy code' }).click();
  await log(page).getByRole('button', { name: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'const x = 1 < 2;\n');
  assert.deepEqual(dialogs, [], 'no script ran');
  expectNoProblems(assert, page);
  await page.context().close();
});

test('another user cannot open a conversation by its address', async () => {
  const secret = await makeConversation(alice, 'Secret plans', ['the secret word is swordfish']);
  const page = await openPage(browser, stack.url);
  await signIn(page, bob.username);
  await page.evaluate((h) => { location.hash = h; }, `#/chat/${secret}`);
  await page.getByRole('heading', { level: 1, name: 'Conversation not found' }).waitFor();
  await page.getByRole('alert').filter({ hasText: 'does not exist, or it is not yours' }).waitFor();
  const body = await page.locator('body').textContent();
  assert.doesNotMatch(body, /swordfish|Secret plans/);
  assert.equal(await log(page).count(), 0);
  expectNoProblems(assert, page);
  await page.context().close();
});

test('errors: a provider failure mid-answer keeps the partial text; a rate limit is explained', async () => {
  const carol = await makeUser(stack.url, 'carol', { adminToken: admin.token });
  const page = await openChat(carol);
  // The provider's stream breaks off after a few events.
  await stack.mock.faults([{ drop_after_chunks: 4 }]);
  const text = words(12, 'fail');
  await send(page, text);
  const failed = await watchAnswer(page);
  assert.equal(failed.status, 'failed');
  assert.ok(failed.text.startsWith('mock reply:') && failed.text.length < reply(text).length, failed.text);
  await answers(page).last().getByText('Failed', { exact: true }).waitFor();
  await answers(page).last().getByText(/broke off.*OPENAI_CONNECTION_ERROR.*kept above/).waitFor();
  const cid = conversationId(page);
  const stored = await storedMessages(carol, cid);
  assert.equal(stored[1].status, 'failed');
  assert.equal(stored[1].content, failed.text);
  await stack.mock.reset();

  // One request per minute: the next message is refused with a clear message.
  const limits = await call(stack.url, 'PUT', `/api/v1/users/${carol.id}/limits`, {
    token: admin.token, body: { rate_limit_per_minute: 1 },
  });
  assert.equal(limits.status, 200, JSON.stringify(limits.body));
  const failedId = await send(page, 'first within the limit');
  assert.equal((await watchAnswer(page, failedId)).status, 'complete');
  await send(page, 'second over the limit');
  const alert = page.getByRole('alert').filter({ hasText: 'Too many requests' });
  await alert.waitFor();
  assert.equal(await alert.getAttribute('data-code'), 'RATE_LIMIT_EXCEEDED');
  assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), 'second over the limit');
  await call(stack.url, 'PUT', `/api/v1/users/${carol.id}/limits`, { token: admin.token, body: { rate_limit_per_minute: null } });
  expectNoProblems(assert, page);
  await page.context().close();
});

test('a user without a provider key on a byok provider is told so (API_KEY_NOT_CONFIGURED)', async () => {
  const byok = await startStack({ credentials: 'byok', extraConfig: DEFAULTS });
  try {
    const root = await makeUser(byok.url, 'root');
    const dave = await makeUser(byok.url, 'dave', { adminToken: root.token });
    const page = await openPage(browser, byok.url);
    await signIn(page, dave.username);
    await page.evaluate(() => { location.hash = '#/chat'; });
    await send(page, 'hello without a key');
    const alert = page.getByRole('alert').filter({ hasText: 'No provider key is set for your account' });
    await alert.waitFor();
    assert.equal(await alert.getAttribute('data-code'), 'API_KEY_NOT_CONFIGURED');
    await page.getByRole('link', { name: 'Set your provider key' }).waitFor();
    assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), 'hello without a key', 'the text is kept');
    const list = await call(byok.url, 'GET', conversations(dave), { token: dave.token });
    for (const c of list.body.items) {
      const r = await call(byok.url, 'GET', `${messages(c.id)}`, { token: dave.token });
      assert.equal(r.body.items.length, 0, 'nothing was stored');
    }
    await expectAccessible(assert, page, 'chat with an error');
    expectNoProblems(assert, page);
    await page.context().close();
  } finally {
    await byok.stop();
  }
});

test('accessible and screenshot at desktop and phone width', async () => {
  const cid = await makeConversation(alice, 'Sorting in JavaScript', [
    'How do I sort numbers in **JavaScript**?\n```js\nconst sorted = [10, 2, 33].sort((a, b) => a - b);\nconsole.log(sorted);\n```',
    'And in *reverse* order?',
  ]);
  const page = await openChat(alice, { conversation: cid });
  await log(page).getByText(reply('And in *reverse* order?').replace(/\*/g, '')).waitFor();
  await log(page).locator('pre code').waitFor();
  await page.getByLabel('Message', { exact: true }).fill('Thanks! Can you explain `sort` with strings?');
  await expectAccessible(assert, page, 'chat (desktop)');
  await screenshot(page, 'chat');
  expectNoProblems(assert, page);
  await page.context().close();

  const phone = await openChat(alice, { viewport: PHONE, conversation: cid });
  await log(phone).locator('pre code').waitFor();
  const list = phone.getByRole('complementary', { name: 'Conversations' });
  assert.equal(await list.isVisible(), false, 'the list is folded at phone width');
  await expectAccessible(assert, phone, 'chat (phone)');
  await screenshot(phone, 'chat-phone');
  // The box of "Another model…" with its hint, and a dialog, at phone width.
  await phone.getByLabel('Model', { exact: true }).selectOption({ label: 'Another model…' });
  await phone.getByLabel('Model name').fill('mock-custom');
  await expectAccessible(assert, phone, 'chat (phone, another model)');
  await screenshot(phone, 'chat-phone-model');
  const noOverflow = await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(noOverflow, 'nothing is wider than the phone screen');
  await phone.getByRole('button', { name: 'Rename' }).click();
  const dialog = phone.getByRole('dialog', { name: 'Rename the conversation' });
  await dialog.getByLabel('Title').waitFor();
  await expectAccessible(assert, phone, 'chat (phone, rename dialog)');
  await screenshot(phone, 'chat-phone-rename');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await phone.getByRole('button', { name: 'Delete' }).click();
  const confirm = phone.getByRole('dialog', { name: 'Delete this conversation?' });
  await confirm.waitFor();
  await expectAccessible(assert, phone, 'chat (phone, delete confirmation)');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  await phone.getByRole('button', { name: 'Conversations' }).click();
  await list.getByRole('link', { name: /Sorting in JavaScript/ }).waitFor();
  await expectAccessible(assert, phone, 'chat (phone, list open)');
  await list.getByRole('link', { name: /Apple pie/ }).click();
  await phone.getByRole('heading', { level: 1, name: 'Apple pie' }).waitFor();
  assert.equal(await list.isVisible(), false, 'picking a conversation folds the list');
  expectNoProblems(assert, phone);
  await phone.context().close();
});
