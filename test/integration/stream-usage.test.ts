// Usage where clients look for it, through the real sidecar: an Anthropic-format app streaming from a
// model routed to an OpenAI upstream (which reports usage only in its last chunk) sees the prompt count
// in message_start (the sidecar's estimate) and the exact final counts in message_delta, read both by the
// official SDK and by LangChain's ChatAnthropic; and every translation direction read by LangChain's chat
// models, which report usage as `usage_metadata`.
import Anthropic from '@anthropic-ai/sdk';
import { ChatAnthropic } from '@langchain/anthropic';
import type { AIMessageChunk } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHED_MARKER } from '../../sidecar/fake-provider/reply.js';
import type { GatewayRequest } from '../../sidecar/pipeline/types.js';
import { promptTokens } from '../../sidecar/quota/estimate.js';
import { APP_KEY, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let anthropic: Anthropic;

beforeAll(async () => {
  stack = await startStack();
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());

const params = (content: string) =>
  ({ model: 'gpt-4o-mini', max_tokens: 200, system: 'Answer briefly.', messages: [{ role: 'user' as const, content }] }) satisfies Anthropic.MessageCreateParams;

/** The sidecar's estimate for this request body (the count message_start must carry). */
const estimateFor = (body: Record<string, unknown>): number => promptTokens({ body } as unknown as GatewayRequest);

/** The last upstream call went to the OpenAI API asking for usage at the end of the stream. */
function expectOpenAIUpstreamWithStreamUsage(): void {
  const u = stack.fake.requests.at(-1)!;
  expect(u.path).toBe('/v1/chat/completions');
  expect((u.body as { stream_options?: unknown }).stream_options).toEqual({ include_usage: true });
}

describe('Anthropic app → OpenAI upstream, streaming', () => {
  it('the SDK stream helper sees the prompt count in message_start and the exact counts in its final message', async () => {
    const body = params(`Tell me a story ${CACHED_MARKER} about usage`);
    const stream = anthropic.messages.stream(body);
    const starts: Anthropic.Usage[] = [];
    const deltas: Anthropic.MessageDeltaUsage[] = [];
    stream.on('streamEvent', (ev) => {
      // Copies: the SDK's snapshot is this very message, and message_delta overwrites its usage.
      if (ev.type === 'message_start') starts.push({ ...ev.message.usage });
      if (ev.type === 'message_delta') deltas.push({ ...ev.usage });
    });
    const final = await stream.finalMessage();
    expectOpenAIUpstreamWithStreamUsage();

    expect(starts).toHaveLength(1);
    expect(starts[0]!.input_tokens).toBeGreaterThan(0);
    expect(starts[0]!.input_tokens).toBe(estimateFor(body));
    expect(starts[0]!.output_tokens).toBe(0);

    // The fake counts the translated prompt at 4 characters a token and reports half of it cached.
    expect(deltas).toHaveLength(1);
    const delta = deltas[0]!;
    expect(delta.cache_read_input_tokens).toBeGreaterThan(0);
    expect(delta.output_tokens).toBe(final.content[0]!.type === 'text' ? final.content[0]!.text.match(/\S+\s*/g)!.length : -1);
    expect(final.usage).toMatchObject({
      input_tokens: delta.input_tokens,
      output_tokens: delta.output_tokens,
      cache_read_input_tokens: delta.cache_read_input_tokens,
      cache_creation_input_tokens: 0,
    });
    expect(final.usage.input_tokens).toBeGreaterThan(0);
  });

  it('a reader taking input from message_start and output from message_delta sees input tokens', async () => {
    const body = params('How many tokens did I send?');
    // As @langchain/anthropic reads the raw events of messages.create({ stream: true }): input_tokens from
    // message_start, output_tokens summed over message_start and message_delta, message_delta's input ignored.
    const events = await anthropic.messages.create({ ...body, stream: true });
    let input = 0;
    let output = 0;
    let startSeen = false;
    for await (const ev of events) {
      if (ev.type === 'message_start') {
        startSeen = true;
        input += ev.message.usage.input_tokens;
        output += ev.message.usage.output_tokens;
      } else if (ev.type === 'message_delta') {
        output += ev.usage.output_tokens;
      }
    }
    expect(startSeen).toBe(true);
    expect(input).toBeGreaterThan(0);
    expect(input).toBe(estimateFor(body));
    expect(output).toBe('Hello from the fake provider. You said: How many tokens did I send?'.match(/\S+\s*/g)!.length);
  });

  it('a reader of message_delta alone finds the exact input count there too', async () => {
    const body = params('Only the delta please');
    const events = await anthropic.messages.create({ ...body, stream: true });
    let deltaUsage: Anthropic.MessageDeltaUsage | undefined;
    for await (const ev of events) if (ev.type === 'message_delta') deltaUsage = ev.usage;
    expect(deltaUsage?.input_tokens).toBeGreaterThan(0);
    // Non-streaming, the same prompt is reported exactly: the stream's final count must agree.
    const msg = await anthropic.messages.create(body);
    expect(deltaUsage?.input_tokens).toBe(msg.usage.input_tokens);
    expect(deltaUsage?.output_tokens).toBe(msg.usage.output_tokens);
  });
});

describe('LangChain chat models, every translation direction', () => {
  const anthropicChat = (model: string) =>
    new ChatAnthropic({ model, anthropicApiUrl: stack.url, apiKey: APP_KEY, maxTokens: 200, maxRetries: 0 });
  const openaiChat = (model: string) =>
    new ChatOpenAI({ model, apiKey: APP_KEY, configuration: { baseURL: `${stack.url}/v1` }, maxTokens: 200, maxRetries: 0, streamUsage: true });

  /** Streams `prompt` and merges the chunks as LangChain apps do; the merged message's usage_metadata. */
  async function streamed(chat: ChatAnthropic | ChatOpenAI, prompt: string) {
    let merged: AIMessageChunk | undefined;
    for await (const chunk of await chat.stream(prompt)) merged = merged === undefined ? chunk : merged.concat(chunk);
    return merged!.usage_metadata;
  }

  const cases = [
    { name: 'ChatAnthropic → OpenAI upstream (translated)', chat: () => anthropicChat('gpt-4o-mini'), path: '/v1/chat/completions', extraOutput: 0 },
    // Passed through untouched: Anthropic's message_start says output_tokens 1, which LangChain adds to
    // message_delta's (cumulative) count, with the real API as here.
    { name: 'ChatAnthropic → Anthropic upstream', chat: () => anthropicChat('claude-haiku'), path: '/v1/messages', extraOutput: 1 },
    { name: 'ChatOpenAI → Anthropic upstream (translated)', chat: () => openaiChat('claude-haiku'), path: '/v1/messages', extraOutput: 0 },
    { name: 'ChatOpenAI → OpenAI upstream', chat: () => openaiChat('gpt-4o-mini'), path: '/v1/chat/completions', extraOutput: 0 },
  ];
  for (const c of cases) {
    it(`${c.name}: streamed and invoked, the same input and output tokens`, async () => {
      const prompt = `Count my tokens please, ${c.name}`;
      const invoked = (await c.chat().invoke(prompt)).usage_metadata;
      expect(stack.fake.requests.at(-1)!.path).toBe(c.path);
      const fromStream = await streamed(c.chat(), prompt);
      expect(stack.fake.requests.at(-1)!.path).toBe(c.path);
      expect(invoked?.input_tokens).toBeGreaterThan(0);
      expect(invoked?.output_tokens).toBe(`Hello from the fake provider. You said: ${prompt}`.match(/\S+\s*/g)!.length);
      expect(fromStream?.input_tokens).toBeGreaterThan(0);
      expect(fromStream?.input_tokens).toBe(invoked?.input_tokens);
      expect(fromStream?.output_tokens).toBe(invoked!.output_tokens + c.extraOutput);
      expect(fromStream?.total_tokens).toBe(fromStream!.input_tokens + fromStream!.output_tokens);
    });
  }
});
