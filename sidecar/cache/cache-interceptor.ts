// The response cache on the request path, outermost (a hit spends no quota and no rate limit). Looks up
// requests unless `Cache-Control: no-cache` or `no-store` (honouring `max-age=N`), and stores complete 200
// answers after they have been sent, unless `no-store`. A stream is recorded frame by frame as it is
// forwarded, stored only when it ended complete, and a hit replays it as SSE event by event. Streamed and
// JSON answers are kept apart for now (a JSON request does not hit a stored stream). Entries are keyed
// per scope (namespace/service): nothing crosses tenants.
import type { GatewayResponse } from '../pipeline/types.js';
import type { Clock } from '../clock.js';
import type { Interceptor } from '../pipeline/types.js';
import type { Runtime } from '../runtime.js';
import { cacheKey } from './cache-key.js';
import type { CacheStore } from './cache-store.js';

export interface CacheControl {
  noCache: boolean;
  noStore: boolean;
  maxAgeMs: number | undefined;
}

export function parseCacheControl(header: string | string[] | undefined): CacheControl {
  const out: CacheControl = { noCache: false, noStore: false, maxAgeMs: undefined };
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  for (const part of text.split(',')) {
    const [name, value] = part.trim().toLowerCase().split('=');
    if (name === 'no-cache') out.noCache = true;
    else if (name === 'no-store') out.noStore = true;
    else if (name === 'max-age' && value !== undefined && /^\d+$/.test(value)) out.maxAgeMs = Number(value) * 1000;
  }
  return out;
}

export function cacheInterceptor(opts: { store: () => CacheStore | undefined; runtime: () => Runtime; scope: string; clock: Clock }): Interceptor {
  return (next) => async (req) => {
    const store = opts.store();
    const runtime = opts.runtime();
    const cfg = runtime.config.cache;
    if (store === undefined || cfg === undefined || cfg.models[req.model]?.enabled === false) return next(req);
    const cc = parseCacheControl(req.headers['cache-control']);
    if (cc.noStore) return next(req);
    const base = cacheKey(req, runtime.router.resolve(req.model), opts.scope);
    // Streams apart, and by their stream_options (whether the app asked for a usage chunk).
    const key = req.stream ? `${base}:sse:${JSON.stringify(req.body.stream_options ?? null)}` : base;
    if (!cc.noCache) {
      const hit = store.get(key, opts.clock.now(), cc.maxAgeMs);
      if (hit !== undefined) return req.stream ? replay(hit.body.toString('utf8')) : { kind: 'json', status: hit.status, body: hit.body, meta: { attempts: 0, cache: 'HIT' } };
    }
    const res = await next(req);
    res.meta.cache = 'MISS';
    if (res.kind === 'stream') {
      return record(res, (text) => {
        const usage = res.meta.usage;
        store.set(key, { status: 200, body: Buffer.from(text), contentType: 'text/event-stream', createdMs: opts.clock.now(), inputTokens: usage?.inputTokens ?? 0, outputTokens: usage?.outputTokens ?? 0 }, cfg.ttlSeconds * 1000, cfg);
      }, cfg.maxBytes);
    }
    if (res.kind === 'json' && res.status === 200) {
      const usage = res.meta.usage;
      const body = typeof res.body === 'string' ? Buffer.from(res.body) : res.body;
      // Written once the answer is on its way, never before it.
      setImmediate(() =>
        store.set(
          key,
          { status: 200, body, contentType: 'application/json', createdMs: opts.clock.now(), inputTokens: usage?.inputTokens ?? 0, outputTokens: usage?.outputTokens ?? 0 },
          cfg.ttlSeconds * 1000,
          cfg,
        ),
      );
    }
    return res;
  };
}

/** Forwards the stream unchanged while keeping its frames; `save` gets them once it ended complete. */
function record(res: Extract<GatewayResponse, { kind: 'stream' }>, save: (text: string) => void, maxBytes: number): GatewayResponse {
  const inner = res.rest;
  const frames = [res.head];
  let size = res.head.length;
  async function* rest(): AsyncGenerator<string> {
    let complete = false;
    try {
      for await (const f of inner) {
        if (size <= maxBytes) {
          frames.push(f);
          size += f.length;
        }
        yield f;
      }
      complete = true;
    } finally {
      // A stream that failed, or that the app left, is never stored; nor one larger than the cache.
      if (complete && size <= maxBytes) {
        const text = frames.join('');
        setImmediate(() => save(text));
      }
    }
  }
  return { ...res, rest: rest() };
}

/** A stored stream served again, one SSE event at a time. */
function replay(text: string): GatewayResponse {
  const events = text.split(/(?<=\n\n)/);
  async function* rest(): AsyncGenerator<string> {
    for (const e of events.slice(1)) yield e;
  }
  return { kind: 'stream', head: events[0] ?? '', rest: rest(), meta: { attempts: 0, cache: 'HIT' } };
}
