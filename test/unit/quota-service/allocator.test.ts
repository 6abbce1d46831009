import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Allocator, type PriorityClass, type UsageReport } from '../../../quota-service/allocator.js';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { windowAt } from '../../../quota-service/windows.js';
import { fakeClock } from '../../helpers/fake-clock.js';

const id = (namespace: string, extra: Partial<{ service: string }> = {}) => ({ namespace, service: '', pod: 'p', ...extra });

function setup(opts: { ttl?: number } = {}) {
  const clock = fakeClock();
  const store = new SqliteQuotaStore(':memory:');
  const alloc = new Allocator(store, { clock, ...(opts.ttl === undefined ? {} : { leaseTtlMs: opts.ttl }) });
  return { clock, store, alloc };
}

function acquire(alloc: Allocator, ns = 'demo', priority: PriorityClass = 'interactive', need = 0, demand = 10, inc = 'inc-1') {
  // One pod per incarnation, as sidecars are.
  return alloc.acquire({ owner: 'o', identity: { ...id(ns), pod: inc }, priority, incarnation: inc, need, demand });
}

describe('allocator', () => {
  it('takes what a numbered renewal gives back once, however often it is sent; an unnumbered one each time', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'hour', 1_000_000);
    const g = acquire(alloc, 'demo', 'interactive', 5000, 10);
    const held = (): number => alloc.getBudgets('namespace/demo')[0]!.outstanding;
    const before = held();
    const giveBack = { owner: 'o', leaseId: g.leaseId, need: 0, demand: 0, reports: [], unused: 1000 };
    // Sent to a replica that died after applying it, then again to another: taken once.
    alloc.renew({ ...giveBack, renewal: 1 });
    const once = held();
    expect(once).toBeLessThanOrEqual(before - 1000);
    alloc.renew({ ...giveBack, renewal: 1 });
    expect(held()).toBeGreaterThanOrEqual(once);
    // The next renewal's give-back counts.
    alloc.renew({ ...giveBack, renewal: 2 });
    expect(held()).toBeLessThanOrEqual(once - 1000);
  });

  it('grants without limit when no budget matches, and still records usage', () => {
    const { alloc, clock } = setup();
    const g = acquire(alloc);
    expect(g.unlimited).toBe(true);
    alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [{ sequence: 1, tokens: 42, startedAtMs: clock.now() }], unused: 0 });
    expect(alloc.usage('namespace/demo', 'day', 1)[0]!.used).toBe(42);
  });

  it('never lets consumed plus outstanding exceed the limit, whatever many leases ask', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 10_000);
    const leases = Array.from({ length: 50 }, (_, i) => acquire(alloc, 'demo', 'interactive', 100, 50, `inc-${i}`));
    let seq = 1;
    let estimateError = 0;
    for (let round = 0; round < 40; round++) {
      for (const [i, l] of leases.entries()) {
        // each lease spends what it holds (every fifth 2% more: estimate error) and asks again
        const spend = Math.floor(l.leaseTokens * (i % 5 === 0 ? 1.02 : 1));
        estimateError += spend - l.leaseTokens;
        const next = alloc.renew({ owner: 'o', leaseId: l.leaseId, need: 100, demand: 50, reports: spend > 0 ? [{ sequence: seq++, tokens: spend, startedAtMs: clock.now() }] : [], unused: 0 });
        leases[i] = next;
        const [b] = alloc.getBudgets('namespace/demo');
        expect(b!.used + b!.outstanding).toBeLessThanOrEqual(b!.tokens + estimateError);
      }
      clock.advance(100);
    }
    const [b] = alloc.getBudgets('namespace/demo');
    expect(b!.used).toBeGreaterThanOrEqual(9_800); // ≥ 98% usable
    expect(b!.used).toBeLessThanOrEqual(10_300); // overshoot only from the 2% estimate error
  });

  it('ignores a replayed report', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'day', 1000);
    const g = acquire(alloc, 'demo', 'interactive', 100);
    const report = { sequence: 7, tokens: 60, startedAtMs: clock.now() };
    alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [report], unused: 0 });
    const again = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [report, { sequence: 5, tokens: 999, startedAtMs: clock.now() }], unused: 0 });
    expect(alloc.getBudgets('namespace/demo')[0]!.used).toBe(60);
    expect(again.acked).toBe(7);
    expect(alloc.report(id('demo'), 'o', 'inc-1', [report])).toBe(7);
    expect(alloc.getBudgets('namespace/demo')[0]!.used).toBe(60);
  });

  it('stops batch at 50% and background at 20% remaining; interactive may use it all', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'day', 1000);
    alloc.report(id('demo'), 'o', 'earlier-pod', [{ sequence: 1, tokens: 450, startedAtMs: clock.now() }]);
    const refused = acquire(alloc, 'demo', 'batch', 100, 1, 'b1');
    expect(refused.granted).toBe(0);
    expect(refused.retryAfterMs).toBe(windowAt('day', clock.now()).endMs - clock.now());
    expect(acquire(alloc, 'demo', 'batch', 40, 1, 'b2').granted).toBe(40);
    const bg = acquire(alloc, 'demo', 'background', 300, 1, 'g1');
    expect(bg.granted).toBe(300);
    alloc.renew({ owner: 'o', leaseId: bg.leaseId, need: 0, demand: 1, reports: [{ sequence: 1, tokens: 300, startedAtMs: clock.now() }], unused: 0 });
    // 250 left; the batch lease holds 40 and the renewal topped the background lease up to its target of
    // 10 tokens (1 token/s over the 10 s horizon): nothing above the floor of 200 for a background ask of
    // 20, all 200 for interactive.
    expect(acquire(alloc, 'demo', 'background', 20, 1, 'g2').granted).toBe(0);
    expect(acquire(alloc, 'demo', 'interactive', 200, 1, 'i1').granted).toBe(200);
    expect(acquire(alloc, 'demo', 'interactive', 5, 1, 'i2').granted).toBe(0);
    const [b] = alloc.getBudgets('namespace/demo');
    expect(b!.used + b!.outstanding).toBeLessThanOrEqual(1000);
    expect(b!.used + b!.outstanding).toBeGreaterThanOrEqual(995);
  });

  it('shares what remains in proportion to demand', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'minute', 10_000);
    const slow = acquire(alloc, 'demo', 'interactive', 0, 100, 'slow');
    const fast = acquire(alloc, 'demo', 'interactive', 0, 300, 'fast');
    // after both declared their demand, renewing converges to 1:3
    const s = alloc.renew({ owner: 'o', leaseId: slow.leaseId, need: 0, demand: 100, reports: [], unused: slow.leaseTokens });
    const f = alloc.renew({ owner: 'o', leaseId: fast.leaseId, need: 0, demand: 300, reports: [], unused: fast.leaseTokens });
    // Each is topped up to its demand over the 10 s horizon, within its share of half of what remains
    // (1,250 and 3,750 of the 5,000): 1,000 and 3,000.
    expect(s.leaseTokens).toBe(1000);
    expect(f.leaseTokens).toBe(3000);
    // With less left, the shares bind, still 1:3: what is left lasts 15 s at 400 tokens/s, so leases may
    // hold 15/20 of half of it (2,250), a quarter and three quarters of that.
    alloc.report(id('demo'), 'o', 'earlier-pod', [{ sequence: 1, tokens: 4000, startedAtMs: Date.UTC(2026, 10, 23, 10, 0, 0) }]);
    const s2 = alloc.renew({ owner: 'o', leaseId: slow.leaseId, need: 0, demand: 100, reports: [], unused: s.leaseTokens });
    const f2 = alloc.renew({ owner: 'o', leaseId: fast.leaseId, need: 0, demand: 300, reports: [], unused: f.leaseTokens });
    expect(s2.leaseTokens).toBe(562);
    expect(f2.leaseTokens).toBe(1687);
  });

  it('charges every matching scope and grants within the tightest budget', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'day', 100_000);
    alloc.setBudget('team/search', 'hour', 500);
    alloc.setTeam('search', ['demo']);
    const g = alloc.acquire({ owner: 'o', identity: id('demo', { service: 'api' }), priority: 'interactive', incarnation: 'i', need: 100, demand: 1000 });
    expect(g.granted).toBe(100); // its need: at 1,000 tokens/s the team's 500 last half a second, its share is small
    alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [{ sequence: 1, tokens: 120, startedAtMs: clock.now() }], unused: 0 });
    for (const scope of ['namespace/demo', 'namespace/demo/service/api', 'team/search']) {
      expect(alloc.usage(scope, 'hour', 1)[0]!.used).toBe(120);
    }
  });

  it('starts each window from zero: a rollover voids held tokens, late reports count in their own window', () => {
    const { alloc, clock } = setup();
    const start = windowAt('minute', clock.now()).startMs;
    clock.set(start + 50_000);
    alloc.setBudget('namespace/demo', 'minute', 1000);
    const g = acquire(alloc, 'demo', 'interactive', 1000, 1);
    expect(g.granted).toBe(1000);
    expect(g.ttlMs).toBe(10_000); // capped at the window's end
    clock.set(start + 61_000);
    const next = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 200, demand: 1, reports: [{ sequence: 1, tokens: 900, startedAtMs: start + 55_000 }], unused: 0 });
    expect(next.granted).toBe(200);
    expect(next.leaseTokens).toBe(200);
    const [older, newer] = [alloc.usage('namespace/demo', 'minute', 2)[1]!, alloc.usage('namespace/demo', 'minute', 2)[0]!];
    expect(older.used).toBe(900);
    expect(newer.used).toBe(0);
  });

  it('reclaims the tokens of a lease that stopped renewing', () => {
    const { alloc, clock } = setup({ ttl: 5000 });
    alloc.setBudget('namespace/demo', 'day', 1000);
    acquire(alloc, 'demo', 'interactive', 1000, 1, 'gone');
    expect(acquire(alloc, 'demo', 'interactive', 1, 1, 'other').granted).toBe(0);
    clock.advance(5001);
    expect(acquire(alloc, 'demo', 'interactive', 600, 1, 'other2').granted).toBe(600);
  });

  it('survives a restart with consumption, leases and acknowledged sequences intact', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-quota-')), 'quota.db');
    const clock = fakeClock();
    const first = new Allocator(new SqliteQuotaStore(path), { clock });
    first.setBudget('namespace/demo', 'day', 1000);
    const g = first.acquire({ owner: 'o', identity: id('demo'), priority: 'interactive', incarnation: 'i', need: 300, demand: 1 });
    first.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [{ sequence: 3, tokens: 100, startedAtMs: clock.now() }], unused: 0 });
    const second = new Allocator(new SqliteQuotaStore(path), { clock });
    const [b] = second.getBudgets('namespace/demo');
    // 300 granted, 100 spent; the 200 left already cover 1 token/s over the 10 s horizon: no top-up
    expect(b).toMatchObject({ used: 100, outstanding: 200 });
    const again = second.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [{ sequence: 3, tokens: 100, startedAtMs: clock.now() }], unused: 0 });
    expect(again.acked).toBe(3);
    expect(second.getBudgets('namespace/demo')[0]!.used).toBe(100);
  });

  it('keeps usage per tag for every scope and window, drops malformed tags but charges their tokens, and ignores replays', () => {
    const { alloc, clock } = setup();
    alloc.setTeam('core', ['demo']);
    const g = alloc.acquire({ owner: 'o', identity: id('demo', { service: 'web' }), priority: 'interactive', incarnation: 'inc-1', need: 0, demand: 1 });
    const at = clock.now();
    const reports: UsageReport[] = [
      { sequence: 1, tokens: 100, startedAtMs: at, tags: { feature: 'search', user: 'ann' } },
      { sequence: 2, tokens: 30, startedAtMs: at, tags: { feature: 'chat' } },
      { sequence: 3, tokens: 7, startedAtMs: at },
      { sequence: 4, tokens: 5, startedAtMs: at, tags: { 'bad key': 'x', feature: 'x'.repeat(129), user: 'bo' } },
      { sequence: 5, tokens: 20, startedAtMs: at, tags: { feature: 'search' } },
    ];
    alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports, unused: 0 });
    alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: reports.slice(0, 2), unused: 0 }); // a replay changes nothing
    for (const scope of ['namespace/demo', 'namespace/demo/service/web', 'team/core']) {
      for (const w of ['minute', 'hour', 'day', 'month'] as const) {
        const [u] = alloc.usage(scope, w, 1, 'feature');
        expect(u).toMatchObject({ used: 162, byTag: [{ value: 'search', used: 120 }, { value: 'chat', used: 30 }] });
      }
    }
    // Reports that name no model are priced at the default's highest rate ($75 per million: 75,000 nano-USD a token).
    expect(alloc.usage('team/core', 'day', 1, 'user')[0]!.byTag).toEqual([
      { value: 'ann', used: 100, costNano: 7_500_000 },
      { value: 'bo', used: 5, costNano: 375_000 },
    ]);
    expect(alloc.usage('team/core', 'day', 1)[0]!.byTag).toBeUndefined();
    expect(alloc.usage('team/core', 'day', 1, 'none')[0]!.byTag).toEqual([]);
    expect(() => alloc.usage('team/core', 'day', 1, 'not a key')).toThrow(/by_tag "not a key"/);
    clock.advance(3_600_000);
    expect(alloc.usage('team/core', 'hour', 2, 'feature').map((u) => u.byTag)).toEqual([
      [],
      [
        { value: 'search', used: 120, costNano: 9_000_000 },
        { value: 'chat', used: 30, costNano: 2_250_000 },
      ],
    ]);
  });

  it('refuses malformed scopes, windows and amounts', () => {
    const { alloc } = setup();
    expect(() => alloc.setBudget('ns/demo', 'day', 10)).toThrow(/a scope is namespace/);
    expect(() => alloc.setBudget('namespace/Demo_', 'day', 10)).toThrow(/not a valid namespace name/);
    expect(() => alloc.setBudget('team/search', 'day', 0)).toThrow(/positive integer/);
    expect(() => alloc.getBudgets('team/none')).toThrow(/no budget for team\/none/);
  });
});
