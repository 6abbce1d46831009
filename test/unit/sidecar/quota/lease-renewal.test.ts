// When the lease manager talks to the quota service (issue 18): ahead of need, not per reservation; with a
// demand that is right at any renewal frequency; at a window's end exactly, without a request waiting; and,
// without the service, within the class's share of the budget, reporting what it spent first when back.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { Registry } from '../../../../common/metrics/registry.js';
import type { AcquireLeaseRequest, RenewLeaseRequest } from '../../../../proto/messages.js';
import { windowAt } from '../../../../quota-service/windows.js';
import type { QuotaConfig } from '../../../../sidecar/config/schema.js';
import { LeaseMetrics } from '../../../../sidecar/metrics/sidecar-metrics.js';
import { DEMAND_TAU_MS, DemandRate } from '../../../../sidecar/quota/estimate.js';
import { LeaseManager, type Reservation } from '../../../../sidecar/quota/lease-manager.js';
import { UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';
import type { Priority } from '../../../../sidecar/http/caller-headers.js';
import { fakeClock, type FakeClock } from '../../../helpers/fake-clock.js';
import { inProcessQuota, type InProcessQuota } from '../../../helpers/in-process-quota.js';

const CONFIG: QuotaConfig = {
  tokenFile: '/nonexistent/token',
  address: 'unused:0',
  failMode: 'failOpen',
  failOpenTokensPerMinute: 10_000_000,
  defaultOutputTokens: 1024,
  acquireTimeoutMs: 1000,
  defaultPriority: 'interactive',
};

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** Calls as the service received them; each crosses the network in `latencyMs` each way (on the fake clock). */
function traced(quota: InProcessQuota, clock: FakeClock, latencyMs = 0) {
  const sent: { method: 'acquire' | 'renew'; req: AcquireLeaseRequest | RenewLeaseRequest }[] = [];
  const { acquire, renew } = quota.rpc;
  const hop = async <T>(call: () => Promise<T>): Promise<T> => {
    clock.advance(latencyMs);
    const res = await call();
    clock.advance(latencyMs);
    return res;
  };
  quota.rpc.acquire = (req, t) => (sent.push({ method: 'acquire', req }), hop(() => acquire(req, t)));
  quota.rpc.renew = (req, t) => (sent.push({ method: 'renew', req }), hop(() => renew(req, t)));
  return sent;
}

function manager(quota: InProcessQuota, clock: FakeClock, opts: { config?: Partial<QuotaConfig>; metrics?: LeaseMetrics; tickEveryMs?: number } = {}): LeaseManager {
  const db = openDatabase(':memory:');
  const m = new LeaseManager({
    rpc: quota.rpc,
    outbox: new UsageOutbox(db),
    identity: () => ({ namespace: 'demo', service: 'chat', team: '', pod: 'chat-1' }),
    config: { ...CONFIG, ...opts.config },
    clock,
    logger: pino({ level: 'silent' }),
    tickEveryMs: opts.tickEveryMs ?? 3_600_000,
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
  });
  open.push(db, m);
  return m;
}

/** Lets background calls to the in-process service finish. */
const settleDown = () => new Promise((r) => setImmediate(r));

/** `n` requests of `estimate` tokens, one every `everyMs`, each using `use` of it at once; counts those that had to wait. */
async function steady(m: LeaseManager, clock: FakeClock, n: number, opts: { everyMs: number; estimate: number; use?: number; priority?: Priority }): Promise<{ waited: number }> {
  let waited = 0;
  for (let i = 0; i < n; i++) {
    clock.advance(opts.everyMs);
    const r = m.reserve(opts.priority ?? 'interactive', opts.estimate);
    if (r instanceof Promise) waited++;
    m.settle(await r, Math.round(opts.estimate * (opts.use ?? 0.8)), 'm');
    await settleDown();
  }
  return { waited };
}

async function refusal(p: () => unknown): Promise<GatewayError> {
  try {
    await p();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('renewal timing', () => {
  it('renews ahead of need, about once per half its target spent, and no request of a steady class waits', async () => {
    // A minute's budget at 1.5× the class's rate, as in the issue: 200,000 tokens at 5,000 tokens/s last 40 s.
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 0, 0));
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'minute', 200_000);
    const sent = traced(quota, clock);
    const m = manager(quota, clock);
    await steady(m, clock, 30, { everyMs: 100, estimate: 500, use: 1 }); // warming up: the first request waits
    const before = sent.length;
    // 10 requests a second of 500 tokens for 20 s, while the budget is plentiful (85% to 35% left): a
    // 50,000-token target (10 s of demand) renewed when 25,000 are left.
    const { waited } = await steady(m, clock, 200, { everyMs: 100, estimate: 500, use: 1 });
    const calls = sent.length - before;
    expect(waited).toBe(0);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(calls).toBeLessThanOrEqual(6); // ≤ 0.03 calls a request
    // Each renewal waited for half the target to be spent: none asked for a waiting request.
    expect(sent.slice(before).every((c) => c.req.needTokens === 0)).toBe(true);
  });

  it('serves a crowd of requests waiting at once with one call, not one each', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 30, 0));
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'hour', 100_000);
    quota.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier', [{ sequence: 1, tokens: 99_000, startedAtMs: clock.now() }]);
    const sent = traced(quota, clock);
    const m = manager(quota, clock);
    // Ten requests arrive together; the lease (new, and small this close to the end) covers none of them.
    const crowd = Array.from({ length: 10 }, () => m.reserve('interactive', 90));
    expect(crowd.every((r) => r instanceof Promise)).toBe(true);
    const admitted = await Promise.all(crowd);
    expect(admitted).toHaveLength(10);
    // The first call went before the others arrived; the second asked for all nine left waiting.
    expect(sent.length).toBeLessThanOrEqual(2);
  });

  it('says what its running requests reserved, so a renewal sent at reservation time is sized on what it can spend', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 100_000_000);
    const sent = traced(quota, clock);
    const m = manager(quota, clock);
    await steady(m, clock, 100, { everyMs: 100, estimate: 500 });
    // Requests that do not end: the balance runs below half its target while they all still run.
    const running: Reservation[] = [];
    const before = sent.length;
    while (sent.length === before) {
      clock.advance(100);
      running.push(m.reserve('interactive', 500) as Reservation);
    }
    const renewal = sent.at(-1)!.req as RenewLeaseRequest;
    expect(renewal.inflightTokens).toBe(running.length * 500);
    await settleDown();
    // Topped up to its target from what it can spend: the running requests' estimates are on top.
    const [b] = quota.allocator.getBudgets('namespace/demo');
    expect(b!.outstanding).toBeGreaterThanOrEqual(Math.round(renewal.demandTokensPerSecond * 10) + running.length * 500 - 1);
  });

  it('declares the demand it sees, whether it renews every 100 ms or every 5 s', async () => {
    // 5,000 tokens a second, seen request by request, read at either frequency.
    for (const readEveryMs of [100, 5000]) {
      const d = new DemandRate();
      const seen: number[] = [];
      for (let t = 100; t <= 60_000; t += 100) {
        d.note(500, t);
        if (t % readEveryMs === 0) seen.push(d.rate(t));
      }
      expect(Math.abs(seen.at(-1)! - 5000)).toBeLessThan(5000 * 0.01);
    }
    // A young class is not underestimated; a quiet one decays.
    const young = new DemandRate();
    for (let t = 100; t <= 3000; t += 100) young.note(500, t);
    expect(young.rate(3000)).toBeGreaterThan(4500);
    expect(young.rate(3000 + DEMAND_TAU_MS)).toBeLessThan(young.rate(3000) / 2);
    // The manager sends it: the service hears ~5,000 tokens/s, also from a class warmed up long before its
    // first request (its history starts with that request, not with the idle start-up).
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 100_000_000);
    const sent = traced(quota, clock);
    const m = manager(quota, clock);
    m.warmUp('interactive');
    await settleDown();
    clock.advance(30_000);
    await steady(m, clock, 40, { everyMs: 100, estimate: 500 });
    expect(sent.at(-1)!.req.demandTokensPerSecond).toBeGreaterThan(4500);
    await steady(m, clock, 300, { everyMs: 100, estimate: 500 });
    const last = sent.at(-1)!.req;
    expect(last.demandTokensPerSecond).toBeGreaterThan(4500);
    expect(last.demandTokensPerSecond).toBeLessThan(5500);
  });
});

