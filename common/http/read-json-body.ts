// Reads an app's JSON request body under its bounds: 415 for another content type, 413 past the size limit
// (checked against Content-Length first, then while reading), 400 for anything but a JSON object, for
// nesting past MAX_JSON_DEPTH, and for more entries in one array or object than MAX_ENTRIES or a caller's
// named limit. A body of up to SMALL_BODY_BYTES is parsed whole, then walked for the bounds: its parse
// cannot stall the event loop, and the walk costs a fraction of any scan of its bytes. A larger body is
// scanned as it arrives (json-scanner.ts) and refused on the chunk that passes a bound, without reading the
// rest; it is parsed in slices between turns of the event loop (parse-in-slices.ts).
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { GatewayError, invalidRequest } from '../errors.js';
import { isObject, type Json } from '../json.js';
import { JsonScanner, SLICE_BYTES, tooMany, type EntryLimits, type PathStep, type Refusal, type ScanLimits } from './json-scanner.js';
import { parseInSlices, SliceSyntaxError } from './parse-in-slices.js';

/** Most `[`/`{` levels a request body may nest; the body itself is level 1. */
export const MAX_JSON_DEPTH = 128;
/**
 * Most entries of any one array or object of a request body, wherever it is. Above every named limit
 * (10,000 messages or content parts), it bounds the flat containers that no named limit covers.
 */
export const MAX_ENTRIES = 100_000;
/** Bodies up to this many bytes are parsed whole, then checked: their JSON.parse takes ~3 ms in the worst shape. */
export const SMALL_BODY_BYTES = 64 << 10;
/**
 * Most body bytes scanned in one turn of the event loop. A socket with data waiting is read up to 32
 * times a turn (2 MB), and the densest shapes scan at ~60-150 MB/s: the reading pauses past this many bytes
 * and goes on in the next turn, so one body holds the loop for a few ms at a time, not tens.
 */
export const SCAN_BYTES_PER_TURN = 256 << 10;
/**
 * Most time spent scanning in one turn. Until V8 has compiled the scanner, and on a pod held to a small
 * CPU share, it scans at a few MB/s: 256 KiB would then hold the loop for ~50 ms. The clock is read once per
 * SCAN_PIECE_BYTES.
 */
export const SCAN_MS_PER_TURN = 4;
/** The scanner is given at most this many bytes at a time, so that a turn's budget is checked between pieces. */
export const SCAN_PIECE_BYTES = 16 << 10;

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Thrown when the app went away before its body arrived; nothing can be answered. */
export class ClientGoneError extends Error {
  constructor() {
    super('client disconnected');
    this.name = 'ClientGoneError';
  }
}

const unread = new WeakSet<Error>();

/**
 * Whether `err` refused a body that was not read to its end (413, or a bound passed midway): the rest is
 * never read, so the answer must carry `Connection: close`.
 */
export const bodyLeftUnread = (err: unknown): boolean => err instanceof Error && unread.has(err);

const leftUnread = (err: GatewayError): GatewayError => {
  unread.add(err);
  return err;
};

/** A body read and checked, and its size in bytes. */
export interface JsonBody {
  body: Json;
  bytes: number;
}

