// What the sidecar remembers about each target (provider + upstream model) across requests and config
// reloads: its circuit breaker, its requests in flight and its recent time to first byte; and each
// model's round-robin position. The balancer orders targets from it.
import type { CircuitBreakerConfig } from '../config/schema.js';
import type { ModelRoute, Target } from '../routing/router.js';
import { weightedOrder } from '../routing/router.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';

/** Hears a target's breaker change state (metrics); `model` is the upstream model. */
export type CircuitObserver = (provider: string, model: string, to: BreakerState) => void;

export interface TargetState {
  /** The target's provider id and upstream model. */
  readonly provider: string;
  readonly model: string;
  readonly breaker: CircuitBreaker;
  inflight: number;
  /** Exponentially weighted moving average of the time to first byte (ms); undefined before any answer. */
  ttfbMs: number | undefined;
}

const EWMA_ALPHA = 0.3;

export class TargetStates {
  private readonly states = new Map<string, TargetState>();
  private readonly cursors = new Map<string, number>();

  /** `observer` hears transitions only while breakers are enabled (disabled ones still keep count, unheeded). */
  constructor(
    private readonly breakerConfig: () => CircuitBreakerConfig,
    private readonly observer?: CircuitObserver,
  ) {}

  get(target: Target): TargetState {
    const key = `${target.provider.id}\u0000${target.model}`;
    let s = this.states.get(key);
    if (s === undefined) {
      const { observer } = this;
      const provider = target.provider.id;
      const model = target.model;
      const onTransition = observer === undefined ? undefined : (to: BreakerState) => {
        if (this.breakerConfig().enabled) observer(provider, model, to);
      };
      s = { provider, model, breaker: new CircuitBreaker(this.breakerConfig, onTransition), inflight: 0, ttfbMs: undefined };
      this.states.set(key, s);
    }
    return s;
  }

  /** Every target seen so far (config reloads included). */
  all(): IterableIterator<TargetState> {
    return this.states.values();
  }

  observeTtfb(target: Target, ms: number): void {
    const s = this.get(target);
    s.ttfbMs = s.ttfbMs === undefined ? ms : EWMA_ALPHA * ms + (1 - EWMA_ALPHA) * s.ttfbMs;
  }

  /** The model's targets (weight > 0) in the order its strategy tries them. */
  order(route: ModelRoute, random: () => number): Target[] {
    const weighted = weightedOrder(route.targets, random);
    switch (route.strategy) {
      case 'weighted':
        return weighted;
      case 'round-robin': {
        const live = route.targets.filter((t) => t.weight > 0);
        const n = this.cursors.get(route.name) ?? 0;
        this.cursors.set(route.name, n + 1);
        const start = n % Math.max(1, live.length);
        return [...live.slice(start), ...live.slice(0, start)];
      }
      case 'least-busy':
        return stableSortBy(weighted, (t) => this.get(t).inflight);
      case 'least-latency':
        // Targets without a measurement yet go first, so every target gets measured.
        return stableSortBy(weighted, (t) => this.get(t).ttfbMs ?? -1);
    }
  }
}

function stableSortBy<T>(xs: T[], key: (x: T) => number): T[] {
  return xs
    .map((x, i) => ({ x, i, k: key(x) }))
    .sort((a, b) => a.k - b.k || a.i - b.i)
    .map((e) => e.x);
}
