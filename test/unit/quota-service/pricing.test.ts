// The quota service prices every usage record from its tokens by kind with its own table, and keeps cost
// beside tokens in every aggregate (scope and window, tag, model), with tenant model names bounded.
import { describe, expect, it } from 'vitest';
import { PriceIndex } from '../../../common/pricing/price-index.js';
import { mergePriceTables } from '../../../common/pricing/price-table.js';
import { SHIPPED_PRICES } from '../../../common/pricing/shipped-prices.js';
import { Allocator, type UsageReport } from '../../../quota-service/allocator.js';
import { reportsOf } from '../../../quota-service/convert.js';
import { pruneExpired } from '../../../quota-service/retention.js';
import { MAX_MODELS_PER_WINDOW, SqliteQuotaStore } from '../../../quota-service/store.js';
import { fakeClock } from '../../helpers/fake-clock.js';

function setup(opts: { prices?: () => PriceIndex } = {}) {
  const clock = fakeClock();
  const store = new SqliteQuotaStore(':memory:');
  const unpriced: [string, number][] = [];
  const costs: [string, number][] = [];
  const alloc = new Allocator(store, {
    clock,
    ...(opts.prices ? { prices: opts.prices } : {}),
    onUnpriced: (model, tokens) => unpriced.push([model, tokens]),
    onCost: (scope, nano) => costs.push([scope, nano]),
  });
  let seq = 0;
  const report = (service: string, reports: Omit<UsageReport, 'sequence' | 'startedAtMs'>[]): void => {
    alloc.report({ namespace: 'demo', service, pod: `pod-${service}` }, 'o', `inc-${service}`, reports.map((r) => ({ ...r, sequence: ++seq, startedAtMs: clock.now() })));
  };
  return { clock, store, alloc, report, unpriced, costs };
}

const kinds = (input: number, output: number, cachedInput = 0, cacheWrite = 0) => ({ input, output, cachedInput, cacheWrite });

