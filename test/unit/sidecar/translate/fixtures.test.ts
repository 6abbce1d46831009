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
import { openaiRequestToAnthropic } from '../../../../sidecar/translate/openai-request-to-anthropic.js';
import { openaiResponseToAnthropic } from '../../../../sidecar/translate/openai-response-to-anthropic.js';
import { OpenAIToAnthropicStream } from '../../../../sidecar/translate/openai-stream-to-anthropic.js';
import type { StreamTranslator } from '../../../../sidecar/translate/stream-translator.js';
import { sseFrames, sseText } from '../../../helpers/sse-frames.js';

type Json = Record<string, unknown>;
interface Case {
  file: string;
  description: string;
  options?: Json;
  created?: number;
  input: unknown;
  expected?: unknown;
  error?: { param: string; message: string };
}

const root = join(import.meta.dirname, '../../../fixtures/translate');

function cases(dir: string): Case[] {
  const path = join(root, dir);
  return readdirSync(path)
    .filter((f) => f.endsWith('.json'))
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

/** Feeds the recorded stream in awkward slices (a few bytes at a time) to exercise event boundaries. */
function runStream(translator: StreamTranslator, text: string, slice: number): string {
  const parser = new SseParser();
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i += slice) {
    for (const ev of parser.push(bytes.subarray(i, i + slice))) out += translator.event(ev);
  }
  for (const ev of parser.end()) out += translator.event(ev);
  return out + translator.end();
}

const dirs = {
  o2aRequest: cases('openai-to-anthropic/request'),
  a2oRequest: cases('anthropic-to-openai/request'),
  a2oResponse: cases('anthropic-to-openai/response'),
  o2aResponse: cases('openai-to-anthropic/response'),
  a2oStream: cases('anthropic-to-openai/stream'),
  o2aStream: cases('openai-to-anthropic/stream'),
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
});
