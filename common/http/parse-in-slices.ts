// Parses a large JSON body slice by slice along the cuts JsonScanner marked, giving the event loop back
// between slices, so one big request does not stall every other request in the pod. The result equals
// JSON.parse of the whole body (same values, key order and duplicate-key rule).
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Segment, SplitNode } from './json-scanner.js';

/** Most milliseconds of parsing between two turns of the event loop. */
export const SLICE_BUDGET_MS = 5;

/** Thrown for a body that is not JSON; `message` says where. */
export class SliceSyntaxError extends Error {}

export async function parseInSlices(raw: Buffer, root: SplitNode): Promise<unknown> {
  let since = performance.now();
  const pace = async (): Promise<void> => {
    if (performance.now() - since < SLICE_BUDGET_MS) return;
    await nextTurn();
    since = performance.now();
  };

  const build = async (node: SplitNode): Promise<unknown> => {
    const array = node.kind === 'array';
    const out: unknown[] | Record<string, unknown> = array ? [] : {};
    for (const seg of node.segments) {
      if (seg.kind === 'slice') merge(out, parseSlice(raw, seg, array));
      else put(out, memberKey(raw, seg, array), await build(seg.node));
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

/** The key of a member whose value was parsed on its own (undefined in arrays); checks what surrounds it. */
function memberKey(raw: Buffer, seg: Extract<Segment, { kind: 'node' }>, array: boolean): string | undefined {
  const { node } = seg;
  let key: string | undefined;
  let valueFrom = seg.memberStart;
  if (!array) {
    if (seg.colon === -1) throw new SliceSyntaxError(`expected ":" before byte ${node.start}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8', seg.memberStart, seg.colon));
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'string') throw new SliceSyntaxError(`expected a key before byte ${seg.colon}`);
    key = parsed;
    valueFrom = seg.colon + 1;
  }
  if (!blank(raw, valueFrom, node.start) || !blank(raw, node.end, seg.memberEnd)) {
    throw new SliceSyntaxError(`unexpected token near byte ${node.start}`);
  }
  return key;
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
