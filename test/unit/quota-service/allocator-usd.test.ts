// Dollar budgets in the allocator: a lease holds a USD balance (nano-USD) beside its tokens, granted by the
// same rules (bounds, fair shares, floors, window rollover), charged by the service's own prices; a scope's
// token and USD budgets both apply; a caller that keeps no USD balance (an older sidecar) is charged all the
// same and granted nothing once a USD window is spent for its class.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PriceIndex } from '../../../common/pricing/price-index.js';
import { Allocator, type PriorityClass, type UsdAsk } from '../../../quota-service/allocator.js';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { windowAt } from '../../../quota-service/windows.js';
import { fakeClock } from '../../helpers/fake-clock.js';

/** Every token costs $1 per million (1,000 nano-USD), whatever its kind or model. */
const FLAT = new PriceIndex({ asOf: '2026-01-01', default: { input: 1, output: 1 }, models: {}, metricModels: [] });
const NANO_PER_TOKEN = 1000;
const usd = (dollars: number): number => Math.round(dollars * 1e9);

function setup(path = ':memory:', clock = fakeClock()) {
  const store = new SqliteQuotaStore(path);
  const alloc = new Allocator(store, { clock, prices: () => FLAT });
  return { clock, store, alloc };
}

const identity = (inc: string, ns = 'demo') => ({ namespace: ns, service: '', pod: inc });

function acquire(alloc: Allocator, inc: string, o: { priority?: PriorityClass; need?: number; usd?: UsdAsk; ns?: string } = {}) {
  return alloc.acquire({ owner: 'o', identity: identity(inc, o.ns), priority: o.priority ?? 'interactive', incarnation: inc, need: o.need ?? 0, demand: 10, ...(o.usd ? { usd: o.usd } : {}) });
}

let seq = 0;
const spent = (tokens: number, at: number) => [{ sequence: ++seq, tokens, startedAtMs: at }];

