// Conversations and messages (docs/CONVERSATIONS.md): stored history, the model context the
// provider receives, search, ownership, and answers that outlive the request that asked for them
// (resume with Last-Event-ID, a client that never comes back, a restart mid-answer).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startParley, mockProviderConfig, providerKey, startMock, sleep, BACKEND } from './harness.mjs';
import { api, expectStatus, signUp } from '../journeys/lib.mjs';

// SSE blocks of a body: [{ id, data }] with data parsed.
function sse(text) {
  return text.split('\n\n').map((b) => b.trim()).filter((b) => b.includes('data: ')).map((block) => {
    const lines = block.split('\n');
    const id = lines.find((l) => l.startsWith('id: '))?.slice(4) ?? null;
    const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    return { id, data: JSON.parse(data) };
  });
}

// POST that streams: resolves once `stopAfter` token events arrived (then drops the connection), or
// at the end of the body. Returns { events, headers }.
function streamRequest(url, route, token, body, { stopAfter = Infinity, headers = {}, method = 'POST' } = {}) {
  const u = new URL(route, url);
  const payload = body ? JSON.stringify(body) : undefined;
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        ...headers,
      },
    }, (res) => {
      let text = '';
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode, headers: res.headers, events: sse(text), text });
      };
      res.on('data', (d) => {
        text += d;
        const tokens = sse(text.slice(0, text.lastIndexOf('\n\n') + 2)).filter((e) => 'token' in e.data);
        if (tokens.length >= stopAfter) {
          text = text.slice(0, text.lastIndexOf('\n\n') + 2);
          finish();
          req.destroy();
        }
      });
      res.on('end', finish);
      res.on('close', finish);
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
    req.end(payload);
  });
}

const words = (n) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(' ');

