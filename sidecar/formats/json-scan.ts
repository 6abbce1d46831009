// A validating scan of JSON bytes that builds nothing: it accepts exactly what JSON.parse accepts of the
// same bytes decoded as UTF-8, and says where chosen top-level members' values lie. Same-format answers go
// to the app as the provider's bytes, so checking them this way costs neither a decoded copy of the body
// nor its object graph (formats/answer-shape.ts uses it).

/** One top-level member's value: bytes `[start, end)` of the scanned buffer. */
export interface MemberValue {
  start: number;
  end: number;
  /** The value is an array and every element of it is an object. */
  arrayOfObjects: boolean;
}

export type JsonScan =
  | { kind: 'invalid' }
  /** Valid JSON whose top-level value is not an object. */
  | { kind: 'not-object' }
  /**
   * A valid object with a top-level key written with escapes (`"choi\u0063es"`): bytes cannot say which
   * key it is, so the caller parses the text instead. Providers do not write keys this way.
   */
  | { kind: 'escaped-key' }
  /** Per asked key, the value of its last occurrence (the one JSON.parse keeps), or undefined. */
  | { kind: 'object'; members: (MemberValue | undefined)[] };

const INVALID: JsonScan = { kind: 'invalid' };
const NOT_OBJECT: JsonScan = { kind: 'not-object' };
const ESCAPED_KEY: JsonScan = { kind: 'escaped-key' };

/** The open containers (1 object, 0 array); shared, as scans never interleave, and doubled when full. */
let stack = new Uint8Array(64);

/**
 * Scans `bytes` as one JSON text; `keys` are top-level member names as UTF-8 bytes. The result is
 * `invalid` exactly when `JSON.parse(bytes.toString('utf8'))` throws.
 */
export function scanJsonObject(bytes: Uint8Array, keys: readonly Uint8Array[]): JsonScan {
  // What the scan expects next (constants local to the function, so the compiler folds them).
  const VALUE = 0;
  const AFTER_VALUE = 1;
  /** Right after `{`. */
  const KEY_OR_END = 2;
  /** After a `,` inside an object. */
  const KEY = 3;
  /** Right after `[`. */
  const VALUE_OR_END = 4;
  const b = bytes;
  const n = b.length;
  /** The shared stack, held locally (a module variable is slower to reach on every byte). */
  let containers = stack;
  // The body as aligned 32-bit words, for skipString (not worth making for a short body).
  const wordsAt = ((b.byteOffset + 3) & ~3) - b.byteOffset;
  const words = n >= 64 ? new Int32Array(b.buffer, b.byteOffset + wordsAt, (n - wordsAt) >> 2) : undefined;
  const members: (MemberValue | undefined)[] = keys.map(() => undefined);
  let i = 0;
  let depth = 0;
  let state = VALUE;
  let topIsObject = false;
  /** Index in `keys` of the top-level member whose value comes next, or -1. */
  let asked = -1;
  /** That member's value while it is being read. */
  let open: MemberValue | undefined;
  let escapedKey = false;
  for (;;) {
    if (i >= n) {
      if (depth !== 0 || state !== AFTER_VALUE) return INVALID;
      if (!topIsObject) return NOT_OBJECT;
      return escapedKey ? ESCAPED_KEY : { kind: 'object', members };
    }
    let c = b[i]!;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      i++;
      continue;
    }
    if (state === VALUE_OR_END) {
      if (c === 0x5d /* ] */) {
        i++;
        depth--;
        state = AFTER_VALUE;
        if (depth === 1 && open !== undefined) open = close(open, i);
        continue;
      }
      state = VALUE;
    }
    if (state === VALUE) {
      if (depth === 0) topIsObject = c === 0x7b;
      else if (depth === 1 && asked !== -1) {
        open = { start: i, end: n, arrayOfObjects: c === 0x5b };
        members[asked] = open;
        asked = -1;
      } else if (depth === 2 && open !== undefined && c !== 0x7b) {
        // An element of the member's array (depth 2 inside a top-level value is only ever its elements
        // or, for an object value, its members' values, and an object is not arrayOfObjects anyway).
        open.arrayOfObjects = false;
      }
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        if (depth === containers.length) {
          const grown = new Uint8Array(containers.length * 2);
          grown.set(containers);
          stack = containers = grown;
        }
        containers[depth++] = c === 0x7b ? 1 : 0;
        i++;
        state = c === 0x7b ? KEY_OR_END : VALUE_OR_END;
        continue;
      }
      i = c === 0x22 /* " */ ? skipString(b, i + 1, words, wordsAt) : c === 0x74 ? literal(b, i, TRUE) : c === 0x66 ? literal(b, i, FALSE) : c === 0x6e ? literal(b, i, NULL) : skipNumber(b, i);
      if (i < 0) return INVALID;
      state = AFTER_VALUE;
      if (depth === 1 && open !== undefined) open = close(open, i);
      continue;
    }
    if (state === AFTER_VALUE) {
      if (depth === 0) return INVALID;
      const inObject = containers[depth - 1] === 1;
      i++;
      if (c === 0x2c /* , */) {
        state = inObject ? KEY : VALUE;
      } else if (c === (inObject ? 0x7d /* } */ : 0x5d) /* ] */) {
        depth--;
        if (depth === 1 && open !== undefined) open = close(open, i);
      } else {
        return INVALID;
      }
      continue;
    }
    // KEY_OR_END or KEY.
    if (c === 0x7d && state === KEY_OR_END) {
      i++;
      depth--;
      state = AFTER_VALUE;
      if (depth === 1 && open !== undefined) open = close(open, i);
      continue;
    }
    if (c !== 0x22) return INVALID;
    const start = i + 1;
    i = skipString(b, start, words, wordsAt);
    if (i < 0) return INVALID;
    if (depth === 1) {
      const length = i - 1 - start;
      for (let k = start; k < i - 1; k++) if (b[k] === 0x5c) escapedKey = true;
      asked = keyIndex(b, start, length, keys);
    }
    while ((c = b[i]!) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    if (c !== 0x3a /* : */) return INVALID;
    i++;
    state = VALUE;
  }
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function close(open: MemberValue, end: number): undefined {
  open.end = end;
  return undefined;
}

