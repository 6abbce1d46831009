// An incremental, non-recursive scan of a large JSON body's bytes as they arrive. It enforces the body's
// bounds before anything is parsed (nesting depth, entries per array or object, tighter entry limits on
// named fields) and reports a refusal on the chunk that passes one, so the reader stops there. It also marks
// where a body past SLICE_BYTES or SLICE_TOKENS can be cut, so that it is parsed in slices
// (parse-in-slices.ts) instead of one JSON.parse that would stall the event loop.
// It is not a validator: JSON.parse still checks every byte; the scanner only needs brackets, commas,
// colons and string boundaries to be right, and refuses a large body when they are not.

/** Bodies with more `{ [ ,` tokens than this, or more bytes than SLICE_BYTES, are parsed in slices. */
export const SLICE_TOKENS = 8192;
/** See SLICE_TOKENS. A slice is cut once it holds this many bytes (strings parse fast; tokens cost). */
export const SLICE_BYTES = 1 << 20;
/** Strings longer than this many bytes are decoded on their own, piece by piece, in pieces this long. */
export const LONG_STRING_BYTES = 256 << 10;

/** Entry limits on the containers at and under one place of the body (the root, a key, an array's items). */
export interface EntryLimits {
  /** Most entries of the array or object found here. */
  readonly max?: number;
  /** What its entries are called in the refusal; default "entries". */
  readonly noun?: string;
  /** Limits under this object's members, by key. */
  readonly keys?: Readonly<Record<string, EntryLimits>>;
  /** Limits under each entry of this array. */
  readonly items?: EntryLimits;
}

export interface ScanLimits {
  /** Most `[`/`{` levels; the body itself is level 1. */
  readonly maxDepth: number;
  /** Most entries of any one array or object. */
  readonly maxEntries: number;
  /** Tighter limits on named places, from the root object. */
  readonly named?: EntryLimits;
}

/** One step from a container to a member: an array index, or the byte range of an object key (quotes included). */
export type PathStep = number | { keyStart: number; keyEnd: number };

/** A bound the body passed; the scan stopped there, so the rest of the body need not be read. */
export type Refusal<Step = PathStep> =
  /** `path` leads from the root to the container opened past the limit. */
  | { status: 'too-deep'; path: Step[] }
  /** `path` leads to the container with too many entries; `named` when the limit is a named one (not maxEntries). */
  | { status: 'too-many'; path: Step[]; max: number; noun: string; named: boolean }
  | { status: 'not-object' };

/** The refusal of a container (at `path`, under `limits`) with more entries than it may have. */
export function tooMany<Step>(limits: EntryLimits | undefined, maxEntries: number, path: Step[]): Refusal<Step> {
  const named = limits?.max !== undefined && limits.max <= maxEntries;
  return { status: 'too-many', path, max: named ? limits.max! : maxEntries, noun: (named && limits.noun) || 'entries', named };
}

export type ScanResult =
  | Refusal
  | { status: 'malformed'; reason: string; offset: number }
  /** `root` is undefined when the body is small enough for one JSON.parse (the common case). */
  | { status: 'ok'; root: SplitNode | undefined };

/** A container parsed in slices: consecutive segments that together cover all its members. */
export interface SplitNode {
  kind: 'array' | 'object';
  /** Offset of the opening bracket. */
  start: number;
  /** Offset just past the closing bracket. */
  end: number;
  segments: Segment[];
}

/** A string longer than LONG_STRING_BYTES: [start, end) includes its quotes. */
export interface LongString {
  kind: 'string';
  start: number;
  end: number;
}

/**
 * `slice`: members [start, end) parsed with one JSON.parse. `member`: one member parsed on its own, because
 * its value is a SplitNode or a LongString or its key is a LongString ([memberStart, memberEnd) includes
 * the key and colon in objects; `value` is undefined for a plain value after a long key).
 * Segments are separated by one comma.
 */
export type Segment =
  | { kind: 'slice'; start: number; end: number }
  | { kind: 'member'; memberStart: number; colon: number; memberEnd: number; key: LongString | undefined; value: SplitNode | LongString | undefined };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Byte classes of the scan loop; everything else (0) is inside a scalar. */
