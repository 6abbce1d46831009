// Where each translated stream puts its usage, read the way the official SDKs and LangChain read it:
// Anthropic apps find the prompt count in message_start and the final counts in message_delta; OpenAI
// apps that asked for include_usage find `usage: null` on every chunk and the counts in a last chunk.
import { describe, expect, it } from 'vitest';
import type { GatewayRequest } from '../../../../sidecar/pipeline/types.js';
import { promptTokens } from '../../../../sidecar/quota/estimate.js';
import type { Target } from '../../../../sidecar/routing/router.js';
import { AnthropicToOpenAIStream } from '../../../../sidecar/translate/anthropic-stream-to-openai.js';
import { createExchange } from '../../../../sidecar/translate/exchange.js';
import { OpenAIToAnthropicStream } from '../../../../sidecar/translate/openai-stream-to-anthropic.js';
import type { StreamTranslator } from '../../../../sidecar/translate/stream-translator.js';
import { sseFrames, type Frame } from '../../../helpers/sse-frames.js';

type Json = Record<string, unknown>;

const base = { id: 'chatcmpl-u', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
/** An OpenAI stream as OpenAI sends it with include_usage: `usage: null` on each chunk, the counts last. */
const openaiStream = (usage: Json | undefined): Json[] => [
  { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], usage: null },
  { ...base, choices: [{ index: 0, delta: { content: 'Hello' }, finish_reason: null }], usage: null },
  { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null },
  ...(usage === undefined ? [] : [{ ...base, choices: [], usage }]),
];

function run(t: StreamTranslator, events: { event?: string; data: unknown }[]): Frame[] {
  let out = '';
  for (const e of events) out += t.event({ event: e.event, data: typeof e.data === 'string' ? e.data : JSON.stringify(e.data) });
  return sseFrames(out + t.end());
}

const dataOf = (frames: Frame[], type: string): Json => frames.find((f) => f.event === type)!.data as Json;
const startUsage = (frames: Frame[]): Json => (dataOf(frames, 'message_start').message as Json).usage as Json;
const deltaUsage = (frames: Frame[]): Json => dataOf(frames, 'message_delta').usage as Json;

/** What @anthropic-ai/sdk's MessageStream makes of the usage: message_start's, overwritten by message_delta's non-null counters. */
function sdkUsage(frames: Frame[]): Json {
  const usage = { ...startUsage(frames) };
  for (const [k, v] of Object.entries(deltaUsage(frames))) if (v !== null && v !== undefined) usage[k] = v;
  return usage;
}

/** What @langchain/anthropic adds up: input from message_start only (message_delta counts 0), output from both. */
function langchainUsage(frames: Frame[]): { input_tokens: number; output_tokens: number } {
  const s = startUsage(frames);
  const d = deltaUsage(frames);
  return { input_tokens: s.input_tokens as number, output_tokens: (s.output_tokens as number) + (d.output_tokens as number) };
}

const anthropicReq = (body: Json): GatewayRequest =>
  ({ id: 'r', endpoint: 'messages', format: 'anthropic', model: 'gpt-4o-mini', body, stream: true, headers: {}, priority: 'interactive', tags: undefined }) as unknown as GatewayRequest;
const openaiTarget = { provider: { id: 'openai', type: 'openai', format: 'openai', config: { streamUsage: true } }, model: 'gpt-4o-mini', weight: 1 } as unknown as Target;

