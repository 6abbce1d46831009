// The body reader's two paths: a small body parsed whole then checked, a large one checked as it arrives
// and refused on the chunk that passes a bound (the rest never awaited), with the same refusals.
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import type { EntryLimits } from '../../../../common/http/json-scanner.js';
import { bodyLeftUnread, MAX_ENTRIES, MAX_JSON_DEPTH, readJsonBody, SCAN_BYTES_PER_TURN, SCAN_MS_PER_TURN, SCAN_PIECE_BYTES, SMALL_BODY_BYTES } from '../../../../common/http/read-json-body.js';

const named: EntryLimits = { keys: { messages: { max: 10 } } };

/** A request whose body is written by the test; `length` is its Content-Length, if any. */
function fakeRequest(length?: number): PassThrough & IncomingMessage {
  const req = new PassThrough() as PassThrough & IncomingMessage & { complete: boolean };
  req.headers = { 'content-type': 'application/json', ...(length === undefined ? {} : { 'content-length': String(length) }) };
  req.complete = false;
  req.on('end', () => (req.complete = true));
  return req;
}

/** Reads `body`, written whole; the reader's refusal, or undefined when it accepted the body. */
async function refusal(body: string, opts: { named?: EntryLimits; maxBytes?: number; declare?: boolean } = {}): Promise<GatewayError | undefined> {
  const req = fakeRequest(opts.declare === false ? undefined : Buffer.byteLength(body));
  const read = readJsonBody(req, opts.maxBytes ?? 16 << 20, opts.named);
  req.end(body);
  try {
    await read;
    return undefined;
  } catch (err) {
    return err as GatewayError;
  }
}

/** Reads a body of which only `prefix` has arrived; resolves with the refusal that came without the rest. */
async function refusalOfPrefix(prefix: string, declared: number | undefined, req = fakeRequest(declared)): Promise<GatewayError> {
  const read = readJsonBody(req, 16 << 20, named);
  for (let i = 0; i < prefix.length; i += 1000) req.write(prefix.slice(i, i + 1000));
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no refusal before the end of the body')), 2000));
  return (await Promise.race([read, timeout]).catch((err: unknown) => err)) as GatewayError;
}

const messages = (n: number): string => Array(n).fill('{"role":"user","content":"x"}').join(',');
/** Makes a body large: a leading field that takes it past SMALL_BODY_BYTES. */
const pad = (body: string): string => body.replace('{', `{"pad":"${'p'.repeat(SMALL_BODY_BYTES)}",`);

describe('the same bounds on both paths', () => {
  it('refuses too deep, too many named or unnamed entries with the same 400, small or large', async () => {
    const cases: [string, string | undefined, string][] = [
      [`{"model":"m","metadata":${'['.repeat(200)}${']'.repeat(200)}}`, 'metadata', `request JSON is nested deeper than the limit of ${MAX_JSON_DEPTH} levels`],
      [`{"model":"m","messages":[${messages(11)}]}`, 'messages', '"messages" has more entries than the limit of 10'],
      [`{"model":"m","a":{"b":[{"c":[${Array(MAX_ENTRIES + 1).fill(0).join(',')}]}]}}`, 'a.b[0].c', `"a.b[0].c" has more entries than the limit of ${MAX_ENTRIES} for any array or object`],
    ];
    for (const [body, param, message] of cases) {
      for (const text of body.length < SMALL_BODY_BYTES ? [body, pad(body)] : [body]) {
        const e = await refusal(text, { named });
        expect(e).toBeInstanceOf(GatewayError);
        expect(e).toMatchObject({ status: 400, code: 'llmgw_invalid_request', param, message });
      }
    }
  });

  it('accepts a body exactly at its bounds, small or large', async () => {
    const body = `{"model":"m","messages":[${messages(10)}],"metadata":${'['.repeat(MAX_JSON_DEPTH - 1)}${']'.repeat(MAX_JSON_DEPTH - 1)}}`;
    expect(await refusal(body, { named })).toBeUndefined();
    expect(await refusal(pad(body), { named })).toBeUndefined();
  });

  it('refuses anything but a JSON object', async () => {
    for (const body of ['[1,2]', '"text"', '42', `[${'0,'.repeat(SMALL_BODY_BYTES)}0]`]) {
      expect(await refusal(body)).toMatchObject({ status: 400, message: 'request body must be a JSON object' });
    }
    expect(await refusal('{"a": ')).toMatchObject({ status: 400, message: expect.stringMatching(/^request body is not valid JSON/) as unknown });
    expect(await refusal(pad('{"a": 1,}'))).toMatchObject({ status: 400, message: expect.stringMatching(/^request body is not valid JSON/) as unknown });
  });
});

