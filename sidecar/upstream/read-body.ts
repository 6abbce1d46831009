// Reads a whole upstream body into one Buffer, refusing to hold more than a configured number of bytes:
// memory is bounded by configuration, not by what an upstream sends (DESIGN §9).
import type { Readable } from 'node:stream';

export type ReadBodyResult =
  | { status: 'complete'; body: Buffer }
  /** The body was (or said it would be) larger than `maxBytes`; reading stopped and the body was destroyed. */
  | { status: 'too-large'; maxBytes: number };

/**
 * Reads `body` to its end, at most `maxBytes` bytes. A declared `contentLength` over the limit is refused
 * before anything is read; one within it is read into a single Buffer of that size, so the answer never
 * exists twice (a chunk list and its concatenation). Past the limit the body is destroyed, which aborts the
 * upstream request and frees its connection.
 */
export async function readBody(body: Readable, maxBytes: number, contentLength?: string | string[]): Promise<ReadBodyResult> {
  const declared = parseContentLength(contentLength);
  if (declared !== undefined && declared > maxBytes) return tooLarge(body, maxBytes);
  // An empty declared body still has to be read to its end so the connection can be reused.
  const out = declared !== undefined && declared > 0 ? Buffer.allocUnsafe(declared) : undefined;
  // Chunks past a (lying) Content-Length, or all of them when none was declared.
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of body) {
    const c = chunk as Buffer;
    if (received + c.length > maxBytes) return tooLarge(body, maxBytes);
    if (out !== undefined && received + c.length <= out.length) c.copy(out, received);
    else chunks.push(out !== undefined && received < out.length ? spill(c, out, received) : c);
    received += c.length;
  }
  if (out !== undefined) {
    // Fewer bytes than declared (undici normally errors first): only what arrived, never uninitialized memory.
    if (chunks.length === 0) return { status: 'complete', body: received === out.length ? out : out.subarray(0, received) };
    return { status: 'complete', body: Buffer.concat([out, ...chunks], received) };
  }
  return { status: 'complete', body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received) };
}

/**
 * Reads `body` to its end without keeping it (so a keep-alive connection can be reused), destroying it once
 * more than `maxBytes` arrived: an unwanted answer is not worth reading past the limit.
 */
export async function discardBody(body: Readable, maxBytes: number): Promise<void> {
  let received = 0;
  for await (const chunk of body) {
    received += (chunk as Buffer).length;
    if (received > maxBytes) {
      body.destroy();
      return;
    }
  }
}

/** Copies the part of `c` that fits into `out` at `at`, returns the rest. */
function spill(c: Buffer, out: Buffer, at: number): Buffer {
  const fits = out.length - at;
  c.copy(out, at, 0, fits);
  return c.subarray(fits);
}

function tooLarge(body: Readable, maxBytes: number): ReadBodyResult {
  body.destroy();
  return { status: 'too-large', maxBytes };
}

function parseContentLength(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}
