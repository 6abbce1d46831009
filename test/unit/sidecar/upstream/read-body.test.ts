// readBody's size cap: refused by Content-Length before reading, or once the bytes pass the limit, with the
// body destroyed (which aborts the upstream request); within the limit, the exact bytes.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { discardBody, readBody } from '../../../../sidecar/upstream/read-body.js';

/** A body of `sizes` chunks (bytes 'a', 'b', … per chunk) that records how far it was read. */
function body(sizes: number[]): { stream: Readable; produced: () => number; finished: () => boolean } {
  let produced = 0;
  let finished = false;
  async function* gen(): AsyncGenerator<Buffer> {
    try {
      for (let i = 0; i < sizes.length; i++) {
        produced++;
        yield Buffer.alloc(sizes[i]!, 97 + (i % 26));
      }
    } finally {
      finished = true;
    }
  }
  return { stream: Readable.from(gen(), { objectMode: false }), produced: () => produced, finished: () => finished };
}

const expected = (sizes: number[]): Buffer => Buffer.concat(sizes.map((n, i) => Buffer.alloc(n, 97 + (i % 26))));

describe('readBody', () => {
  it('returns the exact bytes of a chunked body (no Content-Length) within the limit', async () => {
    const sizes = [10, 20, 30];
    const r = await readBody(body(sizes).stream, 100);
    expect(r).toEqual({ status: 'complete', body: expected(sizes) });
  });

  it('returns the exact bytes read into one preallocated buffer when Content-Length is declared', async () => {
    const sizes = [10, 20, 30];
    const r = await readBody(body(sizes).stream, 100, '60');
    expect(r.status).toBe('complete');
    if (r.status === 'complete') {
      expect(r.body.equals(expected(sizes))).toBe(true);
      expect(r.body.length).toBe(60);
    }
  });

  it('accepts a body of exactly the limit, with and without Content-Length', async () => {
    expect((await readBody(body([40, 60]).stream, 100)).status).toBe('complete');
    expect((await readBody(body([40, 60]).stream, 100, '100')).status).toBe('complete');
  });

  it('refuses a body of the limit + 1 without Content-Length, stops reading and destroys the body', async () => {
    const b = body([50, 51, ...Array<number>(20).fill(1000)]);
    const r = await readBody(b.stream, 100);
    expect(r).toEqual({ status: 'too-large', maxBytes: 100 });
    expect(b.stream.destroyed).toBe(true);
    // Reading stopped at the chunk that crossed the limit (the stream reads at most one ahead).
    expect(b.produced()).toBeLessThanOrEqual(3);
    await new Promise((resolve) => setImmediate(resolve));
    expect(b.finished()).toBe(true);
  });

  it('refuses a declared Content-Length over the limit before reading anything', async () => {
    const b = body([101]);
    const r = await readBody(b.stream, 100, '101');
    expect(r).toEqual({ status: 'too-large', maxBytes: 100 });
    expect(b.stream.destroyed).toBe(true);
    expect(b.produced()).toBe(0);
  });

  it('refuses a body that sends more than the limit under a smaller (lying) Content-Length', async () => {
    const b = body([60, 60]);
    const r = await readBody(b.stream, 100, '50');
    expect(r.status).toBe('too-large');
    expect(b.stream.destroyed).toBe(true);
  });

  it('keeps bytes past a smaller Content-Length within the limit, and only the bytes that arrived when fewer did', async () => {
    const more = await readBody(body([30, 30]).stream, 100, '40');
    expect(more.status === 'complete' && more.body.equals(expected([30, 30]))).toBe(true);
    const fewer = await readBody(body([30]).stream, 100, '40');
    expect(fewer.status === 'complete' && fewer.body.equals(expected([30]))).toBe(true);
  });

  it('reads an empty body, declared or not', async () => {
    expect(await readBody(body([]).stream, 100, '0')).toEqual({ status: 'complete', body: Buffer.alloc(0) });
    expect(await readBody(body([]).stream, 100)).toEqual({ status: 'complete', body: Buffer.alloc(0) });
  });

  it('ignores a Content-Length that is not a number', async () => {
    const r = await readBody(body([10]).stream, 100, 'ten');
    expect(r.status === 'complete' && r.body.equals(expected([10]))).toBe(true);
  });
});

describe('discardBody', () => {
  it('reads a body within the limit to its end', async () => {
    const b = body([10, 10]);
    await discardBody(b.stream, 100);
    expect(b.produced()).toBe(2);
    expect(b.finished()).toBe(true);
  });

  it('destroys a body once it passed the limit', async () => {
    const b = body(Array<number>(20).fill(60));
    await discardBody(b.stream, 100);
    expect(b.stream.destroyed).toBe(true);
    expect(b.produced()).toBeLessThanOrEqual(3);
  });
});
