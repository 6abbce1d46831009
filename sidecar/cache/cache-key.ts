// The cache key: a hash of the canonical form (keys sorted, no whitespace) of everything that can change
// the answer: the caller's scope, the endpoint and wire format, the resolved upstream route, the Anthropic
// headers that select API behaviour, and the whole request body except the few fields known not to
// (streaming flags, end-user ids, metadata). Any parameter not known to be inert is part of the key, so a
// new API field can never make two different requests share an answer. A streaming and a non-streaming
// request share a key: one stored answer serves both.
import { hash } from 'node:crypto';
import { canonical } from '../canonical-json.js';
import type { GatewayRequest } from '../pipeline/types.js';
import type { ModelRoute } from '../routing/router.js';

/** Body fields that cannot change what a correct answer is. */
const INERT = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'service_tier']);
/** Body fields that hold the prompt itself (semantic mode compares them by meaning, not by bytes). */
const PROMPT = new Set([...INERT, 'messages', 'system']);
/** Request headers that change the answer: Anthropic's betas turn API features on. */
const ANSWER_HEADERS = ['anthropic-beta', 'anthropic-version'] as const;

/** The route's targets as `provider/model`, in a fixed order (weights and strategy do not change answers). */
const upstreamOf = (route: ModelRoute): string[] => route.targets.map((t) => `${t.provider.id}/${t.model}`).sort();

function digest(req: GatewayRequest, route: ModelRoute, scope: string, leaveOut: ReadonlySet<string>, extra?: unknown): string {
  const body: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(req.body)) if (!leaveOut.has(k)) body[k] = v;
  const material: Record<string, unknown> = { scope, endpoint: req.endpoint, format: req.format, model: req.model, upstream: upstreamOf(route), body };
  if (req.format === 'anthropic') {
    const headers: Record<string, string> = {};
    for (const h of ANSWER_HEADERS) {
      const v = req.headers[h];
      if (v !== undefined) headers[h] = Array.isArray(v) ? v.join(',') : v;
    }
    material.headers = headers;
  }
  if (extra !== undefined) material.extra = extra;
  return hash('sha256', canonical(material), 'hex');
}

/** The exact key of a request. */
export function cacheKey(req: GatewayRequest, route: ModelRoute, scope: string): string {
  return digest(req, route, scope, INERT);
}

/**
 * The partition of semantic mode: everything but the prompt, and the embedding model's route (vectors
 * of different models cannot be compared). Only entries of the same partition can match.
 */
export function semanticPartition(req: GatewayRequest, route: ModelRoute, scope: string, embeddingRoute: ModelRoute): string {
  const embedding = { model: embeddingRoute.name, upstream: upstreamOf(embeddingRoute) };
  return digest(req, route, scope, PROMPT, embedding);
}
