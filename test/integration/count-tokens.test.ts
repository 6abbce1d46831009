// `POST /v1/messages/count_tokens` through the real sidecar, called by the Anthropic SDK's countTokens:
// asked of Anthropic providers, tokenized for OpenAI models, estimated for the rest; refusals in
// Anthropic's shape; never metered, rate limited or cached.
import Anthropic from '@anthropic-ai/sdk';
import { encode } from 'gpt-tokenizer/encoding/o200k_base';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accessLines, APP_KEY, caught, eventually, startStack, UPSTREAM_KEY, type Stack } from '../helpers/stack.js';

let stack: Stack;
let anthropic: Anthropic;

beforeAll(async () => {
  stack = await startStack({
    config: (raw) => ({
      ...raw,
      models: {
        ...(raw.models as Record<string, unknown>),
        'claude-slow': { targets: [{ provider: 'claude', model: 'claude-haiku-4-5' }], timeouts: { firstByteMs: 200 } },
      },
    }),
  });
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.requests.length = 0;
  stack.fake.faults.clear();
});

const tokens = (text: string): number => encode(text).length;
const FOX = 'The quick brown fox jumps over the lazy dog, then naps in the sun.';
const weatherTool: Anthropic.Tool = {
  name: 'get_weather',
  description: 'Look up the weather for a city.',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe('an Anthropic target', () => {
  it('answers the provider count, equal to the input_tokens of the same messages, asked with the provider key and upstream model', async () => {
    const params = {
      model: 'claude-haiku',
      system: 'You are terse.',
      tools: [weatherTool],
      messages: [
        { role: 'user' as const, content: 'What is the weather in Paris?' },
        { role: 'assistant' as const, content: [{ type: 'tool_use' as const, id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: 'toolu_1', content: 'Sunny, 24 °C' }] },
      ],
    };
    const { data, response } = await anthropic.messages.countTokens(params).withResponse();
    const created = await anthropic.messages.create({ ...params, max_tokens: 64 });

    expect(data.input_tokens).toBeGreaterThan(0);
    expect(data.input_tokens).toBe(created.usage.input_tokens + (created.usage.cache_read_input_tokens ?? 0));
    expect(response.headers.get('x-llmgw-token-count')).toBe('provider');
    const up = stack.fake.requests.find((r) => r.path === '/v1/messages/count_tokens')!;
    expect(up).toBeDefined();
    expect(up.body).toMatchObject({ model: 'claude-haiku-4-5', system: 'You are terse.' });
    expect(up.headers['x-api-key']).toBe(UPSTREAM_KEY);
    expect(JSON.stringify(up.headers)).not.toContain(APP_KEY);
  });

  it('forwards the app’s anthropic-version and anthropic-beta headers', async () => {
    const headers = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'token-counting-2024-11-01' };
    await anthropic.messages.countTokens({ model: 'claude-haiku', messages: [{ role: 'user', content: 'hi' }] }, { headers });
    expect(stack.fake.requests.at(-1)!.headers).toMatchObject(headers);
  });

  it('passes a provider error on in Anthropic’s shape and status, without the provider key', async () => {
    stack.fake.faults.add({
      match: { path: '/v1/messages/count_tokens' },
      status: 529,
      body: { type: 'error', error: { type: 'overloaded_error', message: `Overloaded (request made with ${UPSTREAM_KEY})` } },
    });
    const err = await caught(anthropic.messages.countTokens({ model: 'claude-haiku', messages: [{ role: 'user', content: 'hi' }] }));
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(err.status).toBe(529);
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    expect(JSON.stringify(err.error)).toContain('Overloaded');
    expect(JSON.stringify(err.error)).not.toContain(UPSTREAM_KEY);
    expect(String(err.message)).not.toContain(UPSTREAM_KEY);
  });

  it('gives up on a provider that does not answer within the model’s first-byte timeout: 504 in Anthropic’s shape', async () => {
    stack.fake.faults.add({ match: { path: '/v1/messages/count_tokens' }, hang: true });
    const started = Date.now();
    const err = await caught(anthropic.messages.countTokens({ model: 'claude-slow', messages: [{ role: 'user', content: 'hi' }] }));
    expect(err.status).toBe(504);
    expect(err.error).toMatchObject({ type: 'error', error: { code: 'llmgw_upstream_timeout' } });
    expect(err.error.error.message).toContain('within 200 ms');
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('an OpenAI target', () => {
  it('counts with o200k_base: the text’s tokens plus 3 per message, its role, and 3 for the reply', async () => {
    const { data, response } = await anthropic.messages.countTokens({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: FOX }] }).withResponse();
    expect(data.input_tokens).toBe(tokens(FOX) + 3 + tokens('user') + 3);
    expect(response.headers.get('x-llmgw-token-count')).toBe('tokenizer-o200k_base');
    expect(stack.fake.requests).toHaveLength(0);
  });

  it('counts the system prompt, text blocks, tool calls and results, tool definitions, and images at a fixed estimate', async () => {
    const { input_tokens } = await anthropic.messages.countTokens({
      model: 'gpt-4o-mini',
      system: [{ type: 'text', text: 'You are terse.' }],
      tools: [weatherTool],
      messages: [
        { role: 'user', content: [{ type: 'text', text: FOX }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny' }] }] },
      ],
    });
    const perMessage = (role: string) => 3 + tokens(role);
    const expected =
      3 +
      perMessage('system') + tokens('You are terse.') +
      perMessage('user') + tokens(FOX) + 765 +
      perMessage('assistant') + tokens('get_weather') + tokens('{"city":"Paris"}') +
      perMessage('user') + tokens('Sunny') +
      9 + tokens('get_weather') + tokens('Look up the weather for a city.') + tokens(JSON.stringify(weatherTool.input_schema));
    expect(input_tokens).toBe(expected);
  });
});

describe('any other target', () => {
  it('estimates ~4 characters a token (rounded up), like the quota estimate', async () => {
    const text = 'x'.repeat(41);
    const { data, response } = await anthropic.messages.countTokens({ model: 'llama', system: 'abc', messages: [{ role: 'user', content: text }] }).withResponse();
    expect(data.input_tokens).toBe(Math.ceil((41 + 3) / 4));
    expect(response.headers.get('x-llmgw-token-count')).toBe('estimate');
    expect(stack.fake.requests).toHaveLength(0);
  });
});

describe('refusals', () => {
  it('refuses an unknown model with an Anthropic 404', async () => {
    const err = await caught(anthropic.messages.countTokens({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }));
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'not_found_error', code: 'llmgw_unknown_model' } });
  });

  it('refuses a body without messages with an Anthropic 400', async () => {
    const res = await request(`${stack.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-haiku' }),
    });
    expect(res.statusCode).toBe(400);
    expect(await res.body.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'llmgw_invalid_request' } });
    expect(stack.fake.requests).toHaveLength(0);
  });

  it('answers 405 to a GET', async () => {
    const res = await request(`${stack.url}/v1/messages/count_tokens`);
    expect(res.statusCode).toBe(405);
    expect(await res.body.json()).toMatchObject({ type: 'error', error: { code: 'llmgw_method_not_allowed' } });
  });
});

describe('metering and logging', () => {
  it('writes one access-log line with the model, provider and status, and no tokens spent', async () => {
    await anthropic.messages.countTokens({ model: 'claude-haiku', messages: [{ role: 'user', content: 'log me' }] });
    await eventually(() => {
      const line = accessLines(stack).findLast((l) => l.path === '/v1/messages/count_tokens');
      expect(line).toMatchObject({ model: 'claude-haiku', provider: 'claude', upstreamModel: 'claude-haiku-4-5', status: 200, stream: false });
      expect(line!.tokensIn).toBeUndefined();
    });
  });

  it('is not rate limited, metered or cached: counts beyond the limit all reach the provider, and the messages quota stays whole', async () => {
    const limited = await startStack({
      config: (raw) => ({ ...raw, storage: { path: join(mkdtempSync(join(tmpdir(), 'llmgw-count-it-')), 'llmgw.db') }, cache: { ttlSeconds: 60 }, rateLimits: { requestsPerMinute: 2 } }),
    });
    try {
      const client = new Anthropic({ baseURL: limited.url, apiKey: APP_KEY, maxRetries: 0 });
      const params = { model: 'claude-haiku', messages: [{ role: 'user' as const, content: 'count me' }] };
      for (let i = 0; i < 4; i++) expect((await client.messages.countTokens(params)).input_tokens).toBeGreaterThan(0);
      expect(limited.fake.requests.filter((r) => r.path === '/v1/messages/count_tokens')).toHaveLength(4);
      // Both requests of the minute are still there for real messages.
      for (let i = 0; i < 2; i++) await client.messages.create({ ...params, max_tokens: 16, messages: [{ role: 'user', content: `message ${i}` }] });
      expect(await caught(client.messages.create({ ...params, max_tokens: 16 }))).toMatchObject({ status: 429 });
    } finally {
      await limited.close();
    }
  });
});