/**
 * `named`: tighter entry limits on named places of the body (e.g. `messages`), besides MAX_ENTRIES. `now`:
 * the clock that times a turn's scanning (milliseconds).
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number, named?: EntryLimits, now: () => number = performance.now.bind(performance)): Promise<JsonBody> {
  const type = req.headers['content-type'];
  if (type === undefined || !jsonType.test(type)) {
    return Promise.reject(
      new GatewayError('llmgw_unsupported_media_type', 415, `Content-Type must be application/json (got ${type ?? 'none'})`),
    );
  }
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes) return Promise.reject(leftUnread(tooLarge(maxBytes)));
  const bounds: ScanLimits = { maxDepth: MAX_JSON_DEPTH, maxEntries: MAX_ENTRIES, ...(named === undefined ? {} : { named }) };

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // A body declared larger than SMALL_BODY_BYTES is scanned from its first byte; one of unknown length
    // from the moment it outgrows that.
    let scanner = declared > SMALL_BODY_BYTES ? new JsonScanner(bounds) : undefined;
    /** Bytes received that the scanner has not seen yet: a turn's budget ran out before them. */
    const unscanned: Buffer[] = [];
    let scannedThisTurn = 0;
    let turnStart = 0;
    let paused = false;
    let ended = false;
    let done = false;
    const cleanup = (): void => {
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    // The refusal goes out at once. The rest of a body whose length was declared (within the size limit)
    // is read and dropped, unparsed, so the answer is never lost to a reset of a client still writing and
    // the connection stays usable. Past the size limit, or of undeclared length, the rest is never read:
    // the answer closes the connection.
    const refuse = (err: GatewayError): void => {
      cleanup();
      if (err.status !== 413 && Number.isFinite(declared)) {
        req.resume();
        return reject(err);
      }
      req.pause();
      reject(leftUnread(err));
    };
    const finish = (): void => {
      cleanup();
      (scanner === undefined ? parseSmall(Buffer.concat(chunks, size), bounds) : parseLarge(chunks, size, scanner)).then((body) => resolve({ body, bytes: size }), reject);
    };
    // Scans what has arrived, a piece at a time, until this turn's budget (bytes or time) is spent; then
    // the reading pauses, and the next turn goes on from there.
    const scanArrived = (sc: JsonScanner): void => {
      while (unscanned.length > 0) {
        if (scannedThisTurn === 0) {
          turnStart = now();
          setImmediate(newTurn, sc);
        } else if (scannedThisTurn >= SCAN_BYTES_PER_TURN || now() - turnStart >= SCAN_MS_PER_TURN) {
          if (!paused) req.pause();
          paused = true;
          return;
        }
        const c = unscanned[0]!;
        const piece = c.length > SCAN_PIECE_BYTES ? c.subarray(0, SCAN_PIECE_BYTES) : c;
        if (piece === c) unscanned.shift();
        else unscanned[0] = c.subarray(piece.length);
        const refusal = sc.push(piece);
        if (refusal !== undefined) return refuse(refusalError(refusal, (s) => stepText(s, chunks)));
        scannedThisTurn += piece.length;
      }
      if (ended && !done) finish();
    };
    const newTurn = (sc: JsonScanner): void => {
      scannedThisTurn = 0;
      if (done) return;
      scanArrived(sc);
      if (paused && unscanned.length === 0 && !done) {
        paused = false;
        req.resume();
      }
    };
    const onData = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      size += chunk.length;
      if (size > maxBytes) return refuse(tooLarge(maxBytes));
      chunks.push(chunk);
      if (scanner === undefined) {
        if (size <= SMALL_BODY_BYTES) return;
        scanner = new JsonScanner(bounds);
        unscanned.push(...chunks);
      } else {
        unscanned.push(chunk);
      }
      if (!paused) scanArrived(scanner);
    };
    const onEnd = (): void => {
      ended = true;
      // A body still being scanned is finished by the scan's last turn.
      if (unscanned.length === 0) finish();
    };
    const onGone = (): void => {
      cleanup();
      reject(new ClientGoneError());
    };
    const onClose = (): void => {
      if (!req.complete && !ended) onGone();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
  });
}

const tooLarge = (maxBytes: number): GatewayError =>
  new GatewayError('llmgw_body_too_large', 413, `request body is larger than the limit of ${maxBytes} bytes`);

const notObject = (): GatewayError => invalidRequest('request body must be a JSON object');
const notJson = (why: string): GatewayError => invalidRequest(`request body is not valid JSON: ${why}`);

async function parseSmall(raw: Buffer, bounds: ScanLimits): Promise<Json> {
  if (raw.length === 0) throw invalidRequest('request body is empty; expected a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw notJson((err as Error).message);
  }
  if (!isObject(value)) throw notObject();
  const passed = walk(value, 1, bounds.named, bounds);
  if (passed !== undefined) throw refusalError(passed, (s) => (typeof s === 'number' ? `[${s}]` : s));
  return value;
}