describe('a large body is refused on the chunk that passes a bound', () => {
  const deep = `{"model":"m","metadata":${'['.repeat(200)}`;
  const flat = `{"model":"m","messages":[${messages(11)},`;

  it('without waiting for the rest when Content-Length says it is large', async () => {
    for (const [prefix, param] of [[deep, 'metadata'], [flat, 'messages']] as const) {
      const e = await refusalOfPrefix(prefix, 16 << 20);
      expect(e).toMatchObject({ status: 400, param });
      // The rest of a declared length is read and dropped: the answer need not close the connection.
      expect(bodyLeftUnread(e)).toBe(false);
    }
  });

  it('reading and dropping the rest of a declared length, unparsed, so the request ends', async () => {
    const prefix = pad(flat);
    const req = fakeRequest(Buffer.byteLength(prefix) + SMALL_BODY_BYTES);
    const e = await refusalOfPrefix(prefix, undefined, req);
    expect(e).toMatchObject({ status: 400, param: 'messages' });
    expect(bodyLeftUnread(e)).toBe(false);
    // The rest is consumed, so the request ends and its connection can serve the next one.
    const ended = new Promise((r) => req.once('end', r));
    req.end('x'.repeat(SMALL_BODY_BYTES));
    await ended;
  });

  it('from the moment a body of unknown length outgrows SMALL_BODY_BYTES', async () => {
    const e = await refusalOfPrefix(pad(deep), undefined);
    expect(e).toMatchObject({ status: 400, param: 'metadata' });
    expect(bodyLeftUnread(e)).toBe(true);
  });

  it('while a small body that was read to its end leaves nothing unread', async () => {
    const e = await refusal(`${deep}${']'.repeat(200)}}`);
    expect(e).toMatchObject({ status: 400 });
    expect(bodyLeftUnread(e)).toBe(false);
  });

  it('and a body over the size limit gets 413, with the rest unread', async () => {
    const declared = await refusal('{"a":"xxxxxxxxxx"}', { maxBytes: 10 });
    const streamed = await refusal('{"a":"xxxxxxxxxx"}', { maxBytes: 10, declare: false });
    for (const e of [declared, streamed]) {
      expect(e).toMatchObject({ status: 413, code: 'llmgw_body_too_large' });
      expect(bodyLeftUnread(e)).toBe(true);
    }
  });
});

/**
 * A body of `n` messages whose chunks have all arrived before the reader starts (nothing but the reader
 * itself spreads the work out), and a count of the event loop's turns from now on (once each, in its
 * check phase).
 */
function arrivedWhole(n: number) {
  const messages = Array.from({ length: n }, (_, i) => ({ role: 'user', content: `message ${i} ${'x'.repeat(200)}` }));
  const body = Buffer.from(JSON.stringify({ model: 'm', messages }));
  const req = fakeRequest(body.length);
  for (let i = 0; i < body.length; i += 64 << 10) req.write(body.subarray(i, i + (64 << 10)));
  req.end();
  let turn = 0;
  let counting = true;
  const count = (): void => {
    turn++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  return { body, req, turns: { now: () => turn, stop: () => void (counting = false) } };
}

describe('reading a large body a bounded amount a turn', () => {
  it(`scans at most about SCAN_BYTES_PER_TURN a turn of the event loop, however much has arrived, and still reads it all`, async () => {
    const { body, req, turns } = arrivedWhole(9_000);
    expect(body.length).toBeGreaterThan(6 * SCAN_BYTES_PER_TURN);
    const perTurn = new Map<number, number>();
    req.on('data', (c: Buffer) => perTurn.set(turns.now(), (perTurn.get(turns.now()) ?? 0) + c.length));
    const read = await readJsonBody(req, 16 << 20, { keys: { messages: { max: 10_000 } } });
    turns.stop();
    expect(read.bytes).toBe(body.length);
    expect((read.body as { messages: unknown[] }).messages).toHaveLength(9_000);
    expect(perTurn.size).toBeGreaterThan(5);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(SCAN_BYTES_PER_TURN + (64 << 10));
  });

  it('also stops a turn once SCAN_MS_PER_TURN has passed, so a slow scanner (not yet compiled, or on a small CPU share) holds the loop no longer', async () => {
    const { body, req, turns } = arrivedWhole(2_000);
    // Every reading of the clock finds a whole budget gone: each turn scans one piece, then yields.
    let clock = 0;
    const read = await readJsonBody(req, 16 << 20, { keys: { messages: { max: 10_000 } } }, () => (clock += SCAN_MS_PER_TURN));
    turns.stop();
    expect((read.body as { messages: unknown[] }).messages).toHaveLength(2_000);
    expect(turns.now()).toBeGreaterThanOrEqual(Math.floor(body.length / SCAN_PIECE_BYTES));
  });
});
