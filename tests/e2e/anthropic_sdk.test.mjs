// Anthropic's Messages API on parley through the official @anthropic-ai/sdk: messages.create
// (plain, with tools and a tool_result round trip), messages.stream and stream: true,
// messages.countTokens, and errors as the SDK's own classes. parley translates each call to the
// chat completions of parley-mock (an OpenAI-compatible provider).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import { startParley, tempDir, json } from '../integration/harness.mjs';
import { startMock, writeProviderConfig, adminToken, createServiceKey, mockReply } from './setup.mjs';

const SYSTEM_KEY = `sk-mock${randomBytes(20).toString('hex')}`;

const weatherTool = {
  name: 'get_weather', description: 'Weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe('@anthropic-ai/sdk against parley', { timeout: 60000 }, () => {
  let mock; let p; let dir; let key; let client;

  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    dir = tempDir('parley-e2e-anthropic-');
    const config = writeProviderConfig(dir, [{ name: 'mock', url: mock.url, keyEnv: 'MOCK_SYSTEM_KEY', models: ['gpt-4o-mini', 'mock-*'] }]);
    p = await startParley({ args: ['--config', config], env: { MOCK_SYSTEM_KEY: SYSTEM_KEY } });
    const token = await adminToken(p.url);
    key = (await createServiceKey(p.url, token, 'anthropic-sdk')).key;
    client = new Anthropic({ baseURL: p.url, apiKey: key, maxRetries: 0, timeout: 20000 });
  });

  after(async () => {
    if (p) await p.cleanup();
    if (mock) await mock.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const reset = () => fetch(`${mock.url}/_mock/reset`, { method: 'POST' });
  const recorded = async () => json(await fetch(`${mock.url}/_mock/requests`));

  test('messages.create: a plain message', async () => {
    const { data: message, response } = await client.messages.create({
      model: 'gpt-4o-mini', max_tokens: 256, system: 'You are terse.',
      messages: [{ role: 'user', content: 'tell me a story' }],
    }).withResponse();
    assert.match(message.id, /^msg_/);
    assert.equal(message.type, 'message');
    assert.equal(message.role, 'assistant');
    assert.deepEqual(message.content, [{ type: 'text', text: mockReply('tell me a story') }]);
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(message.usage.input_tokens, 7); // system + user words, as the mock counts them
    assert.equal(message.usage.output_tokens, 6);
    assert.ok(response.headers.get('request-id'));
  });

  test('messages.stream: text events and the final message', async () => {
    const stream = client.messages.stream({ model: 'gpt-4o-mini', max_tokens: 256, messages: [{ role: 'user', content: 'stream a story now' }] });
    let text = '';
    stream.on('text', (piece) => { text += piece; });
    const final = await stream.finalMessage();
    assert.equal(text, mockReply('stream a story now'));
    assert.deepEqual(final.content, [{ type: 'text', text }]);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, 6);
    assert.equal(final.usage.input_tokens, 4);
  });

  test('messages.create with stream: true yields Anthropic\'s events in order', async () => {
    const events = [];
    for await (const event of await client.messages.create({
      model: 'gpt-4o-mini', max_tokens: 2, stream: true, messages: [{ role: 'user', content: 'cut me short please' }],
    })) events.push(event);
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(events.at(-2).delta.stop_reason, 'max_tokens');
    const text = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('');
    assert.equal(text, 'mock reply:');
  });

  test('tools: tool_use, then the tool_result round trip', async () => {
    await reset();
    // parley-mock's chat completions call no tool by themselves: the provider's answer is queued.
    await fetch(`${mock.url}/_mock/faults`, {
      method: 'POST',
      body: JSON.stringify({ faults: [{ status: 200, body: {
        id: 'chatcmpl-t', object: 'chat.completion', created: 1700000000, model: 'gpt-4o-mini',
        choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] } }],
        usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 },
      } }] }),
    });
    const call = await client.messages.create({
      model: 'gpt-4o-mini', max_tokens: 256, tools: [weatherTool], tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'weather in Oslo' }],
    });
    assert.equal(call.stop_reason, 'tool_use');
    assert.deepEqual(call.content[0], { type: 'text', text: 'Checking.' });
    const use = call.content[1];
    assert.equal(use.type, 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'Oslo' });
    const answer = await client.messages.create({
      model: 'gpt-4o-mini', max_tokens: 256, tools: [weatherTool],
      messages: [
        { role: 'user', content: 'weather in Oslo' },
        { role: 'assistant', content: call.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }, { type: 'text', text: 'and tomorrow' }] },
      ],
    });
    assert.equal(answer.content[0].text, mockReply('and tomorrow'));
    const sent = (await recorded()).map((r) => JSON.parse(r.body));
    assert.equal(sent[0].tool_choice, 'required');
    assert.equal(sent[0].tools[0].function.name, 'get_weather');
    assert.deepEqual(sent[1].messages.slice(1), [
      { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'call_w', content: 'sunny' },
      { role: 'user', content: 'and tomorrow' },
    ]);
  });

  test('messages.countTokens: parley\'s estimate, no provider call', async () => {
    await reset();
    const small = await client.messages.countTokens({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(Number.isInteger(small.input_tokens) && small.input_tokens > 0);
    const big = await client.messages.countTokens({ model: 'gpt-4o-mini', system: 'y'.repeat(800), messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(big.input_tokens >= small.input_tokens + 200);
    assert.equal((await recorded()).length, 0);
  });

  test('errors are the SDK\'s own classes', async () => {
    const bad = new Anthropic({ baseURL: p.url, apiKey: 'ai_wrongwrongwrongwrongwrongwrongwrongwron', maxRetries: 0 });
    await assert.rejects(bad.messages.create({ model: 'gpt-4o-mini', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
      (e) => { assert.ok(e instanceof Anthropic.AuthenticationError, e.constructor.name); assert.ok(e.requestID); return true; });
    await assert.rejects(client.messages.create({ model: 'claude-unknown', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
      (e) => { assert.ok(e instanceof Anthropic.NotFoundError, e.constructor.name); assert.equal(e.error.error.type, 'not_found_error'); return true; });
    await assert.rejects(client.messages.create({ model: 'gpt-4o-mini', max_tokens: 5, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'x' }] }),
      (e) => { assert.ok(e instanceof Anthropic.BadRequestError, e.constructor.name); assert.match(e.message, /thinking/); return true; });
  });
});
