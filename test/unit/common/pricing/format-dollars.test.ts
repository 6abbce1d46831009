// Dollars for people: to the cent from a dollar up, and exactly below one (small budgets read as set).
import { describe, expect, it } from 'vitest';
import { formatDollars } from '../../../../common/pricing/price-usage.js';

describe('formatDollars', () => {
  it('shows cents from a dollar up, and every place an amount below a dollar has (at least two)', () => {
    expect(formatDollars(250_000_000_000)).toBe('$250.00');
    expect(formatDollars(12_345_678_901)).toBe('$12.35');
    expect(formatDollars(1_000_000_000)).toBe('$1.00');
    expect(formatDollars(500_000_000)).toBe('$0.50');
    expect(formatDollars(50_000_000)).toBe('$0.05');
    expect(formatDollars(200_300_000)).toBe('$0.2003');
    expect(formatDollars(7_000_000)).toBe('$0.007');
    expect(formatDollars(1)).toBe('$0.000000001');
    expect(formatDollars(0)).toBe('$0.00');
  });
});
