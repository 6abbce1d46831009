import { describe, expect, it } from 'vitest';
import { PriceIndex } from '../../../../common/pricing/price-index.js';
import { formatUsd, priceUsage, ratesOf } from '../../../../common/pricing/price-usage.js';
import { SHIPPED_PRICES } from '../../../../common/pricing/shipped-prices.js';

const shipped = new PriceIndex(SHIPPED_PRICES);
const cost = (provider: string, model: string, t: { input: number; output: number; cachedInput?: number; cacheWrite?: number; reasoning?: number }, total?: number): number =>
  Math.round(priceUsage(shipped.resolve(provider, model).rates, { cachedInput: 0, cacheWrite: 0, ...t }, total));

describe('priceUsage (nano-USD, hand-computed from the shipped table)', () => {
  it('prices plain input and output: gpt-5-mini, 1,000 in and 500 out = 1000×$0.25/M + 500×$2/M = $0.00125', () => {
    expect(cost('openai', 'gpt-5-mini', { input: 1000, output: 500 })).toBe(1_250_000);
  });

  it('prices cached reads apart: gpt-4.1-nano, 10,000 in of which 8,000 cached, 200 out', () => {
    // 2,000 × 0.10 + 8,000 × 0.025 + 200 × 0.40 = 200 + 200 + 80 (USD per million) = $0.00048
    expect(cost('openai', 'gpt-4.1-nano', { input: 10_000, cachedInput: 8000, output: 200 })).toBe(480_000);
  });

  it('prices cache reads and writes apart: claude-sonnet-4-5, 20,000 in (5,000 read, 10,000 written), 1,000 out', () => {
    // 5,000 × 3 + 5,000 × 0.30 + 10,000 × 3.75 + 1,000 × 15 = 15,000 + 1,500 + 37,500 + 15,000 (per million) = $0.069
    expect(cost('anthropic', 'claude-sonnet-4-5', { input: 20_000, cachedInput: 5000, cacheWrite: 10_000, output: 1000 })).toBe(69_000_000);
  });

  it('prices Claude Opus 4.5 at its own rates ($5 / $25), not the Opus 4 ones', () => {
    // 1,000 × 5 + 100 × 6.25 + 2,000 × 25 = 5,000 + 625 + 50,000 (per million) = $0.055625
    expect(cost('anthropic', 'claude-opus-4-5-20251101', { input: 1100, cacheWrite: 100, output: 2000 })).toBe(55_625_000);
  });

  it('prices reasoning tokens as output where the table prices them at the output rate, and apart where it gives a rate', () => {
    // o4-mini-deep-research: reasoning is part of output, billed at output ($8): 1,000 in × 2 + 3,000 out × 8 = $0.026.
    expect(cost('openai', 'o4-mini-deep-research', { input: 1000, output: 3000, reasoning: 2000 })).toBe(26_000_000);
    const rates = ratesOf({ input: 1, output: 4, reasoning: 10 });
    // 1,000 × 1 + 1,000 × 4 + 2,000 × 10 (per million) = $0.025: reasoning is not counted on top of output.
    expect(Math.round(priceUsage(rates, { input: 1000, output: 3000, cachedInput: 0, cacheWrite: 0, reasoning: 2000 }))).toBe(25_000_000);
  });

  it('prices embeddings by input only: text-embedding-3-small, 1M tokens = $0.02', () => {
    expect(cost('openai', 'text-embedding-3-small', { input: 1_000_000, output: 0 })).toBe(20_000_000);
  });

  it('prices tokens the kinds do not account for at the highest rate, never lower', () => {
    // claude-haiku-4-5: 100 in × 1 + 50 out × 5, plus 850 unknown at the highest rate (output, $5) = 100 + 250 + 4,250 = $0.0046
    expect(cost('anthropic', 'claude-haiku-4-5', { input: 100, output: 50 }, 1000)).toBe(4_600_000);
    // No kinds at all (a sidecar that predates them): everything at $5.
    expect(cost('anthropic', 'claude-haiku-4-5', { input: 0, output: 0 }, 1000)).toBe(5_000_000);
  });

  it('prices an unpriced model at the shipped default, which is not free', () => {
    const r = shipped.resolve('openai', 'gpt-4o');
    expect(r.priced).toBe(false);
    // Default: $15 in, $75 out.
    expect(Math.round(priceUsage(r.rates, { input: 1000, output: 1000, cachedInput: 0, cacheWrite: 0 }))).toBe(90_000_000);
  });

  it('takes no negative, non-finite or inconsistent count for more than it is', () => {
    // Cached and written parts beyond the input are capped at it; negatives count as 0.
    expect(cost('anthropic', 'claude-haiku-4-5', { input: 100, cachedInput: 500, cacheWrite: 500, output: -5 })).toBe(10_000);
    expect(cost('anthropic', 'claude-haiku-4-5', { input: Number.NaN, output: Number.POSITIVE_INFINITY })).toBe(0);
  });
});

describe('formatUsd', () => {
  it('writes nano-USD as a USD decimal without trailing zeros', () => {
    expect(formatUsd(0)).toBe('0');
    expect(formatUsd(1_250_000)).toBe('0.00125');
    expect(formatUsd(69_000_000_000)).toBe('69');
    expect(formatUsd(5)).toBe('0.000000005');
    expect(formatUsd(12_340_000_007)).toBe('12.340000007');
    expect(formatUsd(-2_500_000_000)).toBe('-2.5');
  });

  it('gives what toFixed(9) less its trailing zeros gives, for any whole nano-USD amount', () => {
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const nano = seed % 10 ** (1 + (i % 13));
      expect(formatUsd(nano)).toBe(nano === 0 ? '0' : (nano / 1e9).toFixed(9).replace(/\.?0+$/, ''));
    }
  });
});
