// Prompt caching end to end (issue 19, part 3): breakpoints an OpenAI-format app cannot set are added for
// an Anthropic target when the model asks for it (`promptCache: auto`), an Anthropic app's own
// `cache_control` passes through untouched, and the cache reads a provider reports reach the app in its
// format (Chat, Responses, Messages; streams included) and the access log. The fake provider reports half
// of a prompt containing [fake:cached] as read from its cache, and (Anthropic) a quarter of one containing
// [fake:cache-write] as written to it.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accessLines, APP_KEY, eventually, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  stack = await startStack({
    config: (raw) => {
      const models = raw.models as Record<string, unknown>;
      models['claude-cached'] = { targets: [{ provider: 'claude', model: 'claude-haiku-4-5' }], promptCache: 'auto' };
      return raw;
    },
  });
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.requests.length = 0;
});

const tools: OpenAI.Chat.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'search', description: 'Search the docs', parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
  { type: 'function', function: { name: 'open', description: 'Open a page', parameters: { type: 'object', properties: { url: { type: 'string' } } } } },
];
const ephemeral = { type: 'ephemeral' };
const upstreamBody = (): Record<string, unknown> => stack.fake.requests.at(-1)!.body as Record<string, unknown>;

describe('prompt caching', () => {
  it('adds breakpoints at the end of the system prompt, the tools and the conversation for promptCache: auto', async () => {
    await openai.chat.completions.create({
      model: 'claude-cached',
      tools,
      messages: [
        { role: 'system', content: 'You are the docs assistant.' },
        { role: 'user', content: 'Find the install page' },
        { role: 'assistant', content: 'Which product?' },
        { role: 'user', content: 'The gateway' },
      ],
    });
    const body = upstreamBody();
    expect(body.system).toEqual([{ type: 'text', text: 'You are the docs assistant.', cache_control: ephemeral }]);
    const sentTools = body.tools as Record<string, unknown>[];
    expect(sentTools[0]!.cache_control).toBeUndefined();
    expect(sentTools[1]!.cache_control).toEqual(ephemeral);
    const messages = body.messages as { role: string; content: unknown }[];
    expect(messages.slice(0, 2)).toEqual([
      { role: 'user', content: 'Find the install page' },
      { role: 'assistant', content: 'Which product?' },
    ]);
    expect(messages[2]).toEqual({ role: 'user', content: [{ type: 'text', text: 'The gateway', cache_control: ephemeral }] });
  });

  it('adds none for a model that does not ask for them', async () => {
    await openai.chat.completions.create({ model: 'claude-haiku', tools, messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Hi' }] });
    expect(JSON.stringify(upstreamBody())).not.toContain('cache_control');
  });

  it('reports cache reads in the Chat usage, streamed or not, and in the access log', async () => {
    const content = 'Long shared context [fake:cached] and a question';
    const res = await openai.chat.completions.create({ model: 'claude-cached', messages: [{ role: 'user', content }] });
    const cached = res.usage!.prompt_tokens_details!.cached_tokens!;
    expect(cached).toBe(Math.floor(Math.ceil(content.length / 4) / 2));
    expect(res.usage!.prompt_tokens).toBe(Math.ceil(content.length / 4));
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ tokensIn: res.usage!.prompt_tokens, cachedTokensIn: cached }));

    const stream = await openai.chat.completions.create({ model: 'claude-cached', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content }] });
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) usage = chunk.usage ?? usage;
    expect(usage!.prompt_tokens_details!.cached_tokens).toBe(cached);
  });

  it('reports cache reads in the Responses usage, with the breakpoints added on the way', async () => {
    const input = 'Long shared context [fake:cached] and a question';
    const res = await openai.responses.create({ model: 'claude-cached', instructions: 'Be brief.', input });
    expect(res.usage!.input_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(upstreamBody().system).toEqual([{ type: 'text', text: 'Be brief.', cache_control: ephemeral }]);
  });

  it('passes an Anthropic app\'s own cache_control through untouched and reports its cache reads as Anthropic does', async () => {
    const request = {
      model: 'claude-haiku',
      max_tokens: 100,
      system: [{ type: 'text' as const, text: 'Shared context [fake:cached] for every turn', cache_control: { type: 'ephemeral' as const, ttl: '1h' as const } }],
      messages: [{ role: 'user' as const, content: 'Hi' }],
    };
    const res = await anthropic.messages.create(request);
    expect(upstreamBody()).toEqual({ ...request, model: 'claude-haiku-4-5' });
    expect(res.usage.cache_read_input_tokens).toBeGreaterThan(0);
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ cachedTokensIn: res.usage.cache_read_input_tokens }));
  });

  it('reports cache writes in the app\'s format and the access log', async () => {
    const content = 'A system prompt worth caching [fake:cache-write] then the question';
    const message = await anthropic.messages.create({ model: 'claude-haiku', max_tokens: 50, messages: [{ role: 'user', content }] });
    const written = Math.floor(Math.ceil(content.length / 4) / 4);
    expect(message.usage.cache_creation_input_tokens).toBe(written);
    expect(message.usage.input_tokens).toBe(Math.ceil(content.length / 4) - written);
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ tokensIn: Math.ceil(content.length / 4), cacheWriteTokensIn: written }));
    const chat = await openai.chat.completions.create({ model: 'claude-cached', messages: [{ role: 'user', content }] });
    expect(chat.usage!.prompt_tokens).toBe(Math.ceil(content.length / 4));
    expect((chat.usage!.prompt_tokens_details as Record<string, unknown>).cache_write_tokens).toBe(written);
  });

  it('takes an Anthropic app\'s cache_control requests on every kind of provider', async () => {
    for (const model of ['claude-haiku', 'gpt-4o-mini', 'llama']) {
      const res = await anthropic.messages.create({
        model,
        max_tokens: 50,
        system: [{ type: 'text', text: 'Shared context', cache_control: { type: 'ephemeral' } }],
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi', cache_control: { type: 'ephemeral' } }] }],
      });
      expect(res.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake provider. You said: Hi' });
      // OpenAI-format providers cache prompts by themselves: the markers have nothing to say to them.
      if (model !== 'claude-haiku') expect(JSON.stringify(upstreamBody())).not.toContain('cache_control');
    }
  });
});
