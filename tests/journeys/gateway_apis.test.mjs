// Journey for the gateway's newer APIs (issue 17), the flow an application team walks after seed
// 000's ("the user's own key, kept encrypted") and seed 003's ("service keys with usage"): a user
// makes a service key; the application calls OpenAI's Responses API (a stored answer, a second turn
// with previous_response_id, a streamed turn), keeps a conversation through the Conversations API
// that parley's own routes show, and calls Anthropic's Messages API with the same key; every call
// is accounted per endpoint. Over HTTP against the real binary and parley-mock, once per credential
// mode: "byok" (the user's own key only: refused until stored), "byok_or_system" (own key when
// stored, else the deployment's) and "system" (the deployment's key always). Every provider call
// asserts which key the provider saw; no key ever reaches a log.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, api, expectStatus, signUp, sseEvents, providerKey, expectNoSecretsInLogs, BACKEND } from './lib.mjs';
import { sleep } from '../integration/harness.mjs';

const VERSION = { 'anthropic-version': '2023-06-01' };

for (const credentials of ['byok', 'byok_or_system', 'system']) {
  describe(`gateway APIs (Responses, Conversations, Messages), credentials = "${credentials}" (${BACKEND})`, () => {
    const ownKey = providerKey('gatewayuser');
    let s; let admin; let user; let key;
    before(async () => {
      s = await startStack({ credentials, mockKeys: [ownKey] });
      admin = await signUp(s.url, 'gatewayadmin');
      const made = await api(s.url, 'POST', '/api/v1/users', {
        token: admin.token,
        body: { username: 'gatewayuser', email: 'gatewayuser@example.com', password: 'correct horse battery staple', role: 'user' },
      });
      expectStatus(made, 201);
      const login = await api(s.url, 'POST', '/api/v1/auth/token', {
        form: { grant_type: 'password', username: 'gatewayuser', password: 'correct horse battery staple' },
      });
      user = { id: made.body.id, token: expectStatus(login, 200).access_token };
      key = expectStatus(await api(s.url, 'POST', '/api/v1/api-keys', { token: user.token, body: { name: 'app' } }), 201).key;
    });
    after(async () => { await s?.stop(); });

    // The key the provider must have seen for this user's calls.
    const expectedKey = () => (credentials === 'system' ? s.systemKey : ownKey);
    const lastRequest = async (path) => (await s.mock.requests()).filter((r) => r.path === path).at(-1);
    const responses = (body) => api(s.url, 'POST', '/v1/responses', { token: key, body });

    test('before the user stores a key: refused where the mode needs it, answered otherwise', async () => {
      const r = await responses({ model: 'gpt-4o-mini', input: 'hello' });
      if (credentials === 'byok') {
        expectStatus(r, 400, 'API_KEY_NOT_CONFIGURED');
        const m = await api(s.url, 'POST', '/v1/messages', {
          apiKey: key, headers: VERSION, body: { model: 'gpt-4o-mini', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] },
        });
        assert.equal(m.status, 400);
        assert.equal(m.body.type, 'error');
      } else {
        expectStatus(r, 200);
        assert.equal((await lastRequest('/v1/chat/completions')).authorization, `Bearer ${s.systemKey}`);
      }
      if (credentials !== 'system') {
        expectStatus(await api(s.url, 'PUT', `/api/v1/users/${user.id}/api-key`, {
          token: user.token, body: { api_key: ownKey, provider: 'mock' },
        }), 200);
      }
    });

    test('Responses API: a stored answer, a second turn from it, a streamed turn; the key as the mode says', async () => {
      const first = expectStatus(await responses({ model: 'gpt-4o-mini', input: 'my name is Ada' }), 200);
      assert.equal(first.status, 'completed');
      assert.equal((await lastRequest('/v1/chat/completions')).authorization, `Bearer ${expectedKey()}`);
      const text = first.output.find((i) => i.type === 'message').content[0].text;
      assert.equal(text, 'mock reply: my name is Ada');
      // Stored: readable again, with its input items.
      assert.equal(expectStatus(await api(s.url, 'GET', `/v1/responses/${first.id}`, { token: key }), 200).id, first.id);
      const inputs = expectStatus(await api(s.url, 'GET', `/v1/responses/${first.id}/input_items`, { token: key }), 200);
      assert.equal(inputs.data[0].content[0].text, 'my name is Ada');
      // The next turn carries the first one to the provider.
      const second = expectStatus(await responses({ model: 'gpt-4o-mini', input: 'what is my name?', previous_response_id: first.id }), 200);
      const sent = JSON.parse((await lastRequest('/v1/chat/completions')).body);
      assert.deepEqual(sent.messages.map((m) => m.content), ['my name is Ada', text, 'what is my name?']);
      assert.equal(second.previous_response_id, first.id);
      // Streamed: OpenAI's events, numbered, ending with the completed response.
      const streamed = await responses({ model: 'gpt-4o-mini', input: 'stream this', stream: true, previous_response_id: second.id });
      assert.equal(streamed.status, 200);
      const events = sseEvents(streamed.text);
      assert.equal(events[0].type, 'response.created');
      assert.equal(events.at(-1).type, 'response.completed');
      events.forEach((e, i) => assert.equal(e.sequence_number, i));
      assert.equal(events.at(-1).response.output[0].content[0].text, 'mock reply: stream this');
    });

    test('Conversations API: a conversation kept through /v1 is the one parley\'s own routes show', async () => {
      const conversation = expectStatus(await api(s.url, 'POST', '/v1/conversations', {
        token: key, body: { metadata: { app: 'journey' }, items: [{ type: 'message', role: 'user', content: 'I like tea' }] },
      }), 200);
      const answer = expectStatus(await responses({ model: 'gpt-4o-mini', input: 'what do I like?', conversation: conversation.id }), 200);
      assert.equal((await lastRequest('/v1/chat/completions')).authorization, `Bearer ${expectedKey()}`);
      const items = expectStatus(await api(s.url, 'GET', `/v1/conversations/${conversation.id}/items?order=asc`, { token: key }), 200);
      assert.deepEqual(items.data.map((i) => i.role), ['user', 'user', 'assistant']);
      const own = expectStatus(await api(s.url, 'GET', `/api/v1/conversations/${conversation.id}/messages`, { token: user.token }), 200);
      assert.deepEqual(own.items.map((m) => m.content),
        ['I like tea', 'what do I like?', answer.output.find((i) => i.type === 'message').content[0].text]);
      const listed = expectStatus(await api(s.url, 'GET', `/api/v1/users/${user.id}/conversations`, { token: user.token }), 200);
      assert.ok(JSON.stringify(listed).includes(conversation.id), 'the conversation is listed under /api/v1');
      expectStatus(await api(s.url, 'DELETE', `/v1/conversations/${conversation.id}`, { token: key }), 200);
      expectStatus(await api(s.url, 'GET', `/api/v1/conversations/${conversation.id}/messages`, { token: user.token }), 404);
    });

    test('Messages API with the same service key: plain and streamed', async () => {
      const body = { model: 'gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: 'hello claude' }] };
      const plain = await api(s.url, 'POST', '/v1/messages', { apiKey: key, headers: VERSION, body });
      assert.equal(plain.status, 200, plain.text);
      assert.equal(plain.body.content[0].text, 'mock reply: hello claude');
      assert.equal((await lastRequest('/v1/chat/completions')).authorization, `Bearer ${expectedKey()}`);
      const streamed = await api(s.url, 'POST', '/v1/messages', { token: key, headers: VERSION, body: { ...body, stream: true } });
      assert.equal(streamed.status, 200);
      const types = sseEvents(streamed.text).map((e) => e.type);
      assert.equal(types[0], 'message_start');
      assert.equal(types.at(-1), 'message_stop');
    });

    test('usage: every call is recorded under its endpoint; no key in any log', async () => {
      let items = [];
      for (let i = 0; i < 60; i++) {
        const r = await api(s.url, 'GET', `/api/v1/users/${user.id}/usage?limit=100`, { token: user.token });
        items = r.body?.items ?? [];
        if (items.filter((x) => x.endpoint === 'messages').length >= 2) break;
        await sleep(100);
      }
      const endpoints = items.map((x) => x.endpoint);
      assert.ok(endpoints.filter((e) => e === 'responses').length >= 4, JSON.stringify(endpoints));
      assert.equal(endpoints.filter((e) => e === 'messages').length, 2, JSON.stringify(endpoints));
      for (const x of items.filter((r) => r.endpoint === 'responses' || r.endpoint === 'messages')) {
        assert.equal(x.provider, 'mock');
        if (x.status === 200) assert.ok(x.prompt_tokens > 0 && x.completion_tokens > 0, JSON.stringify(x));
      }
      expectNoSecretsInLogs([ownKey, s.systemKey, key]);
    });
  });
}
