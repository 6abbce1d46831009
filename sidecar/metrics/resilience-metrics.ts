// Retries, fallbacks and circuit breakers per target (provider id + upstream model, the breakers' key).
// Only failures update them, so they cost the request path nothing while upstreams answer; circuit states
// are read when metrics are scraped.
import { Counter, Gauge, type Registry } from '../../common/metrics/registry.js';
import type { UpstreamObserver } from '../pipeline/provider-handler.js';
import type { BreakerState } from '../resilience/circuit-breaker.js';
import type { TargetStates } from '../resilience/target-state.js';
import type { Target } from '../routing/router.js';
import type { Runtime } from '../runtime.js';

/** llmgw_circuit_state's values. */
const CIRCUIT_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, 'half-open': 1, open: 2 };

export class ResilienceMetrics implements UpstreamObserver {
  readonly retries;
  readonly fallbacks;
  readonly circuitState;
  readonly circuitTransitions;

  constructor(private readonly registry: Registry) {
    this.retries = registry.register(
      new Counter('llmgw_upstream_retries_total', 'Attempts made again on the same target after it failed, by provider id and upstream model.', ['provider', 'model'] as const),
    );
    this.fallbacks = registry.register(
      new Counter(
        'llmgw_fallbacks_total',
        "Times a request moved on from a failed target to another, by the model asked for, the providers left and tried next, and the configured model tried next (the model asked for: its next target; another: a fallback model).",
        ['model', 'from_provider', 'to_provider', 'to_model'] as const,
      ),
    );
    this.circuitState = registry.register(
      new Gauge('llmgw_circuit_state', 'Circuit breaker state per target (0 closed, 1 half-open, 2 open), by provider id and upstream model; 0 while breakers are disabled.', ['provider', 'model'] as const),
    );
    this.circuitTransitions = registry.register(
      new Counter('llmgw_circuit_transitions_total', 'Circuit breaker state changes per target, by the state entered (open | half-open | closed).', ['provider', 'model', 'to'] as const),
    );
  }

  retry(target: Target): void {
    this.retries.inc({ provider: target.provider.id, model: target.model });
  }

  fallback(model: string, from: Target, to: Target, toModel: string): void {
    this.fallbacks.inc({ model, from_provider: from.provider.id, to_provider: to.provider.id, to_model: toModel });
  }

  /** For TargetStates: a breaker changed state. */
  readonly transition = (provider: string, model: string, to: BreakerState): void => {
    this.circuitTransitions.inc({ provider, model, to });
  };

  /** At each scrape, the state of every configured target's breaker (and of any seen before a reload). */
  watchCircuits(targets: TargetStates, runtime: () => Runtime, now: () => number): void {
    this.registry.onCollect(() => {
      const rt = runtime();
      for (const name of rt.router.modelNames) for (const t of rt.router.resolve(name).targets) targets.get(t);
      const enabled = rt.config.circuitBreaker.enabled;
      const at = now();
      for (const s of targets.all()) this.circuitState.set(enabled ? CIRCUIT_STATE_VALUE[s.breaker.stateAt(at)] : 0, { provider: s.provider, model: s.model });
    });
  }
}
