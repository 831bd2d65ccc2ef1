// A model served by a provider of kind "anthropic" (parley-mock in its Anthropic mode), through
// both official SDKs: @anthropic-ai/sdk's messages.create / messages.stream / countTokens relayed
// natively, and openai's chat.completions (plain, streamed with usage, tools) translated to the
// Messages API.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startParley, tempDir, json } from '../integration/harness.mjs';
import { startMock, writeProviderConfig, adminToken, createServiceKey, mockReply } from './setup.mjs';

const SYSTEM_KEY = `sk-ant-mock${randomBytes(20).toString('hex')}`;
const MODEL = 'claude-sonnet-4';

describe('official SDKs against a model on an Anthropic provider', { timeout: 60000 }, () => {
  let mock; let p; let dir; let anthropic; let openai;

  before(async () => {
    mock = await startMock(['--require-key', SYSTEM_KEY]);
    dir = tempDir('parley-e2e-anthropic-provider-');
    const config = writeProviderConfig(dir, [{ name: 'claude', kind: 'anthropic', url: mock.url, keyEnv: 'CLAUDE_SYSTEM_KEY', models: [MODEL, 'claude-*'] }]);
    p = await startParley({ args: ['--config', config], env: { CLAUDE_SYSTEM_KEY: SYSTEM_KEY } });
    const token = await adminToken(p.url);
    const key = (await createServiceKey(p.url, token, 'anthropic-provider-sdk')).key;
    anthropic = new Anthropic({ baseURL: p.url, apiKey: key, maxRetries: 0, timeout: 20000 });
    openai = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });
  });

  after(async () => {
    if (p) await p.cleanup();
    if (mock) await mock.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const recorded = async () => json(await fetch(`${mock.url}/_mock/requests`));
  const reset = () => fetch(`${mock.url}/_mock/reset`, { method: 'POST' });

  test('anthropic messages.create: relayed to the provider as the SDK sent it', async () => {
    await reset();
    const { data: message, response } = await anthropic.messages.create({
      model: MODEL, max_tokens: 256, system: 'You are terse.', messages: [{ role: 'user', content: 'tell me a story' }],
    }).withResponse();
    assert.match(message.id, /^msg_mock/);
    assert.deepEqual(message.content, [{ type: 'text', text: mockReply('tell me a story') }]);
    assert.equal(message.usage.input_tokens, 7);
    assert.ok(response.headers.get('request-id'));
    const [sent] = await recorded();
    assert.equal(sent.path, '/v1/messages');
    assert.equal(sent.x_api_key, SYSTEM_KEY);
    assert.equal(JSON.parse(sent.body).system, 'You are terse.');
  });

  test('anthropic messages.stream: the events and the final message', async () => {
    const stream = anthropic.messages.stream({ model: MODEL, max_tokens: 256, messages: [{ role: 'user', content: 'stream a story now' }] });
    let text = '';
    stream.on('text', (piece) => { text += piece; });
    const final = await stream.finalMessage();
    assert.equal(text, mockReply('stream a story now'));
    assert.equal(final.content[0].text, text);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, 6);
  });

  test('anthropic tools and countTokens', async () => {
    const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
    const message = await anthropic.messages.create({ model: MODEL, max_tokens: 256, tools, messages: [{ role: 'user', content: 'use tool get_weather for Paris' }] });
    assert.equal(message.stop_reason, 'tool_use');
    const call = message.content.find((b) => b.type === 'tool_use');
    assert.equal(call.name, 'get_weather');
    const count = await anthropic.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'four words right here' }] });
    assert.equal(count.input_tokens, 4);
  });

  test('anthropic errors are the SDK\'s classes', async () => {
    await assert.rejects(
      anthropic.messages.create({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }),
      (e) => e instanceof Anthropic.BadRequestError && e.status === 400,
    );
  });

  test('openai chat.completions.create: translated to the Messages API', async () => {
    await reset();
    const reply = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello from the openai sdk' }] });
    assert.equal(reply.object, 'chat.completion');
    assert.equal(reply.choices[0].message.content, mockReply('hello from the openai sdk'));
    assert.equal(reply.usage.prompt_tokens, 5);
    const [sent] = await recorded();
    assert.equal(sent.path, '/v1/messages');
  });

  test('openai streamed with include_usage, and tools', async () => {
    const stream = await openai.chat.completions.create({
      model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream please' }],
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, mockReply('stream please'));
    assert.equal(usage.prompt_tokens, 2);
    assert.equal(usage.completion_tokens, 4);

    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const withTool = await openai.chat.completions.create({ model: MODEL, tools, messages: [{ role: 'user', content: 'use tool get_weather for Rome' }] });
    assert.equal(withTool.choices[0].finish_reason, 'tool_calls');
    assert.equal(withTool.choices[0].message.tool_calls[0].function.name, 'get_weather');
  });
});
