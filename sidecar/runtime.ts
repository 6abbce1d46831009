// Everything built from one config version: providers and routes. A reload builds a new Runtime and
// swaps it in; requests in flight keep the one they started with.
import type { Config } from './config/schema.js';
import { createProvider, type Provider, type QuotaKeyLookup } from './providers/provider.js';
import { Router, type ModelRoute, type ResponseLimit } from './routing/router.js';
import type { PoolRegistry } from './upstream/pool-registry.js';

export interface Runtime {
  readonly config: Config;
  readonly router: Router;
  readonly providers: ReadonlyMap<string, Provider>;
}

export function buildRuntime(config: Config, pools: PoolRegistry, quotaKey?: QuotaKeyLookup): Runtime {
  const providers = new Map<string, Provider>();
  for (const [id, cfg] of Object.entries(config.providers)) providers.set(id, createProvider(id, cfg, config.upstream, pools, quotaKey));
  const routes = new Map<string, ModelRoute>();
  for (const [name, m] of Object.entries(config.models)) {
    routes.set(name, {
      name,
      // The schema checked that every target names a configured provider.
      targets: m.targets.map((t) => ({ provider: providers.get(t.provider)!, model: t.model, weight: t.weight, maxResponse: maxResponseFor(config, name, t.provider) })),
      fallbacks: m.fallbacks,
      defaultMaxTokens: m.defaultMaxTokens,
      strategy: m.strategy,
      timeouts: m.timeouts,
      hedgeAfterMs: m.hedgeAfterMs,
      contextFallbacks: m.contextFallbacks,
      promptCache: m.promptCache,
      retry: { ...config.retry, ...Object.fromEntries(Object.entries(m.retry ?? {}).filter(([, v]) => v !== undefined)) },
    });
  }
  const runtime = { config, router: new Router(routes), providers };
  pools.retainOnly(new Set([...providers.values()].map((p) => p.pool)));
  return runtime;
}

/** The model's `maxResponseBytes`, else the provider's, else `upstream.maxResponseBytes` (like the timeouts). */
function maxResponseFor(config: Config, model: string, provider: string): ResponseLimit {
  const m = config.models[model]?.maxResponseBytes;
  if (m !== undefined) return { bytes: m, key: `models.${model}.maxResponseBytes` };
  const p = config.providers[provider]?.maxResponseBytes;
  if (p !== undefined) return { bytes: p, key: `providers.${provider}.maxResponseBytes` };
  return { bytes: config.upstream.maxResponseBytes, key: 'upstream.maxResponseBytes' };
}
