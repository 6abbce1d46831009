// How large the allocator makes a lease (issue 18): its demand over a horizon of several renewals, at least
// a few of its largest requests, topped up from what its sidecar can spend, within a share of what remains
// that shrinks as the window runs low; and what its pod may spend if it loses the service.
import { describe, expect, it } from 'vitest';
import { Allocator, type PriorityClass } from '../../../quota-service/allocator.js';
import { RENEWAL_SLACK_MS } from '../../../quota-service/refusal.js';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { windowAt } from '../../../quota-service/windows.js';
import { fakeClock } from '../../helpers/fake-clock.js';

function setup() {
  // One second into a minute: window ends stay out of the way.
  const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 0, 1));
  const alloc = new Allocator(new SqliteQuotaStore(':memory:'), { clock });
  return { clock, alloc };
}

const acquire = (alloc: Allocator, pod: string, opts: { need?: number; demand?: number; requestTokens?: number; priority?: PriorityClass } = {}) =>
  alloc.acquire({
    owner: 'o',
    identity: { namespace: 'demo', service: '', pod },
    priority: opts.priority ?? 'interactive',
    incarnation: pod,
    need: opts.need ?? 0,
    demand: opts.demand ?? 1,
    requestTokens: opts.requestTokens ?? 0,
  });

const spend = (alloc: Allocator, tokens: number, at: number) =>
  alloc.report({ namespace: 'demo', service: '', pod: 'earlier' }, 'o', `earlier-${tokens}-${at}`, [{ sequence: 1, tokens, startedAtMs: at }]);

