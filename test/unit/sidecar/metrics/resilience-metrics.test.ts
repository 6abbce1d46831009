import { describe, expect, it } from 'vitest';
import { Registry } from '../../../../common/metrics/registry.js';
import type { CircuitBreakerConfig } from '../../../../sidecar/config/schema.js';
import { ResilienceMetrics } from '../../../../sidecar/metrics/resilience-metrics.js';
import { TargetStates } from '../../../../sidecar/resilience/target-state.js';
import type { Target } from '../../../../sidecar/routing/router.js';

const CFG: CircuitBreakerConfig = { enabled: true, consecutiveFailures: 2, failureRate: 0.5, windowMs: 10_000, minRequests: 100, coolDownMs: 1000, halfOpenProbes: 1 };
const target = { provider: { id: 'openai' }, model: 'gpt-4o', weight: 1 } as unknown as Target;

describe('circuit transitions', () => {
  it('are counted per target and state entered: open after the failures, half-open when a probe goes, closed on its success', () => {
    const registry = new Registry();
    const metrics = new ResilienceMetrics(registry);
    const states = new TargetStates(() => CFG, metrics.transition);
    const b = states.get(target).breaker;
    b.onFailure(0);
    b.onFailure(1);
    expect(b.tryAcquire(500)).toBe(false);
    expect(b.tryAcquire(1001)).toBe(true);
    b.onSuccess(1002);
    const out = registry.render();
    for (const to of ['open', 'half-open', 'closed']) expect(out).toContain(`llmgw_circuit_transitions_total{provider="openai",model="gpt-4o",to="${to}"} 1\n`);
  });

  it('are not heard while breakers are disabled', () => {
    const registry = new Registry();
    const metrics = new ResilienceMetrics(registry);
    const states = new TargetStates(() => ({ ...CFG, enabled: false }), metrics.transition);
    const b = states.get(target).breaker;
    b.onFailure(0);
    b.onFailure(1);
    expect(registry.render()).not.toContain('llmgw_circuit_transitions_total{');
  });
});