const SPACE = 1;
const STRING = 2;
const OPEN = 3;
const CLOSE = 4;
const COMMA = 5;
const COLON = 6;
const CLASS = new Uint8Array(256);
for (const c of [0x20, 0x0a, 0x0d, 0x09]) CLASS[c] = SPACE;
CLASS[QUOTE] = STRING;
CLASS[0x7b] = CLASS[0x5b] = OPEN;
CLASS[0x7d] = CLASS[0x5d] = CLOSE;
CLASS[0x2c] = COMMA;
CLASS[0x3a] = COLON;
/** Longest key compared with the names of EntryLimits.keys (a name spelled in `\uXXXX` escapes takes 6 bytes a letter). */
const MAX_WATCHED_KEY = 96;

/** One open container: its bounds, its current member, and the segments marked so far. */
interface Frame {
  object: boolean;
  start: number;
  tokens0: number;
  /** Commas so far; `max` of them would make one entry too many. */
  commas: number;
  max: number;
  /** This container's named limits, those under its current member, and its `keys` compiled. */
  limits: EntryLimits | undefined;
  memberLimits: EntryLimits | undefined;
  keyNames: KeyNames | undefined;
  memberStart: number;
  memberTokens0: number;
  /** The current member's key [keyStart, keyEnd) (quotes included) and `:`, -1 before them. */
  keyStart: number;
  keyEnd: number;
  colon: number;
  /** Start of the slice being gathered, -1 when none is open. */
  sliceStart: number;
  sliceTokens0: number;
  segments: Segment[];
  /** A value that makes the current member a segment of its own: a big container or a long string. */
  value: SplitNode | LongString | undefined;
}

export class JsonScanner {
  private readonly stack: Frame[] = [];
  private offset = 0;
  private tokens = 0;
  private state: 'before' | 'in-root' | 'after' | 'stopped' = 'before';
  private result: ScanResult | undefined;
  private refusal: Refusal | undefined;
  private root: SplitNode | undefined;
  /** The next string in the current (object) container is a key. */
  private expectKey = false;
  private inString = false;
  /** The string's next byte is escaped (a backslash ended the previous chunk). */
  private escaped = false;
  private stringStart = 0;
  private stringIsKey = false;
  /** The first bytes of a watched key that began in an earlier chunk. */
  private keyHead: Buffer | undefined;

  constructor(private readonly bounds: ScanLimits) {}

  /** Scans the next chunk; returns the refusal once a bound is passed (later chunks are ignored). */
  push(chunk: Buffer): Refusal | undefined {
    this.scan(chunk);
    return this.refusal;
  }

  /** The verdict once the body has ended. */
  finish(): ScanResult {
    if (this.result !== undefined) return this.result;
    if (this.state === 'before') return { status: 'ok', root: undefined };
    if (this.inString || this.stack.length > 0) return { status: 'malformed', reason: 'unexpected end', offset: this.offset };
    return { status: 'ok', root: this.root };
  }

  private scan(chunk: Buffer): void {
    const base = this.offset;
    this.offset += chunk.length;
    if (this.state === 'stopped' || chunk.length === 0) return;
    let i = 0;
    if (this.inString) {
      if (this.escaped) {
        this.escaped = false;
        i = 1;
      }
      i = this.skipString(chunk, i);
      if (i < 0) return this.keepKeyHead(chunk, 0);
      this.endString(chunk, base, i);
      i++;
    }
    const stack = this.stack;
    for (const len = chunk.length; i < len; i++) {
      const cls = CLASS[chunk[i]!]!;
      if (cls === SPACE) continue;
      const top = stack[stack.length - 1];
      if (top === undefined && cls !== OPEN) return this.outside(base + i, chunk[i]!);
      if (cls === STRING) {
        this.stringStart = base + i;
        this.stringIsKey = this.expectKey;
        const end = this.skipString(chunk, i + 1);
        if (end < 0) return this.keepKeyHead(chunk, i + 1);
        this.endString(chunk, base, end);
        i = end;
      } else if (cls === OPEN) {
        if (!this.open(chunk[i] === 0x7b, base + i, top)) return;
      } else if (cls === CLOSE) {
        if (chunk[i] === 0x7d !== top!.object) return void this.malformed(`unexpected "${String.fromCharCode(chunk[i]!)}"`, base + i);
        this.close(top!, base + i);
      } else if (cls === COMMA) {
        if (!this.comma(top!, base + i)) return;
      } else if (cls === COLON && top!.colon === -1) {
        top!.colon = base + i;
      }
    }
  }