/** Which of `keys` the `length` bytes at `at` spell, or -1. */
function keyIndex(b: Uint8Array, at: number, length: number, keys: readonly Uint8Array[]): number {
  next: for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!;
    if (key.length !== length) continue;
    for (let j = 0; j < length; j++) if (b[at + j] !== key[j]) continue next;
    return k;
  }
  return -1;
}

/**
 * From just after an opening quote to just after the closing one; -1 when the string is malformed. Where
 * `words` views the same memory, 32-bit word `k` covering bytes `[wordsAt + 4k, wordsAt + 4k + 4)`, plain
 * stretches are skipped four bytes at a time: long strings (a model's text, base64 embeddings) are most of
 * an answer's bytes.
 */
function skipString(b: Uint8Array, from: number, words: Int32Array | undefined, wordsAt: number): number {
  const n = b.length;
  let i = from;
  while (i < n) {
    if (words !== undefined && i >= wordsAt && ((i - wordsAt) & 3) === 0) {
      let k = (i - wordsAt) >> 2;
      const end = (n - wordsAt) >> 2;
      while (k < end && isPlain(words[k]!)) k++;
      i = wordsAt + (k << 2);
      if (i >= n) break;
    }
    const c = b[i++]!;
    if (c === 0x22) return i;
    if (c === 0x5c) {
      const e = b[i++];
      if (e === 0x75 /* u */) {
        for (let k = 0; k < 4; k++) {
          const h = (b[i++] ?? 0) | 0x20;
          if (!((h >= 0x30 && h <= 0x39) || (h >= 0x61 && h <= 0x66))) return -1;
        }
      } else if (e !== 0x22 && e !== 0x5c && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) {
        return -1;
      }
    } else if (c < 0x20) {
      return -1;
    }
  }
  return -1;
}

/**
 * No byte of the word is a quote, a backslash or below 0x20 (the classic "has zero byte" / "has byte less
 * than" bit tricks, exact for the word as a whole; bytes from 0x80 up count as plain).
 */
function isPlain(x: number): boolean {
  const quote = x ^ 0x22222222;
  const backslash = x ^ 0x5c5c5c5c;
  return ((((x - 0x20202020) & ~x) | ((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash)) & 0x80808080) === 0;
}

function literal(b: Uint8Array, at: number, word: readonly number[]): number {
  for (let k = 0; k < word.length; k++) if (b[at + k] !== word[k]) return -1;
  return at + word.length;
}

/** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`: the index after it, or -1. */
function skipNumber(b: Uint8Array, at: number): number {
  // Reads past the end give undefined, which is no digit: the comparisons below are false for it.
  let i = at;
  let c = b[i]!;
  if (c === 0x2d) c = b[++i]!;
  if (c === 0x30) c = b[++i]!;
  else if (c >= 0x31 && c <= 0x39) do c = b[++i]!; while (c >= 0x30 && c <= 0x39);
  else return -1;
  if (c === 0x2e /* . */) {
    c = b[++i]!;
    if (!(c >= 0x30 && c <= 0x39)) return -1;
    do c = b[++i]!; while (c >= 0x30 && c <= 0x39);
  }
  if (c === 0x65 || c === 0x45 /* e E */) {
    c = b[++i]!;
    if (c === 0x2b || c === 0x2d) c = b[++i]!;
    if (!(c >= 0x30 && c <= 0x39)) return -1;
    do c = b[++i]!; while (c >= 0x30 && c <= 0x39);
  }
  return i;
}
