// The scanner of large bodies: depth and entry bounds enforced on the raw bytes, whatever the chunking,
// refused on the chunk that passes one; and where it marks a body to be parsed in slices.
import { describe, expect, it } from 'vitest';
import { JsonScanner, LONG_STRING_BYTES, SLICE_TOKENS, type EntryLimits, type PathStep, type ScanResult } from '../../../../common/http/json-scanner.js';

const DEPTH = 128;
const ENTRIES = 1000;
const named: EntryLimits = {
  keys: {
    messages: { max: 10, items: { keys: { content: { max: 5, noun: 'content parts' } } } },
    tools: { max: 3 },
  },
};

/** Scans `text` in chunks of `chunkSize` bytes (1 = every byte boundary); also returns what push answered. */
function scan(text: string | Buffer, chunkSize = 1 << 16): ScanResult & { pushes: number } {
  const raw = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const s = new JsonScanner({ maxDepth: DEPTH, maxEntries: ENTRIES, named });
  let pushes = 0;
  for (let i = 0; i < raw.length; i += chunkSize) {
    pushes++;
    if (s.push(raw.subarray(i, i + chunkSize)) !== undefined) break;
  }
  return { ...s.finish(), pushes };
}

/** A refusal's path as text, keys read back from the bytes. */
const pathOf = (text: string, path: PathStep[]): string =>
  path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${JSON.parse(Buffer.from(text).toString('utf8', p.keyStart, p.keyEnd)) as string}`)).join('');

const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);
const nestedObjects = (levels: number): string => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);
const inRoot = (levels: number): string => `{"m":${nested(levels - 1)}}`;

describe('depth', () => {
  it('passes exactly the limit and refuses one level more, for arrays and objects', () => {
    expect(scan(inRoot(DEPTH)).status).toBe('ok');
    expect(scan(inRoot(DEPTH + 1)).status).toBe('too-deep');
    expect(scan(nestedObjects(DEPTH)).status).toBe('ok');
    expect(scan(nestedObjects(DEPTH + 1)).status).toBe('too-deep');
  });

  it('refuses 100,000 levels on the chunk that passes the limit, without recursing', () => {
    const r = scan(`{"model":"m","metadata":${nested(100_000)}}`, 64);
    expect(r.status).toBe('too-deep');
    // The limit is passed within the first 24 + 128 bytes: the third chunk of 64 bytes.
    expect(r.pushes).toBe(3);
    expect(scan(nestedObjects(100_000), 7).status).toBe('too-deep');
  });

  it('names the path to where the limit was passed', () => {
    const text = `{"model":"m","messages":[{"role":"user"},{"content":${nested(DEPTH)}}]}`;
    const r = scan(text);
    if (r.status !== 'too-deep') throw new Error(r.status);
    expect(pathOf(text, r.path)).toBe(`.messages[1].content${'[0]'.repeat(DEPTH - 3)}`);
  });

  it('ignores brackets inside strings, escaped quotes included, across any chunk boundary', () => {
    const inner = JSON.stringify({ s: '[[[{{{ \\" \\\\" ]]] "quoted [" \\', t: ['\\\\', '"[', '\\"{'] });
    // The inner object and its array add two levels.
    const text = inRoot(DEPTH - 2).replace('[]', `[${inner}]`);
    for (const size of [1, 2, 3, 5, 64]) expect(scan(text, size)).toMatchObject({ status: 'ok', root: undefined });
    const over = inRoot(DEPTH - 1).replace('[]', `[${inner}]`);
    for (const size of [1, 3, 64]) expect(scan(over, size).status).toBe('too-deep');
  });
});

describe('entries', () => {
  const list = (n: number, item = '0'): string => Array(n).fill(item).join(',');

  it('refuses any array or object past maxEntries on the comma that makes one too many', () => {
    expect(scan(`{"a":[${list(ENTRIES)}]}`).status).toBe('ok');
    const text = `{"a":{"b":[${list(ENTRIES + 1)}]}}`;
    for (const size of [1, 13, 1 << 16]) {
      const r = scan(text, size);
      expect(r).toMatchObject({ status: 'too-many', max: ENTRIES, noun: 'entries', named: false });
      if (r.status === 'too-many') expect(pathOf(text, r.path)).toBe('.a.b');
    }
    const keys = `{"o":{${Array.from({ length: ENTRIES + 1 }, (_, i) => `"k${i}":1`).join(',')}}}`;
    expect(scan(keys)).toMatchObject({ status: 'too-many', max: ENTRIES });
    // Stops at the refusal: the rest of a body ten times over the limit is never scanned.
    const huge = `{"a":[${list(ENTRIES * 10)}]}`;
    expect(scan(huge, 100).pushes).toBe(Math.ceil((6 + 2 * ENTRIES) / 100));
  });

  it('applies named limits where they are named, with their noun', () => {
    const msgs = (n: number, content = '"x"'): string => Array(n).fill(`{"role":"user","content":${content}}`).join(',');
    const cases: [string, string, number, string][] = [
      [`{"messages":[${msgs(11)}]}`, '.messages', 10, 'entries'],
      [`{"tools":[${list(4, '{}')}],"messages":[]}`, '.tools', 3, 'entries'],
      [`{"messages":[${msgs(2)},{"content":[${list(6, '{"type":"text"}')}]}]}`, '.messages[2].content', 5, 'content parts'],
    ];
    for (const [text, path, max, noun] of cases) {
      for (const size of [1, 7, 1 << 16]) {
        const r = scan(text, size);
        expect(r).toMatchObject({ status: 'too-many', max, noun, named: true });
        if (r.status === 'too-many') expect(pathOf(text, r.path)).toBe(path);
      }
    }
    // Exactly at the limits; and the names mean nothing elsewhere (content outside messages, nested tools).
    expect(scan(`{"messages":[${msgs(9)},{"content":[${list(5, '{}')}]}],"tools":[1,2,3]}`).status).toBe('ok');
    expect(scan(`{"content":[${list(6)}],"x":{"tools":[${list(4)}]},"messages":[{"x":{"content":[${list(6)}]}}]}`).status).toBe('ok');
  });

  it('recognizes a named key however it is escaped or split across chunks', () => {
    const text = `{"mess\\u0061ges":[${list(11, '{}')}]}`;
    for (const size of [1, 2, 3, 5, 1 << 16]) expect(scan(text, size)).toMatchObject({ status: 'too-many', max: 10 });
    // A key that only starts like a name is not it.
    expect(scan(`{"messagesX":[${list(11)}],"message":[${list(11)}]}`).status).toBe('ok');
  });
});

describe('shape', () => {
  it('refuses a body that is not an object at its first byte', () => {
    for (const text of ['[1,2]', '"x"', '12', 'null', '  [', 'nonsense']) expect(scan(text).status).toBe('not-object');
    expect(scan(` \n{"a":1}`)).toMatchObject({ status: 'ok' });
  });

  it('flags unbalanced or mismatched brackets and trailing bytes', () => {
    for (const text of ['{"a":[1,2}', '{"a":1}}', '{"a":1} x', '{"a":1}{', '{"a":[1,2', '{"a":"unterminated}']) {
      expect(scan(text).status, text).toBe('malformed');
    }
  });
});

describe('slice marks', () => {
  it('leaves a body with few tokens and no long string to one JSON.parse', () => {
    expect(scan(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(LONG_STRING_BYTES - 10) }] }))).toMatchObject({ status: 'ok', root: undefined });
  });

  it('marks a body with many tokens, and a long string as a member of its own', () => {
    // More than SLICE_TOKENS values, in arrays under the entry limit.
    const many = scan(JSON.stringify({ a: Array.from({ length: 10 }, () => Array(Math.ceil(SLICE_TOKENS / 9)).fill(0)) }));
    expect(many.status === 'ok' && many.root?.kind).toBe('object');
    const text = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(LONG_STRING_BYTES + 1) }] });
    const r = scan(text, 4096);
    if (r.status !== 'ok' || r.root === undefined) throw new Error('not marked');
    const messages = r.root.segments.find((s) => s.kind === 'member');
    const message = messages?.kind === 'member' && messages.value?.kind === 'array' ? messages.value.segments[0] : undefined;
    const content = message?.kind === 'member' && message.value?.kind === 'object' ? message.value.segments.find((s) => s.kind === 'member') : undefined;
    expect(content?.kind === 'member' && content.value).toEqual({ kind: 'string', start: text.indexOf('"xxx'), end: text.length - 3 });
  });
});