  private open(object: boolean, at: number, parent: Frame | undefined): boolean {
    this.tokens++;
    if (parent === undefined) {
      if (this.state !== 'before') return this.malformed(`unexpected "${object ? '{' : '['}" after the top-level value`, at);
      if (!object) return this.refuse({ status: 'not-object' });
      this.state = 'in-root';
    }
    if (this.stack.length >= this.bounds.maxDepth) return this.refuse({ status: 'too-deep', path: this.path(this.stack.length) });
    const limits = parent === undefined ? this.bounds.named : parent.memberLimits;
    this.stack.push({
      object,
      start: at,
      tokens0: this.tokens,
      commas: 0,
      max: Math.min(limits?.max ?? Infinity, this.bounds.maxEntries),
      limits,
      memberLimits: object ? undefined : limits?.items,
      keyNames: object && limits?.keys !== undefined ? compile(limits.keys) : undefined,
      memberStart: at + 1,
      memberTokens0: this.tokens,
      keyStart: -1,
      keyEnd: -1,
      colon: -1,
      sliceStart: -1,
      sliceTokens0: 0,
      segments: [],
      value: undefined,
    });
    this.expectKey = object;
    return true;
  }

  private comma(f: Frame, at: number): boolean {
    this.tokens++;
    // n commas mean n + 1 entries: refuse on the comma that makes one entry too many.
    if (++f.commas >= f.max) return this.refuse(tooMany(f.limits, this.bounds.maxEntries, this.path(this.stack.length - 1)));
    this.endMember(f, at);
    if (f.object) {
      this.expectKey = true;
      f.memberLimits = undefined;
      f.keyStart = f.keyEnd = -1;
    }
    return true;
  }

  private close(f: Frame, at: number): void {
    this.endMember(f, at);
    this.stack.pop();
    this.expectKey = false;
    const big = f.segments.length > 0 || this.tokens - f.tokens0 > SLICE_TOKENS || at + 1 - f.start > SLICE_BYTES;
    let node: SplitNode | undefined;
    if (big) {
      if (f.sliceStart !== -1) f.segments.push({ kind: 'slice', start: f.sliceStart, end: at });
      node = { kind: f.object ? 'object' : 'array', start: f.start, end: at + 1, segments: f.segments };
    }
    const parent = this.stack[this.stack.length - 1];
    if (parent === undefined) {
      this.root = node;
      this.state = 'after';
    } else if (node !== undefined) parent.value = node;
  }

  /** The member ending at `end` (a comma or the closing bracket) joins a slice or becomes a segment of its own. */
  private endMember(f: Frame, end: number): void {
    const longKey = f.keyEnd - f.keyStart > LONG_STRING_BYTES;
    if (f.value !== undefined || longKey) {
      if (f.sliceStart !== -1) f.segments.push({ kind: 'slice', start: f.sliceStart, end: f.memberStart - 1 });
      const key: LongString | undefined = longKey ? { kind: 'string', start: f.keyStart, end: f.keyEnd } : undefined;
      f.segments.push({ kind: 'member', memberStart: f.memberStart, colon: f.colon, memberEnd: end, key, value: f.value });
      f.sliceStart = -1;
      f.value = undefined;
    } else {
      if (f.sliceStart === -1) {
        f.sliceStart = f.memberStart;
        f.sliceTokens0 = f.memberTokens0;
      }
      if (this.tokens - f.sliceTokens0 > SLICE_TOKENS || end - f.sliceStart > SLICE_BYTES) {
        f.segments.push({ kind: 'slice', start: f.sliceStart, end });
        f.sliceStart = -1;
      }
    }
    f.memberStart = end + 1;
    f.memberTokens0 = this.tokens;
    f.colon = -1;
  }

  /** A string ended at `end` (its closing quote in `chunk`). */
  private endString(chunk: Buffer, base: number, end: number): void {
    const f = this.stack[this.stack.length - 1]!;
    const stop = base + end + 1;
    if (this.stringIsKey) {
      this.expectKey = false;
      f.keyStart = this.stringStart;
      f.keyEnd = stop;
      if (f.keyNames !== undefined) f.memberLimits = this.keyLimits(f.keyNames, chunk, base, end);
    } else if (stop - this.stringStart > LONG_STRING_BYTES) {
      f.value = { kind: 'string', start: this.stringStart, end: stop };
    }
  }

