// OpenAI's Responses API on parley through the official `openai` SDK: responses.create (plain,
// streamed, with tools and a function_call_output round trip, previous_response_id across two
// providers), background + responses.retrieve(id, {stream: true, starting_after}) to resume,
// responses.del (delete) and responses.inputItems.list. parley translates each call to the chat
// completions of two parley-mock instances (two providers, two models).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { startParley, tempDir, sleep } from '../integration/harness.mjs';
import { startMock, writeProviderConfig, adminToken, createServiceKey, mockReply } from './setup.mjs';

const SYSTEM_KEY = `sk-mock${randomBytes(20).toString('hex')}`;

const weather = {
  type: 'function', name: 'get_weather', description: 'Weather of a city', strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

// The text of a response's messages (the SDK adds output_text on create() only).
const outputText = (r) => r.output.filter((i) => i.type === 'message').flatMap((i) => i.content).map((c) => c.text).join('');

describe('openai SDK responses against parley', { timeout: 60000 }, () => {
  let alpha; let beta; let p; let dir; let client;

  before(async () => {
    alpha = await startMock(['--require-key', SYSTEM_KEY]);
    beta = await startMock(['--require-key', SYSTEM_KEY]);
    dir = tempDir('parley-e2e-responses-');
    const config = writeProviderConfig(dir, [
      { name: 'alpha', url: alpha.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['gpt-4o-mini'] },
      { name: 'beta', url: beta.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['beta-*'] },
    ]);
    p = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY } });
    const token = await adminToken(p.url);
    const key = (await createServiceKey(p.url, token, 'responses-sdk')).key;
    client = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });
  });

  after(async () => {
    if (p) await p.cleanup();
    if (alpha) await alpha.stop();
    if (beta) await beta.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('responses.create: plain, with output_text', async () => {
    const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'tell me a story', instructions: 'be terse' });
    assert.match(r.id, /^resp_/);
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, mockReply('tell me a story'));
    assert.equal(r.usage.input_tokens, 6);
    assert.equal(r.usage.output_tokens, 6);
  });

  test('responses.create stream: true and responses.stream: events and the final response', async () => {
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'stream a story', stream: true });
    const names = [];
    let text = '';
    let completed;
    for await (const event of stream) {
      names.push(event.type);
      assert.equal(event.sequence_number, names.length - 1);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    assert.equal(names[0], 'response.created');
    assert.equal(names.at(-1), 'response.completed');
    assert.equal(text, mockReply('stream a story'));
    assert.equal(completed.output[0].content[0].text, text);

    const helper = client.responses.stream({ model: 'gpt-4o-mini', input: 'the helper streams' });
    let pieces = '';
    helper.on('response.output_text.delta', (e) => { pieces += e.delta; });
    const final = await helper.finalResponse();
    assert.equal(pieces, mockReply('the helper streams'));
    assert.equal(outputText(final), pieces);
  });

  test('tools: a function call, then its output with previous_response_id', async () => {
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'use tool get_weather in Paris', tools: [weather] });
    const call = first.output.find((item) => item.type === 'function_call');
    assert.ok(call, JSON.stringify(first.output));
    assert.equal(call.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.arguments).city, 'string');
    const second = await client.responses.create({
      model: 'gpt-4o-mini', previous_response_id: first.id, tools: [weather],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"sky":"clear"}' }],
    });
    assert.equal(second.status, 'completed');
    assert.equal(second.previous_response_id, first.id);
    const sent = (await alpha.requests()).filter((r) => r.path === '/v1/chat/completions').map((r) => JSON.parse(r.body)).at(-1);
    assert.deepEqual(sent.messages.at(-1), { role: 'tool', tool_call_id: call.call_id, content: '{"sky":"clear"}' });
  });

  test('previous_response_id across two providers', async () => {
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'my name is Ada' });
    const second = await client.responses.create({ model: 'beta-1', input: 'what is my name', previous_response_id: first.id });
    assert.equal(second.model, 'beta-1');
    assert.equal(second.output_text, mockReply('what is my name'));
    const sent = (await beta.requests()).filter((r) => r.path === '/v1/chat/completions').map((r) => JSON.parse(r.body)).at(-1);
    assert.deepEqual(sent.messages, [
      { role: 'user', content: 'my name is Ada' },
      { role: 'assistant', content: mockReply('my name is Ada') },
      { role: 'user', content: 'what is my name' },
    ]);
  });

  test('background: retrieve until completed, then resume the events with starting_after', async () => {
    const queued = await client.responses.create({ model: 'gpt-4o-mini', input: 'work in the background', background: true });
    assert.ok(['queued', 'in_progress'].includes(queued.status));
    let r = queued;
    for (let i = 0; i < 200 && ['queued', 'in_progress'].includes(r.status); i++) {
      await sleep(50);
      r = await client.responses.retrieve(queued.id);
    }
    assert.equal(r.status, 'completed');
    assert.equal(outputText(r), mockReply('work in the background'));

    const streamed = await client.responses.create({ model: 'gpt-4o-mini', input: 'background stream to resume', background: true, stream: true });
    const all = [];
    for await (const event of streamed) all.push(event);
    assert.equal(all.at(-1).type, 'response.completed');
    const id = all[0].response.id;
    const resumed = await client.responses.retrieve(id, { stream: true, starting_after: 3 });
    const rest = [];
    for await (const event of resumed) rest.push(event);
    assert.deepEqual(rest, all.slice(4));
  });

  test('responses.inputItems.list and responses.del', async () => {
    const r = await client.responses.create({
      model: 'gpt-4o-mini',
      input: [{ role: 'user', content: 'one' }, { role: 'assistant', content: 'two' }, { role: 'user', content: 'three' }],
    });
    const page = await client.responses.inputItems.list(r.id, { order: 'asc', limit: 2 });
    assert.deepEqual(page.data.map((i) => i.content[0].text), ['one', 'two']);
    assert.equal(page.has_more, true);
    const every = [];
    for await (const item of client.responses.inputItems.list(r.id, { order: 'asc', limit: 1 })) every.push(item.content[0].text);
    assert.deepEqual(every, ['one', 'two', 'three']);
    // This SDK version names it del(); later ones delete().
    const remove = (client.responses.delete ?? client.responses.del).bind(client.responses);
    const deleted = await remove(r.id);
    if (deleted !== undefined) assert.deepEqual(deleted, { id: r.id, object: 'response.deleted', deleted: true });
    await assert.rejects(client.responses.retrieve(r.id), (e) => e instanceof OpenAI.NotFoundError);
  });
});
