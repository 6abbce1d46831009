// Reads an app's JSON request body under the size limit: 415 for another content type, 413 past the
// limit (checked against Content-Length first, then while reading), 400 for anything but a JSON object or
// for nesting past MAX_JSON_DEPTH (scanned while reading, before any parse). Large bodies are parsed in
// slices between turns of the event loop (parse-in-slices.ts); small ones with one JSON.parse, as before.
import type { IncomingMessage } from 'node:http';
import { GatewayError, invalidRequest } from '../errors.js';
import { isObject, type Json } from '../json.js';
import { JsonScanner, SLICE_BYTES, SLICE_TOKENS } from './json-scanner.js';
import { parseInSlices, SliceSyntaxError } from './parse-in-slices.js';

/** Most `[`/`{` levels a request body may nest; the body itself is level 1. */
export const MAX_JSON_DEPTH = 128;

const tooDeep = (param: string | undefined) =>
  invalidRequest(`request JSON is nested deeper than the limit of ${MAX_JSON_DEPTH} levels`, param);

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Thrown when the app went away before its body arrived; nothing can be answered. */
export class ClientGoneError extends Error {
  constructor() {
    super('client disconnected');
    this.name = 'ClientGoneError';
  }
}

export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<Json> {
  const type = req.headers['content-type'];
  if (type === undefined || !jsonType.test(type)) {
    return Promise.reject(
      new GatewayError('llmgw_unsupported_media_type', 415, `Content-Type must be application/json (got ${type ?? 'none'})`),
    );
  }
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes) return Promise.reject(tooLarge(maxBytes));

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const scanner = new JsonScanner(MAX_JSON_DEPTH);
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        // Stop reading; the 413 goes out with `Connection: close` and the rest is never read.
        req.pause();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
      scanner.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      parse(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), scanner).then(resolve, reject);
    };
    const onGone = (): void => {
      cleanup();
      reject(new ClientGoneError());
    };
    const onClose = (): void => {
      if (!req.complete) onGone();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
  });
}

const tooLarge = (maxBytes: number): GatewayError =>
  new GatewayError('llmgw_body_too_large', 413, `request body is larger than the limit of ${maxBytes} bytes`);

async function parse(raw: Buffer, scanner: JsonScanner): Promise<Json> {
  if (raw.length === 0) throw invalidRequest('request body is empty; expected a JSON object');
  const scan = scanner.finish();
  if (scan.status === 'too-deep') throw tooDeep(scan.topKey && keyAt(raw, scan.topKey));
  // One JSON.parse is only as long as the body is small; a malformed large body is refused from the scan.
  const small = raw.length <= SLICE_BYTES && scanner.tokenCount <= SLICE_TOKENS;
  let value: unknown;
  if (scan.status === 'malformed' && !small) {
    throw invalidRequest(`request body is not valid JSON: ${scan.reason} at byte ${scan.offset}`);
  }
  try {
    value = scan.status === 'ok' && scan.root !== undefined ? await parseInSlices(raw, scan.root) : JSON.parse(raw.toString('utf8'));
  } catch (err) {
    if (!(err instanceof SyntaxError || err instanceof SliceSyntaxError)) throw err;
    throw invalidRequest(`request body is not valid JSON: ${err.message}`);
  }
  if (!isObject(value)) throw invalidRequest('request body must be a JSON object');
  return value;
}

function keyAt(raw: Buffer, [start, end]: [number, number]): string | undefined {
  try {
    const key: unknown = JSON.parse(raw.toString('utf8', start, end));
    return typeof key === 'string' ? key : undefined;
  } catch {
    return undefined;
  }
}
