// Stream translation at its edges: usage stripping on pass-through, cut streams, error events, malformed events.
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { ProviderError } from '../../../../sidecar/errors.js';
import { AnthropicPassThroughStream } from '../../../../sidecar/translate/anthropic-pass-through-stream.js';
import { AnthropicToOpenAIStream } from '../../../../sidecar/translate/anthropic-stream-to-openai.js';
import { OpenAIPassThroughStream } from '../../../../sidecar/translate/openai-pass-through-stream.js';
import { OpenAIToAnthropicStream } from '../../../../sidecar/translate/openai-stream-to-anthropic.js';
import type { StreamTranslator } from '../../../../sidecar/translate/stream-translator.js';

const chunk = (extra: Record<string, unknown>) =>
  JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }], ...extra });
const usageChunk = JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });

describe('OpenAI pass-through stream', () => {
  it('removes the usage the gateway asked for when the app did not, and reads it', () => {
    const t = new OpenAIPassThroughStream('p', false);
    expect(t.event({ event: undefined, data: chunk({ usage: null }) })).toBe(`data: ${chunk({})}\n\n`);
    expect(t.event({ event: undefined, data: usageChunk })).toBe('');
    expect(t.event({ event: undefined, data: '[DONE]' })).toBe('data: [DONE]\n\n');
    expect(t.usage).toEqual({ inputTokens: 3, outputTokens: 4, cachedInputTokens: 0, cacheWriteTokens: 0 });
    expect(t.end()).toBe('');
  });

  it('forwards chunks byte for byte when the app asked for usage', () => {
    const t = new OpenAIPassThroughStream('p', true);
    expect(t.event({ event: undefined, data: chunk({ usage: null }) })).toBe(`data: ${chunk({ usage: null })}\n\n`);
    expect(t.event({ event: undefined, data: usageChunk })).toBe(`data: ${usageChunk}\n\n`);
    expect(t.usage?.outputTokens).toBe(4);
  });

  it('keeps content when usage rides on a content chunk (continuous usage servers)', () => {
    const t = new OpenAIPassThroughStream('p', false);
    const out = t.event({ event: undefined, data: chunk({ usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }) });
    expect(JSON.parse(out.slice(6))).toEqual(JSON.parse(chunk({})));
    expect(t.usage?.inputTokens).toBe(1);
  });

  it('fails a stream cut before finishing, and completes one that finished without [DONE]', () => {
    const cut = new OpenAIPassThroughStream('p', false);
    cut.event({ event: undefined, data: chunk({}) });
    expect(() => cut.end()).toThrow(GatewayError);
    const finished = new OpenAIPassThroughStream('p', false);
    finished.event({ event: undefined, data: chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) });
    expect(finished.end()).toBe('data: [DONE]\n\n');
  });

  it('raises an error chunk as a ProviderError', () => {
    const t = new OpenAIPassThroughStream('p', false);
    expect(() => t.event({ event: undefined, data: '{"error":{"message":"boom","type":"server_error"}}' })).toThrow(ProviderError);
  });

  it('reports malformed event data as an upstream error, not an internal one', () => {
    const t = new OpenAIPassThroughStream('p', false);
    try {
      t.event({ event: undefined, data: '{"usage": {oops' });
      expect.unreachable();
    } catch (err) {
      expect((err as GatewayError).code).toBe('llmgw_upstream_error');
    }
  });
});

describe('Anthropic pass-through stream', () => {
  it('reads input usage from message_start and the final counts from message_delta', () => {
    const t = new AnthropicPassThroughStream('p');
    t.event({ event: 'message_start', data: '{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":4,"output_tokens":1}}}' });
    const out = t.event({ event: 'message_delta', data: '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":20}}' });
    expect(out).toBe('event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":20}}\n\n');
    expect(t.usage).toEqual({ inputTokens: 14, outputTokens: 20, cachedInputTokens: 4, cacheWriteTokens: 0 });
    t.event({ event: 'message_stop', data: '{"type":"message_stop"}' });
    expect(t.end()).toBe('');
  });

  it('maps an overloaded_error event to a 529 ProviderError', () => {
    const t = new AnthropicPassThroughStream('p');
    try {
      t.event({ event: 'error', data: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as ProviderError).status).toBe(529);
    }
  });

  it('fails a stream that ends without message_stop', () => {
    const t = new AnthropicPassThroughStream('p');
    t.event({ event: 'message_start', data: '{"type":"message_start","message":{"usage":{"input_tokens":1,"output_tokens":1}}}' });
    expect(() => t.end()).toThrow(/ended the stream before it completed/);
  });
});

