// One stored answer, every form a request may ask for: stream ↔ JSON in both wire formats, checked against
// the fake provider's own JSON/stream pairs, by round trips, and by the official SDKs' own accumulators.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { serveEntry } from '../../../../sidecar/cache/answer-forms.js';
import type { CachedAnswer } from '../../../../sidecar/cache/cache-store.js';
import { anthropicEvents, anthropicMessage } from '../../../../sidecar/fake-provider/anthropic-api.js';
import { openaiChunks, openaiCompletion } from '../../../../sidecar/fake-provider/openai-api.js';
import type { Plan } from '../../../../sidecar/fake-provider/reply.js';
import { SseParser } from '../../../../sidecar/http/sse-parser.js';
import type { GatewayRequest, GatewayResponse } from '../../../../sidecar/pipeline/types.js';
import { anthropicResponseToStream } from '../../../../sidecar/translate/anthropic-response-to-stream.js';
import { anthropicStreamToResponse } from '../../../../sidecar/translate/anthropic-stream-to-response.js';
import { openaiResponseToStream } from '../../../../sidecar/translate/openai-response-to-stream.js';
import { openaiStreamToResponse } from '../../../../sidecar/translate/openai-stream-to-response.js';
import { sseFrames } from '../../../helpers/sse-frames.js';

const events = (frames: string[]) => new SseParser().push(frames.join(''));
const counts = { promptTokens: 11, completionTokens: 7, cachedTokens: 3, cacheWriteTokens: 0 };
const plans: Record<string, Plan> = {
  text: { kind: 'text', words: ['Hello', ' there', ', friend.'], finish: 'stop', stopSequence: null },
  tool: { kind: 'tool', name: 'get_weather', args: { city: 'Paris', days: [1, 2], metric: true } },
};

const RICH_OPENAI = {
  id: 'chatcmpl-rich',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-4o-2024-08-06',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'Paris is the capital.', refusal: null, annotations: [] },
      logprobs: { content: [{ token: 'Paris', logprob: -0.1, bytes: [80, 97, 114, 105, 115], top_logprobs: [] }], refusal: null },
      finish_reason: 'stop',
    },
    {
      index: 1,
      message: {
        role: 'assistant',
        content: null,
        refusal: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    },
    { index: 2, message: { role: 'assistant', content: null, refusal: "I can't help with that." }, logprobs: null, finish_reason: 'stop' },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42, prompt_tokens_details: { cached_tokens: 4 } },
  service_tier: 'default',
  system_fingerprint: 'fp_rich',
};

