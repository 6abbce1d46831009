// `llmgw budget set --usd AMOUNT`: dollars to nano-USD exactly, or a usage error naming the flag.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../cli/args.js';
import { parseUsd } from '../../../cli/commands/budget.js';

describe('budget set --usd', () => {
  it('reads dollars with up to 9 decimals as whole nano-USD, exactly', () => {
    expect(parseUsd('250')).toBe(250_000_000_000);
    expect(parseUsd('0.05')).toBe(50_000_000);
    expect(parseUsd('$1.5')).toBe(1_500_000_000);
    expect(parseUsd('12.345678901')).toBe(12_345_678_901);
    expect(parseUsd('0.000000001')).toBe(1);
    expect(parseUsd('9007199')).toBe(9_007_199_000_000_000);
  });

  it('refuses nothing, negatives, more than 9 decimals, other notations and amounts past 2^53 nano-USD', () => {
    for (const bad of ['0', '0.000', '-1', '1.0000000001', 'abc', '1e3', '', '9007200', '1,000']) expect(() => parseUsd(bad), bad).toThrow(UsageError);
    expect(() => parseUsd('ten')).toThrow(/^--usd: expected a positive amount of dollars/);
  });
});
