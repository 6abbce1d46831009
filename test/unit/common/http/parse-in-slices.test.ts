// Slice-by-slice parsing of large bodies gives what JSON.parse gives (values, key order, "__proto__",
// duplicate keys), long strings included, decoded piece by piece and cut only where a whole decode would
// also break; and refuses what JSON.parse refuses.
import { describe, expect, it } from 'vitest';
import { JsonScanner, LONG_STRING_BYTES, SLICE_TOKENS } from '../../../../common/http/json-scanner.js';
import { cutBefore, parseInSlices } from '../../../../common/http/parse-in-slices.js';

async function sliced(text: string, chunkSize = 1 << 16): Promise<unknown> {
  const raw = Buffer.from(text);
  const s = new JsonScanner({ maxDepth: 128, maxEntries: 1_000_000 });
  for (let i = 0; i < raw.length; i += chunkSize) s.push(raw.subarray(i, i + chunkSize));
  const r = s.finish();
  if (r.status !== 'ok' || r.root === undefined) throw new Error(`not sliced: ${r.status}`);
  return parseInSlices(raw, r.root);
}

const many = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

describe('parsing in slices', () => {
  it('gives what JSON.parse gives for a large body with large nested members', async () => {
    const body = {
      model: 'm',
      messages: many(SLICE_TOKENS, (i) => ({ role: 'user', content: i % 3 === 0 ? many(3, () => ({ type: 'text', text: 'a,b]"' })) : `m${i}` })),
      tools: [{ type: 'function', function: { name: 'f', parameters: { properties: Object.fromEntries(many(SLICE_TOKENS, (i): [string, unknown] => [`p${i}`, { type: 'string' }])) } } }],
      input: many(3 * SLICE_TOKENS, (i) => i),
      tail: 'x'.repeat(2 << 20),
    };
    const text = JSON.stringify(body, null, 1);
    expect(await sliced(text)).toEqual(JSON.parse(text));
    expect(await sliced(text, 4099)).toEqual(JSON.parse(text));
  });

  it('keeps "__proto__" an own key and the last of duplicate keys, as JSON.parse does', async () => {
    const big = JSON.stringify(many(SLICE_TOKENS, (i) => i));
    const long = JSON.stringify('y'.repeat(LONG_STRING_BYTES + 1));
    const text = `{"__proto__":{"polluted":true},"a":1,"a":${big},"b":${big},"b":2,"c":${long},"c":3,"__proto__":${long}}`;
    const got = (await sliced(text)) as Record<string, unknown>;
    const want = JSON.parse(text) as Record<string, unknown>;
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(Object.keys(got)).toEqual(Object.keys(want));
    expect(got).toEqual(want);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses malformed large bodies that the scanner lets through', async () => {
    const big = JSON.stringify(many(SLICE_TOKENS, (i) => ({ i })));
    const long = JSON.stringify('z'.repeat(LONG_STRING_BYTES + 1));
    const bad = [
      `{"a":[${big.slice(1, -1)},]}`,
      `{"a":${big} 1}`,
      `{"a" ${big}}`,
      `{1:${big}}`,
      `{"a":[1 ${big}]}`,
      `{"a":[${big.slice(1, -1)},,1]}`,
      `{"a":1,}`.replace('1', big),
      `{"a":[1 ${long}]}`,
      `{"a":${long} 1}`,
      `{${long} 1}`,
      `{"a":${long.slice(0, -1)}\u0001"}`,
      `{"a":${long.slice(0, -1)}\\x"}`,
    ];
    for (const text of bad) {
      expect(() => JSON.parse(text)).toThrow();
      await expect(sliced(text)).rejects.toThrow();
    }
  });
});

describe('long strings', () => {
  // Every kind of character a JSON string can hold, so that pieces end on all of them.
  const alphabet = ['a', 'é', '漢', '😀', '"', '\\', '/', '\n', '\t', '\u0001', '\u2028', '\ud800', '\udfff'];
  const random = (n: number, seed: number): string => {
    let x = seed;
    let s = '';
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      s += alphabet[x % alphabet.length];
    }
    return s;
  };

  it('decodes a long string value, key or array entry piece by piece to what JSON.parse gives', async () => {
    for (const seed of [1, 2, 3]) {
      const s = random(LONG_STRING_BYTES / 2, seed);
      const text = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: s }], [s]: 1, list: [s, 2, { k: s }] });
      expect(Buffer.byteLength(text)).toBeGreaterThan(4 * LONG_STRING_BYTES);
      expect(await sliced(text, 997)).toEqual(JSON.parse(text));
    }
  });

  it('decodes runs of backslashes and of \\u escapes, whatever their parity at a cut', async () => {
    for (const s of ['\\'.repeat(LONG_STRING_BYTES), '\\'.repeat(LONG_STRING_BYTES + 1) + 'x', '\u0001'.repeat(LONG_STRING_BYTES / 3), '"'.repeat(LONG_STRING_BYTES)]) {
      const text = JSON.stringify({ s });
      expect(await sliced(text)).toEqual({ s });
    }
  });

  it('cuts only before a character that starts a UTF-8 sequence and outside any escape', () => {
    const text = JSON.stringify(random(5000, 7));
    const raw = Buffer.from(text);
    const end = raw.length - 1;
    let from = 1;
    let pieces = '';
    while (from < end) {
      const cut = end - from <= 10 ? end : cutBefore(raw, from, from + 10);
      expect(cut).toBeGreaterThan(from);
      // Each piece alone is a valid JSON string body; together they are the whole string.
      pieces += JSON.parse(`"${raw.toString('utf8', from, cut)}"`) as string;
      from = cut;
    }
    expect(pieces).toBe(JSON.parse(text));
  });
});
