// Global budgets on the request path: reserve the request's estimate from the class's lease (no RPC while
// the lease covers it), refuse with 429 llmgw_quota_exhausted when the budget is spent, and settle to the
// provider-reported usage when the answer or the stream ends.
import type { Config } from '../config/schema.js';
import { onComplete } from '../pipeline/on-complete.js';
import type { Interceptor } from '../pipeline/types.js';
import { estimateTokens, usedTokens } from './estimate.js';
import type { LeaseManager } from './lease-manager.js';

export function quotaInterceptor(opts: { manager: () => LeaseManager | undefined; config: () => Config }): Interceptor {
  return (next) => async (req) => {
    const manager = opts.manager();
    const quota = opts.config().quota;
    if (manager === undefined || quota === undefined) return next(req);
    const pending = manager.reserve(req.priority, estimateTokens(req, quota.defaultOutputTokens));
    const reservation = pending instanceof Promise ? await pending : pending;
    let res;
    try {
      res = await next(req);
    } catch (err) {
      manager.settle(reservation, 0, req.model);
      throw err;
    }
    res.meta.remainingTokens = manager.remaining(req.priority);
    return onComplete(res, (o) => manager.settle(reservation, usedTokens(req, o.usage, o.complete, o.frames), req.model, req.tags));
  };
}
