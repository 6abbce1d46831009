// Which upstream answers and stream events are valid for their format: every rejection is a retryable
// 502 llmgw_upstream_error naming what is missing, never quoting the provider's text.
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { checkAnswerBytes, parseAnswer, parseAnthropicEvent, parseOpenAIChunk, type AnswerKind } from '../../../../sidecar/formats/answer-shape.js';

function failure(f: () => unknown): GatewayError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a failure');
}

const SECRET = 'sk-leaked-0123456789abcdef';
const completion = { id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 4 } };
const message = { id: 'm', type: 'message', role: 'assistant', content: [{ type: 'text', text: 'hi' }], usage: { input_tokens: 1, output_tokens: 2 } };
const embeddings = { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], usage: { prompt_tokens: 2, total_tokens: 2 } };

/** Both ways of checking a whole answer (bytes for pass-through, parsed for translation) must agree. */
function bothWays(kind: AnswerKind, text: string): { bytes: unknown; parsed: unknown } {
  const raw = Buffer.from(text, 'utf8');
  const run = (f: () => unknown): unknown => {
    try {
      return f();
    } catch (err) {
      return err;
    }
  };
  return { bytes: run(() => checkAnswerBytes(raw, kind, 'p')), parsed: run(() => parseAnswer(raw, kind, 'p')) };
}

describe('whole answers', () => {
  it('accepts each format’s answer and reads its usage from the bytes', () => {
    expect(checkAnswerBytes(Buffer.from(JSON.stringify(completion)), 'chat', 'p').usage).toEqual(completion.usage);
    expect(checkAnswerBytes(Buffer.from(JSON.stringify(message)), 'message', 'p').usage).toEqual(message.usage);
    expect(checkAnswerBytes(Buffer.from(JSON.stringify(embeddings)), 'embeddings', 'p').usage).toEqual(embeddings.usage);
    expect(parseAnswer(Buffer.from(JSON.stringify(message)), 'message', 'p')).toEqual(message);
  });

  it('reads usage past whitespace, a "usage" inside text, a nested usage key, null and absence', () => {
    const tricky = JSON.stringify({ choices: [{ message: { content: 'a "usage": {"x":1} in text', tool: { usage: { n: 9 } } } }], usage: { prompt_tokens: 3, d: { e: '}' } } });
    expect(checkAnswerBytes(Buffer.from(tricky), 'chat', 'p').usage).toEqual({ prompt_tokens: 3, d: { e: '}' } });
    expect(checkAnswerBytes(Buffer.from('{\n  "usage" :\n  { "input_tokens": 5 },"type":"message","content":[]\n}'), 'message', 'p').usage).toEqual({ input_tokens: 5 });
    expect(checkAnswerBytes(Buffer.from('{"choices":[],"usage":null}'), 'chat', 'p').usage).toBeNull();
    expect(checkAnswerBytes(Buffer.from('{"choices":[]}'), 'chat', 'p').usage).toBeUndefined();
  });

  it('falls back to parsing when a top-level key is written with escapes', () => {
    const text = '{"choi\\u0063es":[{"index":0}],"\\u0075sage":{"prompt_tokens":2}}';
    expect(checkAnswerBytes(Buffer.from(text), 'chat', 'p').usage).toEqual({ prompt_tokens: 2 });
    expect(() => checkAnswerBytes(Buffer.from('{"choi\\u0063e":[]}'), 'chat', 'p')).toThrow(GatewayError);
  });

  it('refuses text that is not JSON, as a retryable 502 llmgw_upstream_error that quotes nothing of it', () => {
    for (const text of ['{"x":NaN}', JSON.stringify(completion).slice(0, -9), '', `<html>${SECRET}</html>`, `{"choices":[], "k": "${SECRET}"`]) {
      for (const f of [() => checkAnswerBytes(Buffer.from(text), 'chat', 'p'), () => parseAnswer(Buffer.from(text), 'chat', 'p')]) {
        const e = failure(f);
        expect(e.code).toBe('llmgw_upstream_error');
        expect(e.status).toBe(502);
        expect(e.retryable).toBe(true);
        expect(e.message).toBe('provider p answered with a body that is not valid JSON');
      }
    }
  });

  it('refuses JSON of the wrong shape, the same way for bytes and parsed, naming what is missing', () => {
    const cases: [AnswerKind, unknown][] = [
      ['chat', []],
      ['chat', 'text'],
      ['chat', { id: 'c', object: 'chat.completion' }],
      ['chat', { choices: {} }],
      ['chat', { choices: [1] }],
      ['chat', { choices: 5, x: SECRET }],
      ['chat', { error: { message: SECRET } }],
      ['message', { content: [] }],
      ['message', { type: 'completion', content: [] }],
      ['message', { type: 'message' }],
      ['message', { type: 'message', content: 'hi' }],
      ['embeddings', { object: 'list' }],
      ['embeddings', { data: [[0.1]] }],
    ];
    for (const [kind, value] of cases) {
      const { bytes, parsed } = bothWays(kind, JSON.stringify(value));
      for (const e of [bytes, parsed]) {
        expect(e, JSON.stringify(value)).toBeInstanceOf(GatewayError);
        expect((e as GatewayError).code).toBe('llmgw_upstream_error');
        expect((e as GatewayError).retryable).toBe(true);
        expect((e as GatewayError).message).not.toContain(SECRET);
      }
      expect((bytes as Error).message).toBe((parsed as Error).message);
    }
    expect(bothWays('message', '{"type":"message"}').bytes).toMatchObject({ message: 'provider p answered with a body that is not a message: no object of type "message" with a "content" array of objects' });
    expect(bothWays('chat', '{}').bytes).toMatchObject({ message: 'provider p answered with a body that is not a chat completion: no object with a "choices" array of objects' });
  });

  it('leaves optional fields alone: an empty choices list, no usage, unknown members', () => {
    for (const [kind, value] of [['chat', { choices: [] }], ['chat', { choices: [{ weird: true }], extra: [1, 'x'] }], ['message', { type: 'message', content: [] }], ['embeddings', { data: [] }]] as [AnswerKind, unknown][]) {
      const { bytes, parsed } = bothWays(kind, JSON.stringify(value));
      expect(bytes).toEqual({ usage: undefined });
      expect(parsed).toEqual(value);
    }
  });
});

