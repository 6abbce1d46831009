import { describe, expect, it } from 'vitest';
import { Allocator } from '../../../../quota-service/allocator.js';
import { QuotaMetrics } from '../../../../quota-service/quota-metrics.js';
import { SqliteQuotaStore } from '../../../../quota-service/store.js';
import { allocatorUsageView, refusalCounts } from '../../../../quota-service/ui/allocator-usage-view.js';
import { windowAt } from '../../../../quota-service/windows.js';
import { fakeClock } from '../../../helpers/fake-clock.js';

function setup() {
  const clock = fakeClock();
  const store = new SqliteQuotaStore(':memory:');
  const allocator = new Allocator(store, { clock, leaseTtlMs: 30_000 });
  const metrics = new QuotaMetrics();
  return { clock, store, allocator, metrics, view: allocatorUsageView({ allocator, store, clock, metrics }) };
}

const identity = (namespace: string, pod: string, service = 'web') => ({ namespace, service, pod });

describe('the usage view over the allocator and the store', () => {
  it('shows each budget with used, reserved (held by leases) and remaining in its current window', () => {
    const { allocator, clock, view } = setup();
    allocator.setBudget('namespace/alpha', 'day', 10_000);
    const g = allocator.acquire({
      identity: identity('alpha', 'alpha-1'),
      owner: 'o',
      priority: 'interactive',
      incarnation: 'i1',
      need: 100,
      demand: 10,
      reports: [{ sequence: 1, tokens: 1_500, startedAtMs: clock.now() }],
    });
    expect(g.granted).toBeGreaterThan(0);
    const [b] = view.budgets();
    expect(b).toEqual({
      scope: 'namespace/alpha',
      window: 'day',
      unit: 'tokens',
      limit: 10_000,
      used: 1_500,
      reserved: g.leaseTokens,
      remaining: 10_000 - 1_500 - g.leaseTokens,
      windowStartMs: windowAt('day', clock.now()).startMs,
      windowEndMs: windowAt('day', clock.now()).endMs,
      // 1,500 tokens of no named model or kind, at the default's highest rate ($75 a million).
      usedUsd: 0.1125,
    });
  });

  it('lists live leases per pod and class, and leaves out lapsed ones', () => {
    const { allocator, clock, view } = setup();
    allocator.setBudget('namespace/alpha', 'hour', 10_000);
    allocator.acquire({ identity: identity('alpha', 'alpha-1'), owner: 'o', priority: 'batch', incarnation: 'i1', need: 50, demand: 10 });
    expect(view.leases()).toEqual([
      { namespace: 'alpha', service: 'web', pod: 'alpha-1', priority: 'batch', tokensHeld: expect.any(Number), expiresAtMs: clock.now() + 30_000 },
    ]);
    expect(view.leases()[0]!.tokensHeld).toBeGreaterThanOrEqual(50);
    clock.advance(30_001);
    expect(view.leases()).toEqual([]);
  });

  it('finds the scopes of budgets, teams and live leases, and reads their history and tag values', () => {
    const { allocator, clock, view } = setup();
    allocator.setTeam('payments', ['alpha']);
    allocator.setBudget('namespace/gamma', 'day', 1_000);
    const tags = { feature: 'search' };
    allocator.acquire({
      identity: identity('alpha', 'alpha-1'),
      owner: 'o',
      priority: 'interactive',
      incarnation: 'i1',
      need: 0,
      demand: 1,
      reports: [
        { sequence: 1, tokens: 300, startedAtMs: clock.now() - 3_600_000, tags },
        { sequence: 2, tokens: 200, startedAtMs: clock.now(), tags: { feature: 'chat' } },
      ],
    });
    expect(view.scopes()).toEqual(['namespace/alpha', 'namespace/alpha/service/web', 'namespace/gamma', 'team/payments']);
    const hour = windowAt('hour', clock.now()).startMs;
    // The reports name no model and no kinds: priced at the default's highest rate ($75 a million), never free.
    expect(view.history('team/payments', 'hour', hour - 3_600_000).sort((a, b) => a.startMs - b.startMs)).toEqual([
      { startMs: hour - 3_600_000, tokens: 300, costUsd: 0.0225 },
      { startMs: hour, tokens: 200, costUsd: 0.015 },
    ]);
    expect(view.history('team/payments', 'hour', hour)).toEqual([{ startMs: hour, tokens: 200, costUsd: 0.015 }]);
    expect(view.tagHistory('namespace/alpha', 'hour', hour - 3_600_000, 'feature').sort((a, b) => a.startMs - b.startMs)).toEqual([
      { startMs: hour - 3_600_000, label: 'search', tokens: 300, costUsd: 0.0225 },
      { startMs: hour, label: 'chat', tokens: 200, costUsd: 0.015 },
    ]);
    // Per model from the namespace scopes only (each request once, not again for its service and team).
    expect(view.modelHistory!('hour', hour - 3_600_000).reduce((n, p) => n + p.tokens, 0)).toBe(500);
    // No price table given: none shown.
    expect(view.prices).toBeUndefined();
  });

  it('counts refusals from the metrics without adding series to /metrics', () => {
    const { metrics } = setup();
    metrics.grants.inc({ priority: 'batch', result: 'refused' }, 2);
    metrics.grants.inc({ priority: 'interactive', result: 'granted' });
    metrics.rpcs.inc({ method: 'AcquireLease', code: 'OK' });
    metrics.rpcs.inc({ method: 'GetUsage', code: 'UNAUTHENTICATED' }, 3);
    const before = metrics.registry.render();
    expect(refusalCounts(metrics)).toEqual({
      byPriority: [
        { priority: 'interactive', count: 0 },
        { priority: 'background', count: 0 },
        { priority: 'batch', count: 2 },
      ],
      byCode: [{ method: 'GetUsage', code: 'UNAUTHENTICATED', count: 3 }],
    });
    expect(metrics.registry.render()).toBe(before);
  });

  it('leaves refusals out when no metrics are given', () => {
    const { allocator, store, clock } = setup();
    expect(allocatorUsageView({ allocator, store, clock }).refusals).toBeUndefined();
  });
});
