import { describe, expect, it } from 'vitest';
import { PriceIndex } from '../../../../common/pricing/price-index.js';
import type { PriceTable } from '../../../../common/pricing/price-table.js';

const table: PriceTable = {
  asOf: '2026-12-05',
  default: { input: 15, output: 75 },
  models: {
    openai: { 'gpt-5-mini': { input: 0.25, output: 2 }, 'gpt-4o': { input: 2.5, output: 10 } },
    anthropic: { 'claude-sonnet-4-5': { input: 3, output: 15 }, 'claude-opus-4': { input: 15, output: 75, aliases: ['claude-opus-4-0'] } },
    'openai-compatible': { 'llama-3.1-8b': { input: 0.1, output: 0.1 } },
  },
  metricModels: ['gpt-4o-mini'],
};
const index = new PriceIndex(table);
const found = (provider: string, model: string): string => index.resolve(provider, model).model || '(default)';

describe('PriceIndex', () => {
  it('matches the exact id, then the id without a dated snapshot suffix', () => {
    expect(found('openai', 'gpt-5-mini')).toBe('gpt-5-mini');
    expect(found('openai', 'gpt-4o-2024-08-06')).toBe('gpt-4o');
    expect(found('anthropic', 'claude-sonnet-4-5-20250929')).toBe('claude-sonnet-4-5');
    expect(found('anthropic', 'claude-opus-4-0')).toBe('claude-opus-4');
  });

  it('does not strip what is not a date, nor match a longer id to a shorter one', () => {
    expect(found('openai', 'gpt-5-mini-2025')).toBe('(default)');
    expect(found('openai', 'gpt-4o-mini')).toBe('(default)');
    expect(found('openai', 'gpt-4o-audio-preview')).toBe('(default)');
  });

  it('looks up OpenAI and Anthropic models in their own section only', () => {
    expect(found('openai', 'claude-sonnet-4-5')).toBe('(default)');
    expect(found('anthropic', 'gpt-5-mini')).toBe('(default)');
  });

  it('looks up openai-compatible models (and reports naming no provider type) in their section, then by name', () => {
    expect(found('openai-compatible', 'llama-3.1-8b')).toBe('llama-3.1-8b');
    expect(found('openai-compatible', 'gpt-5-mini')).toBe('gpt-5-mini');
    expect(found('', 'claude-sonnet-4-5-20250929')).toBe('claude-sonnet-4-5');
    expect(found('constructor', 'toString')).toBe('(default)');
  });

  it('gives unpriced models the default, flagged as unpriced', () => {
    const r = index.resolve('openai', 'o1');
    expect(r.priced).toBe(false);
    expect(r.rates.input).toBe(15_000);
    expect(r.rates.output).toBe(75_000);
    expect(index.resolve('openai', 'gpt-4o').priced).toBe(true);
  });

  it('answers the same object for the same question (cached), and stays bounded for endless model names', () => {
    expect(index.resolve('openai', 'gpt-4o-2024-08-06')).toBe(index.resolve('openai', 'gpt-4o-2024-08-06'));
    for (let i = 0; i < 5000; i++) index.resolve('openai', `made-up-${i}`);
    expect(found('openai', 'gpt-4o')).toBe('gpt-4o');
    const cache = (index as unknown as { cache: Map<string, Map<string, unknown>> }).cache;
    expect(cache.get('openai')!.size).toBeLessThanOrEqual(1000);
  });

  it('knows the models the table prices and those its metricModels name, for metric labels', () => {
    expect(index.knows('gpt-4o')).toBe(true);
    expect(index.knows('claude-opus-4-0')).toBe(true);
    expect(index.knows('gpt-4o-mini')).toBe(true);
    expect(index.knows('some-tenant-string')).toBe(false);
  });
});
