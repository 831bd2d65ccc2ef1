// OpenAI's Conversations API on parley (/v1/conversations, docs/GATEWAY.md "Conversations API",
// docs/CONVERSATIONS.md): a conversation of this API is a parley conversation, so what is written
// through one API is read through the other; items round-trip exactly (function calls included);
// owners only; OpenAI's bounds on items and metadata. The official SDK is in
// tests/e2e/conversations_sdk.test.mjs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, mockProviderConfig, providerKey, startMock, createServiceKey, BACKEND } from './harness.mjs';
import { api, expectStatus, signUp } from '../journeys/lib.mjs';

describe(`OpenAI Conversations API (${BACKEND})`, () => {
  let mock, p, url, owner, other, admin, key;
  const systemKey = providerKey('system');
  before(async () => {
    mock = await startMock();
    const config = mockProviderConfig(mock.url, { keyEnv: 'OAC_SYSTEM_KEY' });
    p = await startParley({
      args: ['--config', config],
      env: { OAC_SYSTEM_KEY: systemKey, PARLEY_AUTH_OPEN_REGISTRATION: 'true' },
    });
    url = p.url;
    admin = await signUp(url, 'admin');
    owner = await signUp(url, 'owner');
    other = await signUp(url, 'other');
    key = (await createServiceKey(url, owner.token, 'conversations')).key;
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  // As the owner's service key (the /v1 way), or with `token` (an access token).
  const v1 = (method, route, body, token = key) => api(url, method, `/v1${route}`, { token, body });

  test('create with items and metadata, get, update, delete', async () => {
    const c = expectStatus(await v1('POST', '/conversations', {
      metadata: { topic: 'demo' },
      items: [{ type: 'message', role: 'user', content: 'Hello!' }, { role: 'assistant', content: 'Hi there.' }],
    }), 200);
    assert.equal(c.object, 'conversation');
    assert.match(c.id, /^\w+$/);
    assert.deepEqual(c.metadata, { topic: 'demo' });
    assert.ok(Number.isInteger(c.created_at) && Math.abs(c.created_at - Date.now() / 1000) < 600, 'seconds');
    assert.deepEqual(Object.keys(c).sort(), ['created_at', 'id', 'metadata', 'object']);

    assert.deepEqual(expectStatus(await v1('GET', `/conversations/${c.id}`), 200), c);
    const updated = expectStatus(await v1('POST', `/conversations/${c.id}`, { metadata: { topic: 'other', n: '2' } }), 200);
    assert.deepEqual(updated.metadata, { topic: 'other', n: '2' });
    assert.equal(updated.created_at, c.created_at);

    // The same conversation under /api/v1, owned by the key's owner, with its two messages.
    const mine = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}`, { token: owner.token }), 200);
    assert.equal(mine.user_id, owner.id);
    assert.deepEqual(mine.metadata, { topic: 'other', n: '2' });
    assert.equal(mine.message_count, 2);
    const msgs = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 200);
    assert.deepEqual(msgs.items.map((m) => [m.role, m.content]), [['user', 'Hello!'], ['assistant', 'Hi there.']]);

    const deleted = expectStatus(await v1('DELETE', `/conversations/${c.id}`), 200);
    assert.deepEqual(deleted, { id: c.id, object: 'conversation.deleted', deleted: true });
    expectStatus(await v1('GET', `/conversations/${c.id}`), 404, 'NOT_FOUND');
    expectStatus(await v1('DELETE', `/conversations/${c.id}`), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}`, { token: owner.token }), 404);
    expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 404);
  });

  test('an empty body creates an empty conversation; items are listed newest first by default', async () => {
    const c = expectStatus(await v1('POST', '/conversations'), 200);
    assert.deepEqual(c.metadata, {});
    const empty = expectStatus(await v1('GET', `/conversations/${c.id}/items`), 200);
    assert.deepEqual(empty, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
  });

  test('items: add, list with order / after / limit, get and delete one', async () => {
    const c = expectStatus(await v1('POST', '/conversations', {}), 200);
    const texts = Array.from({ length: 7 }, (_, i) => `m${i + 1}`);
    const added = expectStatus(await v1('POST', `/conversations/${c.id}/items`, {
      items: texts.map((t, i) => ({ type: 'message', role: i % 2 ? 'assistant' : 'user', content: [{ type: i % 2 ? 'output_text' : 'input_text', text: t }] })),
    }), 200);
    assert.equal(added.object, 'list');
    assert.equal(added.data.length, 7);
    assert.equal(added.has_more, false);
    assert.equal(added.first_id, added.data[0].id);
    assert.equal(added.last_id, added.data[6].id);
    assert.deepEqual(added.data[0], { id: added.data[0].id, type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: 'm1' }] });
    assert.deepEqual(added.data[1].content, [{ type: 'output_text', text: 'm2', annotations: [] }]);
    const ids = added.data.map((i) => i.id);

    const text = (page) => page.data.map((i) => i.content[0].text);
    const desc = expectStatus(await v1('GET', `/conversations/${c.id}/items`), 200);
    assert.deepEqual(text(desc), [...texts].reverse());
    const asc1 = expectStatus(await v1('GET', `/conversations/${c.id}/items?order=asc&limit=3`), 200);
    assert.deepEqual(text(asc1), ['m1', 'm2', 'm3']);
    assert.equal(asc1.has_more, true);
    assert.equal(asc1.last_id, ids[2]);
    const asc2 = expectStatus(await v1('GET', `/conversations/${c.id}/items?order=asc&limit=3&after=${asc1.last_id}`), 200);
    assert.deepEqual(text(asc2), ['m4', 'm5', 'm6']);
    const asc3 = expectStatus(await v1('GET', `/conversations/${c.id}/items?order=asc&limit=3&after=${asc2.last_id}`), 200);
    assert.deepEqual(text(asc3), ['m7']);
    assert.equal(asc3.has_more, false);
    const desc1 = expectStatus(await v1('GET', `/conversations/${c.id}/items?order=desc&limit=4`), 200);
    assert.deepEqual(text(desc1), ['m7', 'm6', 'm5', 'm4']);
    assert.equal(desc1.has_more, true);
    const desc2 = expectStatus(await v1('GET', `/conversations/${c.id}/items?limit=4&after=${desc1.last_id}`), 200);
    assert.deepEqual(text(desc2), ['m3', 'm2', 'm1']);
    assert.equal(desc2.has_more, false);

    const one = expectStatus(await v1('GET', `/conversations/${c.id}/items/${ids[3]}`), 200);
    assert.deepEqual(one, added.data[3]);
    const after = expectStatus(await v1('DELETE', `/conversations/${c.id}/items/${ids[3]}`), 200);
    assert.equal(after.object, 'conversation');
    assert.equal(after.id, c.id);
    expectStatus(await v1('GET', `/conversations/${c.id}/items/${ids[3]}`), 404, 'NOT_FOUND');
    expectStatus(await v1('DELETE', `/conversations/${c.id}/items/${ids[3]}`), 404, 'NOT_FOUND');
    assert.deepEqual(text(expectStatus(await v1('GET', `/conversations/${c.id}/items?order=asc`), 200)), ['m1', 'm2', 'm3', 'm5', 'm6', 'm7']);
    const parley = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}`, { token: owner.token }), 200);
    assert.equal(parley.message_count, 6);
    // An item of another conversation is not this one's.
    const d = expectStatus(await v1('POST', '/conversations', {}), 200);
    expectStatus(await v1('GET', `/conversations/${d.id}/items/${ids[0]}`), 404, 'NOT_FOUND');
    expectStatus(await v1('GET', `/conversations/${d.id}/items?after=${ids[0]}`), 422, 'VALIDATION_ERROR');
  });

  test('function_call and function_call_output items round-trip exactly', async () => {
    const call = { type: 'function_call', call_id: 'call_abc', name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' };
    const output = { type: 'function_call_output', call_id: 'call_abc', output: '{"temp":18}' };
    const developer = { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Use tools.' }] };
    const parts = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What is' }, { type: 'input_text', text: 'the weather?' }] };
    const c = expectStatus(await v1('POST', '/conversations', { items: [developer, parts, { ...call, id: 'fc_1', status: 'completed' }, output] }), 200);
    const items = expectStatus(await v1('GET', `/conversations/${c.id}/items?order=asc`), 200).data;
    const strip = ({ id, status, ...rest }) => rest;
    assert.deepEqual(items.map(strip), [developer, parts, call, output]);
    for (const i of items) assert.equal(i.status, 'completed');
    assert.deepEqual(expectStatus(await v1('GET', `/conversations/${c.id}/items/${items[2].id}`), 200), items[2]);
    // In parley's own history: readable renderings with parley's roles.
    const msgs = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 200);
    assert.deepEqual(msgs.items.map((m) => [m.role, m.content]), [
      ['system', 'Use tools.'],
      ['user', 'What is\nthe weather?'],
      ['assistant', '[function_call] get_weather({"city":"Paris","unit":"c"})'],
      ['user', '[function_call_output] {"temp":18}'],
    ]);
  });

  test('a conversation made through /api/v1 is read through /v1, and the other way round', async () => {
    const made = expectStatus(await api(url, 'POST', `/api/v1/users/${owner.id}/conversations`, { token: owner.token, body: { title: 'Console chat', metadata: { from: 'console' } } }), 201);
    const sent = expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages`, { token: owner.token, body: { content: 'Say something', model: 'mock-1' } }), 201);
    const seen = expectStatus(await v1('GET', `/conversations/${made.id}`), 200);
    assert.deepEqual(seen.metadata, { from: 'console' });
    assert.equal(seen.created_at, Math.floor(Date.parse(made.created_at) / 1000));
    const items = expectStatus(await v1('GET', `/conversations/${made.id}/items?order=asc`), 200).data;
    assert.equal(items.length, 2);
    assert.deepEqual(items[0], { id: sent.user_message.id, type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: 'Say something' }] });
    assert.equal(items[1].id, sent.assistant_message.id);
    assert.equal(items[1].role, 'assistant');
    assert.deepEqual(items[1].content, [{ type: 'output_text', text: sent.assistant_message.content, annotations: [] }]);

    // Items added through /v1 are part of the conversation parley answers in: the next answer's
    // context holds them.
    expectStatus(await v1('POST', `/conversations/${made.id}/items`, { items: [{ role: 'user', content: 'Remember the word kiwi.' }, { role: 'assistant', content: 'Noted.' }] }), 200);
    const list = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?q=kiwi`, { token: owner.token }), 200);
    assert.deepEqual(list.items.map((c) => c.id), [made.id], 'the items are searchable as messages');
    const next = expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages`, { token: owner.token, body: { content: 'Which word?', model: 'mock-1' } }), 201);
    assert.equal(next.assistant_message.status, 'complete');
    const all = expectStatus(await v1('GET', `/conversations/${made.id}/items?order=asc`), 200).data;
    assert.deepEqual(all.map((i) => i.content[0].text).slice(2, 5), ['Remember the word kiwi.', 'Noted.', 'Which word?']);

    // Created through /v1: listed among the user's conversations (the console's list).
    const c = expectStatus(await v1('POST', '/conversations', { items: [{ role: 'user', content: 'from the API' }] }), 200);
    const mine = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations`, { token: owner.token }), 200);
    assert.ok(mine.items.some((x) => x.id === c.id));
  });

  test('deleting the active answer of a regenerated pair makes the older answer active again', async () => {
    const made = expectStatus(await api(url, 'POST', `/api/v1/users/${owner.id}/conversations`, { token: owner.token, body: { title: 'Siblings' } }), 201);
    const first = expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages`, { token: owner.token, body: { content: 'pick a colour', model: 'mock-1' } }), 201);
    const again = expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages/${first.assistant_message.id}/regenerate`, { token: owner.token, body: { max_tokens: 3 } }), 201);
    const before = expectStatus(await v1('GET', `/conversations/${made.id}/items?order=asc`), 200).data;
    assert.deepEqual(before.map((i) => i.id), [first.user_message.id, again.assistant_message.id]);
    expectStatus(await v1('DELETE', `/conversations/${made.id}/items/${again.assistant_message.id}`), 200);
    const after = expectStatus(await v1('GET', `/conversations/${made.id}/items?order=asc`), 200).data;
    assert.deepEqual(after.map((i) => i.id), [first.user_message.id, first.assistant_message.id], 'the older answer is back');
    const siblings = expectStatus(await api(url, 'GET', `/api/v1/conversations/${made.id}/messages/${first.assistant_message.id}/siblings`, { token: owner.token }), 200);
    assert.deepEqual(siblings.items.map((m) => [m.id, m.active]), [[first.assistant_message.id, true]]);
    // The next answer's context holds the revived answer.
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages`, { token: owner.token, body: { content: 'and another?', model: 'mock-1' } }), 201);
    const sent = JSON.parse((await mock.requests()).at(-1).body).messages;
    assert.deepEqual(sent.map((m) => m.content), ['pick a colour', first.assistant_message.content, 'and another?']);
    // Deleting an answer that is not the active one changes nothing else.
    const third = expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages`, { token: owner.token, body: { content: 'one more', model: 'mock-1' } }), 201);
    const newer = expectStatus(await api(url, 'POST', `/api/v1/conversations/${made.id}/messages/${third.assistant_message.id}/regenerate`, { token: owner.token }), 201);
    expectStatus(await v1('DELETE', `/conversations/${made.id}/items/${third.assistant_message.id}`), 200);
    const last = expectStatus(await v1('GET', `/conversations/${made.id}/items?order=desc&limit=1`), 200).data;
    assert.equal(last[0].id, newer.assistant_message.id);
  });

  test("another user's conversation is 404; an admin reads it", async () => {
    const c = expectStatus(await v1('POST', '/conversations', { items: [{ role: 'user', content: 'private' }] }), 200);
    const itemId = expectStatus(await v1('GET', `/conversations/${c.id}/items`), 200).data[0].id;
    const as = (method, route, body) => v1(method, route, body, other.token);
    expectStatus(await as('GET', `/conversations/${c.id}`), 404, 'NOT_FOUND');
    expectStatus(await as('POST', `/conversations/${c.id}`, { metadata: {} }), 404, 'NOT_FOUND');
    expectStatus(await as('GET', `/conversations/${c.id}/items`), 404, 'NOT_FOUND');
    expectStatus(await as('POST', `/conversations/${c.id}/items`, { items: [{ role: 'user', content: 'x' }] }), 404, 'NOT_FOUND');
    expectStatus(await as('GET', `/conversations/${c.id}/items/${itemId}`), 404, 'NOT_FOUND');
    expectStatus(await as('DELETE', `/conversations/${c.id}/items/${itemId}`), 404, 'NOT_FOUND');
    expectStatus(await as('DELETE', `/conversations/${c.id}`), 404, 'NOT_FOUND');
    expectStatus(await v1('GET', `/conversations/${c.id}/items/${itemId}`), 200);
    const seen = expectStatus(await v1('GET', `/conversations/${c.id}`, undefined, admin.token), 200);
    assert.equal(seen.id, c.id);
    expectStatus(await v1('GET', '/conversations/nonexistent'), 404, 'NOT_FOUND');
  });

  test('an access token works like the service key, and no credential is 401', async () => {
    const c = expectStatus(await v1('POST', '/conversations', { metadata: { via: 'token' } }, owner.token), 200);
    expectStatus(await v1('GET', `/conversations/${c.id}`), 200);  // the key's owner is the same user
    expectStatus(await api(url, 'POST', `/v1/conversations/${c.id}/items`, { apiKey: key, body: { items: [{ role: 'user', content: 'via X-API-Key' }] } }), 200);
    const r = await api(url, 'GET', `/v1/conversations/${c.id}`);
    expectStatus(r, 401);
  });

  test('an ended conversation takes no items until reconnected', async () => {
    const c = expectStatus(await v1('POST', '/conversations', {}), 200);
    expectStatus(await api(url, 'POST', `/api/v1/users/${owner.id}/conversations/${c.id}/end`, { token: owner.token }), 200);
    expectStatus(await v1('POST', `/conversations/${c.id}/items`, { items: [{ role: 'user', content: 'late' }] }), 409, 'CONFLICT');
    expectStatus(await v1('GET', `/conversations/${c.id}/items`), 200);
    expectStatus(await v1('POST', `/conversations/${c.id}`, { metadata: { still: 'editable' } }), 200);
    expectStatus(await api(url, 'POST', `/api/v1/users/${owner.id}/conversations/${c.id}/reconnect`, { token: owner.token }), 200);
    expectStatus(await v1('POST', `/conversations/${c.id}/items`, { items: [{ role: 'user', content: 'back' }] }), 200);
  });

  test('bad input: 400 or 422 naming the field', async () => {
    const bad = async (route, body, param, status = 422) => {
      const r = await v1('POST', route, body);
      expectStatus(r, status, status === 422 ? 'VALIDATION_ERROR' : undefined);
      if (param) assert.equal(r.body.error.param, param, JSON.stringify(r.body));
    };
    const item = { role: 'user', content: 'x' };
    await bad('/conversations', { items: Array.from({ length: 21 }, () => item) }, 'items');
    await bad('/conversations', { items: 'nope' }, 'items');
    await bad('/conversations', { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata');
    await bad('/conversations', { metadata: { n: 1 } }, 'metadata.n');
    await bad('/conversations', { metadata: { k: 'v'.repeat(513) } }, 'metadata.k');
    await bad('/conversations', { metadata: 'x' }, 'metadata');
    await bad('/conversations', { items: [item, { type: 'web_search_call', id: 'ws_1', status: 'completed' }] }, 'items[1].type');
    await bad('/conversations', { items: [{ type: 'message', role: 'critic', content: 'x' }] }, 'items[0].role');
    await bad('/conversations', { items: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://example.com/a.png' }] }] }, 'items[0].content[0].type');
    await bad('/conversations', { items: [{ type: 'function_call', call_id: 'c', name: 'f' }] }, 'items[0].arguments');
    await bad('/conversations', { items: [{ type: 'function_call_output', call_id: 'c' }] }, 'items[0].output');
    await bad('/conversations', { title: 'not an OpenAI field' }, 'title');
    await bad('/conversations', '{not json', null, 400);
    const c = expectStatus(await v1('POST', '/conversations', {}), 200);
    await bad(`/conversations/${c.id}/items`, {}, 'items');
    await bad(`/conversations/${c.id}/items`, { items: [] }, 'items');
    await bad(`/conversations/${c.id}`, {}, 'metadata');
    for (const q of ['limit=0', 'limit=101', 'limit=x', 'order=up']) {
      const r = await v1('GET', `/conversations/${c.id}/items?${q}`);
      expectStatus(r, 422, 'VALIDATION_ERROR');
      assert.equal(r.body.error.param, q.split('=')[0]);
    }
    // Nothing was created by the refused requests.
    const all = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?limit=100`, { token: owner.token }), 200);
    assert.ok(all.items.every((x) => x.message_count < 21));
  });
});