async function waitFor(fn, what, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe(`conversations (${BACKEND})`, () => {
  let mock, p, url, owner, other, manager, admin;
  const systemKey = providerKey('system');
  before(async () => {
    mock = await startMock(['--chunk-delay-ms', '40']);
    const config = mockProviderConfig(mock.url, { credentials: 'byok_or_system', keyEnv: 'CONV_SYSTEM_KEY' });
    p = await startParley({
      args: ['--config', config],
      env: {
        CONV_SYSTEM_KEY: systemKey,
        PARLEY_AUTH_OPEN_REGISTRATION: 'true',
        PARLEY_CONVERSATIONS_CONTEXT_TOKENS_BY_MODEL: 'mock-small=60',
        PARLEY_CONVERSATIONS_CHECKPOINT_MS: '200',
      },
    });
    url = p.url;
    admin = await signUp(url, 'admin');
    owner = await signUp(url, 'owner');
    other = await signUp(url, 'other');
    manager = await signUp(url, 'boss');
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${manager.id}`, { token: admin.token, body: { role: 'manager' } }), 200);
    const relog = await api(url, 'POST', '/api/v1/auth/token', { form: { grant_type: 'password', username: 'boss', password: manager.password } });
    manager.token = relog.body.access_token;
  });
  after(async () => { await p?.stop(); await mock?.stop(); });

  const create = (who, body = {}, userId = who.id) => api(url, 'POST', `/api/v1/users/${userId}/conversations`, { token: who.token, body });

  test('create, read, rename, list newest first, end and reconnect', async () => {
    const a = expectStatus(await create(owner, { title: 'Trip to Lisbon', system_message: 'Be brief.', metadata: { tag: 'travel' } }), 201);
    assert.equal(a.title, 'Trip to Lisbon');
    assert.equal(a.system_message, 'Be brief.');
    assert.deepEqual(a.metadata, { tag: 'travel' });
    assert.equal(a.status, 'active');
    assert.equal(a.message_count, 0);
    assert.equal(a.user_id, owner.id);
    const b = expectStatus(await create(owner), 201);
    assert.equal(b.title, 'New conversation');
    assert.equal(b.system_message, null);

    const got = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${a.id}`, { token: owner.token }), 200);
    assert.equal(got.id, a.id);
    assert.equal(got.generating_message_id, null);

    const renamed = expectStatus(await api(url, 'PATCH', `/api/v1/users/${owner.id}/conversations/${a.id}`, { token: owner.token, body: { title: 'Lisbon, May', system_message: null } }), 200);
    assert.equal(renamed.title, 'Lisbon, May');
    assert.equal(renamed.system_message, null);
    assert.deepEqual(renamed.metadata, { tag: 'travel' });

    const list = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?limit=10`, { token: owner.token }), 200);
    assert.ok(list.total >= 2);
    assert.equal(list.items[0].id, a.id, 'the renamed conversation is the most recently updated');

    const recent = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/recent?limit=1`, { token: owner.token }), 200);
    assert.equal(recent.items.length, 1);

    const ended = expectStatus(await api(url, 'POST', `/api/v1/users/${owner.id}/conversations/${b.id}/end`, { token: owner.token }), 200);
    assert.equal(ended.status, 'ended');
    assert.ok(ended.ended_at);
    const refused = await api(url, 'POST', `/api/v1/conversations/${b.id}/messages`, { token: owner.token, body: { content: 'hello?' } });
    expectStatus(refused, 409, 'CONFLICT');
    const onlyEnded = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?status=ended`, { token: owner.token }), 200);
    assert.deepEqual(onlyEnded.items.map((c) => c.id), [b.id]);

    const back = expectStatus(await api(url, 'POST', `/api/v1/users/${owner.id}/conversations/${b.id}/reconnect`, { token: owner.token }), 200);
    assert.equal(back.conversation.status, 'active');
    assert.deepEqual(back.messages, []);
    assert.equal(back.generating, null);

    const valid = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${b.id}/validate`, { token: owner.token }), 200);
    assert.equal(valid.valid, true);
    assert.equal(valid.can_send, true);
  });

  test('bad input is a 422 naming the field', async () => {
    expectStatus(await create(owner, { title: '' }), 422, 'VALIDATION_ERROR');
    expectStatus(await create(owner, { title: 'a\u0000b' }), 422, 'VALIDATION_ERROR');
    expectStatus(await create(owner, { model: 'no-such-model' }), 422, 'VALIDATION_ERROR');
    expectStatus(await create(owner, { metadata: [1, 2] }), 422, 'VALIDATION_ERROR');
    expectStatus(await create(owner, { owner: 'x' }), 422, 'VALIDATION_ERROR');
    const c = expectStatus(await create(owner), 201);
    const empty = await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: '' } });
    expectStatus(empty, 422, 'VALIDATION_ERROR');
    assert.equal(empty.body.error.param, 'content');
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'x'.repeat(4001) } }), 422, 'VALIDATION_ERROR');
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: '   ' } }), 422, 'VALIDATION_ERROR');
    expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?status=open`, { token: owner.token }), 422, 'VALIDATION_ERROR');
    expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?cursor=nonsense`, { token: owner.token }), 422, 'VALIDATION_ERROR');
    // An unknown model is refused before anything is stored.
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'hi', model: 'nope' } }), 422, 'VALIDATION_ERROR');
    const after = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 200);
    assert.equal(after.items.length, 0);
  });

  test('a message is stored with its answer; history is paged oldest first with seed 002 fields', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const r = expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'tell me a story' } }), 201);
    assert.equal(r.user_message.content, 'tell me a story');
    assert.equal(r.user_message.is_ai_message, false);
    assert.equal(r.user_message.sender_id, owner.id);
    assert.equal(r.assistant_message.content, 'mock reply: tell me a story');
    assert.equal(r.assistant_message.is_ai_message, true);
    assert.equal(r.assistant_message.ai_model, 'mock-1');
    assert.equal(r.assistant_message.status, 'complete');
    assert.equal(r.assistant_message.parent_id, r.user_message.id);
    assert.equal(r.assistant_message.usage.completion_tokens, 6);
    assert.equal(typeof r.assistant_message.latency_ms, 'number');
    for (const m of [r.user_message, r.assistant_message]) {
      for (const field of ['id', 'sender_id', 'content', 'timestamp', 'message_type', 'is_ai_message', 'ai_model', 'status']) {
        assert.ok(field in m, `${field} missing`);
      }
    }
    for (let i = 0; i < 3; i++) {
      expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: `question ${i}` } }), 201);
    }
    const all = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 200);
    assert.equal(all.items.length, 8);
    assert.deepEqual(all.items.map((m) => m.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    const page1 = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages?limit=3`, { token: owner.token }), 200);
    assert.equal(page1.items.length, 3);
    assert.equal(page1.has_more, true);
    const page2 = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages?limit=3&after=${page1.last_seq}`, { token: owner.token }), 200);
    assert.deepEqual(page2.items.map((m) => m.id), all.items.slice(3, 6).map((m) => m.id));
    const before = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages?limit=2&before=${all.items[4].seq}`, { token: owner.token }), 200);
    assert.deepEqual(before.items.map((m) => m.id), all.items.slice(2, 4).map((m) => m.id));

    const conv = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}`, { token: owner.token }), 200);
    assert.equal(conv.message_count, 8);
    assert.ok(conv.last_message_at);
    const stats = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}/stats`, { token: owner.token }), 200);
    assert.equal(stats.messages.user, 4);
    assert.equal(stats.messages.assistant, 4);
    assert.ok(stats.tokens.completion > 0);
    assert.equal(typeof stats.average_latency_ms, 'number');
  });

  test('the model context: system message, the newest messages that fit the budget, dropped whole', async () => {
    const c = expectStatus(await create(owner, { system_message: 'You are terse.', model: 'mock-small' }), 201);
    const sent = [];
    for (let i = 1; i <= 4; i++) {
      const content = `turn ${i} ${words(10)}`;
      sent.push(content);
      expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content } }), 201);
    }
    const requests = await mock.requests();
    const last = JSON.parse(requests.at(-1).body);
    assert.equal(last.model, 'mock-small');
    assert.deepEqual(last.messages[0], { role: 'system', content: 'You are terse.' });
    assert.deepEqual(last.messages.at(-1), { role: 'user', content: sent[3] });
    // The budget (60 estimated tokens) holds the system message, the last question and one more
    // exchange at most; older turns are gone, none is cut.
    assert.ok(last.messages.length < 1 + 2 * 4 - 1, `the whole history was sent: ${last.messages.length} messages`);
    assert.equal(last.messages[1].role, 'user', 'the history starts with a question');
    for (const m of last.messages.slice(1)) {
      if (m.role === 'user') assert.ok(sent.includes(m.content), `a cut or unknown message: ${m.content}`);
      else assert.match(m.content, /^mock reply: turn \d w1 .* w10$/);
    }
    // With the default budget, the whole conversation goes along.
    const d = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    for (const q of ['first question', 'second question']) {
      expectStatus(await api(url, 'POST', `/api/v1/conversations/${d.id}/messages`, { token: owner.token, body: { content: q } }), 201);
    }
    const full = JSON.parse((await mock.requests()).at(-1).body);
    assert.deepEqual(full.messages, [
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'mock reply: first question' },
      { role: 'user', content: 'second question' },
    ]);
  });

  test('the user preferences give the model and the system prompt when the conversation names none', async () => {
    expectStatus(await api(url, 'PATCH', `/api/v1/users/${other.id}/preferences`, { token: other.token, body: { default_model: 'gpt-4o-mini', system_prompt: 'Answer in French.' } }), 200);
    const c = expectStatus(await create(other), 201);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: other.token, body: { content: 'bonjour' } }), 201);
    const last = JSON.parse((await mock.requests()).at(-1).body);
    assert.equal(last.model, 'gpt-4o-mini');
    assert.deepEqual(last.messages[0], { role: 'system', content: 'Answer in French.' });
  });

  test('search finds titles and message text through the full-text index', async () => {
    const u = await signUp(url, 'searcher');
    const t = expectStatus(await create(u, { title: 'Kangaroo facts' }), 201);
    const m = expectStatus(await create(u, { title: 'Untitled', model: 'mock-1' }), 201);
    expectStatus(await create(u, { title: 'Something else' }), 201);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${m.id}/messages`, { token: u.token, body: { content: 'where do platypuses live' } }), 201);
    const q = async (text) => expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/conversations?q=${encodeURIComponent(text)}`, { token: u.token }), 200);
    assert.deepEqual((await q('kangaroo')).items.map((c) => c.id), [t.id]);
    assert.deepEqual((await q('PLATYPUSES')).items.map((c) => c.id), [m.id]);
    assert.deepEqual((await q('platyp')).items.map((c) => c.id), [m.id], 'the last word matches as a prefix');
    assert.equal((await q('platypuses kangaroo')).total, 0, 'every word must match');
    assert.equal((await q('"*) OR NEAR(')).total, 0, 'query syntax is not interpreted');
    // Another user's conversations are not searched.
    const mine = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?q=kangaroo`, { token: owner.token }), 200);
    assert.equal(mine.total, 0);
  });

  test('cursor paging walks every conversation once', async () => {
    const u = await signUp(url, 'pager');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(expectStatus(await create(u, { title: `c${i}` }), 201).id);
    const seen = [];
    let cursor = '';
    for (let guard = 0; guard < 10; guard++) {
      const page = expectStatus(await api(url, 'GET', `/api/v1/users/${u.id}/conversations?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: u.token }), 200);
      seen.push(...page.items.map((c) => c.id));
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    assert.deepEqual(seen, [...ids].reverse());
  });

  test('ownership: another user gets 404 everywhere; a manager reads but cannot write; an admin acts', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const sent = expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'private words' } }), 201);
    const base = `/api/v1/users/${owner.id}/conversations/${c.id}`;
    for (const [method, route, body] of [
      ['GET', base], ['PATCH', base, { title: 'x' }], ['DELETE', base], ['POST', `${base}/end`], ['POST', `${base}/reconnect`],
      ['GET', `${base}/validate`], ['GET', `${base}/stats`], ['GET', `/api/v1/users/${owner.id}/conversations`],
      ['GET', `/api/v1/conversations/${c.id}/messages`], ['POST', `/api/v1/conversations/${c.id}/messages`, { content: 'hi' }],
      ['GET', `/api/v1/conversations/${c.id}/messages/${sent.assistant_message.id}`],
      ['GET', `/api/v1/conversations/${c.id}/messages/${sent.assistant_message.id}/stream`],
      ['POST', `/api/v1/conversations/${c.id}/messages/${sent.assistant_message.id}/regenerate`],
    ]) {
      expectStatus(await api(url, method, route, { token: other.token, body }), 404, 'NOT_FOUND');
    }
    // The other user's own path with the owner's conversation id is 404 too.
    expectStatus(await api(url, 'GET', `/api/v1/users/${other.id}/conversations/${c.id}`, { token: other.token }), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'GET', base, { token: manager.token }), 200);
    expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: manager.token }), 200);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: manager.token, body: { content: 'hi' } }), 403, 'FORBIDDEN');
    expectStatus(await api(url, 'DELETE', base, { token: manager.token }), 403, 'FORBIDDEN');
    expectStatus(await api(url, 'PATCH', base, { token: admin.token, body: { title: 'by admin' } }), 200);
    expectStatus(await api(url, 'DELETE', base, { token: admin.token }), 204);
    expectStatus(await api(url, 'GET', base, { token: owner.token }), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 404, 'NOT_FOUND');
    expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages/${sent.assistant_message.id}`, { token: owner.token }), 404, 'NOT_FOUND');
    const search = expectStatus(await api(url, 'GET', `/api/v1/users/${owner.id}/conversations?q=private`, { token: owner.token }), 200);
    assert.equal(search.total, 0, 'a deleted conversation leaves nothing to find');
  });

  test('a client that drops after 3 of 20 events resumes with Last-Event-ID and gets exactly events 4-20 once', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const first = await streamRequest(url, `/api/v1/conversations/${c.id}/messages`, owner.token, { content: words(18), stream: true }, { stopAfter: 3 });
    assert.equal(first.status, 200);
    const messageId = first.headers['x-message-id'];
    assert.ok(messageId);
    assert.ok(first.headers['x-user-message-id']);
    const tokens = first.events.filter((e) => 'token' in e.data);
    assert.equal(tokens.length, 3);
    assert.deepEqual(tokens.map((e) => e.id), [`${messageId}:1`, `${messageId}:2`, `${messageId}:3`]);
    const rest = await streamRequest(url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, owner.token, null,
      { method: 'GET', headers: { 'Last-Event-ID': tokens.at(-1).id } });
    assert.equal(rest.status, 200);
    const ids = rest.events.map((e) => e.id);
    assert.deepEqual(ids, Array.from({ length: 18 }, (_, i) => `${messageId}:${i + 4}`));
    const terminal = rest.events.at(-1).data;
    assert.equal(terminal.done, true);
    assert.equal(terminal.status, 'complete');
    assert.equal(terminal.message_id, messageId);
    const text = [...tokens, ...rest.events.slice(0, -1)].map((e) => e.data.token).join('');
    assert.equal(text, `mock reply: ${words(18)}`);
    assert.equal(terminal.full_text, text);
    // Replayed from the store later (and with ?after=): the same events.
    const replay = await streamRequest(url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream?after=3`, owner.token, null, { method: 'GET' });
    assert.deepEqual(replay.events, rest.events);
    const whole = await streamRequest(url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, owner.token, null, { method: 'GET' });
    assert.equal(whole.events.length, 21);
    expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, { token: owner.token, headers: { 'Last-Event-ID': 'someone-else:3' } }), 422, 'VALIDATION_ERROR');
  });

  test('several clients follow one answer at once', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const producer = streamRequest(url, `/api/v1/conversations/${c.id}/messages`, owner.token, { content: words(10), stream: true });
    const messageId = await waitFor(async () => {
      const conv = await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}`, { token: owner.token });
      return conv.body.generating_message_id;
    }, 'the answer to start');
    const followers = await Promise.all([1, 2].map(() => streamRequest(url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, owner.token, null, { method: 'GET' })));
    const main = await producer;
    for (const f of followers) assert.deepEqual(f.events, main.events, `a follower got ${f.status}: ${f.text.slice(0, 500)}`);
    assert.equal(main.events.filter((e) => e.data.done).length, 1, 'exactly one terminal event');
  });

  test('a client that never comes back finds the whole answer stored', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const first = await streamRequest(url, `/api/v1/conversations/${c.id}/messages`, owner.token, { content: words(12), stream: true }, { stopAfter: 1 });
    const messageId = first.headers['x-message-id'];
    const stored = await waitFor(async () => {
      const m = await api(url, 'GET', `/api/v1/conversations/${c.id}/messages/${messageId}`, { token: owner.token });
      return m.body.status === 'complete' ? m.body : null;
    }, 'the answer to be stored');
    assert.equal(stored.content, `mock reply: ${words(12)}`);
    // A non-streamed request whose client leaves: the answer is stored all the same.
    const c2 = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const ac = new AbortController();
    const pending = fetch(`${url}/api/v1/conversations/${c2.id}/messages`, {
      method: 'POST', signal: ac.signal,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${owner.token}` },
      body: JSON.stringify({ content: words(8) }),
    }).catch(() => null);
    await sleep(100);
    ac.abort();
    await pending;
    await waitFor(async () => {
      const list = await api(url, 'GET', `/api/v1/conversations/${c2.id}/messages`, { token: owner.token });
      return list.body.items.length === 2 && list.body.items[1].status === 'complete' && list.body.items[1].content === `mock reply: ${words(8)}`;
    }, 'the abandoned answer to be stored');
  });

  test('cancel stops an answer and keeps what it had; leaving is not cancelling', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const first = await streamRequest(url, `/api/v1/conversations/${c.id}/messages`, owner.token, { content: words(40), stream: true }, { stopAfter: 2 });
    const messageId = first.headers['x-message-id'];
    const cancelled = expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages/${messageId}/cancel`, { token: owner.token }), 200);
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(cancelled.content.startsWith('mock reply:'));
    assert.ok(cancelled.content.length < `mock reply: ${words(40)}`.length);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages/${messageId}/cancel`, { token: owner.token }), 409, 'CONFLICT');
    const replay = await streamRequest(url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, owner.token, null, { method: 'GET' });
    assert.equal(replay.events.at(-1).data.status, 'cancelled');
    assert.equal(replay.events.slice(0, -1).map((e) => e.data.token).join(''), cancelled.content);
  });

  test('one answer at a time per conversation', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const first = streamRequest(url, `/api/v1/conversations/${c.id}/messages`, owner.token, { content: words(15), stream: true });
    await waitFor(async () => (await api(url, 'GET', `/api/v1/users/${owner.id}/conversations/${c.id}`, { token: owner.token })).body.generating_message_id, 'the answer to start');
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'me too' } }), 409, 'CONFLICT');
    await first;
  });

  test('regenerate keeps both answers as siblings; the conversation follows the newest', async () => {
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    const r = expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'pick a number' } }), 201);
    const again = expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages/${r.assistant_message.id}/regenerate`, { token: owner.token, body: { max_tokens: 3 } }), 201);
    assert.equal(again.user_message, undefined);
    assert.equal(again.assistant_message.parent_id, r.user_message.id);
    assert.equal(again.assistant_message.content, 'mock reply: pick');
    const last = JSON.parse((await mock.requests()).at(-1).body);
    assert.deepEqual(last.messages, [{ role: 'user', content: 'pick a number' }], 'the old answer is not in the context');
    const listed = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages`, { token: owner.token }), 200);
    assert.deepEqual(listed.items.map((m) => m.id), [r.user_message.id, again.assistant_message.id]);
    const withOld = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages?include_superseded=true`, { token: owner.token }), 200);
    assert.equal(withOld.items.length, 3);
    const siblings = expectStatus(await api(url, 'GET', `/api/v1/conversations/${c.id}/messages/${again.assistant_message.id}/siblings`, { token: owner.token }), 200);
    assert.deepEqual(siblings.items.map((m) => [m.id, m.active]), [[r.assistant_message.id, false], [again.assistant_message.id, true]]);
    // Only the newest question's answer can be regenerated.
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'next' } }), 201);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages/${again.assistant_message.id}/regenerate`, { token: owner.token }), 409, 'CONFLICT');
  });

  test('credentials: the user\'s own key when stored, else the system key; a provider failure is stored as failed', async () => {
    const own = providerKey('owner');
    expectStatus(await api(url, 'PUT', `/api/v1/users/${owner.id}/api-key`, { token: owner.token, body: { api_key: own, provider: 'mock' } }), 200);
    const c = expectStatus(await create(owner, { model: 'mock-1' }), 201);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token: owner.token, body: { content: 'with my key' } }), 201);
    assert.equal((await mock.requests()).at(-1).authorization, `Bearer ${own}`);
    const d = expectStatus(await create(other, { model: 'mock-1' }), 201);
    expectStatus(await api(url, 'POST', `/api/v1/conversations/${d.id}/messages`, { token: other.token, body: { content: 'with the system key' } }), 201);
    assert.equal((await mock.requests()).at(-1).authorization, `Bearer ${systemKey}`);

    await mock.faults([{ status: 400, body: { error: { message: 'bad', type: 'invalid_request_error' } } }]);
    const failed = await api(url, 'POST', `/api/v1/conversations/${d.id}/messages`, { token: other.token, body: { content: 'this one fails' } });
    assert.ok(failed.status >= 400, failed.text);
    const messageId = failed.headers.get('x-message-id');
    assert.ok(messageId);
    const m = expectStatus(await api(url, 'GET', `/api/v1/conversations/${d.id}/messages/${messageId}`, { token: other.token }), 200);
    assert.equal(m.status, 'failed');
    assert.ok(m.error_code);
    const replay = await streamRequest(url, `/api/v1/conversations/${d.id}/messages/${messageId}/stream`, other.token, null, { method: 'GET' });
    assert.equal(replay.events.length, 1);
    assert.equal(replay.events[0].data.status, 'failed');
    assert.equal(replay.events[0].data.error.code, m.error_code);
  });
});

describe(`an answer interrupted by a restart (${BACKEND})`, () => {
  test('a restart mid-generation leaves the message failed, with what it had, never stuck', async () => {
    const mock = await startMock(['--chunk-delay-ms', '100']);
    const config = mockProviderConfig(mock.url, { credentials: 'system', keyEnv: 'CONV_SYSTEM_KEY' });
    const env = { CONV_SYSTEM_KEY: providerKey('system'), PARLEY_CONVERSATIONS_CHECKPOINT_MS: '100', PARLEY_CONVERSATIONS_STALE_AFTER_S: '5' };
    let p = await startParley({ args: ['--config', config], env });
    try {
      const u = await signUp(p.url, 'admin');
      const c = expectStatus(await api(p.url, 'POST', `/api/v1/users/${u.id}/conversations`, { token: u.token, body: { model: 'mock-1' } }), 201);
      const first = await streamRequest(p.url, `/api/v1/conversations/${c.id}/messages`, u.token, { content: words(60), stream: true }, { stopAfter: 5 });
      const messageId = first.headers['x-message-id'];
      await sleep(400);  // a checkpoint or two
      p.proc.kill('SIGKILL');
      await p.exited;
      p = await startParley({ args: ['--config', config], env, dataDir: p.dataDir, databaseUrl: p.databaseUrl });
      const login = await api(p.url, 'POST', '/api/v1/auth/token', { form: { grant_type: 'password', username: 'admin', password: u.password } });
      const token = login.body.access_token;
      const m = await waitFor(async () => {
        const r = await api(p.url, 'GET', `/api/v1/conversations/${c.id}/messages/${messageId}`, { token });
        return r.body.status !== 'generating' ? r.body : null;
      }, 'the interrupted answer to be marked', 15000);
      assert.equal(m.status, 'failed');
      assert.equal(m.error_code, 'INTERRUPTED');
      assert.ok(m.content.startsWith('mock reply: w1'), `the checkpointed text is kept: ${m.content}`);
      const replay = await streamRequest(p.url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, token, null, { method: 'GET' });
      assert.equal(replay.events.at(-1).data.error.code, 'INTERRUPTED');
      // The conversation takes new messages again.
      expectStatus(await api(p.url, 'POST', `/api/v1/conversations/${c.id}/messages`, { token, body: { content: 'still there?' } }), 201);
    } finally {
      await p.stop();
      await mock.stop();
    }
  });
});

describe(`answers past the memory bound (${BACKEND})`, () => {
  test('saved text leaves memory and followers read it from the store: the same events, in order, once', async () => {
    const mock = await startMock(['--chunk-delay-ms', '15']);
    const config = mockProviderConfig(mock.url, { credentials: 'system', keyEnv: 'CONV_SYSTEM_KEY' });
    const p = await startParley({
      args: ['--config', config],
      env: { CONV_SYSTEM_KEY: providerKey('system'), PARLEY_CONVERSATIONS_STREAM_MEMORY_PER_ANSWER: '64', PARLEY_CONVERSATIONS_STREAM_RETENTION_S: '0' },
    });
    try {
      const u = await signUp(p.url, 'admin');
      const c = expectStatus(await api(p.url, 'POST', `/api/v1/users/${u.id}/conversations`, { token: u.token, body: { model: 'mock-1' } }), 201);
      const producer = streamRequest(p.url, `/api/v1/conversations/${c.id}/messages`, u.token, { content: words(80), stream: true });
      const messageId = await waitFor(async () => (await api(p.url, 'GET', `/api/v1/users/${u.id}/conversations/${c.id}`, { token: u.token })).body.generating_message_id, 'the answer to start');
      await sleep(300);  // well past 64 bytes: the first pieces are only in the store now
      const late = await streamRequest(p.url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream`, u.token, null, { method: 'GET' });
      const main = await producer;
      const expected = Array.from({ length: 82 }, (_, i) => `${messageId}:${i + 1}`);
      assert.deepEqual(main.events.map((e) => e.id), [...expected, `${messageId}:83`]);
      assert.deepEqual(late.events, main.events);
      assert.equal(main.events.at(-1).data.full_text, `mock reply: ${words(80)}`);
      const again = await streamRequest(p.url, `/api/v1/conversations/${c.id}/messages/${messageId}/stream?after=40`, u.token, null, { method: 'GET' });
      assert.deepEqual(again.events, main.events.slice(40));
    } finally {
      await p.stop();
      await mock.stop();
    }
  });
});
