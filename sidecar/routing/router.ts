// Model names apps send → their targets (provider + upstream model + weight), and the weighted pick.
import { GatewayError } from '../../common/errors.js';
import type { ModelConfig, RetryConfig, Strategy } from '../config/schema.js';
import type { Provider } from '../providers/provider.js';

export interface Target {
  provider: Provider;
  /** Model name sent upstream. */
  model: string;
  weight: number;
  /** The largest answer accepted from this target; buildRuntime resolves it (absent: `upstream.maxResponseBytes`'s default). */
  maxResponse?: ResponseLimit;
}

/** A size limit in bytes and the config key that set it, named in the refusal so an operator knows what to raise. */
export interface ResponseLimit {
  bytes: number;
  key: string;
}

export interface ModelRoute {
  name: string;
  targets: readonly Target[];
  fallbacks: readonly string[];
  defaultMaxTokens: number | undefined;
  /** The global retry settings with this model's overrides. */
  retry: RetryConfig;
  strategy: Strategy;
  timeouts: ModelConfig['timeouts'];
  hedgeAfterMs: number | undefined;
  contextFallbacks: readonly string[];
  /** Prompt-cache breakpoints added when translating for Anthropic. */
  promptCache: 'auto' | 'off';
}

export class Router {
  /** Exposed model names, in config order. */
  readonly modelNames: readonly string[];

  constructor(private readonly routes: ReadonlyMap<string, ModelRoute>) {
    this.modelNames = [...routes.keys()];
  }

  has(model: string): boolean {
    return this.routes.has(model);
  }

  /** The route for `model`; 404 `llmgw_unknown_model` listing the known names when there is none. */
  resolve(model: string): ModelRoute {
    const route = this.routes.get(model);
    if (route !== undefined) return route;
    throw new GatewayError(
      'llmgw_unknown_model',
      404,
      `model "${model}" is not routed by this gateway; known models: ${this.modelNames.join(', ')}`,
      { param: 'model' },
    );
  }
}

/** Every target of weight > 0, in a weighted random order (a weighted pick, then a pick among the rest, …). */
export function weightedOrder(targets: readonly Target[], random: () => number = Math.random): Target[] {
  const left = targets.filter((t) => t.weight > 0);
  const out: Target[] = [];
  while (left.length > 0) {
    const t = pickWeighted(left, random);
    out.push(t);
    left.splice(left.indexOf(t), 1);
  }
  return out;
}

/** Weighted random choice; `random` returns [0, 1). Targets of weight 0 are never picked. */
export function pickWeighted(targets: readonly Target[], random: () => number = Math.random): Target {
  if (targets.length === 1) return targets[0]!;
  let total = 0;
  for (const t of targets) total += t.weight;
  let r = random() * total;
  for (const t of targets) {
    if (t.weight === 0) continue;
    r -= t.weight;
    if (r < 0) return t;
  }
  // Floating-point rounding can leave r at exactly 0: the last weighted target takes it.
  return targets.findLast((t) => t.weight > 0)!;
}