describe('cross-format streams', () => {
  it('Anthropic → OpenAI: a stream cut before message_delta fails; one cut after it completes', () => {
    const cut = new AnthropicToOpenAIStream({ providerId: 'p', includeUsage: false, created: 0 });
    cut.event({ event: 'message_start', data: '{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":1}}}' });
    expect(() => cut.end()).toThrow(GatewayError);
    const late = new AnthropicToOpenAIStream({ providerId: 'p', includeUsage: false, created: 0 });
    late.event({ event: 'message_delta', data: '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}' });
    expect(late.end()).toBe('data: [DONE]\n\n');
  });

  it('OpenAI → Anthropic: a stream cut before the finish fails', () => {
    const t = new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 5 });
    t.event({ event: undefined, data: chunk({}) });
    expect(() => t.end()).toThrow(GatewayError);
  });
});

describe('malformed upstream events', () => {
  const openaiTranslators = (): [string, StreamTranslator][] => [
    ['OpenAI pass-through', new OpenAIPassThroughStream('p', false)],
    ['OpenAI pass-through, usage asked by the app', new OpenAIPassThroughStream('p', true)],
    ['OpenAI → Anthropic', new OpenAIToAnthropicStream({ providerId: 'p', promptTokensEstimate: 5 })],
  ];
  const anthropicTranslators = (): [string, StreamTranslator][] => [
    ['Anthropic pass-through', new AnthropicPassThroughStream('p')],
    ['Anthropic → OpenAI', new AnthropicToOpenAIStream({ providerId: 'p', includeUsage: false, created: 0 })],
  ];
  const upstreamError = (f: () => unknown): GatewayError => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(GatewayError);
      return err as GatewayError;
    }
    throw new Error('expected the event to be refused');
  };

  it('refuses OpenAI chunks that are not JSON or lack choices, after good ones, in every translation', () => {
    // The first one ends like the usual chunk, which the pass-through once forwarded without parsing.
    for (const bad of ['{"id":"c1",oops,"usage":null}', '{"choices":[{"index":0,"delta":{"content":"x"}}', '[1]', '{"id":"c1","object":"chat.completion.chunk","usage":null}', '{"choices":["x"]}']) {
      for (const [name, t] of openaiTranslators()) {
        t.event({ event: undefined, data: chunk({ usage: null }) });
        const e = upstreamError(() => t.event({ event: undefined, data: bad }));
        expect(e.code, `${name}: ${bad}`).toBe('llmgw_upstream_error');
        expect(e.retryable).toBe(true);
      }
    }
  });

  it('refuses Anthropic events that are not JSON, have no type, or miss their object, in both translations', () => {
    const start = '{"type":"message_start","message":{"id":"m","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}';
    const bad: [string, string][] = [
      ['content_block_delta', '{"type":"content_block_delta",'],
      ['content_block_delta', '{"index":0,"delta":{"type":"text_delta","text":"x"}}'],
      ['content_block_start', '{"type":"content_block_start","index":0}'],
      ['message_delta', '{"type":"message_delta","usage":{"output_tokens":2}}'],
      ['message_stop', 'stop'],
    ];
    for (const [event, data] of bad) {
      for (const [name, t] of anthropicTranslators()) {
        t.event({ event: 'message_start', data: start });
        expect(upstreamError(() => t.event({ event, data })).code, `${name}: ${data}`).toBe('llmgw_upstream_error');
      }
    }
  });

  it('leaves alone what Anthropic SDKs skip: pings and unnamed events', () => {
    for (const [, t] of anthropicTranslators()) {
      expect(() => t.event({ event: 'ping', data: 'not json' })).not.toThrow();
      expect(() => t.event({ event: undefined, data: 'not json' })).not.toThrow();
    }
  });

  it('still forwards valid chunks byte for byte: an empty choices list, a chunk without usage', () => {
    const t = new OpenAIPassThroughStream('p', false);
    const azureFilter = '{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}';
    expect(t.event({ event: undefined, data: azureFilter })).toBe(`data: ${azureFilter}\n\n`);
    expect(t.event({ event: undefined, data: chunk({}) })).toBe(`data: ${chunk({})}\n\n`);
  });
});
