// Local per-pod limits (config `rateLimits`): requests and tokens per minute, for the pod and per model.
// A request takes one request and its token estimate from every bucket that applies, or none of them and
// gets 429 llmgw_rate_limited with a Retry-After after which every one of them holds what it takes; one
// whose estimate is more than a whole tokens-per-minute bucket never fits and gets 400
// llmgw_request_exceeds_rate_limit instead. When it ends its estimate is settled to what it used.
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import type { Config } from '../config/schema.js';
import { onComplete } from '../pipeline/on-complete.js';
import type { Interceptor } from '../pipeline/types.js';
import { estimateTokens, usedTokens } from '../quota/estimate.js';
import { TokenBucket } from './token-bucket.js';

/** One configured limit: its bucket, and its config key for messages. */
interface Limit {
  key: string;
  perMinute: number;
  bucket: TokenBucket;
}

interface Buckets {
  config: Config;
  requests: Limit[];
  tokens: Limit[];
  models: Map<string, { requests: Limit[]; tokens: Limit[] }>;
}

function build(config: Config, clock: Clock): Buckets {
  const limits = config.rateLimits;
  const make = (n: number | undefined, key: string): Limit[] => (n === undefined ? [] : [{ key, perMinute: n, bucket: new TokenBucket(n, clock) }]);
  const models = new Map<string, { requests: Limit[]; tokens: Limit[] }>();
  for (const [name, m] of Object.entries(limits?.models ?? {})) {
    models.set(name, { requests: make(m.requestsPerMinute, `rateLimits.models.${name}.requestsPerMinute`), tokens: make(m.tokensPerMinute, `rateLimits.models.${name}.tokensPerMinute`) });
  }
  return { config, requests: make(limits?.requestsPerMinute, 'rateLimits.requestsPerMinute'), tokens: make(limits?.tokensPerMinute, 'rateLimits.tokensPerMinute'), models };
}

function exceeds(limit: Limit, estimate: number): GatewayError {
  return new GatewayError(
    'llmgw_request_exceeds_rate_limit',
    400,
    `this request's estimated ${estimate} tokens (its prompt plus max_tokens) are more than this pod's local limit ${limit.key} allows in a minute ` +
      `(${limit.perMinute}); ${Math.max(0, Math.floor(limit.bucket.available))} are available now. Waiting will not help: lower max_tokens, or raise ${limit.key} in the sidecar's config`,
  );
}

function limited(limit: Limit, unit: 'requests' | 'tokens', estimate: number, waitMs: number): GatewayError {
  const s = Math.max(1, Math.ceil(waitMs / 1000));
  const state =
    unit === 'requests'
      ? `is reached`
      : `has ${Math.max(0, Math.floor(limit.bucket.available))} tokens available, fewer than this request's estimated ${estimate}`;
  return new GatewayError('llmgw_rate_limited', 429, `this pod's local limit ${limit.key} (${limit.perMinute} ${unit} a minute) ${state}: retry in ${s} s`, {
    retryAfterSeconds: s,
  });
}

export function rateLimitInterceptor(opts: { config: () => Config; clock: Clock }): Interceptor {
  let state = build(opts.config(), opts.clock);
  return (next) => async (req) => {
    const config = opts.config();
    // A reloaded config starts with fresh buckets.
    if (config !== state.config) state = build(config, opts.clock);
    if (config.rateLimits === undefined) return next(req);
    const model = state.models.get(req.model);
    const requestLimits = model === undefined ? state.requests : [...state.requests, ...model.requests];
    const tokenLimits = model === undefined ? state.tokens : [...state.tokens, ...model.tokens];
    const estimate = tokenLimits.length === 0 ? 0 : estimateTokens(req, config.quota?.defaultOutputTokens ?? 1024);
    for (const t of tokenLimits) if (estimate > t.perMinute) throw exceeds(t, estimate);
    // The longest wait of all the buckets that apply: after it, each holds what the request takes.
    let worst: { limit: Limit; unit: 'requests' | 'tokens'; ms: number } | undefined;
    for (const r of requestLimits) {
      const ms = r.bucket.waitMs(1);
      if (ms > (worst?.ms ?? 0)) worst = { limit: r, unit: 'requests', ms };
    }
    for (const t of tokenLimits) {
      const ms = t.bucket.waitMs(estimate);
      if (ms > (worst?.ms ?? 0)) worst = { limit: t, unit: 'tokens', ms };
    }
    if (worst !== undefined) throw limited(worst.limit, worst.unit, estimate, worst.ms);
    for (const r of requestLimits) r.bucket.adjust(-1);
    for (const t of tokenLimits) t.bucket.adjust(-estimate);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      for (const t of tokenLimits) t.bucket.adjust(estimate);
      throw err;
    }
    if (tokenLimits.length === 0) return res;
    return onComplete(res, (o) => {
      const used = usedTokens(req, o.usage, o.complete, o.frames);
      for (const t of tokenLimits) t.bucket.adjust(estimate - used);
    });
  };
}
