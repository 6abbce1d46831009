// Global budgets on the request path: reserve the request's estimate from the class's lease (no RPC while
// the lease covers it), refuse as the lease manager decides when a budget cannot cover it (429 with an
// honest Retry-After, or 400 when no wait can help), and settle to the provider-reported usage when the
// answer or the stream ends. The request is in the in-flight log (on disk) before it goes upstream, and a
// stream's usage so far is checkpointed there while it runs, so a killed sidecar still reports it at its
// next start. Dollar budgets: the request also reserves its priced estimate (the price book's rates of the
// upstreams its model may be served by: one Map read and two multiplications, pricing/cost-estimate.ts) and,
// when it reserved dollars, settles to what its usage cost by the same book.
import { CostEstimator, usageCostNano } from '../pricing/cost-estimate.js';
import { asLlmgwError, errorCode } from '../../common/errors.js';
import type { Config } from '../config/schema.js';
import { onComplete } from '../pipeline/on-complete.js';
import type { Interceptor } from '../pipeline/types.js';
import { estimateTokens, kindsOf, promptTokens, usedTokens } from './estimate.js';
import type { QuotaStack } from './quota-stack.js';
import { recordModel } from './usage-outbox.js';

export function quotaInterceptor(opts: { stack: () => QuotaStack | undefined; config: () => Config }): Interceptor {
  const costs = new CostEstimator();
  return (next) => async (req) => {
    const stack = opts.stack();
    const config = opts.config();
    const quota = config.quota;
    if (stack === undefined || quota === undefined) return next(req);
    const { manager, outbox } = stack;
    const estimate = estimateTokens(req, quota.defaultOutputTokens);
    const book = manager.priceBook;
    // Before the first lease answer the book holds the shipped table, not the service's: wait for it (the
    // request waits for that lease anyway), at most quota.acquireTimeoutMs.
    if (book !== undefined && book.version === '') {
      const first = manager.untilFirstCall();
      if (first !== undefined) await atMost(first, quota.acquireTimeoutMs);
    }
    const prompt = promptTokens(req);
    const nano = book === undefined ? 0 : costs.estimateNano(book, config, req.model, prompt, Math.max(0, estimate - prompt));
    const span = req.span?.child('llmgw.quota.reserve', 'internal', { 'llmgw.priority': req.priority, 'llmgw.quota.estimate_tokens': estimate, 'llmgw.quota.estimate_usd': nano > 0 ? nano / 1e9 : undefined });
    let reservation;
    try {
      const pending = manager.reserve(req.priority, estimate, nano);
      // A reservation the lease could not cover waited on a quota RPC.
      span?.set({ 'llmgw.quota.waited': pending instanceof Promise });
      reservation = pending instanceof Promise ? await pending : pending;
    } catch (err) {
      span?.fail(errorCode(asLlmgwError(err)), (err as Error).message);
      span?.end();
      throw err;
    }
    span?.end();
    const entry = outbox.begin(req.priority, reservation.startedAtMs, req.model, req.tags, prompt);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      manager.settle(reservation, 0, req.model, undefined, entry);
      throw err;
    }
    res.meta.remainingTokens = manager.remaining(req.priority);
    return onComplete(
      res,
      (o) => {
        const used = usedTokens(req, o.usage, o.complete, o.frames);
        // What served it goes with the usage: the quota service prices it by provider type and upstream model.
        const { provider, upstreamModel } = res.meta;
        const providerType = provider === undefined ? undefined : config.providers[provider]?.type;
        const kinds = kindsOf(o.usage, used);
        const cost = reservation.nano > 0 && book !== undefined ? usageCostNano(book, providerType ?? '', upstreamModel ?? req.model, kinds, used) : 0;
        manager.settle(reservation, used, recordModel(req.model, providerType, upstreamModel), req.tags, entry, kinds, cost);
      },
      (current) => {
        entry.progress = () => {
          const o = current();
          return usedTokens(req, o.usage, o.complete, o.frames);
        };
      },
    );
  };
}

/** Resolves when `p` does, or after `ms`, whichever is first. */
function atMost(p: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void p.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
