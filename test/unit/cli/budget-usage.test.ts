import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../cli/args.js';
import { parseSince } from '../../../cli/commands/budget-usage.js';

const NOW = Date.UTC(2026, 11, 5, 12, 30, 0);

describe('budget usage --since', () => {
  it('takes a date (UTC midnight), a time, or a duration back from now', () => {
    expect(parseSince('2026-12-01', NOW)).toBe(Date.UTC(2026, 11, 1));
    expect(parseSince('2026-12-05T08:00:00Z', NOW)).toBe(Date.UTC(2026, 11, 5, 8));
    expect(parseSince('7d', NOW)).toBe(NOW - 7 * 86_400_000);
    expect(parseSince('12h', NOW)).toBe(NOW - 12 * 3_600_000);
    expect(parseSince('30m', NOW)).toBe(NOW - 30 * 60_000);
    expect(parseSince('2w', NOW)).toBe(NOW - 14 * 86_400_000);
  });

  it('refuses what is none of those, and the future, naming the flag', () => {
    for (const bad of ['yesterday', '7', '7y', '2026-13-45', '']) expect(() => parseSince(bad, NOW), bad).toThrow(UsageError);
    expect(() => parseSince('soon', NOW)).toThrow(/^--since: expected a date/);
    expect(() => parseSince('2027-01-01', NOW)).toThrow('--since: 2027-01-01 is in the future');
  });
});