describe('OpenAI upstream → Anthropic app stream usage', () => {
  const final = { prompt_tokens: 1033, completion_tokens: 7, total_tokens: 1040, prompt_tokens_details: { cached_tokens: 1024 } };

  it('puts the prompt estimate in message_start while the upstream has not counted, and the exact counts in message_delta', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 980 });
    const frames = run(t, [...openaiStream(final).map((data) => ({ data })), { data: '[DONE]' }]);
    expect(frames[0]!.event).toBe('message_start');
    expect(startUsage(frames)).toEqual({ input_tokens: 980, output_tokens: 0 });
    expect(deltaUsage(frames)).toEqual({ input_tokens: 9, output_tokens: 7, cache_read_input_tokens: 1024, cache_creation_input_tokens: 0 });
    expect(sdkUsage(frames)).toEqual({ input_tokens: 9, output_tokens: 7, cache_read_input_tokens: 1024, cache_creation_input_tokens: 0 });
    expect(langchainUsage(frames)).toEqual({ input_tokens: 980, output_tokens: 7 });
  });

  it('keeps the estimate out of the usage the sidecar settles on', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 980 });
    for (const data of openaiStream(undefined)) t.event({ event: undefined, data: JSON.stringify(data) });
    expect(t.usage).toBeUndefined();
  });

  it('repeats the estimate in message_delta when the upstream never reports usage, so no reader sees a 0 prompt', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 12 });
    const frames = run(t, [...openaiStream(undefined).map((data) => ({ data })), { data: '[DONE]' }]);
    expect(startUsage(frames)).toEqual({ input_tokens: 12, output_tokens: 0 });
    expect(deltaUsage(frames)).toEqual({ input_tokens: 12, output_tokens: 0 });
    expect(sdkUsage(frames).input_tokens).toBe(12);
  });

  it('uses a count the upstream sent before the first content in message_start instead of the estimate', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 50 });
    const early = { prompt_tokens: 41, completion_tokens: 0, total_tokens: 41 };
    const events = openaiStream({ prompt_tokens: 41, completion_tokens: 1, total_tokens: 42 }).map((data, i) => ({ data: i === 0 ? { ...data, usage: early } : data }));
    const frames = run(t, [...events, { data: '[DONE]' }]);
    expect(startUsage(frames)).toMatchObject({ input_tokens: 41, output_tokens: 0 });
    expect(deltaUsage(frames)).toMatchObject({ input_tokens: 41, output_tokens: 1 });
  });

  it('writes message_start even for an answer with no content', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 3 });
    const frames = run(t, [{ data: { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] } }, { data: '[DONE]' }]);
    expect(frames.map((f) => f.event)).toEqual(['message_start', 'message_delta', 'message_stop']);
    expect(startUsage(frames).input_tokens).toBe(3);
  });

  it('holds message_start back only over the role opener: a reasoning chunk (which maps to nothing) releases it', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 8 });
    const [opener] = openaiStream(undefined);
    expect(t.event({ event: undefined, data: JSON.stringify(opener) })).toBe('');
    const reasoning = { ...base, choices: [{ index: 0, delta: { reasoning_content: 'Let me think' }, finish_reason: null }], usage: null };
    const frames = sseFrames(t.event({ event: undefined, data: JSON.stringify(reasoning) }));
    expect(frames.map((f) => f.event)).toEqual(['message_start']);
    expect(startUsage(frames)).toEqual({ input_tokens: 8, output_tokens: 0 });
  });

  it('takes the estimate from the app request through the exchange (the same count quota reserves)', () => {
    const body = { model: 'gpt-4o-mini', max_tokens: 100, system: 'You are terse.', messages: [{ role: 'user', content: 'Tell me about the weather in Paris today' }] };
    const req = anthropicReq(body);
    const estimate = promptTokens(req);
    expect(estimate).toBeGreaterThan(0);
    const t = createExchange(req, openaiTarget, { defaultMaxTokens: 4096, nowSeconds: () => 0 }).stream();
    const frames = run(t, [...openaiStream(final).map((data) => ({ data })), { data: '[DONE]' }]);
    expect(startUsage(frames).input_tokens).toBe(estimate);
    expect(deltaUsage(frames).output_tokens).toBe(7);
  });
});

describe('Anthropic upstream → OpenAI app stream usage', () => {
  const events = [
    { event: 'message_start', data: { type: 'message_start', message: { id: 'msg_1', model: 'claude', usage: { input_tokens: 20, cache_read_input_tokens: 5, output_tokens: 1 } } } },
    { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
    { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } } },
    { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 6 } } },
    { event: 'message_stop', data: { type: 'message_stop' } },
  ];

  it('with include_usage: `usage: null` on every chunk, then a chunk with no choices and the totals, as OpenAI sends', () => {
    const frames = run(new AnthropicToOpenAIStream({ providerId: 'p', includeUsage: true, created: 0 }), events);
    const chunks = frames.filter((f) => f.data !== '[DONE]').map((f) => f.data as Json);
    const last = chunks.at(-1)!;
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 25, completion_tokens: 6, total_tokens: 31, prompt_tokens_details: { cached_tokens: 5 } });
    expect(frames.at(-1)!.data).toBe('[DONE]');
  });

  it('without include_usage: no usage field anywhere, as OpenAI sends', () => {
    const frames = run(new AnthropicToOpenAIStream({ providerId: 'p', includeUsage: false, created: 0 }), events);
    for (const f of frames) if (f.data !== '[DONE]') expect(f.data).not.toHaveProperty('usage');
  });
});