const RICH_ANTHROPIC = {
  id: 'msg_rich',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5',
  content: [
    { type: 'thinking', thinking: 'The user wants the weather.', signature: 'sig-123' },
    { type: 'redacted_thinking', data: 'opaque' },
    { type: 'text', text: 'Checking Paris.', citations: [{ type: 'char_location', cited_text: 'Paris', document_index: 0, document_title: null, start_char_index: 0, end_char_index: 5 }] },
    { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris', days: [1, 2] } },
  ],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: { input_tokens: 20, cache_creation_input_tokens: 0, cache_read_input_tokens: 5, output_tokens: 40 },
};

/** An SDK client whose every request is answered with `sse`. */
const answering = (sse: string) => async () => new Response(sse, { status: 200, headers: { 'content-type': 'text/event-stream' } });

describe('OpenAI stream → JSON answer', () => {
  for (const [name, plan] of Object.entries(plans)) {
    for (const includeUsage of [true, false]) {
      it(`adds up the fake's ${name} stream (usage chunk: ${includeUsage}) to the fake's JSON answer`, () => {
        const ids = { id: 'chatcmpl-1', callId: 'call_1', created: 1_700_000_000 };
        // The fake's JSON message carries `annotations: []`, which its stream never sends.
        const completion = openaiCompletion('gpt-4o-mini', plan, counts, ids);
        const choice = (completion.choices as { message: { annotations: unknown } }[])[0]!;
        const { annotations: _, ...message } = choice.message;
        const expected = { ...completion, choices: [{ ...choice, message }] };
        const known = { inputTokens: 11, outputTokens: 7, cachedInputTokens: 3, cacheWriteTokens: 0 };
        const got = openaiStreamToResponse(events(openaiChunks('gpt-4o-mini', plan, counts, ids, includeUsage)), known);
        if (includeUsage) expect(got).toEqual(expected);
        else expect(got).toEqual({ ...expected, usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18, prompt_tokens_details: { cached_tokens: 3 } } });
      });
    }
  }

  it('gives nothing for a stream without usage when none is known, nor for one it cannot add up', () => {
    const frames = openaiChunks('m', plans.text!, counts, { id: 'c', callId: 'x', created: 1 }, false);
    expect(openaiStreamToResponse(events(frames), undefined)).toBeUndefined();
    const odd = frames.map((f, i) => (i === 1 ? f.replace('"content":', '"future_field":"x","content":') : f));
    expect(openaiStreamToResponse(events(odd), { inputTokens: 1, outputTokens: 1, cachedInputTokens: 0, cacheWriteTokens: 0 })).toBeUndefined();
    const cut = frames.filter((f) => !f.includes('finish_reason":"stop'));
    expect(openaiStreamToResponse(events(cut), { inputTokens: 1, outputTokens: 1, cachedInputTokens: 0, cacheWriteTokens: 0 })).toBeUndefined();
  });

  it('agrees with the official SDK adding up the same stream', async () => {
    const frames = openaiResponseToStream(RICH_OPENAI, true)!;
    const client = new OpenAI({ apiKey: 'k', baseURL: 'http://sdk.invalid/v1', fetch: answering(frames.join('')) });
    const sdk = await client.chat.completions.stream({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).finalChatCompletion();
    const ours = openaiStreamToResponse(events(frames), undefined)! as typeof RICH_OPENAI;
    expect(ours.usage).toEqual(sdk.usage);
    expect(ours.id).toBe(sdk.id);
    expect(ours.choices).toHaveLength(sdk.choices.length);
    ours.choices.forEach((c, i) => {
      const s = sdk.choices[i]!;
      expect(c.finish_reason).toBe(s.finish_reason);
      expect(c.logprobs).toEqual(s.logprobs);
      expect(c.message.content).toBe(s.message.content);
      expect(c.message.refusal).toBe(s.message.refusal);
      expect((c.message as { tool_calls?: unknown }).tool_calls).toEqual(s.message.tool_calls);
    });
  });
});

describe('OpenAI JSON answer → stream', () => {
  it('round-trips: the stream adds up to the same answer', () => {
    expect(openaiStreamToResponse(events(openaiResponseToStream(RICH_OPENAI, true)!), undefined)).toEqual(RICH_OPENAI);
    expect(openaiStreamToResponse(events(openaiResponseToStream(RICH_OPENAI, false)!), { inputTokens: 12, outputTokens: 30, cachedInputTokens: 4, cacheWriteTokens: 0 })).toEqual({
      ...RICH_OPENAI,
      usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42, prompt_tokens_details: { cached_tokens: 4 } },
    });
  });

  it('is read by the official SDK as the same answer', async () => {
    const frames = openaiResponseToStream(RICH_OPENAI, true)!;
    const client = new OpenAI({ apiKey: 'k', baseURL: 'http://sdk.invalid/v1', fetch: answering(frames.join('')) });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices.find((c) => c.index === 0)?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe('Paris is the capital.');
    expect(usage).toEqual(RICH_OPENAI.usage);
  });

  it('ends with the usage chunk only when asked, and declines answers it does not know how to stream', () => {
    const withUsage = sseFrames(openaiResponseToStream(RICH_OPENAI, true)!.join(''));
    expect(withUsage.at(-1)?.data).toBe('[DONE]');
    expect(withUsage.at(-2)?.data).toMatchObject({ choices: [], usage: RICH_OPENAI.usage });
    expect(withUsage.slice(0, -2).every((f) => (f.data as { usage: unknown }).usage === null)).toBe(true);
    const without = sseFrames(openaiResponseToStream(RICH_OPENAI, false)!.join(''));
    expect(without.slice(0, -1).every((f) => !('usage' in (f.data as object)))).toBe(true);
    const odd = { ...RICH_OPENAI, choices: [{ ...RICH_OPENAI.choices[0]!, message: { role: 'assistant', content: 'x', future_field: { a: 1 } } }] };
    expect(openaiResponseToStream(odd, false)).toBeUndefined();
  });
});

