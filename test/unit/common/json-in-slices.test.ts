// The sliced JSON.stringify gives exactly JSON.stringify's text, and yields to the event loop on the way.
import { describe, expect, it } from 'vitest';
import { slicesLength, stringifyInSlices } from '../../../common/json-in-slices.js';

const text = async (v: unknown, slice?: number): Promise<string> => Buffer.concat(await stringifyInSlices(v, slice)).toString('utf8');

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const CHARS = ['a', ' ', '"', '\\', '\n', '\u0000', '\u2028', 'é', '日', '😀', '\ud800', '\udc00'];
function chars(rand: () => number, n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(CHARS[Math.floor(rand() * CHARS.length)]!);
  return parts.join('');
}

function value(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth > 4 || r < 0.3) return chars(rand, Math.floor(rand() * 20));
  if (r < 0.4) return rand() * 1e6 - 5e5;
  if (r < 0.45) return [true, false, null][Math.floor(rand() * 3)];
  if (r < 0.5) return undefined;
  if (r < 0.75) return Array.from({ length: Math.floor(rand() * 5) }, () => value(rand, depth + 1));
  return Object.fromEntries(Array.from({ length: Math.floor(rand() * 5) }, (_, i) => [`k${i}${chars(rand, 2)}`, value(rand, depth + 1)]));
}

describe('stringifyInSlices', () => {
  it('gives JSON.stringify\'s text for random values, small slices included', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = random(seed);
      const v = { model: 'm', messages: [value(rand, 0), value(rand, 0)], extra: value(rand, 0) };
      expect(await text(v, 16)).toBe(JSON.stringify(v));
    }
  });

  it('escapes long strings in pieces without splitting a surrogate pair, and yields meanwhile', async () => {
    const rand = random(7);
    // Emoji (surrogate pairs) everywhere, so piece boundaries fall between the halves of some.
    const long = Array.from({ length: 300_000 }, () => (rand() < 0.5 ? '😀' : chars(rand, 1))).join('');
    const v = { model: 'm', messages: [{ role: 'user', content: long }, { role: 'user', content: [{ type: 'text', text: long }] }] };
    let turns = 0;
    const counter = setInterval(() => turns++, 0);
    const got = await stringifyInSlices(v, 1 << 16);
    clearInterval(counter);
    expect(Buffer.concat(got).toString('utf8')).toBe(JSON.stringify(v));
    expect(turns).toBeGreaterThan(0);
    // Kept in slices (never joined into one copy), each about the slice size, their lengths adding up.
    expect(got.length).toBeGreaterThan(10);
    expect(Math.max(...got.map((b) => b.length))).toBeLessThan(4 * (1 << 16) + 4 * 65536);
    expect(slicesLength(got)).toBe(Buffer.byteLength(JSON.stringify(v)));
  });
});
