// A request's priced estimate before it goes upstream (what it reserves of a lease's dollar balance): its
// prompt at the highest prompt price and its output at the highest output price of every upstream its model
// may be served by, by the price book the service keeps current; and what it cost once it ended, as the
// service prices its report.
import { describe, expect, it } from 'vitest';
import { priceTableMsg } from '../../../../common/pricing/price-table-msg.js';
import { mergePriceTables } from '../../../../common/pricing/price-table.js';
import { SHIPPED_PRICES } from '../../../../common/pricing/shipped-prices.js';
import { validateConfig } from '../../../../sidecar/config/load-config.js';
import { CostEstimator, usageCostNano } from '../../../../sidecar/pricing/cost-estimate.js';
import { PriceBook } from '../../../../sidecar/pricing/price-book.js';
import { stackConfig } from '../../../helpers/stack.js';

/** The service's table: gpt-4o-mini at $1 / $4, llama (self-hosted) at $10 / $20, cache writes of gpt-4o-mini at $2. */
function serviceTable(version: string, miniOutput = 4) {
  const table = mergePriceTables(SHIPPED_PRICES, {
    models: {
      openai: { 'gpt-4o-mini': { input: 1, output: miniOutput, cacheWrite: 2 } },
      'openai-compatible': { 'llama-3.1-8b': { input: 10, output: 20 } },
    },
  });
  return priceTableMsg(table, version);
}

describe('cost estimate', () => {
  it('prices the prompt and the output at the highest rates of the model\'s upstreams, its fallbacks\' included', () => {
    const base = stackConfig('http://127.0.0.1:9') as { models: Record<string, { targets: unknown[]; fallbacks?: string[] }> };
    const config = validateConfig({ ...base, models: { ...base.models, 'gpt-4o-mini': { ...base.models['gpt-4o-mini']!, fallbacks: ['llama'] } } }, 'test');
    const book = new PriceBook();
    book.receive(serviceTable('v1'));
    const costs = new CostEstimator();
    // gpt-4o-mini alone: prompt at its cache-write price ($2), output at $4 per million.
    expect(costs.estimateNano(book, config, 'embed', 0, 0)).toBe(0);
    const plain = validateConfig(stackConfig('http://127.0.0.1:9'), 'test');
    expect(costs.estimateNano(book, plain, 'gpt-4o-mini', 100, 50)).toBe(100 * 2000 + 50 * 4000);
    // With llama as a fallback: its $10 / $20.
    expect(costs.estimateNano(book, config, 'gpt-4o-mini', 100, 50)).toBe(100 * 10_000 + 50 * 20_000);
    // A new table from the service counts at once.
    book.receive(serviceTable('v2', 40));
    expect(costs.estimateNano(book, plain, 'gpt-4o-mini', 100, 50)).toBe(100 * 2000 + 50 * 40_000);
  });

  it('prices a finished request as the service prices its report: by kind, else every token at the highest rate', () => {
    const book = new PriceBook();
    book.receive(serviceTable('v1'));
    expect(usageCostNano(book, 'openai', 'gpt-4o-mini', { input: 100, output: 50, cachedInput: 0, cacheWrite: 20 }, 150)).toBe(80 * 1000 + 20 * 2000 + 50 * 4000);
    expect(usageCostNano(book, 'openai', 'gpt-4o-mini', undefined, 150)).toBe(150 * 4000);
  });
});