describe('dollar budgets in the allocator', () => {
  it('keeps used + outstanding dollars within the limit whatever many leases ask, charged by its own prices, and ≥ 98% usable', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', usd(10), undefined, 'usd');
    const leases = Array.from({ length: 30 }, (_, i) => acquire(alloc, `inc-${i}`, { need: 0, usd: { need: usd(0.01), demand: usd(0.05) } }));
    let overspend = 0;
    for (let round = 0; round < 60; round++) {
      for (const [i, l] of leases.entries()) {
        // Each spends what it holds in dollars (every fifth 2% more: its estimates were low) and asks again.
        const held = l.usd!.lease;
        const tokens = Math.floor((held * (i % 5 === 0 ? 1.02 : 1)) / NANO_PER_TOKEN);
        overspend += Math.max(0, tokens * NANO_PER_TOKEN - held);
        leases[i] = alloc.renew({
          owner: 'o',
          leaseId: l.leaseId,
          need: 0,
          demand: 10,
          reports: tokens > 0 ? spent(tokens, clock.now()) : [],
          unused: 0,
          usd: { need: usd(0.01), demand: usd(0.05) },
        });
        const b = alloc.getBudgets('namespace/demo')[0]!;
        expect(b.unit).toBe('usd');
        expect(b.used + b.outstanding).toBeLessThanOrEqual(b.tokens + overspend);
      }
      clock.advance(100);
    }
    const b = alloc.getBudgets('namespace/demo')[0]!;
    // What the reports cost by the service's table: 1,000 nano-USD a token.
    expect(b.used).toBe(b.usedTokens * NANO_PER_TOKEN);
    expect(b.used).toBeGreaterThanOrEqual(usd(10) * 0.98);
    expect(b.used).toBeLessThanOrEqual(usd(10) * 1.03);
  });

  it('grants a USD need from what is left and refuses one larger than the class may use, naming the unit', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'day', usd(1), undefined, 'usd');
    const g = acquire(alloc, 'a', { need: 10, usd: { need: usd(0.2), demand: 0 } });
    expect(g.usd!.granted).toBeGreaterThanOrEqual(usd(0.2));
    expect(g.granted).toBeGreaterThanOrEqual(10); // no token budget: tokens topped up with no limit
    expect(g.remaining).toBe(-1);
    expect(g.usd!.remaining).toBe(usd(1));
    const never = acquire(alloc, 'b', { need: 10, usd: { need: usd(1.5), demand: 0 } });
    expect(never.granted).toBe(0);
    expect(never.usd!.granted).toBe(0);
    expect(never.refusal).toMatchObject({ scope: 'namespace/demo', window: 'day', unit: 'usd', reason: 'exceeds', budgetTokens: usd(1), classLimit: usd(1), need: usd(1.5) });
    expect(never.retryAfterMs).toBe(0);
    // Spent by another pod: the window's end.
    alloc.report(identity('earlier'), 'o', 'earlier', spent(900_000, clock.now()));
    const later = acquire(alloc, 'c', { need: 10, usd: { need: usd(0.2), demand: 0 } });
    expect(later.refusal).toMatchObject({ unit: 'usd', reason: 'window' });
    expect(later.retryAfterMs).toBe(windowAt('day', clock.now()).endMs - clock.now());
  });

  it('keeps the priority floors in dollars: batch stops at 50% left, background at 20%, interactive may use it all', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'day', usd(1), undefined, 'usd');
    alloc.report(identity('earlier'), 'o', 'earlier', spent(550_000, clock.now())); // $0.55
    const batch = acquire(alloc, 'b', { priority: 'batch', need: 1, usd: { need: usd(0.01), demand: 0 } });
    expect(batch.refusal).toMatchObject({ unit: 'usd', priority: 'batch', reason: 'window', classLimit: usd(0.5), left: 0 });
    const bg = acquire(alloc, 'g', { priority: 'background', need: 1, usd: { need: usd(0.2), demand: 0 } });
    expect(bg.usd!.granted).toBe(usd(0.2));
    const bg2 = acquire(alloc, 'g2', { priority: 'background', need: 1, usd: { need: usd(0.1), demand: 0 } });
    expect(bg2.usd!.granted).toBe(0);
    // $0.25 left above the floor, of which the other background lease holds $0.20: given back in time.
    expect(bg2.refusal).toMatchObject({ unit: 'usd', reason: 'held', left: usd(0.25) });
    const i = acquire(alloc, 'i', { need: 1, usd: { need: usd(0.2), demand: 0 } });
    expect(i.usd!.granted).toBe(usd(0.2));
  });

  it('starts each USD window from zero: a rollover voids the dollars a lease held, and late reports count in their own window', () => {
    const { alloc, clock } = setup();
    const start = windowAt('minute', clock.now()).startMs;
    clock.set(start + 50_000);
    alloc.setBudget('namespace/demo', 'minute', usd(0.1), undefined, 'usd');
    const g = acquire(alloc, 'a', { need: 1, usd: { need: usd(0.1), demand: 0 } });
    expect(g.usd!.granted).toBe(usd(0.1));
    expect(g.windowEndMs).toBe(start + 60_000);
    expect(acquire(alloc, 'b', { need: 1, usd: { need: usd(0.01), demand: 0 } }).refusal).toMatchObject({ unit: 'usd', reason: 'held' });
    clock.set(start + 61_000);
    const next = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 1, demand: 0, reports: spent(90_000, start + 55_000), unused: 0, usd: { need: usd(0.02), demand: 0 } });
    expect(next.usd!.granted).toBe(usd(0.02));
    expect(next.usd!.lease).toBe(usd(0.02));
    expect(next.windowStartMs).toBe(start + 60_000);
    const [newer, older] = alloc.usage('namespace/demo', 'minute', 2);
    expect(older!.costNano).toBe(usd(0.09));
    expect(newer!.costNano).toBe(0);
  });

  it('applies a token budget and a USD budget of the same scope together: each refuses in its own unit', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 1000);
    alloc.setBudget('namespace/demo', 'hour', usd(0.5), undefined, 'usd');
    expect(alloc.getBudgets('namespace/demo').map((b) => [b.window, b.unit, b.tokens])).toEqual([
      ['hour', 'tokens', 1000],
      ['hour', 'usd', usd(0.5)],
    ]);
    const g = acquire(alloc, 'a', { need: 400, usd: { need: usd(0.3), demand: 0 } });
    expect([g.granted, g.usd!.granted]).toEqual([400, usd(0.3)]);
    // Tokens left (600), dollars not ($0.20 free): refused by the USD budget, nothing granted in either unit.
    const cost = acquire(alloc, 'b', { need: 100, usd: { need: usd(0.3), demand: 0 } });
    expect([cost.granted, cost.usd!.granted]).toEqual([0, 0]);
    expect(cost.refusal).toMatchObject({ unit: 'usd', reason: 'held' });
    // Dollars left, tokens not: refused by the token budget.
    const tokens = acquire(alloc, 'c', { need: 700, usd: { need: usd(0.1), demand: 0 } });
    expect([tokens.granted, tokens.usd!.granted]).toEqual([0, 0]);
    expect(tokens.refusal).toMatchObject({ unit: 'tokens', reason: 'held', need: 700 });
    // Reports are charged to both: 300 tokens cost $0.0003 by the flat table.
    alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 0, reports: spent(300, clock.now()), unused: 0, usd: { need: 0, demand: 0 } });
    const [t, u] = alloc.getBudgets('namespace/demo');
    expect([t!.used, u!.used, u!.usedTokens]).toEqual([300, 300 * NANO_PER_TOKEN, 300]);
  });

  it('charges a caller that keeps no USD balance, grants it tokens while the USD window has room, and nothing once it is spent', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'day', usd(0.001), undefined, 'usd'); // 1,000 tokens at $1 per million
    const old = acquire(alloc, 'old', { need: 100 });
    expect(old.granted).toBeGreaterThanOrEqual(100);
    expect(old.usd).toBeUndefined();
    expect(old.remaining).toBe(-1);
    // It spends 1,200 tokens: charged in full, by the service's table.
    const spentAll = alloc.renew({ owner: 'o', leaseId: old.leaseId, need: 100, demand: 10, reports: spent(1200, clock.now()), unused: 0 });
    expect(alloc.getBudgets('namespace/demo')[0]!.used).toBe(usd(0.0012));
    expect(spentAll.granted).toBe(0);
    expect(spentAll.refusal).toMatchObject({ scope: 'namespace/demo', unit: 'usd', reason: 'window' });
    expect(spentAll.retryAfterMs).toBe(windowAt('day', clock.now()).endMs - clock.now());
    // A top-up with no need: nothing, and no refusal.
    const topUp = alloc.renew({ owner: 'o', leaseId: old.leaseId, need: 0, demand: 10, reports: [], unused: 0 });
    expect(topUp.granted).toBe(0);
    expect(topUp.refusal).toBeUndefined();
    // Nor does a fresh lease of an old sidecar get any.
    expect(acquire(alloc, 'old-2', { need: 1 }).granted).toBe(0);
    // The next day it is granted again.
    clock.set(windowAt('day', clock.now()).endMs + 1000);
    expect(acquire(alloc, 'old-3', { need: 100 }).granted).toBeGreaterThanOrEqual(100);
  });

  it('does not grant an old caller what leases with USD balances hold of the USD window', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'day', usd(0.1), undefined, 'usd');
    const aware = acquire(alloc, 'new', { need: 1, usd: { need: usd(0.1), demand: 0 } });
    expect(aware.usd!.granted).toBe(usd(0.1));
    const old = acquire(alloc, 'old', { need: 100 });
    expect(old.granted).toBe(0);
    expect(old.refusal).toMatchObject({ unit: 'usd', reason: 'held' });
  });

  it('deletes one unit or both, and keeps both budgets and the leases\' USD balances across a restart', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-usd-')), 'quota.db');
    const clock = fakeClock();
    const first = setup(path, clock).alloc;
    first.setBudget('namespace/demo', 'day', 5000);
    first.setBudget('namespace/demo', 'day', usd(2), { batch: 0.4, background: 0.1 }, 'usd');
    const g = acquire(first, 'a', { need: 10, usd: { need: usd(0.5), demand: 0 } });
    expect(g.usd!.lease).toBe(usd(0.5));
    const second = setup(path, clock).alloc;
    expect(second.getBudgets('namespace/demo').map((b) => [b.unit, b.tokens, b.outstanding, b.batchFloor])).toEqual([
      ['tokens', 5000, g.leaseTokens, 0.5],
      ['usd', usd(2), usd(0.5), 0.4],
    ]);
    // Its sidecar spends $0.30 of it (300,000 tokens at $1 per million… and over the token budget: charged all the same).
    const r = second.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 0, reports: spent(300_000, clock.now()), unused: 0, usd: { need: 0, demand: 0 } });
    expect(r.usd!.lease).toBe(usd(0.2));
    expect(second.deleteBudget('namespace/demo', 'day', 'usd')).toBe(1);
    expect(second.getBudgets('namespace/demo').map((b) => b.unit)).toEqual(['tokens']);
    expect(() => second.deleteBudget('namespace/demo', undefined, 'usd')).toThrow(/no USD budget for namespace\/demo/);
    second.setBudget('namespace/demo', 'hour', usd(1), undefined, 'usd');
    expect(second.deleteBudget('namespace/demo', undefined)).toBe(2);
    expect(() => second.getBudgets('namespace/demo')).toThrow(/no budget/);
  });

  it('gives each USD lease its fail-open share of the window in dollars, and a share of the next', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'day', usd(100), undefined, 'usd');
    const g = acquire(alloc, 'a', { need: 0, usd: { need: 0, demand: usd(0.001) } });
    expect(g.usd!.failOpen).toBeGreaterThan(0);
    expect(g.usd!.failOpen + g.usd!.lease).toBeLessThanOrEqual(usd(50)); // at most half of what remains
    expect(g.usd!.failOpenNext).toBeGreaterThan(0);
    expect(g.failOpen).toBe(Number.MAX_SAFE_INTEGER); // no token budget
  });
});
