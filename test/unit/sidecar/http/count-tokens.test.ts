// The tokenizer side of count_tokens: which encoding an upstream model uses, and the count of a Messages
// body (texts, overheads, long texts cut into slices without changing the count, yielding meanwhile).
import { countTokens as o200k, encode } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../../../common/clock.js';
import type { Json } from '../../../../common/json.js';
import { DOCUMENT_TOKENS, encodingOf, tokenize } from '../../../../sidecar/http/count-tokens.js';

const plain = { disallowedSpecial: new Set<string>() };
const count = (text: string): number => o200k(text, plain);
/** One user message: 3 to prime the reply, 3 for the message, 1 for "user". */
const ONE_MESSAGE = 7;

describe('encodingOf', () => {
  it.each([
    ['gpt-4o', 'o200k_base'],
    ['gpt-4o-mini-2024-07-18', 'o200k_base'],
    ['chatgpt-4o-latest', 'o200k_base'],
    ['gpt-4.1-nano', 'o200k_base'],
    ['gpt-4.5-preview', 'o200k_base'],
    ['gpt-5', 'o200k_base'],
    ['gpt-5.1-codex', 'o200k_base'],
    ['o1', 'o200k_base'],
    ['o3-mini', 'o200k_base'],
    ['o4-mini-2025-04-16', 'o200k_base'],
    ['ft:gpt-4o-mini-2024-07-18:acme::abc123', 'o200k_base'],
    ['gpt-4', 'cl100k_base'],
    ['gpt-4-turbo', 'cl100k_base'],
    ['gpt-3.5-turbo-0125', 'cl100k_base'],
  ])('maps %s to %s', (model, encoding) => {
    expect(encodingOf(model)).toBe(encoding);
  });

  it.each(['text-embedding-3-small', 'gpt-oss-120b', 'o10-preview', 'gpt-40', 'davinci-002', 'llama-3.1-8b'])('knows no encoding for %s', (model) => {
    expect(encodingOf(model)).toBeUndefined();
  });
});

describe('tokenize', () => {
  it('counts a plain message as its text plus the per-message overhead', async () => {
    expect(await tokenize({ messages: [{ role: 'user', content: 'Hello there' }] }, count, systemClock)).toBe(encode('Hello there').length + ONE_MESSAGE);
  });

  it('counts text that looks like a special token as text instead of refusing it', async () => {
    const text = 'ends with <|endoftext|> here';
    expect(await tokenize({ messages: [{ role: 'user', content: text }] }, count, systemClock)).toBe(count(text) + ONE_MESSAGE);
    expect(count(text)).toBeGreaterThan(3);
  });

  it('gives the count of the whole for a long text cut into slices', async () => {
    const words = Array.from({ length: 40_000 }, (_, i) => `word${i % 97}${i % 5 === 0 ? ',' : ''}`).join(' ') + '\n\n  indented  line';
    expect(words.length).toBeGreaterThan(200_000);
    expect(await tokenize({ messages: [{ role: 'user', content: words }] }, count, systemClock)).toBe(count(words) + ONE_MESSAGE);
  });

  it('counts a long text without spaces within a token or two a slice', async () => {
    const blob = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo'.repeat(4000);
    const n = await tokenize({ messages: [{ role: 'user', content: blob }] }, count, systemClock);
    expect(Math.abs(n - ONE_MESSAGE - count(blob))).toBeLessThanOrEqual(2 * Math.ceil(blob.length / 32_768));
  });

  it('yields to other work while it tokenizes a long prompt', async () => {
    let t = 0;
    // Each look at the clock is 3 ms later: a yield is due every other slice.
    const clock: Clock = { now: () => t, monotonic: () => (t += 3) };
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      await tokenize({ messages: [{ role: 'user', content: 'lorem ipsum '.repeat(30_000) }] }, count, clock);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });

  it('skips thinking blocks, counts a text document’s text and other documents at a fixed estimate', async () => {
    const body: Json = {
      messages: [
        { role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'A short note.' } }] },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'a long chain of thought', signature: 'sig' }, { type: 'text', text: 'Ok.' }] },
        { role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' } }] },
      ],
    };
    const overhead = 3 + 3 * 3 + count('user') * 2 + count('assistant');
    expect(await tokenize(body, count, systemClock)).toBe(overhead + count('A short note.') + count('Ok.') + DOCUMENT_TOKENS);
  });
});
