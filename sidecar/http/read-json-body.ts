// Reads an app's JSON request body under the size limit: 415 for another content type, 413 past the
// limit (checked against Content-Length first, then while reading), 400 for anything but a JSON object.
import type { IncomingMessage } from 'node:http';
import { GatewayError, invalidRequest } from '../errors.js';
import { isObject, type Json } from '../translate/json-object.js';

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
    };
    const onEnd = (): void => {
      cleanup();
      try {
        resolve(parse(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
      } catch (err) {
        reject(err);
      }
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

function parse(raw: Buffer): Json {
  if (raw.length === 0) throw invalidRequest('request body is empty; expected a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw invalidRequest(`request body is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw invalidRequest('request body must be a JSON object');
  return value;
}