async function parseLarge(chunks: Buffer[], size: number, scanner: JsonScanner): Promise<Json> {
  const scan = scanner.finish();
  // A malformed large body is refused from the scan: one JSON.parse of it could stall the event loop.
  if (scan.status === 'malformed') throw notJson(`${scan.reason} at byte ${scan.offset}`);
  // (A refusal was answered on the chunk that passed the bound; this only completes the cases.)
  if (scan.status !== 'ok') throw refusalError(scan, (s) => stepText(s, chunks));
  const raw = await join(chunks, size);
  let value: unknown;
  try {
    value = scan.root !== undefined ? await parseInSlices(raw, scan.root) : JSON.parse(raw.toString('utf8'));
  } catch (err) {
    if (!(err instanceof SyntaxError || err instanceof SliceSyntaxError)) throw err;
    throw notJson(err.message);
  }
  if (!isObject(value)) throw notObject();
  return value;
}

/** The chunks as one buffer, copied SLICE_BYTES at a time between turns of the event loop. */
async function join(chunks: Buffer[], size: number): Promise<Buffer> {
  if (chunks.length === 1) return chunks[0]!;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let step = 0;
  for (const c of chunks) {
    at += c.copy(out, at);
    step += c.length;
    if (step >= SLICE_BYTES) {
      step = 0;
      await nextTurn();
    }
  }
  return out;
}

/**
 * The scanner's bounds, checked on a small parsed body: the first container found past one. It recurses,
 * but never deeper than maxDepth + 1 calls.
 */
function walk(v: object, level: number, limits: EntryLimits | undefined, bounds: ScanLimits): Refusal<string | number> | undefined {
  if (level > bounds.maxDepth) return { status: 'too-deep', path: [] };
  const array = Array.isArray(v);
  const keys = array ? undefined : Object.keys(v);
  const n = keys === undefined ? (v as unknown[]).length : keys.length;
  if (n > Math.min(limits?.max ?? Infinity, bounds.maxEntries)) return tooMany(limits, bounds.maxEntries, []);
  for (let i = 0; i < n; i++) {
    const key = keys === undefined ? i : keys[i]!;
    const x = (v as Record<string | number, unknown>)[key];
    if (typeof x !== 'object' || x === null) continue;
    const under = keys === undefined ? limits?.items : limits?.keys !== undefined && Object.hasOwn(limits.keys, key) ? limits.keys[key] : undefined;
    const passed = walk(x, level + 1, under, bounds);
    if (passed !== undefined) {
      if (passed.status !== 'not-object') passed.path.unshift(key);
      return passed;
    }
  }
  return undefined;
}

/** The 400 for a refusal; `text` turns a path step into a key or `[index]`. */
function refusalError<Step>(r: Refusal<Step>, text: (step: Step) => string): GatewayError {
  if (r.status === 'not-object') return notObject();
  if (r.status === 'too-deep') {
    // The whole path would be a hundred levels long: the top-level field says where.
    const top = r.path[0];
    return invalidRequest(`request JSON is nested deeper than the limit of ${MAX_JSON_DEPTH} levels`, top === undefined ? undefined : text(top));
  }
  const param = r.path.map(text).reduce((p, s) => (p === '' || s.startsWith('[') ? p + s : `${p}.${s}`), '');
  const what = param === '' ? 'the request body' : `"${param}"`;
  const rule = r.named ? '' : ' for any array or object';
  return invalidRequest(`${what} has more ${r.noun} than the limit of ${r.max}${rule}`, param === '' ? undefined : param);
}

/** An index as `[3]`, a key as its text (`…` when it is long or not a string). */
function stepText(step: PathStep, chunks: Buffer[]): string {
  if (typeof step === 'number') return `[${step}]`;
  if (step.keyStart < 0 || step.keyEnd - step.keyStart > 1024) return '…';
  try {
    const key: unknown = JSON.parse(bytesAt(chunks, step.keyStart, step.keyEnd).toString('utf8'));
    return typeof key === 'string' ? key : '…';
  } catch {
    return '…';
  }
}

/** Bytes [start, end) of the body received so far, without joining all of it. */
function bytesAt(chunks: Buffer[], start: number, end: number): Buffer {
  const parts: Buffer[] = [];
  let base = 0;
  for (const c of chunks) {
    const from = Math.max(start, base);
    const to = Math.min(end, base + c.length);
    if (from < to) parts.push(c.subarray(from - base, to - base));
    base += c.length;
    if (base >= end) break;
  }
  return Buffer.concat(parts);
}
