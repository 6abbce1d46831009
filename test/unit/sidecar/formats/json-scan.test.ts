// The byte scanner must accept exactly what JSON.parse accepts: pinned on hand-picked cases and on many
// random mutations of JSON texts (a seeded generator, so a failure replays), then its member ranges.
import { describe, expect, it } from 'vitest';
import { scanJsonObject } from '../../../../sidecar/formats/json-scan.js';

const KEYS = [Buffer.from('choices'), Buffer.from('usage')];
const scan = (text: string | Buffer) => scanJsonObject(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, KEYS);
const parses = (buf: Buffer): boolean => {
  try {
    JSON.parse(buf.toString('utf8'));
    return true;
  } catch {
    return false;
  }
};

/** mulberry32: small, seeded, good enough to pick mutations. */
function random(seed: number): (n: number) => number {
  let a = seed;
  return (n) => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

describe('scanJsonObject validity', () => {
  it('agrees with JSON.parse on hand-picked texts', () => {
    const texts = [
      '{}', '[]', '0', '-0', '1.5e+10', '"x"', 'true', 'null', ' {"a" : [ 1 , 2 ] } ', '{"a":"\\u00e9\\n\\"\\\\\\/"}',
      '{"x":NaN}', '{"x":Infinity}', '{"a":1,}', '[1,]', '{"a" 1}', '{a:1}', "{'a':1}", '01', '1.', '.5', '+1', '1e', '-',
      '{"a":"\\x"}', '{"a":"\\u12"}', '{"a":"tab\there"}', '{"a":"\x1f"}', '{"a":"\x7f"}', '{"a":"\x00"}', '{} {}', '{}x', '', ' ', '{"a":tru}', '{"a":nul}', '\ufeff{}',
      '{"a":[1,2', '{"choices":[{"index":0', '"unterminated', '{"a":1}}', '[[[]]', '{"":""}', '{"a":-01}', '{"a":1E-2}',
    ];
    for (const t of texts) expect(scan(t).kind !== 'invalid', JSON.stringify(t)).toBe(parses(Buffer.from(t, 'utf8')));
  });

  it('agrees with JSON.parse on 20,000 random mutations, raw non-UTF-8 bytes included', () => {
    const rnd = random(17);
    const seeds = [
      JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'héllo "q" \\ \t €😀' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 2.5e-3 } }),
      '{"a":[1,-0,2.5E+3,true,false,null,"\\u00e9\\n"],"b":{},"c":[]}',
      '[ { } , [ ] , "" , 0 ]',
      '{"type":"message","content":[{"type":"text","text":"x"}],"usage":null}',
    ];
    const alphabet = ['{', '}', '[', ']', '"', ',', ':', '0', '1', '9', '.', '-', '+', 'e', 'E', 't', 'r', 'u', 'f', 'a', 'l', 's', 'n', ' ', '\\', '\t', '\n', '\r', '\x00', '\x1f', '\x7f', 'é', '\ufeff'];
    let disagreements = 0;
    let valid = 0;
    for (let k = 0; k < 20_000; k++) {
      let s = seeds[rnd(seeds.length)]!;
      for (let m = 1 + rnd(3); m > 0; m--) {
        const at = rnd(s.length + 1);
        const ch = alphabet[rnd(alphabet.length)]!;
        const op = rnd(3);
        s = op === 0 ? s.slice(0, at) + s.slice(at + 1) : op === 1 ? s.slice(0, at) + ch + s.slice(at) : s.slice(0, at) + ch + s.slice(at + 1);
      }
      let buf = Buffer.from(s, 'utf8');
      if (rnd(8) === 0 && buf.length > 0) buf[rnd(buf.length)] = 0x80 + rnd(128);
      if (rnd(16) === 0) buf = buf.subarray(0, rnd(buf.length + 1));
      const want = parses(buf);
      if (want) valid++;
      if ((scan(buf).kind !== 'invalid') !== want) disagreements++;
    }
    expect(disagreements).toBe(0);
    // Both kinds were exercised.
    expect(valid).toBeGreaterThan(1000);
    expect(valid).toBeLessThan(19_000);
  });

  it('agrees with JSON.parse on long strings (scanned a word at a time) with a special byte at every offset and alignment', () => {
    const specials = ['"', '\\"', '\\n', '\\u00e9', '\\u00g9', '\\x', '\x01', '\x1f', '\t', 'é', '😀', '\\', ' '];
    let cases = 0;
    for (const special of specials) {
      for (let at = 0; at < 12; at++) {
        const text = `{"choices":[{"text":"${'a'.repeat(60 + at)}${special}${'b'.repeat(70)}"}],"usage":null}`;
        const bytes = Buffer.from(text, 'utf8');
        for (let shift = 0; shift < 4; shift++) {
          // The same bytes at each alignment of their underlying memory.
          const backing = Buffer.alloc(bytes.length + 8);
          bytes.copy(backing, shift);
          const view = backing.subarray(shift, shift + bytes.length);
          expect(scan(view).kind !== 'invalid', `${JSON.stringify(special)} at ${at}, shift ${shift}`).toBe(parses(view));
          cases++;
        }
      }
    }
    expect(cases).toBe(specials.length * 48);
  });

  it('handles nesting deeper than its initial stack', () => {
    expect(scan(`{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`).kind).toBe('object');
    expect(scan(`{"a":${'['.repeat(5000)}${']'.repeat(4999)}}`).kind).toBe('invalid');
  });

  it('tells a valid non-object from invalid text', () => {
    expect(scan('[{"choices":[]}]').kind).toBe('not-object');
    expect(scan('"a string"').kind).toBe('not-object');
  });
});

