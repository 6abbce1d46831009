// Conversation state for the Responses API, kept by the sidecar (response-store.ts) so that it does not
// depend on the provider: a request with `previous_response_id` the sidecar stored goes upstream with the
// whole conversation as its input instead (and no previous_response_id), so the follow-up works on any
// provider and across fallbacks; an id the sidecar does not know is left for the provider (an OpenAI one
// may have it; a translated route refuses it). A request that does not say `store: false` has its
// conversation and output kept once its answer went out, streams included (from their final event).
// Instructions are not carried over to a follow-up, as with OpenAI.
import type { Clock } from '../../common/clock.js';
import { isObject, type Json } from '../../common/json.js';
import type { Config } from '../config/schema.js';
import { SseParser } from '../http/sse-parser.js';
import { onComplete } from '../pipeline/on-complete.js';
import type { GatewayRequest, GatewayResponse, Interceptor } from '../pipeline/types.js';
import type { ResponseStore } from './response-store.js';

export interface ResponsesStateOptions {
  /** The store (opening the sidecar's SQLite file the first time); undefined when it cannot be opened. */
  store: () => Promise<ResponseStore | undefined>;
  /** The caller scope (namespace/service): responses are never shared across scopes. */
  scope: string;
  clock: Clock;
  config: () => Config;
}

export function responsesStateInterceptor(opts: ResponsesStateOptions): Interceptor {
  return (next) => async (req) => {
    if (req.endpoint !== 'responses') return next(req);
    const body = req.body;
    let conversation = inputItems(body.input);
    let sent: GatewayRequest = req;
    if (typeof body.previous_response_id === 'string') {
      const previous = (await opts.store())?.get(opts.scope, body.previous_response_id, opts.clock.now());
      if (previous !== undefined) {
        conversation = [...previous.conversation, ...previous.output, ...conversation];
        const { previous_response_id: _, ...rest } = body;
        sent = { ...req, body: { ...rest, input: conversation }, estimates: {} };
      }
    }
    const res = await next(sent);
    if (body.store === false) return res;
    const keep = (response: Json): void => {
      if (typeof response.id !== 'string' || !Array.isArray(response.output)) return;
      const { storeTtlSeconds, storeMaxBytes } = opts.config().responses;
      void opts.store().then((store) =>
        store?.put(opts.scope, response.id as string, { conversation, output: replayable(response.output as unknown[]), response: JSON.stringify(response) }, opts.clock.now(), {
          ttlMs: storeTtlSeconds * 1000,
          maxBytes: storeMaxBytes,
        }),
      );
    };
    if (res.kind === 'json') {
      if (res.status !== 200) return res;
      // Kept after the answer went out: parsing it is not on the app's path.
      return onComplete(res, () => {
        const parsed = parseJson(res.body);
        if (isObject(parsed)) keep(parsed);
      });
    }
    return watchFinalEvent(res, keep);
  };
}

/** The request's input as items (a string is one user message). */
function inputItems(input: unknown): unknown[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  return Array.isArray(input) ? input : [];
}

/**
 * Output items as they can be sent back as input to any provider: without the ids and statuses of the
 * provider that made them (another would not know them), and reasoning only when it carries its encrypted
 * content (without it, it only points to the provider's own storage).
 */
function replayable(output: unknown[]): unknown[] {
  const items: unknown[] = [];
  for (const item of output) {
    if (!isObject(item)) continue;
    const { id: _id, status: _status, ...rest } = item;
    if (item.type === 'reasoning' && typeof item.encrypted_content !== 'string') continue;
    items.push(rest);
  }
  return items;
}

function parseJson(body: string | Buffer | readonly Buffer[]): unknown {
  try {
    const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : Buffer.concat(body).toString('utf8');
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Forwards the stream unchanged, handing its final Response (response.completed / incomplete) to `keep`. */
function watchFinalEvent(res: Extract<GatewayResponse, { kind: 'stream' }>, keep: (response: Json) => void): GatewayResponse {
  const parser = new SseParser();
  const look = (frames: string): void => {
    if (!frames.includes('response.completed') && !frames.includes('response.incomplete')) return;
    for (const ev of parser.push(frames)) {
      if (ev.event !== 'response.completed' && ev.event !== 'response.incomplete') continue;
      const data = parseJson(ev.data);
      if (isObject(data) && isObject(data.response)) keep(data.response);
    }
  };
  const inner = res.rest;
  async function* rest(): AsyncGenerator<string> {
    for await (const f of inner) {
      yield f;
      look(f);
    }
  }
  look(res.head);
  return { ...res, rest: rest() };
}