describe('lease sizing', () => {
  it('grants 10 s of demand while the budget lasts well beyond that, not 5% of how long it would last', () => {
    const { alloc } = setup();
    // A minute's budget at 1.5× its rate: 60,000 tokens at 1,500 tokens/s last 40 s.
    alloc.setBudget('namespace/demo', 'minute', 60_000);
    const g = acquire(alloc, 'a', { demand: 1500 });
    expect(g.granted).toBe(15_000); // was 3,000: 5% of 40 s
    expect(g.targetTokens).toBe(15_000);
  });

  it('tops the lease up from what its sidecar can spend: running requests do not shrink the grant', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'day', 10_000_000);
    const g = acquire(alloc, 'a', { demand: 1000 });
    expect(g.leaseTokens).toBe(10_000);
    // 4,000 spent and reported; of the 6,000 left, requests still running reserved 5,000: 1,000 is spendable.
    const r = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1000, reports: [{ sequence: 1, tokens: 4000, startedAtMs: Date.UTC(2026, 10, 23, 10, 0, 1) }], unused: 0, inflight: 5000 });
    expect(r.granted).toBe(9000);
    expect(r.leaseTokens).toBe(15_000);
    // A sidecar that does not say what runs (one that predates it) is topped up from what the lease holds.
    const old = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1000, reports: [], unused: 0 });
    expect(old.granted).toBe(0);
  });

  it('holds at least four of the largest recent requests, however low the rate', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'day', 10_000_000);
    const g = acquire(alloc, 'a', { demand: 2, requestTokens: 1500 });
    expect(g.granted).toBe(6000);
    // A class gone quiet (its largest request decayed away) is sized by its demand alone.
    const quiet = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 2, reports: [], unused: 6000, requestTokens: 0 });
    expect(quiet.leaseTokens).toBe(20);
  });

  it('shrinks leases smoothly as the window runs low: a share of half of what remains, less once it lasts under 20 s', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'minute', 100_000);
    const sizes: number[] = [];
    let spent = 0;
    for (const used of [0, 50_000, 80_000, 90_000, 95_000, 98_000]) {
      if (used > spent) spend(alloc, used - spent, clock.now());
      spent = used;
      // Ten pods at 500 tokens/s each: 5,000 tokens/s in all.
      const grants = Array.from({ length: 10 }, (_, i) => acquire(alloc, `p${i}-${used}`, { demand: 500 }));
      sizes.push(grants[9]!.leaseTokens);
      for (const g of grants) alloc.release(g.leaseId, 'o', []);
    }
    // 100,000 left (20 s): the full 5,000 (10 s of demand) each. 50,000 (10 s): half of half of it over ten
    // pods. 20,000 (4 s): a fifth of that. Then less and less.
    expect(sizes[0]).toBe(5000);
    expect(sizes[1]).toBe(1250);
    expect(sizes.slice(2)).toEqual([200, 50, 12, 2]);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).toBeLessThan(sizes[i - 1]!);
  });

  it('still grants a waiting request its need when its share is smaller', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'minute', 100_000);
    spend(alloc, 98_000, clock.now());
    expect(acquire(alloc, 'a', { demand: 5000, need: 1500 }).granted).toBe(1500);
  });

  it('does not hold back interactive top-ups for a batch request waiting at its floor: what interactive holds is not left for batch', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 100_000); // batch stops at 50% left
    spend(alloc, 45_000, clock.now());
    const i = acquire(alloc, 'i', { demand: 1000 });
    expect(i.leaseTokens).toBe(10_000);
    // 5,000 above the batch floor, all held by the interactive lease: refused until the window ends.
    const batch = acquire(alloc, 'b', { need: 1000, priority: 'batch' });
    expect(batch.refusal).toMatchObject({ reason: 'window', left: 0 });
    // The interactive lease, having spent 6,000, is topped up as before, and not asked to give back.
    const renewed = alloc.renew({ owner: 'o', leaseId: i.leaseId, need: 0, demand: 1000, reports: [{ sequence: 1, tokens: 6000, startedAtMs: clock.now() }], unused: 0 });
    expect(renewed.granted).toBe(6000);
    expect(renewed.giveBack).toBe(false);
  });

  it('makes lower classes give back for an interactive request waiting for what they hold, not the other way round', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 100_000, { batch: 0.1, background: 0.1 });
    spend(alloc, 80_000, clock.now());
    // 20,000 left, 10,000 of them above the background floor; each lease holds its 1,000-token target.
    const i = acquire(alloc, 'i', { demand: 100 });
    const g = acquire(alloc, 'g', { demand: 100, priority: 'background' });
    expect([i.leaseTokens, g.leaseTokens]).toEqual([1000, 1000]);
    // A background request needing more than is free for it (8,000), which the other background lease
    // holds part of: that lease is to give back, the interactive one is not.
    const waitingBg = acquire(alloc, 'wb', { need: 8500, priority: 'background' });
    expect(waitingBg.refusal).toMatchObject({ reason: 'held' });
    expect(alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 100, reports: [], unused: 0 }).giveBack).toBe(true);
    const iRenewed = alloc.renew({ owner: 'o', leaseId: i.leaseId, need: 0, demand: 100, reports: [{ sequence: 1, tokens: 1000, startedAtMs: clock.now() }], unused: 0 });
    expect(iRenewed).toMatchObject({ giveBack: false, granted: 1000 });
    // An interactive request waiting for what the background lease holds: it gives back, and gets no top-up.
    const waitingI = acquire(alloc, 'wi', { need: 18_500 });
    expect(waitingI.refusal).toMatchObject({ reason: 'held' });
    expect(alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 100, reports: [{ sequence: 1, tokens: 500, startedAtMs: clock.now() }], unused: 0 })).toMatchObject({
      granted: 0,
      giveBack: true,
    });
  });

  it('says when the window ends, on its own clock', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'minute', 100_000);
    alloc.setBudget('namespace/demo', 'day', 1_000_000);
    const g = acquire(alloc, 'a', { demand: 10 });
    expect(g.windowEndMs).toBe(windowAt('minute', clock.now()).endMs);
    expect(g.windowStartMs).toBe(windowAt('minute', clock.now()).startMs);
  });
});