  /** The named limits under the key that just ended at `end` in `chunk`. */
  private keyLimits(names: KeyNames, chunk: Buffer, base: number, end: number): EntryLimits | undefined {
    if (this.stringStart >= base) return lookUp(names, chunk, this.stringStart - base + 1, end);
    const head = this.keyHead;
    this.keyHead = undefined;
    if (head === undefined || head.length + end > MAX_WATCHED_KEY) return undefined;
    const bytes = Buffer.concat([head, chunk.subarray(0, end)]);
    return lookUp(names, bytes, 0, bytes.length);
  }

  /** A watched key goes on past this chunk: keep its first bytes (a longer key names no limit). */
  private keepKeyHead(chunk: Buffer, from: number): void {
    if (!this.stringIsKey || this.stack[this.stack.length - 1]!.keyNames === undefined) return;
    const head = chunk.subarray(from, from + MAX_WATCHED_KEY + 1);
    if (this.stringStart >= this.offset - chunk.length) this.keyHead = Buffer.from(head);
    else if (this.keyHead !== undefined && this.keyHead.length <= MAX_WATCHED_KEY) this.keyHead = Buffer.concat([this.keyHead, head]);
  }

  /** The steps from the root to the member being read at level `levels` (1: a member of the root). */
  private path(levels: number): PathStep[] {
    const steps: PathStep[] = [];
    for (let k = 0; k < levels; k++) {
      const f = this.stack[k]!;
      steps.push(f.object ? { keyStart: f.keyStart, keyEnd: f.keyEnd } : f.commas);
    }
    return steps;
  }

  /** A non-space byte outside the root container. */
  private outside(offset: number, c: number): void {
    if (this.state === 'before') this.refuse({ status: 'not-object' });
    else this.malformed(`unexpected "${String.fromCharCode(c)}" after the top-level value`, offset);
  }

  private refuse(refusal: Refusal): false {
    this.refusal = refusal;
    this.result = refusal;
    this.state = 'stopped';
    return false;
  }

  private malformed(reason: string, offset: number): false {
    this.result = { status: 'malformed', reason, offset };
    this.state = 'stopped';
    return false;
  }

  /** Index of the string's closing quote, or -1 when the string goes on into the next chunk. */
  private skipString(chunk: Buffer, from: number): number {
    let lo = from;
    for (;;) {
      const q = chunk.indexOf(QUOTE, lo);
      let k = q === -1 ? chunk.length : q;
      // Backslashes before `lo` belong to what was already scanned (or the escaped first byte).
      while (k > lo && chunk[k - 1] === BACKSLASH) k--;
      const backslashes = (q === -1 ? chunk.length : q) - k;
      if (q === -1) {
        this.inString = true;
        this.escaped = backslashes % 2 === 1;
        return -1;
      }
      if (backslashes % 2 === 0) {
        this.inString = false;
        return q;
      }
      lo = q + 1;
    }
  }
}

/** The names of an EntryLimits.keys as bytes, beside their limits; compiled once per limits object. */
interface KeyNames {
  keys: Readonly<Record<string, EntryLimits>>;
  names: Buffer[];
  limits: EntryLimits[];
}

const compiled = new WeakMap<object, KeyNames>();

function compile(keys: Readonly<Record<string, EntryLimits>>): KeyNames {
  let c = compiled.get(keys);
  if (c === undefined) {
    c = { keys, names: Object.keys(keys).map((k) => Buffer.from(k)), limits: Object.values(keys) };
    compiled.set(keys, c);
  }
  return c;
}

/** The limits named by the key bytes [s, e) of `src` (no quotes), compared in place. */
function lookUp(c: KeyNames, src: Buffer, s: number, e: number): EntryLimits | undefined {
  const len = e - s;
  for (let i = 0; i < c.names.length; i++) {
    const name = c.names[i]!;
    if (name.length !== len) continue;
    let j = 0;
    while (j < len && src[s + j] === name[j]) j++;
    if (j === len) return c.limits[i];
  }
  if (len > MAX_WATCHED_KEY || !src.subarray(s, e).includes(BACKSLASH)) return undefined;
  // An escaped spelling of a name (`mess\u0061ges`) is that name once decoded.
  let key: unknown;
  try {
    key = JSON.parse(`"${src.toString('utf8', s, e)}"`);
  } catch {
    return undefined;
  }
  return typeof key === 'string' && Object.hasOwn(c.keys, key) ? c.keys[key] : undefined;
}