describe('scanJsonObject members', () => {
  it('gives the byte range of each asked top-level member and whether it is an array of objects', () => {
    const text = '{"choices":[{"a":1},{"b":[2]}], "usage" : {"p":1} ,"x":{"choices":5}}';
    const r = scan(text);
    expect(r.kind).toBe('object');
    if (r.kind !== 'object') return;
    const [choices, usage] = r.members;
    expect(text.slice(choices!.start, choices!.end)).toBe('[{"a":1},{"b":[2]}]');
    expect(choices!.arrayOfObjects).toBe(true);
    expect(text.slice(usage!.start, usage!.end)).toBe('{"p":1}');
    expect(usage!.arrayOfObjects).toBe(false);
  });

  it('says an array holding anything but objects is not an array of objects, and an empty one is', () => {
    const members = (t: string) => (scan(t) as { members: { arrayOfObjects: boolean }[] }).members;
    expect(members('{"choices":[{"a":1},2]}')[0]!.arrayOfObjects).toBe(false);
    expect(members('{"choices":[[]]}')[0]!.arrayOfObjects).toBe(false);
    expect(members('{"choices":"[{}]"}')[0]!.arrayOfObjects).toBe(false);
    expect(members('{"choices":[]}')[0]!.arrayOfObjects).toBe(true);
  });

  it('keeps the last occurrence of a repeated key, as JSON.parse does, and ignores nested ones', () => {
    const r = scan('{"choices":[{}],"usage":1,"choices":5,"y":{"usage":2}}');
    if (r.kind !== 'object') throw new Error(r.kind);
    expect(r.members[0]!.arrayOfObjects).toBe(false);
    expect(r.members[1]).toMatchObject({ start: 24, end: 25 });
    expect((scan('{"a":{"choices":[{}]}}') as { members: unknown[] }).members[0]).toBeUndefined();
  });

  it('reports a top-level key written with escapes instead of guessing which key it is', () => {
    expect(scan('{"choi\\u0063es":[{}]}').kind).toBe('escaped-key');
    expect(scan('{"a":{"k\\u0065y":1},"choices":[]}').kind).toBe('object');
  });
});
