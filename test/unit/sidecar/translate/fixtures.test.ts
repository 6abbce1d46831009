// Replays the recorded wire samples in test/fixtures/translate through every translation direction.
// Each JSON file is one case; the folders are discovered, so a new sample is a new test.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { SseParser } from '../../../../sidecar/http/sse-parser.js';
import { anthropicRequestToOpenAI } from '../../../../sidecar/translate/anthropic-request-to-openai.js';
import { anthropicResponseToOpenAI } from '../../../../sidecar/translate/anthropic-response-to-openai.js';
import { AnthropicToOpenAIStream } from '../../../../sidecar/translate/anthropic-stream-to-openai.js';
import { chatResponseToResponses, responsesEcho } from '../../../../sidecar/translate/chat-response-to-responses.js';
import { chained, ChatToResponsesStream } from '../../../../sidecar/translate/chat-stream-to-responses.js';
import { openaiRequestToAnthropic } from '../../../../sidecar/translate/openai-request-to-anthropic.js';
import { openaiResponseToAnthropic } from '../../../../sidecar/translate/openai-response-to-anthropic.js';
import { OpenAIToAnthropicStream } from '../../../../sidecar/translate/openai-stream-to-anthropic.js';
import { responsesRequestToChat } from '../../../../sidecar/translate/responses-request-to-chat.js';
import type { StreamTranslator } from '../../../../sidecar/translate/stream-translator.js';
import { sseFrames, sseText } from '../../../helpers/sse-frames.js';

type Json = Record<string, unknown>;
interface Case {
  file: string;
  description: string;
  options?: Json;
  created?: number;
  /** Responses directions: the Responses request an answer or stream is for (what the Response echoes). */
  request?: Json;
  input: unknown;
  expected?: unknown;
  error?: { param: string; message: string };
  /** Streams: the translator throws at the end (what it sent before is `expected`). */
  throws?: { code: string; status: number; message: string };
}

const root = join(import.meta.dirname, '../../../fixtures/translate');

/** The cases of a folder; `prefix` picks one kind in a flat folder (request-, response-, stream-). */
function cases(dir: string, prefix = ''): Case[] {
  const path = join(root, dir);
  return readdirSync(path)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, ...(JSON.parse(readFileSync(join(path, file), 'utf8')) as Omit<Case, 'file'>) }));
}

