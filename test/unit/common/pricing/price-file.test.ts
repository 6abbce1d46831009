import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../common/config/config-error.js';
import { checkPriceFile, parsePriceFile } from '../../../../common/pricing/price-file.js';
import { mergePriceTables } from '../../../../common/pricing/price-table.js';
import shipped from '../../../../common/pricing/shipped-prices.json' with { type: 'json' };
import { SHIPPED_PRICES } from '../../../../common/pricing/shipped-prices.js';

const problems = (text: string): string[] => {
  try {
    parsePriceFile(text, 'prices.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('the shipped price table', () => {
  it('passes the file check, names a source and a date for every entry, and has a default that is not free', () => {
    const file = checkPriceFile(shipped, 'shipped-prices.json');
    expect(file.default!.input).toBeGreaterThan(0);
    expect(file.default!.output).toBeGreaterThan(0);
    const entries = Object.values(file.models!).flatMap((m) => Object.entries(m));
    expect(entries.length).toBeGreaterThan(25);
    for (const [id, p] of entries) {
      expect(p.source, id).toMatch(/^https:\/\/(developers\.openai\.com|platform\.claude\.com)\//);
      expect(p.asOf, id).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it('leaves out models without a confirmed price (they get the default)', () => {
    for (const id of ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'o1', 'o3', 'o3-mini', 'o4-mini', 'gpt-5', 'claude-haiku-5-5', 'claude-fable-5-2']) {
      expect(SHIPPED_PRICES.models.openai![id] ?? SHIPPED_PRICES.models.anthropic![id], id).toBeUndefined();
    }
  });
});

describe('an operator price file', () => {
  it('extends and overrides the shipped table, the default included', () => {
    const file = parsePriceFile(
      `
default: { input: 20, output: 80 }
models:
  openai:
    gpt-4o: { input: 2.5, cachedInput: 1.25, output: 10, source: https://example.com/prices }
    gpt-5-mini: { input: 1, output: 1 }
  openai-compatible:
    llama-3.1-8b: { input: 0.05, output: 0.05 }
metricModels: [gpt-4o-mini]
`,
      'prices.yaml',
    );
    const t = mergePriceTables(SHIPPED_PRICES, file);
    expect(t.default).toEqual({ input: 20, output: 80 });
    expect(t.models.openai!['gpt-4o']!.cachedInput).toBe(1.25);
    expect(t.models.openai!['gpt-5-mini']).toEqual({ input: 1, output: 1 });
    expect(t.models.openai!['gpt-5-nano']!.input).toBe(0.05);
    expect(t.models.anthropic).toEqual(SHIPPED_PRICES.models.anthropic);
    expect(t.models['openai-compatible']!['llama-3.1-8b']!.input).toBe(0.05);
    expect(t.metricModels).toEqual(['gpt-4o-mini']);
  });

  it('accepts JSON as well as YAML', () => {
    expect(parsePriceFile('{"models": {"anthropic": {"claude-x": {"input": 1, "output": 2}}}}', 'p.json').models!.anthropic!['claude-x']!.output).toBe(2);
  });

  it('names every problem of a bad file at once, with its key path', () => {
    const found = problems(`
default: { input: 0, output: 0 }
models:
  openai:
    gpt-4o: { input: -1, output: "ten", cahedInput: 1 }
    "bad id!": { input: 1, output: 1 }
  azure: {}
  anthropic:
    claude-opus-4: { input: 15, output: 75000, asOf: yesterday }
`);
    const text = found.join('\n');
    expect(text).toMatch(/prices\.yaml: default: the default price must not be free/);
    expect(text).toMatch(/prices\.yaml: models\.openai\.gpt-4o\.input: must be at least 0/);
    expect(text).toMatch(/prices\.yaml: models\.openai\.gpt-4o\.output: expected a number/);
    expect(text).toMatch(/models\.openai\.gpt-4o: unknown key "cahedInput" \(did you mean "cachedInput"\?\)/);
    expect(text).toMatch(/bad id!/);
    expect(text).toMatch(/azure/);
    expect(text).toMatch(/models\.anthropic\.claude-opus-4\.output: must be at most 10000/);
    expect(text).toMatch(/models\.anthropic\.claude-opus-4\.asOf: must be a date YYYY-MM-DD/);
    expect(found.length).toBeGreaterThanOrEqual(8);
  });

  it('refuses an alias that is priced already, and text that is not YAML', () => {
    expect(problems('models: { anthropic: { a-1: { input: 1, output: 1, aliases: [b-1] }, b-1: { input: 2, output: 2 } } }')).toEqual([
      'prices.yaml: models.anthropic.a-1.aliases: "b-1" is priced already in models.anthropic',
    ]);
    expect(problems('models: [unclosed')[0]).toMatch(/^prices\.yaml: not valid YAML or JSON/);
  });
});
