// The cache key: a hash of the canonical form (keys sorted, no whitespace) of everything that can change
// the answer: the caller's scope, the endpoint and wire format, the resolved upstream route, and the whole
// request body except the few fields known not to (streaming flags, end-user ids, metadata). Any
// parameter not known to be inert is part of the key, so a new API field can never make two different
// requests share an answer.
import { createHash } from 'node:crypto';
import type { GatewayRequest } from '../pipeline/types.js';
import type { ModelRoute } from '../routing/router.js';

/** Body fields that cannot change what a correct answer is. */
const INERT = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'service_tier']);

export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

export function cacheKey(req: GatewayRequest, route: ModelRoute, scope: string): string {
  const body: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(req.body)) if (!INERT.has(k)) body[k] = v;
  const upstream = route.targets.map((t) => `${t.provider.id}/${t.model}`).sort();
  const material = canonical({ scope, endpoint: req.endpoint, format: req.format, model: req.model, upstream, body });
  return createHash('sha256').update(material).digest('hex');
}
