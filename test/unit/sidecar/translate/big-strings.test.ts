// Large answers translated without copies of their text: the skeleton's translation with the held strings
// put back must be byte for byte what translating the whole answer gives, whatever the text holds
// (escapes and multi-byte characters across the check slices), and malformed text is still refused.
import { describe, expect, it } from 'vitest';
import { BIG_STRING_BYTES, parseSkeleton, type JsonPath } from '../../../../sidecar/translate/big-strings.js';
import { anthropicResponseToOpenAI } from '../../../../sidecar/translate/anthropic-response-to-openai.js';
import type { Json } from '../../../../common/json.js';

const textPath = (p: JsonPath): boolean => p.length === 3 && p[0] === 'content' && p[2] === 'text';

const message = (texts: string[], extra: Json = {}): Json => ({
  id: 'msg_1',
  type: 'message',
  role: 'assistant',
  model: 'm',
  content: texts.map((text) => ({ type: 'text', text })),
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 3, output_tokens: 5 },
  ...extra,
});

/** A deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PIECES = ['a', 'word ', '\n', '"', '\\', '/', '\t', 'é', '日本', '😀', '\u0000', '\u2028', '\\u0000', 'x'.repeat(50)];
function text(rand: () => number, bytes: number): string {
  const parts: string[] = [];
  for (let n = 0; n < bytes; ) {
    const piece = PIECES[Math.floor(rand() * PIECES.length)]!;
    parts.push(piece);
    n += Buffer.byteLength(piece);
  }
  return parts.join('');
}

function translatedBoth(raw: Buffer): { plain: string; restored: Buffer[] | undefined; held: number } {
  const plain = JSON.stringify(anthropicResponseToOpenAI(JSON.parse(raw.toString('utf8')) as Json, 7));
  const sk = parseSkeleton(raw, textPath);
  const restored = sk.restore(JSON.stringify(anthropicResponseToOpenAI(sk.value as Json, 7)));
  return { plain, restored, held: sk.held };
}

describe('parseSkeleton', () => {
  it('gives byte for byte the plain translation for texts full of escapes and multi-byte characters', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const rand = random(seed);
      // Sizes around the 1 MiB check slice, so cuts land next to escapes and inside UTF-8 sequences.
      const texts = [text(rand, (1 << 20) + Math.floor(rand() * 4096)), 'small', text(rand, BIG_STRING_BYTES + Math.floor(rand() * 100))];
      const raw = Buffer.from(JSON.stringify(message(texts)));
      const { plain, restored, held } = translatedBoth(raw);
      expect(held).toBe(2);
      expect(restored).toBeDefined();
      expect(Buffer.concat(restored!).toString('utf8')).toBe(plain);
    }
  });

  it('holds back only strings at the accepted paths and of the minimum size', () => {
    const big = 'y'.repeat(BIG_STRING_BYTES);
    const raw = Buffer.from(JSON.stringify(message([big], { note: big })));
    expect(parseSkeleton(raw, textPath).held).toBe(1);
    expect(parseSkeleton(Buffer.from(JSON.stringify(message(['y'.repeat(100)]))), textPath).held).toBe(0);
  });

  it('refuses malformed text in a held string as JSON.parse would', () => {
    const big = 'z'.repeat(3 * (1 << 20));
    for (const bad of ['\n', '\\x', '\\u12', '\u0001']) {
      const raw = Buffer.from(JSON.stringify(message([big])).replace('zzzz', `zz${bad}zz`));
      expect(() => JSON.parse(raw.toString('utf8'))).toThrow(SyntaxError);
      expect(() => parseSkeleton(raw, textPath)).toThrow(SyntaxError);
    }
    const unterminated = Buffer.from(JSON.stringify(message([big])).slice(0, 2 << 20));
    expect(() => parseSkeleton(unterminated, textPath)).toThrow(SyntaxError);
  });

  it('says when a placeholder did not survive intact, so the caller translates the plain way', () => {
    const raw = Buffer.from(JSON.stringify(message(['q'.repeat(BIG_STRING_BYTES)])));
    const sk = parseSkeleton(raw, textPath);
    const v = sk.value as { content: { text: string }[] };
    expect(sk.restore(JSON.stringify({ twice: JSON.stringify(v.content[0]!.text) }))).toBeUndefined();
    expect(sk.restore(JSON.stringify({ cut: v.content[0]!.text.slice(0, 10) }))).toBeUndefined();
    expect(Buffer.concat(sk.restore(JSON.stringify({ moved: v.content[0]!.text }))!).toString()).toBe(JSON.stringify({ moved: 'q'.repeat(BIG_STRING_BYTES) }));
  });

  it('is not fooled by an upstream text that imitates a placeholder', () => {
    const fake = '\u0000AAAAAAAAAAAAAAAA:0\u0000';
    const raw = Buffer.from(JSON.stringify(message([`${fake}${'w'.repeat(BIG_STRING_BYTES)}`, fake])));
    const { plain, restored } = translatedBoth(raw);
    expect(Buffer.concat(restored!).toString('utf8')).toBe(plain);
  });
});
