// Parses a large JSON body slice by slice along the cuts JsonScanner marked, giving the event loop back
// between slices, so one big request does not stall every other request in the pod. A long string is
// decoded in pieces of LONG_STRING_BYTES (and joined), so a single 15 MB string is no single slice either.
// The result equals JSON.parse of the whole body (same values, key order and duplicate-key rule).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LONG_STRING_BYTES, type LongString, type Segment, type SplitNode } from './json-scanner.js';

/** Most milliseconds of parsing between two turns of the event loop. */
export const SLICE_BUDGET_MS = 5;

/** Thrown for a body that is not JSON; `message` says where. */
export class SliceSyntaxError extends Error {}

type Pace = () => Promise<void>;
type Member = Extract<Segment, { kind: 'member' }>;

export async function parseInSlices(raw: Buffer, root: SplitNode): Promise<unknown> {
  let since = performance.now();
  const pace: Pace = async () => {
    if (performance.now() - since < SLICE_BUDGET_MS) return;
    await nextTurn();
    since = performance.now();
  };

  const build = async (node: SplitNode): Promise<unknown> => {
    const array = node.kind === 'array';
    const out: unknown[] | Record<string, unknown> = array ? [] : {};
    for (const seg of node.segments) {
      if (seg.kind === 'slice') merge(out, parseSlice(raw, seg, array));
      else {
        const key = array ? undefined : await memberKey(raw, seg, pace);
        put(out, key, await memberValue(raw, seg, array, build, pace));
      }
      await pace();
    }
    return out;
  };
  return build(root);
}

function parseSlice(raw: Buffer, seg: Extract<Segment, { kind: 'slice' }>, array: boolean): unknown[] | Record<string, unknown> {
  const text = raw.toString('utf8', seg.start, seg.end);
  let value: unknown[] | Record<string, unknown>;
  try {
    value = JSON.parse(array ? `[${text}]` : `{${text}}`) as unknown[] | Record<string, unknown>;
  } catch (err) {
    throw new SliceSyntaxError(`${(err as Error).message} (in bytes ${seg.start}–${seg.end})`);
  }
  // A slice holds at least one member; an empty result means an empty member (`[…, ]`).
  if ((Array.isArray(value) ? value.length : Object.keys(value).length) === 0) {
    throw new SliceSyntaxError(`empty member at byte ${seg.start}`);
  }
  return value;
}

/** The key of an object member parsed on its own; checks what surrounds it. */
async function memberKey(raw: Buffer, seg: Member, pace: Pace): Promise<string> {
  if (seg.colon === -1) throw new SliceSyntaxError(`expected ":" in the member at byte ${seg.memberStart}`);
  if (seg.key !== undefined) {
    if (!blank(raw, seg.memberStart, seg.key.start) || !blank(raw, seg.key.end, seg.colon)) {
      throw new SliceSyntaxError(`expected a key before byte ${seg.colon}`);
    }
    return decodeLongString(raw, seg.key, pace);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8', seg.memberStart, seg.colon));
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'string') throw new SliceSyntaxError(`expected a key before byte ${seg.colon}`);
  return parsed;
}

/**
 * The value of a member parsed on its own: its container or long string, with nothing but blanks around
 * it; or, after a long key, a plain value small enough for one JSON.parse.
 */
async function memberValue(raw: Buffer, seg: Member, array: boolean, build: (node: SplitNode) => Promise<unknown>, pace: Pace): Promise<unknown> {
  const v = seg.value;
  if (v === undefined) {
    try {
      return JSON.parse(raw.toString('utf8', seg.colon + 1, seg.memberEnd));
    } catch (err) {
      throw new SliceSyntaxError(`${(err as Error).message} (in bytes ${seg.colon + 1}–${seg.memberEnd})`);
    }
  }
  if (!blank(raw, array ? seg.memberStart : seg.colon + 1, v.start) || !blank(raw, v.end, seg.memberEnd)) {
    throw new SliceSyntaxError(`unexpected token near byte ${v.start}`);
  }
  return v.kind === 'string' ? decodeLongString(raw, v, pace) : build(v);
}

/**
 * A long string, decoded LONG_STRING_BYTES at a time and joined. Each piece is cut where the whole-body
 * decode would also break: before a byte that starts a UTF-8 character, never inside an escape.
 */
async function decodeLongString(raw: Buffer, s: LongString, pace: Pace): Promise<string> {
  const end = s.end - 1;
  let out = '';
  for (let from = s.start + 1; from < end; ) {
    const cut = end - from <= LONG_STRING_BYTES ? end : cutBefore(raw, from, from + LONG_STRING_BYTES);
    let piece: unknown;
    try {
      piece = JSON.parse(`"${raw.toString('utf8', from, cut)}"`);
    } catch (err) {
      throw new SliceSyntaxError(`${(err as Error).message} (in the string at bytes ${s.start}–${s.end})`);
    }
    if (typeof piece !== 'string') throw new SliceSyntaxError(`bad string at byte ${s.start}`);
    out += piece;
    from = cut;
    await pace();
  }
  return out;
}

const isContinuation = (b: number): boolean => (b & 0xc0) === 0x80;

/** The last place at or before `target` (after `from`, itself such a place) where a string may be cut. */
export function cutBefore(raw: Buffer, from: number, target: number): number {
  let p = target;
  while (p > from + 1 && (isContinuation(raw[p]!) || insideEscape(raw, from, p))) p--;
  return p;
}

/** Whether a cut before raw[p] would split an escape (`\x` or `\uXXXX`); `from` is the start of one or of plain text. */
function insideEscape(raw: Buffer, from: number, p: number): boolean {
  if (startsEscape(raw, from, p - 1)) return true;
  for (let q = Math.max(from, p - 5); q <= p - 2; q++) {
    if (raw[q] === 0x5c && raw[q + 1] === 0x75 && startsEscape(raw, from, q)) return true;
  }
  return false;
}

/** Whether raw[q] is a backslash that starts an escape: it ends an odd run of backslashes (counted from `from`). */
function startsEscape(raw: Buffer, from: number, q: number): boolean {
  let k = q;
  while (k >= from && raw[k] === 0x5c) k--;
  return (q - k) % 2 === 1;
}

function blank(raw: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = raw[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return true;
}

function merge(out: unknown[] | Record<string, unknown>, part: unknown[] | Record<string, unknown>): void {
  if (Array.isArray(out)) {
    for (const v of part as unknown[]) out.push(v);
  } else {
    const obj = part as Record<string, unknown>;
    for (const k of Object.keys(obj)) put(out, k, obj[k]);
  }
}

function put(out: unknown[] | Record<string, unknown>, key: string | undefined, value: unknown): void {
  if (Array.isArray(out)) out.push(value);
  // JSON.parse makes "__proto__" an own property; a plain assignment would set the prototype instead.
  else if (key === '__proto__') Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
  else out[key!] = value;
}
