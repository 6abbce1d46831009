// Local per-pod limits (config `rateLimits`): requests and tokens per minute, for the pod and per model.
// A request takes one request and its token estimate from every bucket that applies, or none of them and
// gets 429 llmgw_rate_limited with Retry-After; when it ends its estimate is settled to what it used.
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import type { Config } from '../config/schema.js';
import { onComplete } from '../pipeline/on-complete.js';
import type { Interceptor } from '../pipeline/types.js';
import { estimateTokens, usedTokens } from '../quota/estimate.js';
import { TokenBucket } from './token-bucket.js';

interface Buckets {
  config: Config;
  requests: TokenBucket[];
  tokens: TokenBucket[];
  models: Map<string, { requests: TokenBucket[]; tokens: TokenBucket[] }>;
}

function build(config: Config, clock: Clock): Buckets {
  const limits = config.rateLimits;
  const make = (n: number | undefined): TokenBucket[] => (n === undefined ? [] : [new TokenBucket(n, clock)]);
  const models = new Map<string, { requests: TokenBucket[]; tokens: TokenBucket[] }>();
  for (const [name, m] of Object.entries(limits?.models ?? {})) models.set(name, { requests: make(m.requestsPerMinute), tokens: make(m.tokensPerMinute) });
  return { config, requests: make(limits?.requestsPerMinute), tokens: make(limits?.tokensPerMinute), models };
}

function takeAll(buckets: TokenBucket[], n: number): number | undefined {
  const taken: TokenBucket[] = [];
  for (const b of buckets) {
    const r = b.take(n);
    if (!r.ok) {
      for (const t of taken) t.adjust(n);
      return r.retryAfterMs;
    }
    taken.push(b);
  }
  return undefined;
}

export function rateLimitInterceptor(opts: { config: () => Config; clock: Clock }): Interceptor {
  let state = build(opts.config(), opts.clock);
  return (next) => async (req) => {
    const config = opts.config();
    // A reloaded config starts with fresh buckets.
    if (config !== state.config) state = build(config, opts.clock);
    if (config.rateLimits === undefined) return next(req);
    const model = state.models.get(req.model);
    const requestBuckets = model === undefined ? state.requests : [...state.requests, ...model.requests];
    const tokenBuckets = model === undefined ? state.tokens : [...state.tokens, ...model.tokens];
    const estimate = tokenBuckets.length === 0 ? 0 : estimateTokens(req, config.quota?.defaultOutputTokens ?? 1024);
    const refuse = (retryAfterMs: number, what: string): GatewayError =>
      new GatewayError('llmgw_rate_limited', 429, `this pod's local ${what} limit is reached; retry in ${Math.ceil(retryAfterMs / 1000)} s`, {
        retryAfterSeconds: Math.ceil(retryAfterMs / 1000),
      });
    const waitRequests = takeAll(requestBuckets, 1);
    if (waitRequests !== undefined) throw refuse(waitRequests, 'requests-per-minute');
    const waitTokens = takeAll(tokenBuckets, estimate);
    if (waitTokens !== undefined) {
      for (const b of requestBuckets) b.adjust(1);
      throw refuse(waitTokens, 'tokens-per-minute');
    }
    let res;
    try {
      res = await next(req);
    } catch (err) {
      for (const b of tokenBuckets) b.adjust(estimate);
      throw err;
    }
    if (tokenBuckets.length === 0) return res;
    return onComplete(res, (o) => {
      const used = usedTokens(req, o.usage, o.complete, o.frames);
      for (const b of tokenBuckets) b.adjust(estimate - used);
    });
  };
}
