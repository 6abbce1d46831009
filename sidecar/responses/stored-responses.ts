// GET and DELETE /v1/responses/{id}: what the sidecar stored of a response (response-store.ts), for the
// caller's scope only. DELETE removes the sidecar's copy; a provider that stored the response too (OpenAI,
// with store: true) keeps its own.
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import type { ResponseStore } from './response-store.js';

export interface StoredResponsesOptions {
  store: () => Promise<ResponseStore | undefined>;
  scope: string;
  clock: Clock;
}

/** The answer's JSON text; throws 404 when the sidecar keeps no such response for this scope. */
export async function storedResponse(method: 'GET' | 'DELETE', id: string, opts: StoredResponsesOptions): Promise<string> {
  const store = await opts.store();
  if (method === 'DELETE') {
    if (store?.delete(opts.scope, id) === true) return JSON.stringify({ id, object: 'response', deleted: true });
  } else {
    const stored = store?.get(opts.scope, id, opts.clock.now());
    if (stored !== undefined) return stored.response;
  }
  throw new GatewayError('llmgw_not_found', 404, `no stored response with id "${id}" (it was sent with store: false, has expired, or was made elsewhere)`);
}
