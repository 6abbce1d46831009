// The innermost handler: resolve the model, pick a target by weight, call it.
import type { Clock } from '../clock.js';
import { callTarget } from '../providers/call-target.js';
import { pickWeighted } from '../routing/router.js';
import type { Runtime } from '../runtime.js';
import type { Handler } from './types.js';

export interface ProviderHandlerOptions {
  runtime: () => Runtime;
  clock: Clock;
  /** Returns [0, 1); injectable so weighted picks are testable. */
  random?: () => number;
}

export function providerHandler(opts: ProviderHandlerOptions): Handler {
  const random = opts.random ?? Math.random;
  return async (req) => {
    const runtime = opts.runtime();
    const route = runtime.router.resolve(req.model);
    const target = pickWeighted(route.targets, random);
    return callTarget(req, target, {
      clock: opts.clock,
      defaultMaxTokens: route.defaultMaxTokens ?? runtime.config.translation.defaultMaxTokens,
    });
  };
}