describe('fail-open allowances', () => {
  it('gives each pod what its lease lacks of its fair share, so leases and allowances stay within half of what remains', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 1_000_000);
    spend(alloc, 600_000, clock.now());
    const a = acquire(alloc, 'a', { demand: 100 });
    const b = acquire(alloc, 'b', { demand: 300 });
    // 400,000 left. b's share is three quarters of half of it (150,000), a's (once b came) a quarter.
    expect(b.leaseTokens).toBe(3000);
    expect(b.failOpen).toBe(150_000 - 3000);
    const a2 = alloc.renew({ owner: 'o', leaseId: a.leaseId, need: 0, demand: 100, reports: [], unused: 0 });
    expect(a2.leaseTokens + a2.failOpen).toBe(50_000);
    // In a later window, its share of half a whole one.
    expect(b.failOpenNext).toBe(375_000);
  });

  it('keeps the floors: nothing for batch below its floor, what is above it otherwise', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 1_000_000); // batch stops at 50% left, background at 20%
    spend(alloc, 600_000, clock.now());
    const batch = acquire(alloc, 'b', { demand: 100, priority: 'batch' });
    expect(batch.failOpen).toBe(0);
    expect(batch.failOpenNext).toBe(250_000); // half of the 500,000 batch may use of a new window
    const bg = acquire(alloc, 'g', { demand: 100, priority: 'background' });
    expect(bg.failOpen).toBe(Math.floor(((400_000 - 200_000) * 0.5 * 100) / 200) - bg.leaseTokens);
  });

  it('holds back the allowance of a lease that missed its renewal until its pod reports, then grants it', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 100_000);
    spend(alloc, 60_000, clock.now());
    // The only lease: its share is half of the 40,000 left; it holds 1,000, so it may fail open on 19,000.
    const silent = acquire(alloc, 'silent', { demand: 100 });
    expect(silent.leaseTokens).toBe(1000);
    expect(silent.failOpen).toBe(19_000);
    // Its pod loses the service: 10 s later it has missed its renewal.
    clock.advance(silent.refreshAfterMs + RENEWAL_SLACK_MS + 1);
    const other = acquire(alloc, 'other', { need: 30_000, demand: 1 });
    expect(other.granted).toBe(0);
    expect(other.refusal).toMatchObject({ reason: 'held', available: 40_000 - 1000 - 19_000 });
    // Back, it reports what it spent meanwhile (its lease and 15,000 of its allowance) with its renewal.
    const back = alloc.renew({ owner: 'o', leaseId: silent.leaseId, need: 0, demand: 1, reports: [{ sequence: 1, tokens: 16_000, startedAtMs: clock.now() }], unused: 0 });
    expect(back.leaseTokens).toBe(0); // no top-up while another lease waits
    expect(acquire(alloc, 'other', { need: 20_000, demand: 1 }).granted).toBe(20_000);
    const [budget] = alloc.getBudgets('namespace/demo');
    expect(budget!.used + budget!.outstanding).toBeLessThanOrEqual(100_000);
  });

  it('charges the usage an acquire carries before it grants, and ignores it replayed', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'minute', 10_000);
    const at = clock.now();
    const g = alloc.acquire({
      owner: 'o',
      identity: { namespace: 'demo', service: '', pod: 'p' },
      priority: 'interactive',
      incarnation: 'p',
      need: 0,
      demand: 1000,
      reports: [{ sequence: 1, tokens: 9000, startedAtMs: at }],
    });
    expect(g.acked).toBe(1);
    expect(g.remaining).toBe(1000);
    // Its share of the 1,000 left, which last a second at its demand (not of 10,000 lasting 10 s: 2,500).
    expect(g.granted).toBe(25);
    const again = alloc.acquire({ owner: 'o', identity: { namespace: 'demo', service: '', pod: 'p' }, priority: 'interactive', incarnation: 'p', need: 0, demand: 1, reports: [{ sequence: 1, tokens: 9000, startedAtMs: at }] });
    expect(again.remaining).toBe(1000);
  });
});
