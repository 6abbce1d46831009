import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { BadQuery, MAX_ROWS, MAX_SERIES, parseSeriesQuery, RANGES, seriesAnswer, summary, topSeries } from '../../../../quota-service/ui/usage-api.js';
import type { LabelledPoint, UsageView } from '../../../../quota-service/ui/usage-view.js';
import { windowAt } from '../../../../quota-service/windows.js';

const NOW = Date.UTC(2026, 11, 5, 10, 30, 0);
const HOUR = 3_600_000;
const thisHour = windowAt('hour', NOW).startMs;

function view(over: Partial<UsageView> = {}): UsageView {
  return {
    budgets: () => [],
    leases: () => [],
    scopes: () => [],
    history: () => [],
    tagHistory: () => [],
    ...over,
  };
}

describe('usage page API', () => {
  it('keeps the 8 largest series and sums the rest into one "other" series', () => {
    const starts = [thisHour - HOUR, thisHour];
    const points: LabelledPoint[] = [];
    for (let i = 0; i < 12; i++) points.push({ label: `v${i}`, startMs: thisHour, tokens: 100 * (i + 1) }, { label: `v${i}`, startMs: thisHour - HOUR, tokens: 1 });
    const series = topSeries(points, starts);
    expect(series).toHaveLength(MAX_SERIES + 1);
    expect(series.slice(0, MAX_SERIES).map((s) => s.label)).toEqual(['v11', 'v10', 'v9', 'v8', 'v7', 'v6', 'v5', 'v4']);
    const other = series[MAX_SERIES]!;
    expect(other.other).toBe(4);
    expect(other.label).toBe('other (4)');
    expect(other.tokens).toEqual([4, 100 + 200 + 300 + 400]);
    expect(other.costUsd).toBeUndefined();
  });

  it('drops points outside the range and carries cost only for series that have it', () => {
    const series = topSeries(
      [
        { label: 'a', startMs: thisHour, tokens: 10, costUsd: 0.5 },
        { label: 'b', startMs: thisHour, tokens: 5 },
        { label: 'a', startMs: thisHour - 100 * HOUR, tokens: 999 },
      ],
      [thisHour],
    );
    expect(series).toEqual([
      { label: 'a', tokens: [10], costUsd: [0.5] },
      { label: 'b', tokens: [5] },
    ]);
  });

  it('answers a range with its fixed number of windows, oldest first, ending with the current one', async () => {
    const answer = await seriesAnswer(view(), { group: 'namespace', range: '24h' }, NOW);
    expect(answer.startsMs).toHaveLength(RANGES['24h'].points);
    expect(answer.startsMs.at(-1)).toBe(thisHour);
    expect(answer.startsMs[0]).toBe(thisHour - 23 * HOUR);
    expect(answer.window).toBe('hour');
  });

  it('charts teams from team scopes and namespaces from namespace scopes only', async () => {
    const history: Record<string, number> = { 'team/pay': 7, 'namespace/a': 3, 'namespace/a/service/web': 2, 'namespace/b': 4 };
    const v = view({
      scopes: () => Object.keys(history),
      history: (scope, _w, since) => (thisHour >= since ? [{ startMs: thisHour, tokens: history[scope]! }] : []),
    });
    expect((await seriesAnswer(v, { group: 'team', range: '24h' }, NOW)).series.map((s) => [s.label, s.tokens.at(-1)])).toEqual([['pay', 7]]);
    expect((await seriesAnswer(v, { group: 'namespace', range: '24h' }, NOW)).series.map((s) => [s.label, s.tokens.at(-1)])).toEqual([
      ['b', 4],
      ['a', 3],
    ]);
    expect((await seriesAnswer(v, { group: 'service', range: '24h' }, NOW)).series.map((s) => s.label)).toEqual(['a/service/web']);
  });

  it('sums tag values over namespace scopes only, so a request charged to several scopes counts once', async () => {
    const asked: string[] = [];
    const v = view({
      scopes: () => ['namespace/a', 'namespace/a/service/web', 'team/pay', 'namespace/b'],
      tagHistory: (scope, _w, _s, key) => {
        asked.push(`${scope}:${key}`);
        return [{ startMs: thisHour, label: 'search', tokens: 10 }];
      },
    });
    const answer = await seriesAnswer(v, { group: 'tag', range: '24h', tag: 'feature' }, NOW);
    expect(asked).toEqual(['namespace/a:feature', 'namespace/b:feature']);
    expect(answer.series).toEqual([{ label: 'search', tokens: [...new Array(23).fill(0), 20] }]);
    expect(answer.tag).toBe('feature');
  });

  it('says per-model usage is unavailable when the view does not keep it, and charts it when it does', async () => {
    expect(await seriesAnswer(view(), { group: 'model', range: '1h' }, NOW)).toMatchObject({ available: false, series: [] });
    const v = view({ modelHistory: () => [{ label: 'gpt-4o', startMs: windowAt('minute', NOW).startMs, tokens: 3, costUsd: 0.01 }] });
    expect((await seriesAnswer(v, { group: 'model', range: '1h' }, NOW)).series).toEqual([{ label: 'gpt-4o', tokens: [...new Array(59).fill(0), 3], costUsd: [...new Array(59).fill(0), 0.01] }]);
  });

  it('lets other work (the lease RPCs) run while a chart reads many scopes', async () => {
    const scopes = Array.from({ length: 40 }, (_, i) => `namespace/n${i}`);
    const busy = (): [] => {
      const end = performance.now() + 0.5;
      while (performance.now() < end);
      return [];
    };
    let done = false;
    const answer = seriesAnswer(view({ scopes: () => scopes, history: busy }), { group: 'namespace', range: '1h' }, NOW).then(() => (done = true));
    const ranBefore = await new Promise<boolean>((resolve) => setImmediate(() => resolve(!done)));
    await answer;
    expect(ranBefore).toBe(true);
  });

  it('refuses unknown groups and ranges and malformed tag keys', () => {
    expect(() => parseSeriesQuery({ group: 'pods', range: null, tag: null })).toThrow(BadQuery);
    expect(() => parseSeriesQuery({ group: 'team', range: '5y', tag: null })).toThrow(/range/);
    expect(() => parseSeriesQuery({ group: 'tag', range: '1h', tag: 'a b' })).toThrow(/tag key/);
    expect(() => parseSeriesQuery({ group: 'tag', range: '1h', tag: null })).toThrow(/tag key/);
    expect(() => parseSeriesQuery({ group: 'team', range: 'constructor', tag: null })).toThrow(/range/);
    expect(parseSeriesQuery({ group: 'tag', range: null, tag: 'feature' })).toEqual({ group: 'tag', range: '24h', tag: 'feature' });
  });

  it('bounds the summary: at most MAX_ROWS budgets and leases, the rest counted; leases largest first', async () => {
    const budgets = Array.from({ length: MAX_ROWS + 5 }, (_, i) => ({
      scope: `namespace/n${i}`,
      window: 'day' as const,
      limit: 10,
      used: 1,
      reserved: 0,
      remaining: 9,
      windowStartMs: 0,
      windowEndMs: 1,
    }));
    const leases = Array.from({ length: MAX_ROWS + 1 }, (_, i) => ({ namespace: 'a', service: '', pod: `p${i}`, priority: 'batch' as const, tokensHeld: i, expiresAtMs: NOW }));
    const s = await summary(view({ budgets: () => budgets, leases: () => leases }), NOW);
    expect(s.budgets.rows).toHaveLength(MAX_ROWS);
    expect(s.budgets.more).toBe(5);
    expect(s.leases.rows).toHaveLength(MAX_ROWS);
    expect(s.leases.more).toBe(1);
    expect(s.leases.rows[0]!.tokensHeld).toBe(MAX_ROWS);
    expect(s.refusals).toBeNull();
    expect(s.prices).toBeNull();
  });
});