describe('window boundaries', () => {
  it('ends a spent window at its end on the service clock, not a round trip later: no refusal in the next one', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 0, 59, 400));
    const end = windowAt('minute', clock.now()).endMs;
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'minute', 1000);
    quota.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier', [{ sequence: 1, tokens: 1000, startedAtMs: clock.now() }]);
    traced(quota, clock, 100); // 100 ms each way
    const m = manager(quota, clock);
    const spent = await refusal(() => m.reserve('interactive', 100));
    expect(spent.code).toBe('llmgw_quota_exhausted');
    expect(clock.now()).toBe(end - 400); // answered 200 ms after it was sent
    // 1 ms into the next window the same request is admitted (it was refused until end + 100 ms before).
    clock.set(end + 1);
    const r = await m.reserve('interactive', 100);
    expect(r.estimate).toBe(100);
  });

  it('waits for the next window rather than refuse a request in the last moments of a spent one', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 0, 59, 700));
    const end = windowAt('minute', clock.now()).endMs;
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'minute', 1000);
    quota.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier', [{ sequence: 1, tokens: 1000, startedAtMs: clock.now() }]);
    const m = manager(quota, clock);
    // Refused 300 ms before the window ends: the request waits for it (the test moves the clock there).
    const pending = m.reserve('interactive', 100) as Promise<Reservation>;
    setTimeout(() => clock.set(end), 50);
    const r = await pending;
    expect(r.startedAtMs).toBeGreaterThanOrEqual(end);
  });

  it('starts a new window with its target spendable: the first requests at the boundary do not wait, and the accounts agree', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 0, 30));
    const end = windowAt('minute', clock.now()).endMs;
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'minute', 10_000_000);
    const sent = traced(quota, clock, 5);
    const m = manager(quota, clock);
    await steady(m, clock, 290, { everyMs: 100, estimate: 500 }); // up to 10:00:59.000 and a bit
    // 3 ms before the end, the lease still serves (its TTL, counted from the send, ended a trip earlier).
    clock.set(end - 3);
    const last = m.reserve('interactive', 500);
    expect(last).not.toBeInstanceOf(Promise);
    m.settle(last as Reservation, 400, 'm');
    clock.set(end + 1);
    const calls = sent.length;
    const first = m.reserve('interactive', 500);
    expect(first).not.toBeInstanceOf(Promise);
    const ended = m.reserve('interactive', 500) as Reservation;
    m.settle(ended, 450, 'm'); // ends before the new window's renewal goes: its usage goes with it
    // The new window's renewal goes within 2 s (spread: every pod's leases start a window at once).
    clock.advance(2000);
    const second = m.reserve('interactive', 500);
    expect(second).not.toBeInstanceOf(Promise);
    expect(sent.slice(calls).map((c) => c.method)).toEqual(['renew']);
    await settleDown();
    await settleDown();
    // The service and the sidecar agree on what the lease holds: what it can spend, and what runs.
    const lease = (m as unknown as { leases: Map<string, { balance: number; inflightTokens: number }> }).leases.get('interactive')!;
    expect(quota.allocator.getBudgets('namespace/demo')[0]!.outstanding).toBe(lease.balance + lease.inflightTokens);
    m.settle(first as Reservation, 400, 'm');
    m.settle(second as Reservation, 400, 'm');
    const { waited } = await steady(m, clock, 50, { everyMs: 100, estimate: 500 });
    expect(waited).toBe(0);
    await m.close();
    // Everything spent in the new window is charged to it, and nothing is left outstanding.
    const [b] = quota.allocator.getBudgets('namespace/demo');
    expect(b!.windowStartMs).toBe(end);
    expect(b!.used).toBe(52 * 400 + 450);
    expect(b!.outstanding).toBe(0);
  });
});

