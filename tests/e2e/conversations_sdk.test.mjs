// OpenAI's Conversations API on parley through the official openai npm SDK:
// client.conversations.create / retrieve / update / delete and client.conversations.items.create /
// list (auto-paginated) / retrieve / delete, function calls included, errors as the SDK's classes.
// The conversation is a parley conversation: its messages are read back through /api/v1.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
// The openai SDK of the Conversations API (6.x; the suite's other tests use 4.x as 'openai').
import OpenAI from 'openai-v6';
import { startParley, tempDir, json } from '../integration/harness.mjs';
import { adminToken, createServiceKey } from './setup.mjs';

describe('openai SDK: /v1/conversations', { timeout: 60000 }, () => {
  let p; let dir; let token; let client;

  before(async () => {
    dir = tempDir('parley-e2e-conversations-');
    p = await startParley({ dataDir: dir });
    token = await adminToken(p.url);
    const key = (await createServiceKey(p.url, token, 'conversations-sdk')).key;
    client = new OpenAI({ apiKey: key, baseURL: `${p.url}/v1`, maxRetries: 0, timeout: 20000 });
  });

  after(async () => {
    if (p) await p.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('create, retrieve, update and delete a conversation', async () => {
    const conversation = await client.conversations.create({
      metadata: { topic: 'sdk' },
      items: [{ type: 'message', role: 'user', content: 'Hello from the SDK' }],
    });
    assert.equal(conversation.object, 'conversation');
    assert.deepEqual(conversation.metadata, { topic: 'sdk' });
    assert.equal(typeof conversation.created_at, 'number');

    const got = await client.conversations.retrieve(conversation.id);
    assert.deepEqual(got, conversation);
    const updated = await client.conversations.update(conversation.id, { metadata: { topic: 'changed' } });
    assert.deepEqual(updated.metadata, { topic: 'changed' });

    // The same conversation for parley's own API (and the console).
    const messages = await json(await fetch(`${p.url}/api/v1/conversations/${conversation.id}/messages`, { headers: { Authorization: `Bearer ${token}` } }));
    assert.deepEqual(messages.items.map((m) => m.content), ['Hello from the SDK']);

    const deleted = await client.conversations.delete(conversation.id);
    assert.deepEqual(deleted, { id: conversation.id, object: 'conversation.deleted', deleted: true });
    await assert.rejects(client.conversations.retrieve(conversation.id), (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  });

  test('items: create, list page by page, retrieve and delete', async () => {
    const conversation = await client.conversations.create();
    const call = { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"q":"parley"}' };
    const output = { type: 'function_call_output', call_id: 'call_1', output: 'a gateway' };
    const created = await client.conversations.items.create(conversation.id, {
      items: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What is parley?' }] },
        call,
        output,
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A gateway.', annotations: [] }] },
      ],
    });
    assert.equal(created.object, 'list');
    assert.equal(created.data.length, 4);
    const ids = created.data.map((i) => i.id);
    assert.equal(created.first_id, ids[0]);
    assert.equal(created.last_id, ids[3]);

    // Auto-pagination follows `after` (= last_id) while has_more.
    const seen = [];
    for await (const item of client.conversations.items.list(conversation.id, { order: 'asc', limit: 1 })) seen.push(item);
    assert.deepEqual(seen.map((i) => i.id), ids);
    assert.deepEqual(seen.map((i) => i.type), ['message', 'function_call', 'function_call_output', 'message']);
    const page = await client.conversations.items.list(conversation.id, { limit: 2 });
    assert.deepEqual(page.data.map((i) => i.id), [ids[3], ids[2]]);
    assert.equal(page.has_more, true);

    const fc = await client.conversations.items.retrieve(ids[1], { conversation_id: conversation.id });
    assert.equal(fc.type, 'function_call');
    assert.equal(fc.call_id, 'call_1');
    assert.equal(fc.name, 'lookup');
    assert.equal(fc.arguments, '{"q":"parley"}');
    const out = await client.conversations.items.retrieve(ids[2], { conversation_id: conversation.id });
    assert.equal(out.output, 'a gateway');

    const after = await client.conversations.items.delete(ids[1], { conversation_id: conversation.id });
    assert.equal(after.object, 'conversation');
    assert.equal(after.id, conversation.id);
    await assert.rejects(client.conversations.items.retrieve(ids[1], { conversation_id: conversation.id }),
      (e) => e instanceof OpenAI.NotFoundError);
    const left = await client.conversations.items.list(conversation.id, { order: 'asc' });
    assert.deepEqual(left.data.map((i) => i.id), [ids[0], ids[2], ids[3]]);
  });

  test('bad input is the SDK error with its status and param', async () => {
    const items = Array.from({ length: 21 }, () => ({ type: 'message', role: 'user', content: 'x' }));
    await assert.rejects(client.conversations.create({ items }), (e) => {
      assert.equal(e.status, 422);
      assert.equal(e.param, 'items');
      return true;
    });
    await assert.rejects(client.conversations.create({ items: [{ type: 'reasoning', summary: [] }] }), (e) => e.status === 422 && e.param === 'items[0].type');
    await assert.rejects(client.conversations.create({ metadata: { n: 1 } }), (e) => e.status === 422 && e.param === 'metadata.n');
  });
});