function runRequestCase(c: Case, translate: () => unknown): void {
  if (c.error !== undefined) {
    let thrown: unknown;
    try {
      translate();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    const e = thrown as GatewayError;
    expect(e.code).toBe('llmgw_invalid_request');
    expect(e.status).toBe(400);
    expect(e.param).toBe(c.error.param);
    expect(e.message).toContain(c.error.message);
  } else {
    expect(translate()).toEqual(c.expected);
  }
}

/**
 * Feeds the recorded stream in awkward slices (a few bytes at a time) to exercise event boundaries; what
 * the translator sent before it threw comes back with the error.
 */
function replayStream(translator: StreamTranslator, text: string, slice: number): { out: string; error?: unknown } {
  const parser = new SseParser();
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  try {
    for (let i = 0; i < bytes.length; i += slice) {
      for (const ev of parser.push(bytes.subarray(i, i + slice))) out += translator.event(ev);
    }
    for (const ev of parser.end()) out += translator.event(ev);
    out += translator.end();
  } catch (error) {
    return { out, error };
  }
  return { out };
}

function runStream(translator: StreamTranslator, text: string, slice: number): string {
  const { out, error } = replayStream(translator, text, slice);
  if (error !== undefined) throw error;
  return out;
}

/**
 * A Responses event stream: the frames in full, each named by its `type` and numbered by `sequence_number`
 * from 0 without gaps, ending with response.completed or response.incomplete, or, for a cut stream, the
 * frames sent before the translator threw.
 */
function runResponsesStreamCase(c: Case, translator: StreamTranslator, slice: number): void {
  const { out, error } = replayStream(translator, sseText(c.input as { event?: string; data: unknown }[]), slice);
  const frames = sseFrames(out);
  expect(frames).toEqual(c.expected);
  frames.forEach((f, i) => {
    expect(f.event).toBe((f.data as Json).type);
    expect((f.data as Json).sequence_number).toBe(i);
  });
  if (c.throws === undefined) {
    expect(error).toBeUndefined();
    expect(frames.at(-1)?.event).toMatch(/^response\.(completed|incomplete)$/);
  } else {
    expect(error).toBeInstanceOf(GatewayError);
    const e = error as GatewayError;
    expect({ code: e.code, status: e.status }).toEqual({ code: c.throws.code, status: c.throws.status });
    expect(e.message).toContain(c.throws.message);
    expect(frames.some((f) => f.event === 'response.completed' || f.event === 'response.incomplete')).toBe(false);
  }
}

/** The options exchange.ts translates a Responses request with, for a Chat Completions provider and for Anthropic. */
const responsesToChat = { model: 'Qwen/Qwen3-32B', maxTokensField: 'max_tokens', streamUsage: true, target: 'a Chat Completions provider', anthropic: false } as const;
const responsesToAnthropic = { model: 'claude-sonnet-4-5', maxTokensField: 'max_tokens', streamUsage: true, target: 'an Anthropic model', anthropic: true } as const;

const dirs = {
  o2aRequest: cases('openai-to-anthropic/request'),
  a2oRequest: cases('anthropic-to-openai/request'),
  a2oResponse: cases('anthropic-to-openai/response'),
  o2aResponse: cases('openai-to-anthropic/response'),
  a2oStream: cases('anthropic-to-openai/stream'),
  o2aStream: cases('openai-to-anthropic/stream'),
  r2cRequest: cases('responses-to-chat', 'request-'),
  r2cResponse: cases('responses-to-chat', 'response-'),
  r2cStream: cases('responses-to-chat', 'stream-'),
  r2aRequest: cases('responses-to-anthropic', 'request-'),
  r2aResponse: cases('responses-to-anthropic', 'response-'),
  r2aStream: cases('responses-to-anthropic', 'stream-'),
};

describe('translation fixtures', () => {
  it('has recorded cases in every direction', () => {
    for (const list of Object.values(dirs)) expect(list.length).toBeGreaterThanOrEqual(2);
  });

  describe.each(dirs.o2aRequest)('OpenAI request → Anthropic: $file', (c) => {
    it(c.description, () => {
      runRequestCase(c, () => openaiRequestToAnthropic(c.input as Json, { model: 'claude-sonnet-4-5', defaultMaxTokens: 4096, ...c.options }));
    });
  });

  describe.each(dirs.a2oRequest)('Anthropic request → OpenAI: $file', (c) => {
    it(c.description, () => {
      runRequestCase(c, () =>
        anthropicRequestToOpenAI(c.input as Json, { model: 'gpt-4o', maxTokensField: 'max_completion_tokens', streamUsage: true, allowTopK: false, ...c.options }),
      );
    });
  });

  describe.each(dirs.a2oResponse)('Anthropic response → OpenAI: $file', (c) => {
    it(c.description, () => {
      expect(anthropicResponseToOpenAI(c.input as Json, c.created ?? 0)).toEqual(c.expected);
    });
  });

  describe.each(dirs.o2aResponse)('OpenAI response → Anthropic: $file', (c) => {
    it(c.description, () => {
      expect(openaiResponseToAnthropic(c.input as Json)).toEqual(c.expected);
    });
  });

  describe.each(dirs.a2oStream)('Anthropic stream → OpenAI: $file', (c) => {
    it.each([1, 7, 64, 100_000])(`${c.description} (slices of %i bytes)`, (slice) => {
      const opts = { providerId: 'p', includeUsage: false, created: 0, ...c.options };
      const out = runStream(new AnthropicToOpenAIStream(opts), sseText(c.input as { event?: string; data: unknown }[]), slice);
      expect(sseFrames(out)).toEqual(c.expected);
    });
  });

  describe.each(dirs.o2aStream)('OpenAI stream → Anthropic: $file', (c) => {
    it.each([1, 7, 64, 100_000])(`${c.description} (slices of %i bytes)`, (slice) => {
      const opts = { providerId: 'p', promptTokensEstimate: 0, ...c.options };
      const out = runStream(new OpenAIToAnthropicStream(opts), sseText(c.input as { event?: string; data: unknown }[]), slice);
      expect(sseFrames(out)).toEqual(c.expected);
    });
  });

  describe.each(dirs.r2cRequest)('Responses request → Chat Completions: $file', (c) => {
    it(c.description, () => {
      runRequestCase(c, () => responsesRequestToChat(c.input as Json, { ...responsesToChat, ...c.options }));
    });
  });

  describe.each(dirs.r2cResponse)('Chat Completions response → Responses: $file', (c) => {
    it(c.description, () => {
      expect(chatResponseToResponses(c.input as Json, responsesEcho(c.request ?? {}))).toEqual(c.expected);
    });
  });

  describe.each(dirs.r2cStream)('Chat Completions stream → Responses: $file', (c) => {
    it.each([1, 7, 64, 100_000])(`${c.description} (slices of %i bytes)`, (slice) => {
      const opts = { providerId: 'p', echo: responsesEcho(c.request ?? {}), created: c.created ?? 0 };
      runResponsesStreamCase(c, new ChatToResponsesStream(opts), slice);
    });
  });

  // Anthropic: Responses → Chat Completions → Messages, and back the same way (exchange.ts).
  describe.each(dirs.r2aRequest)('Responses request → Anthropic: $file', (c) => {
    it(c.description, () => {
      runRequestCase(c, () =>
        openaiRequestToAnthropic(responsesRequestToChat(c.input as Json, responsesToAnthropic), { model: responsesToAnthropic.model, defaultMaxTokens: 4096, ...c.options }),
      );
    });
  });

  describe.each(dirs.r2aResponse)('Anthropic response → Responses: $file', (c) => {
    it(c.description, () => {
      expect(chatResponseToResponses(anthropicResponseToOpenAI(c.input as Json, c.created ?? 0), responsesEcho(c.request ?? {}))).toEqual(c.expected);
    });
  });

  describe.each(dirs.r2aStream)('Anthropic stream → Responses: $file', (c) => {
    it.each([1, 7, 64, 100_000])(`${c.description} (slices of %i bytes)`, (slice) => {
      const created = c.created ?? 0;
      const translator = chained(
        new AnthropicToOpenAIStream({ providerId: 'p', includeUsage: true, created }),
        new ChatToResponsesStream({ providerId: 'p', echo: responsesEcho(c.request ?? {}), created }),
      );
      runResponsesStreamCase(c, translator, slice);
    });
  });
});