describe('stream events', () => {
  it('accepts OpenAI chunks with a choices array of objects (empty too), and error chunks', () => {
    expect(parseOpenAIChunk('{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}', 'p')).toMatchObject({ usage: null });
    expect(parseOpenAIChunk('{"choices":[],"usage":{"prompt_tokens":1}}', 'p')).toMatchObject({ choices: [] });
    expect(parseOpenAIChunk('{"error":{"message":"boom"}}', 'p')).toMatchObject({ error: { message: 'boom' } });
  });

  it('refuses OpenAI chunks that are not JSON, not objects, or lack choices', () => {
    const cases: [string, string][] = [
      ['{"choices":[{"index":0,', 'provider p sent a stream event that is not valid JSON'],
      [`oops ${SECRET}`, 'provider p sent a stream event that is not valid JSON'],
      ['[1,2]', 'provider p sent a stream chunk that is not an object with a "choices" array of objects'],
      ['{"id":"x","object":"chat.completion.chunk"}', 'provider p sent a stream chunk that is not an object with a "choices" array of objects'],
      ['{"choices":[null]}', 'provider p sent a stream chunk that is not an object with a "choices" array of objects'],
      ['{"error":"text"}', 'provider p sent a stream chunk that is not an object with a "choices" array of objects'],
    ];
    for (const [data, message] of cases) {
      const e = failure(() => parseOpenAIChunk(data, 'p'));
      expect(e).toMatchObject({ code: 'llmgw_upstream_error', status: 502, retryable: true, message });
    }
  });

  it('accepts Anthropic events with a type and the object their type needs', () => {
    expect(parseAnthropicEvent('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}', 'p')).toMatchObject({ index: 0 });
    expect(parseAnthropicEvent('{"type":"message_stop"}', 'p')).toEqual({ type: 'message_stop' });
    // A type this version does not know: accepted as long as it is an object with a type.
    expect(parseAnthropicEvent('{"type":"future_event","x":1}', 'p')).toMatchObject({ x: 1 });
    expect(parseAnthropicEvent('{"type":"constructor"}', 'p')).toEqual({ type: 'constructor' });
  });

  it('refuses Anthropic events that are not JSON, have no type, or miss their object', () => {
    const cases: [string, string][] = [
      ['{"type":"message_start",', 'provider p sent a stream event that is not valid JSON'],
      ['', 'provider p sent a stream event that is not valid JSON'],
      ['"message_stop"', 'provider p sent a stream event that is not an object with a "type"'],
      ['{"index":0,"delta":{"type":"text_delta","text":"x"}}', 'provider p sent a stream event that is not an object with a "type"'],
      ['{"type":7}', 'provider p sent a stream event that is not an object with a "type"'],
      ['{"type":"message_start"}', 'provider p sent a message_start event without its "message" object'],
      ['{"type":"content_block_start","index":0,"content_block":"text"}', 'provider p sent a content_block_start event without its "content_block" object'],
      ['{"type":"content_block_delta","index":0}', 'provider p sent a content_block_delta event without its "delta" object'],
      ['{"type":"message_delta","usage":{"output_tokens":1}}', 'provider p sent a message_delta event without its "delta" object'],
    ];
    for (const [data, message] of cases) {
      expect(failure(() => parseAnthropicEvent(data, 'p'))).toMatchObject({ code: 'llmgw_upstream_error', status: 502, retryable: true, message });
    }
  });
});
