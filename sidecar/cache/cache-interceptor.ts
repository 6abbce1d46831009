// The response cache on the request path, outermost (a hit spends no quota and no rate limit). Looks up
// requests unless `Cache-Control: no-cache` or `no-store` (honouring `max-age=N`): first by exact key,
// then, for models in semantic mode, by the similarity of the prompt's embedding. Stores complete 200
// answers after they have been sent, unless `no-store`: a stream is recorded frame by frame as it is
// forwarded and stored only when it ended complete. One entry serves streaming and non-streaming
// requests alike (see answer-forms). Entries are keyed per scope (namespace/service): nothing crosses
// tenants.
import type { Clock } from '../../common/clock.js';
import type { Usage } from '../formats/usage.js';
import type { GatewayRequest, GatewayResponse, Handler, Interceptor, ResponseMeta } from '../pipeline/types.js';
import type { ModelRoute } from '../routing/router.js';
import type { Runtime } from '../runtime.js';
import { entryUsage, serveEntry, streamForm } from './answer-forms.js';
import { cacheKey, semanticPartition } from './cache-key.js';
import type { CachedAnswer, CacheStore, PromptVector } from './cache-store.js';
import { embedPrompt, promptText } from './semantic.js';

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

/** How a semantic lookup went: served, nothing close enough, no text prompt, or no embedding. */
export type SemanticOutcome = 'hit' | 'miss' | 'skipped' | 'failed';

export interface CacheInterceptorOptions {
  store: () => CacheStore | undefined;
  runtime: () => Runtime;
  scope: string;
  clock: Clock;
  onSemantic?: (outcome: SemanticOutcome) => void;
}

export function cacheInterceptor(opts: CacheInterceptorOptions): Interceptor {
  return (next) => async (req) => {
    const store = opts.store();
    const runtime = opts.runtime();
    const cfg = runtime.config.cache;
    const modelCfg = cfg?.models[req.model];
    if (store === undefined || cfg === undefined || modelCfg?.enabled === false) return next(req);
    const cc = parseCacheControl(req.headers['cache-control']);
    if (cc.noStore) return next(req);
    const route = runtime.router.resolve(req.model);
    const key = cacheKey(req, route, opts.scope);
    const span = req.span?.child('llmgw.cache.lookup', 'internal', { 'llmgw.cache.no_cache': cc.noCache });
    if (!cc.noCache) {
      const entry = store.get(key, opts.clock.now(), cc.maxAgeMs);
      const hit = entry === undefined ? undefined : serveEntry(entry, req, hitMeta(entry));
      if (hit !== undefined) {
        span?.set({ 'llmgw.cache.result': 'hit' });
        span?.end();
        return hit;
      }
    }
    let vector: PromptVector | undefined;
    let embeddingMs = 0;
    let embedding: ResponseMeta['embedding'];
    const semantic = modelCfg?.semantic;
    if (semantic !== undefined && req.endpoint !== 'embeddings') {
      let looked: SemanticLookup;
      try {
        looked = await semanticLookup(next, req, route, runtime.router.resolve(semantic.embeddingModel), semantic.threshold, store, opts, cc);
      } catch (err) {
        span?.end();
        throw err;
      }
      opts.onSemantic?.(looked.outcome);
      span?.set({ 'llmgw.cache.semantic': looked.outcome, 'llmgw.cache.similarity': looked.hit?.meta.similarity });
      embedding = looked.usage === undefined ? undefined : { model: semantic.embeddingModel, usage: looked.usage };
      if (looked.hit !== undefined) {
        if (embedding !== undefined) looked.hit.meta.embedding = embedding;
        span?.set({ 'llmgw.cache.result': 'hit' });
        span?.end();
        return looked.hit;
      }
      vector = looked.vector;
      embeddingMs = looked.upstreamMs;
    }
    span?.set({ 'llmgw.cache.result': 'miss' });
    span?.end();
    const res = await next(req);
    res.meta.cache = 'MISS';
    if (embeddingMs > 0) res.meta.upstreamMs = (res.meta.upstreamMs ?? 0) + embeddingMs;
    if (embedding !== undefined) res.meta.embedding = embedding;
    const save = (form: CachedAnswer['form'], body: Buffer): void => {
      const usage = res.meta.usage;
      const answer = { form, body, createdMs: opts.clock.now(), inputTokens: usage?.inputTokens ?? null, outputTokens: usage?.outputTokens ?? null };
      store.set(key, answer, cfg.ttlSeconds * 1000, cfg, vector);
    };
    if (res.kind === 'stream') return record(res, (text) => save(streamForm(req), Buffer.from(text)), cfg.maxBytes);
    if (res.status === 200) {
      const body = typeof res.body === 'string' ? Buffer.from(res.body) : Buffer.isBuffer(res.body) ? res.body : Buffer.concat(res.body);
      // Written once the answer is on its way, never before it.
      setImmediate(() => save('json', body));
    }
    return res;
  };
}

function hitMeta(entry: CachedAnswer, similarity?: number): ResponseMeta {
  const meta: ResponseMeta = { attempts: 0, cache: 'HIT' };
  const usage = entryUsage(entry);
  if (usage !== undefined) meta.savedUsage = usage;
  if (similarity !== undefined) meta.similarity = similarity;
  return meta;
}

interface SemanticLookup {
  outcome: SemanticOutcome;
  hit?: GatewayResponse;
  /** The prompt's vector, stored beside the answer on a miss. */
  vector?: PromptVector;
  /** Time the embeddings call took (upstream time, not gateway overhead). */
  upstreamMs: number;
  /** What the embeddings call cost, when the provider said. */
  usage?: Usage | undefined;
}

async function semanticLookup(
  next: Handler,
  req: GatewayRequest,
  route: ModelRoute,
  embeddingRoute: ModelRoute,
  threshold: number,
  store: CacheStore,
  opts: CacheInterceptorOptions,
  cc: { noCache: boolean; maxAgeMs: number | undefined },
): Promise<SemanticLookup> {
  const text = promptText(req);
  if (text === undefined) return { outcome: 'skipped', upstreamMs: 0 };
  let embedded;
  try {
    embedded = await embedPrompt(next, req, embeddingRoute.name, text);
  } catch (err) {
    // The app left while we waited: that is the request's end, not a cache failure.
    if (req.signal.aborted) throw err;
    embedded = undefined;
  }
  if (embedded === undefined) return { outcome: 'failed', upstreamMs: 0 };
  const vector = { partition: semanticPartition(req, route, opts.scope, embeddingRoute), vector: embedded.vector };
  const base = { vector, upstreamMs: embedded.upstreamMs, usage: embedded.usage };
  if (cc.noCache) return { outcome: 'skipped', ...base };
  const now = opts.clock.now();
  const near = await store.nearest(vector, threshold, now, cc.maxAgeMs);
  const entry = near === undefined ? undefined : store.get(near.key, now, cc.maxAgeMs);
  const hit = entry === undefined ? undefined : serveEntry(entry, req, hitMeta(entry, near!.similarity));
  if (hit === undefined) return { outcome: 'miss', ...base };
  hit.meta.upstreamMs = embedded.upstreamMs;
  return { outcome: 'hit', hit, ...base };
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
