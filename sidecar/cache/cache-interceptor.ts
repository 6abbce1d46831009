// The response cache on the request path, outermost (a hit spends no quota and no rate limit). Looks up
// non-streaming requests unless `Cache-Control: no-cache` or `no-store` (honouring `max-age=N`), and
// stores complete 200 answers after they have been sent, unless `no-store`. Streams pass through
// (x-llmgw-cache: BYPASS) for now. Entries are keyed per scope (namespace/service): nothing crosses tenants.
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
    if (store === undefined || cfg === undefined || req.stream || cfg.models[req.model]?.enabled === false) return next(req);
    const cc = parseCacheControl(req.headers['cache-control']);
    if (cc.noStore) return next(req);
    const key = cacheKey(req, runtime.router.resolve(req.model), opts.scope);
    if (!cc.noCache) {
      const hit = store.get(key, opts.clock.now(), cc.maxAgeMs);
      if (hit !== undefined) return { kind: 'json', status: hit.status, body: hit.body, meta: { attempts: 0, cache: 'HIT' } };
    }
    const res = await next(req);
    res.meta.cache = 'MISS';
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
