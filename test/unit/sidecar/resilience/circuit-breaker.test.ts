import { describe, expect, it } from 'vitest';
import type { Provider } from '../../../../sidecar/providers/provider.js';
import { CircuitBreaker } from '../../../../sidecar/resilience/circuit-breaker.js';
import { TargetStates } from '../../../../sidecar/resilience/target-state.js';
import type { ModelRoute, Target } from '../../../../sidecar/routing/router.js';

const CFG = { enabled: true, consecutiveFailures: 3, failureRate: 0.5, windowMs: 10_000, minRequests: 10, coolDownMs: 5_000, halfOpenProbes: 1 };

describe('circuit breaker', () => {
  it('opens after consecutive failures, probes after the cool-down, closes on a successful probe', () => {
    const b = new CircuitBreaker(() => CFG);
    let t = 1_000;
    for (let i = 0; i < 2; i++) {
      expect(b.tryAcquire(t)).toBe(true);
      b.onFailure(t);
    }
    expect(b.stateAt(t)).toBe('closed');
    b.onFailure(t);
    expect(b.stateAt(t)).toBe('open');
    expect(b.tryAcquire(t + 4_999)).toBe(false);
    expect(b.retryAt()).toBe(t + 5_000);
    t += 5_000;
    expect(b.stateAt(t)).toBe('half-open');
    expect(b.tryAcquire(t)).toBe(true); // the one probe
    expect(b.tryAcquire(t)).toBe(false); // no second one while it runs
    b.onSuccess(t);
    expect(b.stateAt(t)).toBe('closed');
    expect(b.tryAcquire(t)).toBe(true);
  });

  it('reopens for another cool-down when the probe fails', () => {
    const b = new CircuitBreaker(() => CFG);
    for (let i = 0; i < 3; i++) b.onFailure(0);
    expect(b.tryAcquire(5_000)).toBe(true);
    b.onFailure(5_000);
    expect(b.stateAt(5_001)).toBe('open');
    expect(b.retryAt()).toBe(10_000);
  });

  it('opens on the failure rate over the window once it holds enough calls, not before', () => {
    const b = new CircuitBreaker(() => CFG);
    // Alternating: never 3 failures in a row, but half of the calls fail.
    for (let i = 0; i < 9; i++) {
      if (i % 2 === 0) b.onFailure(i * 100);
      else b.onSuccess(i * 100);
    }
    expect(b.stateAt(900)).toBe('closed'); // 9 calls: below minRequests
    b.onSuccess(900);
    b.onFailure(1_000); // 11 calls, 6 failures
    expect(b.stateAt(1_000)).toBe('open');
  });

  it('forgets failures older than the window', () => {
    const b = new CircuitBreaker(() => CFG);
    // 9 calls at t≈0, 5 failed (never 3 in a row, below minRequests): still closed.
    for (let i = 0; i < 9; i++) {
      if (i % 2 === 0) b.onFailure(i);
      else b.onSuccess(i);
    }
    expect(b.stateAt(10)).toBe('closed');
    // With them, the next two calls would make 11 with 6 failures; they are older than the window.
    b.onSuccess(20_000);
    b.onFailure(20_001);
    expect(b.stateAt(20_001)).toBe('closed');
  });

  it('frees a half-open probe for a call that says nothing about the target', () => {
    const b = new CircuitBreaker(() => CFG);
    for (let i = 0; i < 3; i++) b.onFailure(0);
    expect(b.tryAcquire(5_000)).toBe(true);
    b.release();
    expect(b.tryAcquire(5_000)).toBe(true);
  });
});

describe('balancing strategies', () => {
  const target = (id: string, weight = 1): Target => ({ provider: { id } as Provider, model: `m-${id}`, weight });
  const route = (strategy: ModelRoute['strategy'], targets: Target[]): ModelRoute => ({ name: 'm', targets, fallbacks: [], defaultMaxTokens: undefined, strategy, timeouts: undefined, hedgeAfterMs: undefined, contextFallbacks: [], promptCache: 'off', retry: { attempts: 0, budgetMs: 1, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 } });
  const ids = (ts: Target[]) => ts.map((t) => t.provider.id);

  it('round-robin rotates through the targets of weight > 0', () => {
    const states = new TargetStates(() => CFG);
    const r = route('round-robin', [target('a'), target('off', 0), target('b'), target('c')]);
    expect([0, 1, 2, 3].map(() => ids(states.order(r, () => 0))[0])).toEqual(['a', 'b', 'c', 'a']);
    expect(ids(states.order(r, () => 0))).toEqual(['b', 'c', 'a']);
  });

  it('least-busy puts the target with the fewest requests in flight first', () => {
    const states = new TargetStates(() => CFG);
    const [a, b, c] = [target('a'), target('b'), target('c')];
    states.get(a).inflight = 4;
    states.get(b).inflight = 1;
    states.get(c).inflight = 2;
    expect(ids(states.order(route('least-busy', [a, b, c]), () => 0))).toEqual(['b', 'c', 'a']);
  });

  it('least-latency measures every target first, then prefers the fastest by moving average', () => {
    const states = new TargetStates(() => CFG);
    const [a, b] = [target('a'), target('b')];
    states.observeTtfb(a, 100);
    expect(ids(states.order(route('least-latency', [a, b]), () => 0))).toEqual(['b', 'a']); // b not measured yet
    states.observeTtfb(b, 300);
    expect(ids(states.order(route('least-latency', [a, b]), () => 0))).toEqual(['a', 'b']);
    for (let i = 0; i < 10; i++) states.observeTtfb(a, 1_000);
    expect(ids(states.order(route('least-latency', [a, b]), () => 0))).toEqual(['b', 'a']);
  });
});
