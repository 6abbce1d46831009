// What one finished request adds to the sidecar's series: requests, latency and overhead, tokens, cost,
// refusals, and the GenAI operation it was. Runs once per request, after the answer: kept series only, no
// label key built.
import type { AccessLogEntry } from '../access-log.js';
import type { Usage } from '../formats/usage.js';
import type { Endpoint, ResponseMeta } from '../pipeline/types.js';
import type { Target } from '../routing/router.js';
import { operationOf } from './gen-ai-metrics.js';
import type { SidecarMetrics } from './sidecar-metrics.js';

/**
 * `endpointLabel` is the route's path (ids as `{id}`, unknown paths `other`); `model` the configured model
 * asked for ('' when the name is not routed); `target` the one the pipeline answered from or last tried
 * (undefined: it tried none); `endpoint` the pipeline's API (undefined: not through the pipeline).
 */
export function recordRequest(
  m: SidecarMetrics,
  entry: AccessLogEntry,
  meta: ResponseMeta | undefined,
  endpointLabel: string,
  model: string,
  target: Target | undefined,
  endpoint: Endpoint | undefined,
): void {
  const s = m.series;
  if (meta !== undefined) {
    s.cache.get(meta.cache).inc();
    if (meta.savedUsage !== undefined) countTokens(s.cacheSavedTokens, entry.model, meta.savedUsage);
    if (meta.usage !== undefined) countTokens(s.tokens, entry.model, meta.usage);
    // A hit cost nothing and names no provider: it adds no series.
    if (meta.costUsd !== undefined && meta.cache !== 'HIT') s.cost.get(model, meta.provider ?? '').inc(meta.costUsd);
    if (meta.embedding !== undefined) countTokens(s.tokens, meta.embedding.model, meta.embedding.usage);
    if (meta.overheadMs !== undefined) s.overhead.get(endpointLabel).observe(meta.overheadMs / 1000);
  }
  s.requests.get(endpointLabel, model, String(entry.status)).inc();
  const seconds = entry.latencyMs / 1000;
  s.duration.get(endpointLabel).observe(seconds);
  if (entry.error !== undefined) {
    const code = refusalCode(entry.error);
    if (code !== undefined) s.refusals.get(code).inc();
  }
  // A GenAI operation: the pipeline tried a target (a cache hit tried none).
  if (target !== undefined && endpoint !== undefined && meta?.cache !== 'HIT') {
    const firstChunk = entry.stream && meta?.upstreamMs !== undefined ? meta.upstreamMs / 1000 : undefined;
    m.genAi.record(target, model, operationOf(endpoint), seconds, meta?.usage, firstChunk, errorTypeOf(entry));
  }
}

/** Usage only exists for routed models, so the model label stays a configured name. */
function countTokens(series: SidecarMetrics['series']['tokens'], model: string | undefined, usage: Usage): void {
  series.get(model ?? 'unknown', 'input').inc(usage.inputTokens);
  series.get(model ?? 'unknown', 'output').inc(usage.outputTokens);
}

/** llmgw_refusals_total's code: the gateway's own codes, and providers' 429s passed on. */
function refusalCode(error: string): string | undefined {
  if (error.startsWith('llmgw_')) return error;
  return error === 'provider_429' ? error : undefined;
}

/**
 * error_type of a failed GenAI operation: the gateway's llmgw_* code, the provider's HTTP status (semconv's
 * example form, e.g. `503`), or `cancelled` when the app left first; undefined when it succeeded. A status
 * outside 100-599 (a number an upstream put in a stream's error event) is semconv's fallback `_OTHER`.
 */
function errorTypeOf(entry: AccessLogEntry): string | undefined {
  if (entry.clientAborted === true) return 'cancelled';
  const e = entry.error;
  if (e === undefined) return undefined;
  if (!e.startsWith('provider_')) return e;
  const status = e.slice(9);
  return /^[1-5]\d\d$/.test(status) ? status : '_OTHER';
}
