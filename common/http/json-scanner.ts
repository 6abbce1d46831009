// An incremental, non-recursive scan of a JSON body's bytes as they arrive: it enforces the nesting limit
// before anything is parsed, and marks where a large body can be cut so that it is parsed in slices
// (parse-in-slices.ts) instead of one JSON.parse that would stall the event loop.
// It is not a validator: JSON.parse still checks every byte; the scanner only needs brackets, commas,
// colons and string boundaries to be right, and refuses a body when they are not.

/** Containers with more structural tokens (`{ [ , :`) than this, or more bytes, are parsed in slices. */
export const SLICE_TOKENS = 8192;
/** See SLICE_TOKENS. A slice is cut once it holds this many bytes (strings parse fast; tokens cost). */
export const SLICE_BYTES = 1 << 20;

/** A container parsed in slices: consecutive segments that together cover all its members. */
export interface SplitNode {
  kind: 'array' | 'object';
  /** Offset of the opening bracket. */
  start: number;
  /** Offset just past the closing bracket. */
  end: number;
  segments: Segment[];
}

/**
 * `slice`: members [start, end) parsed with one JSON.parse; `node`: one member whose value is a SplitNode
 * ([memberStart, memberEnd) includes the key and colon in objects). Segments are separated by one comma.
 */
export type Segment =
  | { kind: 'slice'; start: number; end: number }
  | { kind: 'node'; memberStart: number; colon: number; memberEnd: number; node: SplitNode };

export type ScanResult =
  /** `topKey`: [start, end) of the root object's key under which the limit was passed, when known. */
  | { status: 'too-deep'; topKey: [number, number] | undefined }
  | { status: 'malformed'; reason: string; offset: number }
  /** `root` is undefined when the body is small enough for one JSON.parse (the common case). */
  | { status: 'ok'; root: SplitNode | undefined };

