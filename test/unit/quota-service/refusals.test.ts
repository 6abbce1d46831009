// The allocator's refusals: which budget refused a need, why, and when it can be granted; and how a need
// refused for what other leases hold gets it back from them.
import { describe, expect, it } from 'vitest';
import { Allocator, type PriorityClass } from '../../../quota-service/allocator.js';
import { RENEWAL_SLACK_MS } from '../../../quota-service/refusal.js';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { windowAt } from '../../../quota-service/windows.js';
import { fakeClock } from '../../helpers/fake-clock.js';

function setup(opts: { ttl?: number; at?: number } = {}) {
  // One second into a minute (and an hour), unless told otherwise: window ends stay out of the way.
  const clock = fakeClock(opts.at ?? Date.UTC(2026, 10, 23, 10, 0, 1));
  const alloc = new Allocator(new SqliteQuotaStore(':memory:'), { clock, ...(opts.ttl === undefined ? {} : { leaseTtlMs: opts.ttl }) });
  return { clock, alloc };
}

/** One pod per incarnation, as sidecars are. */
const acquire = (alloc: Allocator, inc: string, need: number, priority: PriorityClass = 'interactive', demand = 1) =>
  alloc.acquire({ owner: 'o', identity: { namespace: 'demo', service: '', pod: inc }, priority, incarnation: inc, need, demand });

const spend = (alloc: Allocator, tokens: number, at: number) => alloc.report({ namespace: 'demo', service: '', pod: 'earlier' }, 'o', `earlier-${tokens}-${at}`, [{ sequence: 1, tokens, startedAtMs: at }]);

describe('allocator refusals', () => {
  it('refuses a need larger than the whole budget window as never fitting, with no retry time', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'minute', 500);
    const g = acquire(alloc, 'a', 600);
    expect(g.granted).toBe(0);
    expect(g.retryAfterMs).toBe(0);
    expect(g.refusal).toMatchObject({ scope: 'namespace/demo', window: 'minute', priority: 'interactive', reason: 'exceeds', budgetTokens: 500, classLimit: 500, left: 500, need: 600 });
    // What fits is still granted.
    expect(acquire(alloc, 'b', 500).granted).toBe(500);
  });

  it('counts a lower class as never fitting what its floor keeps back', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'day', 1000); // batch floor 50%
    const g = acquire(alloc, 'a', 600, 'batch');
    expect(g.refusal).toMatchObject({ reason: 'exceeds', priority: 'batch', budgetTokens: 1000, classLimit: 500 });
    expect(acquire(alloc, 'b', 600, 'interactive').granted).toBe(600);
  });

  it('refuses a need larger than what is left until the window ends, and grants it then', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'hour', 1000);
    spend(alloc, 700, clock.now());
    const g = acquire(alloc, 'a', 400);
    const end = windowAt('hour', clock.now()).endMs;
    expect(g.granted).toBe(0);
    expect(g.retryAfterMs).toBe(end - clock.now());
    expect(g.refusal).toMatchObject({ reason: 'window', window: 'hour', left: 300, available: 300, need: 400, windowEndMs: end });
    // Smaller needs are granted meanwhile, and do not make the refused one wait longer.
    expect(alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 100, demand: 1, reports: [], unused: 0 }).granted).toBe(100);
    clock.set(end);
    expect(acquire(alloc, 'a', 400).granted).toBe(400);
  });

  it('for the part other leases hold, says when they renew; they get no top-up and are told to give back, and then it is granted', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'minute', 1000);
    const b = acquire(alloc, 'b', 600);
    expect(b.granted).toBe(600);
    expect(b.refreshAfterMs).toBe(10_000);
    clock.advance(1000);
    const a = acquire(alloc, 'a', 500);
    expect(a.granted).toBe(0);
    expect(a.refusal).toMatchObject({ reason: 'held', left: 1000, available: 400, need: 500 });
    // b renews 10 s after its grant, then gives back at once.
    expect(a.retryAfterMs).toBe(10_000 + RENEWAL_SLACK_MS - 1000);

    // A third lease, with demand, gets no top-up while the claim waits; a need of its own it still gets.
    const c = acquire(alloc, 'c', 0, 'interactive', 100);
    expect(c.granted).toBe(0);
    expect(c.giveBack).toBe(false);
    clock.advance(9000);
    const renewed = alloc.renew({ owner: 'o', leaseId: b.leaseId, need: 0, demand: 100, reports: [], unused: 0 });
    expect(renewed).toMatchObject({ granted: 0, giveBack: true, leaseTokens: 600 });
    const back = alloc.renew({ owner: 'o', leaseId: b.leaseId, need: 0, demand: 100, reports: [], unused: 600 });
    expect(back.leaseTokens).toBe(0);
    clock.advance(RENEWAL_SLACK_MS);
    const again = alloc.renew({ owner: 'o', leaseId: a.leaseId, need: 500, demand: 1, reports: [], unused: 0 });
    expect(again.granted).toBe(500);
    expect(again.refusal).toBeUndefined();
    // The claim is met: top-ups resume.
    expect(alloc.renew({ owner: 'o', leaseId: c.leaseId, need: 0, demand: 100, reports: [], unused: 0 }).granted).toBeGreaterThan(0);
    const [budget] = alloc.getBudgets('namespace/demo');
    expect(budget!.used + budget!.outstanding).toBeLessThanOrEqual(1000);
  });

  it('for a holder that stopped renewing, says when its lease lapses, and grants it then', () => {
    const { alloc, clock } = setup({ ttl: 6000 });
    alloc.setBudget('namespace/demo', 'minute', 1000);
    acquire(alloc, 'silent', 800); // told to renew within 2 s; it never does
    clock.advance(2000 + RENEWAL_SLACK_MS + 1);
    const a = acquire(alloc, 'a', 500);
    expect(a.refusal).toMatchObject({ reason: 'held', available: 200 });
    expect(a.retryAfterMs).toBe(6000 - (2000 + RENEWAL_SLACK_MS + 1));
    clock.advance(a.retryAfterMs);
    expect(alloc.renew({ owner: 'o', leaseId: a.leaseId, need: 500, demand: 1, reports: [], unused: 0 }).granted).toBe(500);
  });

  it('of several budgets refusing, names one the need can never fit, else the one that resets last', () => {
    const { alloc, clock } = setup();
    alloc.setBudget('namespace/demo', 'minute', 1000);
    alloc.setBudget('namespace/demo', 'hour', 5000);
    spend(alloc, 4800, clock.now());
    const late = acquire(alloc, 'a', 300);
    expect(late.refusal).toMatchObject({ scope: 'namespace/demo', window: 'hour', reason: 'window', left: 200 });
    expect(late.retryAfterMs).toBe(windowAt('hour', clock.now()).endMs - clock.now());
    const never = acquire(alloc, 'b', 1200);
    expect(never.refusal).toMatchObject({ window: 'minute', reason: 'exceeds', classLimit: 1000 });
    expect(never.retryAfterMs).toBe(0);
  });

  it('answers a need-free renewal without a refusal, and a grant without one', () => {
    const { alloc } = setup();
    alloc.setBudget('namespace/demo', 'minute', 100);
    const g = acquire(alloc, 'a', 100);
    expect(g.refusal).toBeUndefined();
    const idle = alloc.renew({ owner: 'o', leaseId: g.leaseId, need: 0, demand: 1, reports: [], unused: 0 });
    expect(idle).toMatchObject({ granted: 0, retryAfterMs: 0 });
    expect(idle.refusal).toBeUndefined();
  });
});