describe('degraded mode', () => {
  it('fails open within the share of the budget the service gave it, not on a full bucket, and again in the next window', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 30, 0));
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'hour', 100_000);
    quota.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier', [{ sequence: 1, tokens: 60_000, startedAtMs: clock.now() }]);
    const m = manager(quota, clock);
    let spent = 0;
    const r0 = await m.reserve('interactive', 1000);
    m.settle(r0, 1000, 'm');
    spent += 1000;
    quota.down = true;
    let err: GatewayError | undefined;
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        m.settle(await m.reserve('interactive', 1000), 1000, 'm');
        spent += 1000;
      } catch (e) {
        err = e as GatewayError;
      }
    }
    // Its lease and its allowance together: its share of half of the 40,000 left (the bucket would allow 10,000,000).
    expect(err?.code).toBe('llmgw_quota_unavailable');
    expect(err?.status).toBe(503);
    expect(err?.message).toContain('its share of the budget');
    expect(spent).toBe(20_000);
    // A new window: its share of half of the whole budget.
    clock.set(Date.UTC(2026, 10, 23, 11, 0, 1));
    let next = 0;
    for (let i = 0; i < 100; i++) {
      try {
        m.settle(await m.reserve('interactive', 1000), 1000, 'm');
        next += 1000;
      } catch {
        break;
      }
    }
    expect(next).toBe(50_000);
  });

  it('keeps the floors while failing open: batch spends nothing below its floor', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 30, 0));
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'hour', 100_000); // batch stops at 50% left
    quota.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier', [{ sequence: 1, tokens: 45_000, startedAtMs: clock.now() }]);
    const m = manager(quota, clock);
    m.settle(await m.reserve('batch', 1000), 1000, 'm'); // 5,000 above the floor: a lease of 4,000 (four of its largest requests)
    quota.down = true;
    let spent = 1000;
    for (let i = 0; i < 100; i++) {
      try {
        m.settle(await m.reserve('batch', 1000), 1000, 'm');
        spent += 1000;
      } catch (e) {
        expect((e as GatewayError).code).toBe('llmgw_quota_unavailable');
        break;
      }
    }
    expect(spent).toBeLessThanOrEqual(5000);
  });

  it('delivers what it spent without the service with its first call once back, before anything is granted', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 10, 30, 0));
    const quota = inProcessQuota(clock, { leaseTtlMs: 6000 });
    quota.allocator.setBudget('namespace/demo', 'hour', 1_000_000);
    const sent = traced(quota, clock);
    const m = manager(quota, clock);
    m.settle(await m.reserve('interactive', 1000), 1000, 'm');
    quota.down = true;
    let outage = 0;
    for (let i = 0; i < 20; i++) {
      m.settle(await m.reserve('interactive', 1000), 900, 'm');
      outage += 900;
    }
    // Long enough for the service to let the lease lapse: the pod acquires anew, with its usage.
    clock.advance(10_000);
    quota.down = false;
    const before = sent.length;
    await m.tick();
    await settleDown();
    // Its renewal finds the lease gone (NOT_FOUND); the acquire that follows carries the usage.
    expect(sent.slice(before).map((c) => c.method)).toEqual(['renew', 'acquire']);
    expect((sent[before + 1]!.req as AcquireLeaseRequest).reports!.reduce((n, r) => n + r.tokens, 0)).toBe(1000 + outage);
    expect(quota.allocator.usage('namespace/demo', 'hour', 1)[0]!.used).toBe(1000 + outage);
  });
});