describe('Anthropic stream ↔ JSON answer', () => {
  for (const [name, plan] of Object.entries(plans)) {
    it(`adds up the fake's ${name} stream to the fake's JSON answer`, () => {
      const ids = { id: 'msg_1', callId: 'toolu_1' };
      expect(anthropicStreamToResponse(events(anthropicEvents('claude-haiku-4-5', plan, counts, ids)))).toEqual(anthropicMessage('claude-haiku-4-5', plan, counts, ids));
    });
  }

  it('round-trips thinking, redacted thinking, citations and tool input', () => {
    expect(anthropicStreamToResponse(events(anthropicResponseToStream(RICH_ANTHROPIC)))).toEqual(RICH_ANTHROPIC);
  });

  it('agrees with the official SDK adding up the same stream', async () => {
    const client = new Anthropic({ apiKey: 'k', baseURL: 'http://sdk.invalid', fetch: answering(anthropicResponseToStream(RICH_ANTHROPIC).join('')) });
    const sdk = await client.messages.stream({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
    expect(sdk.content).toEqual(RICH_ANTHROPIC.content);
    expect(sdk.stop_reason).toBe('tool_use');
    expect(sdk.usage).toMatchObject(RICH_ANTHROPIC.usage);
  });

  it('gives nothing for a cut stream or one with an event it does not know', () => {
    const frames = anthropicResponseToStream(RICH_ANTHROPIC);
    expect(anthropicStreamToResponse(events(frames.slice(0, -1)))).toBeUndefined();
    const odd = [...frames.slice(0, 2), 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"future_delta","x":1}}\n\n', ...frames.slice(2)];
    expect(anthropicStreamToResponse(events(odd))).toBeUndefined();
  });
});

describe('serving an entry', () => {
  const req = (stream: boolean, body: Record<string, unknown> = {}, format: 'openai' | 'anthropic' = 'openai') =>
    ({ format, stream, body: { model: 'm', messages: [], ...body } }) as unknown as GatewayRequest;
  const entry = (form: CachedAnswer['form'], text: string, usage = true): CachedAnswer => ({ form, body: Buffer.from(text), createdMs: 0, inputTokens: usage ? 11 : null, outputTokens: usage ? 7 : null });
  const ids = { id: 'chatcmpl-1', callId: 'call_1', created: 1 };
  const text = async (res: GatewayResponse | undefined): Promise<string> => {
    if (res === undefined) throw new Error('declined');
    if (res.kind === 'json') return res.body.toString();
    let out = res.head;
    for await (const f of res.rest) out += f;
    return out;
  };
  const meta = () => ({ attempts: 0, cache: 'HIT' as const });

  it('replays a stream verbatim when the app asks for the usage it was recorded with', async () => {
    const recorded = openaiChunks('m', plans.text!, counts, ids, false).join('');
    expect(await text(serveEntry(entry('sse', recorded), req(true), meta()))).toBe(recorded);
    const withUsage = openaiChunks('m', plans.text!, counts, ids, true).join('');
    expect(await text(serveEntry(entry('sse+usage', withUsage), req(true, { stream_options: { include_usage: true } }), meta()))).toBe(withUsage);
  });

  it('adds the usage chunk from what the entry cost, or takes it out', async () => {
    const recorded = openaiChunks('m', plans.text!, counts, ids, false).join('');
    const added = sseFrames(await text(serveEntry(entry('sse', recorded), req(true, { stream_options: { include_usage: true } }), meta())));
    expect(added.at(-2)?.data).toMatchObject({ id: 'chatcmpl-1', choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } });
    expect(serveEntry(entry('sse', recorded, false), req(true, { stream_options: { include_usage: true } }), meta())).toBeUndefined();
    const withUsage = openaiChunks('m', plans.text!, counts, ids, true).join('');
    const removed = sseFrames(await text(serveEntry(entry('sse+usage', withUsage), req(true), meta())));
    expect(removed).toHaveLength(withUsage.split('\n\n').length - 2); // the usage chunk is gone
    expect(removed.some((f) => typeof f.data === 'object' && 'usage' in (f.data as object))).toBe(false);
    expect(removed.map((f) => f.data)).toEqual(sseFrames(recorded).map((f) => f.data));
  });

  it('declines, rather than fails, an entry whose bytes do not parse', () => {
    const odd = 'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: keep-alive\n\ndata: [DONE]\n\n';
    expect(serveEntry(entry('sse', odd), req(false), meta())).toBeUndefined();
    expect(serveEntry(entry('sse', odd), req(true, { stream_options: { include_usage: true } }), meta())).toBeUndefined();
    expect(serveEntry(entry('json', '{"id": "damaged'), req(true), meta())).toBeUndefined();
    expect(serveEntry(entry('sse', 'event: message_start\ndata: {oops\n\n'), req(false, {}, 'anthropic'), meta())).toBeUndefined();
  });

  it('answers JSON from a stream and a stream from JSON, in both formats', async () => {
    const json = JSON.stringify(openaiCompletion('m', plans.tool!, counts, ids));
    const asStream = sseFrames(await text(serveEntry(entry('json', json), req(true), meta())));
    expect(asStream.at(-1)?.data).toBe('[DONE]');
    const fromStream = JSON.parse(await text(serveEntry(entry('sse', openaiChunks('m', plans.tool!, counts, ids, false).join('')), req(false), meta())));
    expect(fromStream.choices[0].message.tool_calls).toEqual(JSON.parse(json).choices[0].message.tool_calls);
    const aIds = { id: 'msg_1', callId: 'toolu_1' };
    const message = anthropicMessage('c', plans.text!, counts, aIds);
    expect(JSON.parse(await text(serveEntry(entry('sse', anthropicEvents('c', plans.text!, counts, aIds).join('')), req(false, {}, 'anthropic'), meta())))).toEqual(message);
    const anthropicStream = await text(serveEntry(entry('json', JSON.stringify(message)), req(true, {}, 'anthropic'), meta()));
    expect(anthropicStreamToResponse(new SseParser().push(anthropicStream))).toEqual(message);
  });
});
