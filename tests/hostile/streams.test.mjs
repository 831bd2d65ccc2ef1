// A broken upstream stream must never read as success: a 2xx streamed answer with no event, or
// one that ends without [DONE] and without any finish_reason, ends with an OPENAI_API_ERROR
// (before the stream began: the error status; after: one error event, never [DONE]), on /v1 and
// on /api/v1/chat/stream alike.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND, adminToken, startStack } from '../integration/harness.mjs';

const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;

// What a client got: the HTTP status, and for 200 the SSE data lines.
async function streamed(res) {
  const text = await res.text();
  const data = text.split('\n\n').map((b) => b.trim()).filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
  return { status: res.status, text, data };
}

function expectFailure(got, label) {
  if (got.status !== 200) {
    assert.equal(got.status, 502, `${label}: ${got.text}`);
    assert.equal(JSON.parse(got.text).error.code, 'OPENAI_API_ERROR', label);
    return;
  }
  assert.ok(!got.data.includes('[DONE]'), `${label}: a broken stream ended with [DONE]: ${got.text}`);
  const terminal = got.data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d)).filter((e) => e.error || e.done);
  assert.equal(terminal.length, 1, `${label}: ${got.text}`);
  assert.equal(terminal[0].error?.code, 'OPENAI_API_ERROR', `${label}: ${got.text}`);
}

describe(`broken upstream streams (${BACKEND})`, () => {
  let stack; let p; let mock; let token;
  before(async () => {
    stack = await startStack({ mockArgs: [] });
    ({ p, mock } = stack);
    token = await adminToken(p.url);
  });
  after(async () => { await stack.stop(); });

  const routes = {
    v1: () => fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    }),
    chat: () => fetch(`${p.url}/api/v1/chat/stream`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    }),
  };

  for (const [name, fault] of [
    ['a truncated JSON body', { malformed: true }],
    ['an HTML page', { status: 200, body: '<html><body>maintenance</body></html>' }],
    ['a JSON answer where a stream was asked', { status: 200, body: JSON.stringify({ id: 'x', choices: [{ message: { content: 'hi' } }] }) }],
    ['events that stop before the answer ends', { status: 200, body: chunk({ role: 'assistant', content: '' }) + chunk({ content: 'half an ans' }) }],
  ]) {
    for (const route of Object.keys(routes)) {
      test(`${name} on ${route === 'v1' ? '/v1/chat/completions' : '/api/v1/chat/stream'} is OPENAI_API_ERROR, not success`, async () => {
        await mock.reset();
        await mock.faults([fault]);
        expectFailure(await streamed(await routes[route]()), `${name} (${route})`);
      });
    }
  }

  test('a stream that ends with a finish_reason but without [DONE] is a complete answer', async () => {
    await mock.reset();
    await mock.faults([{ status: 200, body: chunk({ role: 'assistant', content: '' }) + chunk({ content: 'whole' }) + chunk({}, 'stop') }]);
    const got = await streamed(await routes.chat());
    assert.equal(got.status, 200);
    const last = JSON.parse(got.data.at(-1));
    assert.equal(last.done, true, got.text);
    assert.equal(last.full_text, 'whole');
  });
});