describe('lease metrics', () => {
  it('shows the tokens each class holds, its calls by reason, and the requests that waited and for how long, also to the service', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 100_000_000);
    traced(quota, clock, 3); // 6 ms round trips
    const registry = new Registry();
    const metrics = new LeaseMetrics(registry);
    const m = manager(quota, clock, { metrics });
    await steady(m, clock, 300, { everyMs: 100, estimate: 500 });
    const text = registry.render();
    expect(metrics.waits.get({ priority: 'interactive' })).toBe(1);
    expect(text).toContain('llmgw_quota_wait_seconds_bucket{priority="interactive",le="0.005"} 0');
    expect(text).toContain('llmgw_quota_wait_seconds_bucket{priority="interactive",le="0.01"} 1');
    expect(metrics.renewals.get({ priority: 'interactive', reason: 'request' })).toBe(1);
    expect(metrics.renewals.get({ priority: 'interactive', reason: 'ahead' })).toBeGreaterThan(0);
    const held = /llmgw_quota_lease_tokens\{priority="interactive"\} (\d+)/.exec(text);
    expect(Number(held?.[1])).toBeGreaterThan(0);
    // The service hears of the wait with the class's next call: one request, 6 ms.
    expect(quota.metrics.waitedRequests.get({ priority: 'interactive' })).toBe(1);
    expect(quota.metrics.waitedSeconds.get({ priority: 'interactive' })).toBeCloseTo(0.006, 6);
    expect(quota.metrics.grants.get({ priority: 'interactive', result: 'granted' })).toBeGreaterThan(1);
  });
});
