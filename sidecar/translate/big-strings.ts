// Large JSON answers without copies of their text. A 30 MB answer is almost all one or a few strings (the
// model's text); parsing it whole makes a string of the body and a string of each text, and writing the
// translated answer another string and another buffer: five times its size. Here the long strings at
// paths the translation only moves around (never reads) are held back: the rest (the skeleton) is parsed
// with each held string replaced by an unforgeable placeholder, the translation works on that, and the
// answer is written as the translated skeleton's JSON with the held strings' bytes put back where their
// placeholders ended up, straight from the upstream's buffer (JSON escapes the same in both formats).
//
// The whole answer is first checked as JSON.parse would check it, without building anything
// (formats/json-scan.ts), so a malformed answer is refused as before. When a placeholder did not survive
// intact (the translation changed it, dropped it, or escaped it twice), `restore` says so and the caller
// translates the whole answer the plain way.
import { randomBytes } from 'node:crypto';
import { scanJsonObject } from '../formats/json-scan.js';

/** Strings from this many bytes (as sent, escapes included) are held back. */
export const BIG_STRING_BYTES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export type JsonPath = readonly (string | number)[];

export interface Skeleton {
  /** The parsed answer; each held string is a placeholder. */
  readonly value: unknown;
  /** How many strings were held back (0: `value` is the whole answer). */
  readonly held: number;
  /**
   * The JSON text `json` (made from `value` or from what was built of it) with the held strings put back,
   * as the pieces to write in order; undefined when a placeholder did not survive intact.
   */
  restore(json: string): Buffer[] | undefined;
}

/**
 * Parses `raw`, holding back the strings of at least `minBytes` whose path `opaque` accepts. Throws
 * SyntaxError when `raw` is not valid JSON.
 */
export function parseSkeleton(raw: Buffer, opaque: (path: JsonPath) => boolean, minBytes = BIG_STRING_BYTES): Skeleton {
  const ranges = raw.length < minBytes ? [] : findBigStrings(raw, opaque, minBytes);
  if (ranges.length === 0) return { value: JSON.parse(raw.toString('utf8')), held: 0, restore: (json) => [Buffer.from(json)] };
  if (scanJsonObject(raw, []).kind === 'invalid') throw new SyntaxError('the answer is not valid JSON');
  const nonce = randomBytes(12).toString('base64url');
  const parts: string[] = [];
  let at = 0;
  ranges.forEach(([start, end], i) => {
    parts.push(raw.toString('utf8', at, start), `\\u0000${nonce}:${i}\\u0000`);
    at = end;
  });
  parts.push(raw.toString('utf8', at));
  const value: unknown = JSON.parse(parts.join(''));
  return { value, held: ranges.length, restore: (json) => restore(json, raw, ranges, nonce) };
}

/**
 * The JSON text with each intact placeholder replaced by its string's bytes; undefined if one is not
 * intact, or one held string appears nowhere (it was cut or dropped).
 */
function restore(json: string, raw: Buffer, ranges: [number, number][], nonce: string): Buffer[] | undefined {
  const out: Buffer[] = [];
  const seen = new Set<number>();
  const lead = '\\u0000';
  let at = 0;
  for (let found = json.indexOf(nonce); found !== -1; found = json.indexOf(nonce, found + nonce.length)) {
    const start = found - lead.length;
    const m = /^:(\d+)\\u0000/.exec(json.slice(found + nonce.length, found + nonce.length + 20));
    // Intact: `\u0000<nonce>:<i>\u0000` as one JSON escape (not preceded by another backslash: escaped twice).
    if (start < at || json.slice(start, found) !== lead || backslashesBefore(json, start) % 2 === 1 || m === null) return undefined;
    const range = ranges[Number(m[1])];
    if (range === undefined) return undefined;
    seen.add(Number(m[1]));
    out.push(Buffer.from(json.slice(at, start)), raw.subarray(range[0], range[1]));
    at = found + nonce.length + m[0].length;
  }
  out.push(Buffer.from(json.slice(at)));
  return seen.size === ranges.length ? out : undefined;
}

function backslashesBefore(s: string, i: number): number {
  let n = 0;
  while (i - n - 1 >= 0 && s.charCodeAt(i - n - 1) === BACKSLASH) n++;
  return n;
}

interface Frame {
  array: boolean;
  /** Objects: the key of the value being read, undefined while a key is expected. */
  key: string | undefined;
  index: number;
}

/**
 * The byte ranges (inside the quotes) of the string values of at least `minBytes` at accepted paths. A
 * light walk, not a validation (the scan is): it only has to terminate on any input.
 */
function findBigStrings(raw: Buffer, opaque: (path: JsonPath) => boolean, minBytes: number): [number, number][] {
  const ranges: [number, number][] = [];
  const stack: Frame[] = [];
  const path = (): (string | number)[] => stack.map((f) => (f.array ? f.index : (f.key ?? '')));
  let i = 0;
  while (i < raw.length) {
    const c = raw[i]!;
    if (c === QUOTE) {
      const end = stringEnd(raw, i + 1);
      const top = stack.at(-1);
      if (top !== undefined && !top.array && top.key === undefined) {
        const key = raw.subarray(i + 1, end);
        top.key = key.includes(BACKSLASH) ? (JSON.parse(raw.toString('utf8', i, end + 1)) as string) : key.toString('utf8');
      } else if (end - (i + 1) >= minBytes && opaque(path())) {
        ranges.push([i + 1, end]);
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) stack.push({ array: c === 0x5b, key: undefined, index: 0 });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack.at(-1);
      if (top?.array) top.index++;
      else if (top !== undefined) top.key = undefined;
    }
    i++;
  }
  return ranges;
}

/** Index of the quote that ends the string whose first byte is at `from`. */
function stringEnd(raw: Buffer, from: number): number {
  let q = raw.indexOf(QUOTE, from);
  while (q !== -1) {
    let n = 0;
    while (q - n - 1 >= from && raw[q - n - 1] === BACKSLASH) n++;
    if (n % 2 === 0) return q;
    q = raw.indexOf(QUOTE, q + 1);
  }
  throw new SyntaxError('Unterminated string in JSON');
}
