// JSON.stringify for large values without stalling the event loop: the text is produced a slice at a
// time (a generator walks the value; long strings are escaped in pieces), with a turn of the event loop
// between slices, and comes out as one Buffer. Gives exactly what JSON.stringify gives for the JSON
// values a parsed request holds (objects, arrays, strings, finite numbers, booleans, null; `undefined`
// members are left out as JSON.stringify leaves them). The text stays in its slices' Buffers, in order:
// joining them would be one copy of the whole text on the loop (tens of ms for 16 MB, page faults
// included), the very stall this avoids; an HTTP client sends them one after another.
import { setImmediate as nextTurn } from 'node:timers/promises';

/** About this many characters of text are produced between turns of the event loop. */
export const STRINGIFY_SLICE_CHARS = 1 << 20;
/** Strings longer than this are escaped a piece at a time. */
const STRING_PIECE = 1 << 16;

export async function stringifyInSlices(value: unknown, sliceChars = STRINGIFY_SLICE_CHARS): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let parts: string[] = [];
  let chars = 0;
  for (const s of pieces(value)) {
    parts.push(s);
    chars += s.length;
    if (chars >= sliceChars) {
      out.push(Buffer.from(parts.join('')));
      parts = [];
      chars = 0;
      await nextTurn();
    }
  }
  if (parts.length > 0) out.push(Buffer.from(parts.join('')));
  return out;
}

/** The byte length of a text kept in slices. */
export function slicesLength(slices: readonly Buffer[]): number {
  let n = 0;
  for (const b of slices) n += b.length;
  return n;
}

function* pieces(v: unknown): Generator<string> {
  if (typeof v === 'string') {
    if (v.length <= STRING_PIECE) yield JSON.stringify(v);
    else yield* longString(v);
    return;
  }
  if (v === null || typeof v !== 'object') {
    yield JSON.stringify(v) ?? 'null';
    return;
  }
  if (Array.isArray(v)) {
    yield '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) yield ',';
      const x: unknown = v[i];
      // As JSON.stringify: undefined and functions in an array are null.
      if (x === undefined || typeof x === 'function') yield 'null';
      else yield* pieces(x);
    }
    yield ']';
    return;
  }
  yield '{';
  let first = true;
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined || typeof x === 'function') continue;
    yield first ? `${JSON.stringify(k)}:` : `,${JSON.stringify(k)}:`;
    first = false;
    yield* pieces(x);
  }
  yield '}';
}

/** A long string's JSON text, escaped a piece at a time; a piece never ends between a surrogate pair's halves. */
function* longString(s: string): Generator<string> {
  yield '"';
  for (let i = 0; i < s.length; ) {
    let end = Math.min(s.length, i + STRING_PIECE);
    const last = s.charCodeAt(end - 1);
    if (end < s.length && last >= 0xd800 && last <= 0xdbff) end--;
    yield JSON.stringify(s.slice(i, end)).slice(1, -1);
    i = end;
  }
  yield '"';
}