interface Frame {
  kind: 'array' | 'object';
  start: number;
  tokens0: number;
  memberStart: number;
  memberTokens0: number;
  /** The current member's `:` (objects), -1 before it. */
  colon: number;
  /** Start of the slice being gathered, -1 when none is open. */
  sliceStart: number;
  sliceTokens0: number;
  segments: Segment[];
  /** A SplitNode that closed inside the current member. */
  child: SplitNode | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export class JsonScanner {
  private readonly stack: Frame[] = [];
  private offset = 0;
  private tokens = 0;
  private inString = false;
  /** The string's next byte is escaped (a backslash ended the previous chunk). */
  private escaped = false;
  private state: 'before' | 'in-root' | 'after' | 'scalar' | 'stopped' = 'before';
  private root: SplitNode | undefined;
  private result: ScanResult | undefined;
  /** [start, end) of the root object's current key, for naming the field that nests too deep. */
  private topKey: [number, number] | undefined;

  constructor(private readonly maxDepth: number) {}

  /** Structural tokens seen so far. */
  get tokenCount(): number {
    return this.tokens;
  }

  /** Scans the next chunk; `chunk` must be kept (the caller concatenates the chunks). */
  push(chunk: Buffer): void {
    const base = this.offset;
    this.offset += chunk.length;
    if (this.state === 'stopped' || this.state === 'scalar') return;
    let i = 0;
    if (this.inString) {
      if (this.escaped) {
        this.escaped = false;
        i = 1;
      }
      i = this.skipString(chunk, i);
      if (i < 0) return;
    }
    const stack = this.stack;
    for (const len = chunk.length; i < len; i++) {
      const c = chunk[i]!;
      if (c === QUOTE) {
        if (this.state !== 'in-root') return this.outside(base + i, c);
        this.inString = true;
        i = this.skipString(chunk, i + 1);
        if (i < 0) return;
        i--;
      } else if (c === 0x7b || c === 0x5b) {
        if (this.state !== 'in-root' && this.state !== 'before') return this.outside(base + i, c);
        this.state = 'in-root';
        this.tokens++;
        if (stack.length >= this.maxDepth) return this.stop({ status: 'too-deep', topKey: this.topKey });
        stack.push({
          kind: c === 0x7b ? 'object' : 'array',
          start: base + i,
          tokens0: this.tokens,
          memberStart: base + i + 1,
          memberTokens0: this.tokens,
          colon: -1,
          sliceStart: -1,
          sliceTokens0: 0,
          segments: [],
          child: undefined,
        });
      } else if (c === 0x7d || c === 0x5d) {
        const top = stack[stack.length - 1];
        if (top === undefined || (c === 0x7d) !== (top.kind === 'object')) {
          return this.stop({ status: 'malformed', reason: `unexpected "${String.fromCharCode(c)}"`, offset: base + i });
        }
        this.close(top, base + i);
      } else if (c === 0x2c) {
        this.tokens++;
        const top = stack[stack.length - 1];
        if (top === undefined) return this.outside(base + i, c);
        this.endMember(top, base + i);
      } else if (c === 0x3a) {
        this.tokens++;
        const top = stack[stack.length - 1];
        if (top === undefined) return this.outside(base + i, c);
        if (top.kind === 'object' && top.colon === -1) {
          top.colon = base + i;
          if (stack.length === 1) this.topKey = [top.memberStart, base + i];
        }
      } else if (stack.length === 0 && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
        return this.outside(base + i, c);
      }
    }
  }

  /** The verdict once the body has ended. */
  finish(): ScanResult {
    if (this.result !== undefined) return this.result;
    if (this.state === 'scalar' || this.state === 'before') return { status: 'ok', root: undefined };
    if (this.inString || this.stack.length > 0) return { status: 'malformed', reason: 'unexpected end', offset: this.offset };
    return { status: 'ok', root: this.root };
  }

  /** A non-space byte outside the root container. */
  private outside(offset: number, c: number): void {
    // A body that is not a container is refused after its (cheap) parse; no slicing is needed.
    if (this.state === 'before') this.state = 'scalar';
    else this.stop({ status: 'malformed', reason: `unexpected "${String.fromCharCode(c)}" after the top-level value`, offset });
  }

  private stop(result: ScanResult): void {
    this.result = result;
    this.state = 'stopped';
  }

  /** Index just past the string's closing quote, or -1 when the string goes on into the next chunk. */
  private skipString(chunk: Buffer, from: number): number {
    let lo = from;
    for (;;) {
      const q = chunk.indexOf(QUOTE, lo);
      let k = q === -1 ? chunk.length : q;
      while (k > lo && chunk[k - 1] === BACKSLASH) k--;
      const backslashes = (q === -1 ? chunk.length : q) - k;
      if (q === -1) {
        this.escaped = backslashes % 2 === 1;
        return -1;
      }
      if (backslashes % 2 === 0) {
        this.inString = false;
        return q + 1;
      }
      lo = q + 1;
    }
  }

  /** The member ending at `end` (a comma or the closing bracket) joins a slice or becomes a node segment. */
  private endMember(f: Frame, end: number): void {
    if (f.child !== undefined) {
      if (f.sliceStart !== -1) f.segments.push({ kind: 'slice', start: f.sliceStart, end: f.memberStart - 1 });
      f.segments.push({ kind: 'node', memberStart: f.memberStart, colon: f.colon, memberEnd: end, node: f.child });
      f.sliceStart = -1;
      f.child = undefined;
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

  private close(f: Frame, at: number): void {
    this.endMember(f, at);
    this.stack.pop();
    const big = f.segments.length > 0 || this.tokens - f.tokens0 > SLICE_TOKENS || at + 1 - f.start > SLICE_BYTES;
    let node: SplitNode | undefined;
    if (big) {
      if (f.sliceStart !== -1) f.segments.push({ kind: 'slice', start: f.sliceStart, end: at });
      node = { kind: f.kind, start: f.start, end: at + 1, segments: f.segments };
    }
    const parent = this.stack[this.stack.length - 1];
    if (parent !== undefined) {
      if (node !== undefined) parent.child = node;
    } else {
      this.root = node;
      this.state = 'after';
    }
  }
}
