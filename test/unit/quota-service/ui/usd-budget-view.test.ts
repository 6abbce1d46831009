// The usage page shows a dollar budget in dollars (unit 'usd': limit, used, reserved and remaining in USD)
// beside a token budget of the same scope, and a lease's dollar balance.
import { describe, expect, it } from 'vitest';
import { PriceIndex } from '../../../../common/pricing/price-index.js';
import { Allocator } from '../../../../quota-service/allocator.js';
import { SqliteQuotaStore } from '../../../../quota-service/store.js';
import { allocatorUsageView } from '../../../../quota-service/ui/allocator-usage-view.js';
import { fakeClock } from '../../../helpers/fake-clock.js';

/** Every token costs $1 per million (1,000 nano-USD). */
const FLAT = new PriceIndex({ asOf: '2026-01-01', default: { input: 1, output: 1 }, models: {}, metricModels: [] });

describe('the usage view of dollar budgets', () => {
  it('shows a USD budget in USD beside the token budget of the same scope, and what leases hold in dollars', () => {
    const clock = fakeClock();
    const store = new SqliteQuotaStore(':memory:');
    const allocator = new Allocator(store, { clock, prices: () => FLAT });
    const view = allocatorUsageView({ allocator, store, clock });
    allocator.setBudget('namespace/alpha', 'day', 1_000_000);
    allocator.setBudget('namespace/alpha', 'day', 2_000_000_000, undefined, 'usd'); // $2
    const g = allocator.acquire({
      identity: { namespace: 'alpha', service: 'web', pod: 'alpha-1' },
      owner: 'o',
      priority: 'interactive',
      incarnation: 'i1',
      need: 100,
      demand: 10,
      reports: [{ sequence: 1, tokens: 500_000, startedAtMs: clock.now() }], // $0.50
      usd: { need: 250_000_000, demand: 0 }, // $0.25
    });
    expect(g.usd!.lease).toBe(250_000_000);
    const [tokens, usd] = view.budgets();
    expect(tokens).toMatchObject({ unit: 'tokens', limit: 1_000_000, used: 500_000, usedUsd: 0.5 });
    expect(usd).toMatchObject({ scope: 'namespace/alpha', window: 'day', unit: 'usd', limit: 2, used: 0.5, reserved: 0.25, remaining: 1.25, usedUsd: 0.5 });
    expect(view.leases()).toEqual([expect.objectContaining({ pod: 'alpha-1', tokensHeld: g.leaseTokens, usdHeld: 0.25 })]);
  });
});