describe('pricing usage in the quota service', () => {
  it('prices each report by provider type, upstream model and kind, and keeps the cost in every window, tag and model', () => {
    const { alloc, report } = setup();
    report('web', [
      // claude-sonnet-4-5: 5,000 × 3 + 5,000 × 0.30 + 10,000 × 3.75 + 1,000 × 15 per million = $0.069
      { tokens: 21_000, kinds: kinds(20_000, 1000, 5000, 10_000), providerType: 'anthropic', model: 'claude-sonnet-4-5-20250929', tags: { feature: 'search' } },
      // gpt-5-mini: 1,000 × 0.25 + 500 × 2 per million = $0.00125
      { tokens: 1500, kinds: kinds(1000, 500), providerType: 'openai', model: 'gpt-5-mini', tags: { feature: 'chat' } },
    ]);
    for (const scope of ['namespace/demo', 'namespace/demo/service/web']) {
      for (const w of ['minute', 'hour', 'day', 'month'] as const) {
        const [u] = alloc.usage(scope, w, 1, 'feature', { by: 'model' });
        expect(u!.costNano).toBe(69_000_000 + 1_250_000);
        expect(u!.byTag).toEqual([
          { value: 'search', used: 21_000, costNano: 69_000_000 },
          { value: 'chat', used: 1500, costNano: 1_250_000 },
        ]);
        expect(u!.byModel).toEqual([
          { provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', used: 21_000, input: 20_000, output: 1000, cachedInput: 5000, cacheWrite: 10_000, costNano: 69_000_000 },
          { provider: 'openai', model: 'gpt-5-mini', used: 1500, input: 1000, output: 500, cachedInput: 0, cacheWrite: 0, costNano: 1_250_000 },
        ]);
      }
    }
  });

  it('prices reports of sidecars that name no upstream by their model name, else at the default, and counts the unpriced', () => {
    const { alloc, report, unpriced } = setup();
    // As an older sidecar sends them: the app's model name, no provider type.
    const [byName, byAlias] = reportsOf([
      { sequence: 1, tokens: 1500, startedAtMs: 0, model: 'claude-haiku-4-5', inputTokens: 1000, outputTokens: 500 },
      { sequence: 2, tokens: 1000, startedAtMs: 0, model: 'my-alias', inputTokens: 1000, outputTokens: 0 },
    ]);
    expect(byName).toMatchObject({ providerType: '', model: 'claude-haiku-4-5' });
    report('web', [byName!, byAlias!]);
    const [u] = alloc.usage('namespace/demo', 'day', 1, undefined, { by: 'model' });
    // 1,000 × 1 + 500 × 5 = $0.0035 by name; the alias at the default's input price, $15 per million: $0.015.
    expect(u!.byModel!.map((m) => [m.provider, m.model, m.costNano])).toEqual([
      ['', 'my-alias', 15_000_000],
      ['', 'claude-haiku-4-5', 3_500_000],
    ]);
    expect(unpriced).toEqual([['other', 1000]]);
  });

  it('names an unpriced model in the metric only when the table or its metricModels know it', () => {
    const table = mergePriceTables(SHIPPED_PRICES, { metricModels: ['gpt-4o'] });
    const { report, unpriced } = setup({ prices: () => new PriceIndex(table) });
    report('web', [
      { tokens: 10, kinds: kinds(10, 0), providerType: 'openai', model: 'gpt-4o' },
      { tokens: 20, kinds: kinds(20, 0), providerType: 'openai', model: 'tenant-made-up' },
      // Priced under Anthropic, not under OpenAI: unpriced, but a name the table knows.
      { tokens: 30, kinds: kinds(30, 0), providerType: 'openai', model: 'claude-haiku-4-5' },
    ]);
    expect(unpriced).toEqual([
      ['gpt-4o', 10],
      ['other', 20],
      ['claude-haiku-4-5', 30],
    ]);
  });

  it('keeps at most 100 models per scope and window (the rest as other), and keeps malformed or long model names as other', () => {
    const { alloc, report } = setup();
    const many = Array.from({ length: 150 }, (_, i) => ({ tokens: 1, kinds: kinds(1, 0), providerType: 'openai', model: `model-${i}` }));
    report('web', many);
    report('web', [
      { tokens: 5, kinds: kinds(5, 0), providerType: 'openai', model: 'model-3' },
      { tokens: 7, kinds: kinds(7, 0), providerType: 'openai', model: 'x'.repeat(129) },
      { tokens: 9, kinds: kinds(9, 0), providerType: 'made-up-type', model: 'bad model\nname' },
    ]);
    const rows = alloc.usage('namespace/demo', 'day', 1, undefined, { by: 'model' })[0]!.byModel!;
    expect(rows).toHaveLength(MAX_MODELS_PER_WINDOW);
    expect(rows.find((m) => m.model === 'model-3')!.used).toBe(6);
    expect(rows.find((m) => m.model === 'other')!.used).toBe(150 - (MAX_MODELS_PER_WINDOW - 1) + 7 + 9);
    expect(rows.reduce((n, m) => n + m.used, 0)).toBe(150 + 5 + 7 + 9);
    expect(rows.every((m) => m.model.length <= 128 && !m.model.includes('\n'))).toBe(true);
  });

  it('breaks a namespace down into itself and its services, and no other namespace', () => {
    const { alloc, report } = setup();
    report('web', [{ tokens: 1500, kinds: kinds(1000, 500), providerType: 'openai', model: 'gpt-5-mini' }]);
    report('api', [{ tokens: 2000, kinds: kinds(2000, 0), providerType: 'openai', model: 'gpt-5-mini' }]);
    alloc.report({ namespace: 'demo2', service: 'web', pod: 'p2' }, 'o', 'inc-other', [{ sequence: 1, tokens: 9, startedAtMs: Date.UTC(2026, 10, 23, 10, 0, 0) }]);
    const [u] = alloc.usage('namespace/demo', 'day', 1, undefined, { by: 'scope' });
    expect(u!.byScope).toEqual([
      { scope: 'namespace/demo', used: 3500, costNano: 1_750_000 },
      { scope: 'namespace/demo/service/web', used: 1500, costNano: 1_250_000 },
      { scope: 'namespace/demo/service/api', used: 2000, costNano: 500_000 },
    ]);
    expect(alloc.usage('namespace/demo/service/web', 'day', 1, undefined, { by: 'scope' })[0]!.byScope).toEqual([
      { scope: 'namespace/demo/service/web', used: 1500, costNano: 1_250_000 },
    ]);
  });

  it('answers every window since an instant, newest first', () => {
    const { alloc, clock } = setup();
    const start = clock.now();
    clock.advance(3 * 86_400_000);
    expect(alloc.usage('namespace/demo', 'day', 10, undefined, { sinceMs: start }).map((w) => w.startMs)).toEqual([3, 2, 1, 0].map((d) => start - 10 * 3_600_000 + d * 86_400_000));
    expect(alloc.usage('namespace/demo', 'minute', 10, undefined, { sinceMs: start - 365 * 86_400_000 })).toHaveLength(1000);
    expect(() => alloc.usage('namespace/demo', 'day', 1, undefined, { sinceMs: clock.now() + 1 })).toThrow(/future/);
  });

  it('takes no kind for more than the tokens a report charges', () => {
    const { alloc, report } = setup();
    // 1,000 tokens charged, 40 million claimed as output: priced as 1,000 of output at most (claude-haiku-4-5, $5).
    report('web', [{ tokens: 1000, kinds: kinds(0, 40_000_000), providerType: 'anthropic', model: 'claude-haiku-4-5' }]);
    expect(alloc.usage('namespace/demo', 'day', 1)[0]!.costNano).toBe(5_000_000);
  });

  it('counts cost per scope for scopes that have a budget only', () => {
    const { alloc, report, costs } = setup();
    alloc.setBudget('namespace/demo', 'day', 1_000_000);
    report('web', [{ tokens: 1500, kinds: kinds(1000, 500), providerType: 'openai', model: 'gpt-5-mini' }]);
    expect(costs).toEqual([['namespace/demo', 1_250_000]]);
  });

  it('charges by the table in force when the reports arrive, whatever a sidecar showed', () => {
    let table = SHIPPED_PRICES;
    const { alloc, report } = setup({ prices: () => new PriceIndex(table) });
    report('web', [{ tokens: 1500, kinds: kinds(1000, 500), providerType: 'openai', model: 'gpt-5-mini' }]);
    table = mergePriceTables(SHIPPED_PRICES, { models: { openai: { 'gpt-5-mini': { input: 1, output: 10 } } } });
    report('web', [{ tokens: 1500, kinds: kinds(1000, 500), providerType: 'openai', model: 'gpt-5-mini' }]);
    // $0.00125, then 1,000 × 1 + 500 × 10 per million = $0.006.
    expect(alloc.usage('namespace/demo', 'day', 1)[0]!.costNano).toBe(1_250_000 + 6_000_000);
  });

  it('prunes model rows with the other consumption rows', async () => {
    const { alloc, store, report, clock } = setup();
    report('web', [{ tokens: 10, kinds: kinds(10, 0), providerType: 'openai', model: 'gpt-5-mini' }]);
    const minute = alloc.usage('namespace/demo', 'minute', 1)[0]!.startMs;
    await pruneExpired(store, clock.now() + 8 * 86_400_000, () => false);
    expect(store.modelUsage('namespace/demo', 'minute', minute)).toEqual([]);
    expect(store.modelUsage('namespace/demo', 'month', alloc.usage('namespace/demo', 'month', 1)[0]!.startMs)).toHaveLength(1);
  });
});
