// The innermost handler: the model's targets in weighted order, then its fallback models' targets, each
// tried and retried by the retry policy, until one answers. A stream that fails before its first frame
// is retried like any answer; once frames have gone to the app, failures end the stream (see
// call-target). The gateway's own refusals never get here (they come from the interceptors around it).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { ProviderError } from '../errors.js';
import { callTarget } from '../providers/call-target.js';
import { backoffMs, classify, requestedWaitMs } from '../resilience/retry-policy.js';
import { weightedOrder, type ModelRoute } from '../routing/router.js';
import type { Runtime } from '../runtime.js';
import type { Handler } from './types.js';

export interface ProviderHandlerOptions {
  runtime: () => Runtime;
  clock: Clock;
  logger?: Logger;
  /** Returns [0, 1); injectable so weighted picks and jitter are testable. */
  random?: () => number;
}

export function providerHandler(opts: ProviderHandlerOptions): Handler {
  const random = opts.random ?? Math.random;
  return async (req) => {
    const runtime = opts.runtime();
    const first = runtime.router.resolve(req.model);
    const chain: ModelRoute[] = [first, ...first.fallbacks.map((m) => runtime.router.resolve(m))];
    // The budget and attempt counts are the requested model's.
    const policy = first.retry;
    const deadline = opts.clock.monotonic() + policy.budgetMs;
    let attempts = 0;
    let last: unknown;
    // Failed attempts and the pauses between them count as waiting for the upstream, not as overhead.
    let waitedMs = 0;
    for (const route of chain) {
      for (const target of weightedOrder(route.targets, random)) {
        for (let retry = 0; ; retry++) {
          attempts++;
          const started = opts.clock.monotonic();
          try {
            const res = await callTarget(req, target, { clock: opts.clock, defaultMaxTokens: route.defaultMaxTokens ?? runtime.config.translation.defaultMaxTokens });
            res.meta.attempts = attempts;
            if (waitedMs > 0) res.meta.upstreamMs = (res.meta.upstreamMs ?? 0) + waitedMs;
            return res;
          } catch (err) {
            last = err;
            waitedMs += opts.clock.monotonic() - started;
            if (req.signal.aborted) throw err;
            const action = classify(err);
            const status = err instanceof ProviderError ? err.status : undefined;
            opts.logger?.info({ reqId: req.id, attempt: attempts, model: route.name, provider: target.provider.id, upstreamModel: target.model, status, action, err: (err as Error).message }, 'upstream attempt failed');
            if (action === 'stop') throw err;
            if (action === 'next-target' || retry >= policy.attempts) break;
            const asked = requestedWaitMs(err, opts.clock.now());
            // A provider asking for a longer pause than we accept: another target may answer now.
            if (asked !== undefined && asked > policy.maxRetryAfterMs) break;
            const wait = Math.max(asked ?? 0, backoffMs(retry, policy, random));
            if (opts.clock.monotonic() + wait > deadline) break;
            await sleep(wait, undefined, { signal: req.signal });
            waitedMs += wait;
          }
        }
        if (opts.clock.monotonic() >= deadline) throw last;
      }
    }
    throw last;
  };
}
