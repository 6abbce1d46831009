import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import type { QuotaConfig } from '../../../../sidecar/config/schema.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Registry } from '../../../../common/metrics/registry.js';
import { LeaseMetrics } from '../../../../sidecar/metrics/sidecar-metrics.js';
import { LeaseManager, type Reservation } from '../../../../sidecar/quota/lease-manager.js';
import { QuotaRpcError } from '../../../../sidecar/quota/quota-rpc.js';
import { UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { openDatabase, type SidecarDatabase } from '../../../../sidecar/storage/database.js';
import { fakeClock, type FakeClock } from '../../../helpers/fake-clock.js';
import { inProcessQuota, type InProcessQuota } from '../../../helpers/in-process-quota.js';

const IDENTITY = { namespace: 'demo', service: 'chat', team: '', pod: 'chat-1' };
const CONFIG: QuotaConfig = {
  tokenFile: '/nonexistent/token',
  address: 'unused:0',
  failMode: 'failOpen',
  failOpenTokensPerMinute: 3000,
  defaultOutputTokens: 1024,
  acquireTimeoutMs: 1000,
  defaultPriority: 'interactive',
};

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

function manager(quota: InProcessQuota, clock: FakeClock, db: SidecarDatabase, config: Partial<QuotaConfig> = {}, tickEveryMs = 60_000): LeaseManager {
  const m = new LeaseManager({ rpc: quota.rpc, outbox: new UsageOutbox(db), identity: () => IDENTITY, config: { ...CONFIG, ...config }, clock, logger: pino({ level: 'silent' }), tickEveryMs });
  open.push(m);
  return m;
}

function database(path = ':memory:'): SidecarDatabase {
  const db = openDatabase(path);
  open.push(db);
  return db;
}

const used = (q: InProcessQuota, scope = 'namespace/demo'): number => q.allocator.usage(scope, 'day', 1)[0]!.used;

async function refusal(p: () => unknown): Promise<GatewayError> {
  try {
    await p();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('lease manager', () => {
  it('acquires once, then reserves from the lease with no RPC while it covers the request', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const m = manager(quota, clock, database());

    const first = m.reserve('interactive', 1000);
    expect(first).toBeInstanceOf(Promise);
    const reservations: Reservation[] = [await first];
    expect(quota.calls).toEqual({ AcquireLease: 1 });
    for (let i = 0; i < 10; i++) {
      const r = m.reserve('interactive', 100);
      expect(r).not.toBeInstanceOf(Promise);
      reservations.push(r as Reservation);
    }
    expect(quota.calls).toEqual({ AcquireLease: 1 });
    expect(m.remaining('interactive')).toBe(1_000_000);

    // Settled to what each request really used; the service learns it when the lease goes back.
    reservations.forEach((r, i) => m.settle(r, 50 + i, 'gpt-4o-mini'));
    expect(m.remaining('interactive')).toBe(1_000_000 - (50 * 11 + 55));
    expect(used(quota)).toBe(0);
    await m.close();
    expect(quota.calls.ReleaseLease).toBe(1);
    expect(used(quota)).toBe(50 * 11 + 55);
    expect(used(quota, 'namespace/demo/service/chat')).toBe(50 * 11 + 55);
    expect(quota.allocator.activeLeases).toBe(0);
  });

  it('renews in the background at the low-water mark, carrying the usage reports', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const m = manager(quota, clock, database());
    let spent = 0;
    const r0 = await m.reserve('interactive', 1000);
    m.settle(r0, 1000, 'm');
    spent += 1000;
    // Spend until the balance falls under its low-water mark: a renewal starts, no request waits.
    for (let i = 0; i < 40 && quota.calls.RenewLease === undefined; i++) {
      clock.advance(100);
      const r = m.reserve('interactive', 100);
      expect(r).not.toBeInstanceOf(Promise);
      m.settle(r as Reservation, 100, 'm');
      spent += 100;
    }
    expect(quota.calls.RenewLease).toBe(1);
    await vi.waitFor(() => expect(used(quota)).toBeGreaterThan(0));
    // Everything settled before the renewal was sent went with it.
    expect(used(quota)).toBeLessThanOrEqual(spent);
    await m.close();
    expect(used(quota)).toBe(spent);
  });

  it('refuses with llmgw_quota_exhausted once the budget is spent, until the window resets, without asking again', async () => {
    const clock = fakeClock(); // 10:00 UTC
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 5000);
    const m = manager(quota, clock, database());
    let served = 0;
    for (let i = 0; i < 10; i++) {
      try {
        const r = await m.reserve('interactive', 1000);
        m.settle(r, 1000, 'm');
        served += 1000;
      } catch {
        break;
      }
    }
    // The whole budget was usable, and not a token more.
    expect(served).toBe(5000);
    const err = await refusal(() => m.reserve('interactive', 1000));
    expect(err.code).toBe('llmgw_quota_exhausted');
    expect(err.status).toBe(429);
    expect(err.retryAfterSeconds).toBe(14 * 3600);
    const calls = { ...quota.calls };
    expect(() => m.reserve('interactive', 10)).toThrow(GatewayError);
    expect(quota.calls).toEqual(calls);

    // A new day: the budget is back.
    clock.set(Date.UTC(2026, 10, 24, 0, 0, 1));
    const r = await m.reserve('interactive', 1000);
    expect(r.estimate).toBe(1000);
  });

  it('keeps lower classes above their floors', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 10_000);
    const m = manager(quota, clock, database());
    let batch = 0;
    for (;;) {
      try {
        m.settle(await m.reserve('batch', 500), 500, 'm');
        batch += 500;
      } catch (err) {
        expect((err as GatewayError).code).toBe('llmgw_quota_exhausted');
        break;
      }
    }
    expect(batch).toBe(5000); // batch stops at 50% remaining
    m.settle(await m.reserve('interactive', 500), 500, 'm');
  });

  it('fails open on what the lease holds, then under the local cap, and delivers the usage once the service is back', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const m = manager(quota, clock, database(), {}, 20);
    const held = await m.reserve('interactive', 1000);
    m.settle(held, 1000, 'm');
    quota.down = true;
    let spent = 1000;
    let err: GatewayError | undefined;
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        const r = await m.reserve('interactive', 500);
        m.settle(r, 500, 'm');
        spent += 500;
      } catch (e) {
        err = e as GatewayError;
      }
    }
    // What the lease held (3000 of its first grant of 4000) plus the 3000 tokens a minute of the fail-open cap.
    expect(err?.code).toBe('llmgw_rate_limited');
    expect(err?.status).toBe(429);
    expect(spent).toBe(1000 + 3000 + 3000);
    expect(used(quota)).toBe(0);

    quota.down = false;
    clock.advance(2001);
    await vi.waitFor(() => expect(used(quota)).toBe(spent));
    await m.close();
    expect(used(quota)).toBe(spent);
  });

  it('shows degraded mode in its metrics: 1 from the first call that failed to the next one answered, and the seconds it lasted', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const registry = new Registry();
    const metrics = new LeaseMetrics(registry);
    const m = new LeaseManager({ rpc: quota.rpc, outbox: new UsageOutbox(database()), identity: () => IDENTITY, config: CONFIG, clock, logger: pino({ level: 'silent' }), tickEveryMs: 20, metrics });
    open.push(m);
    const sample = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(registry.render())![1]);
    m.settle(await m.reserve('interactive', 1000), 1000, 'm');
    expect(sample('llmgw_quota_degraded')).toBe(0);
    expect(sample('llmgw_quota_degraded_seconds_total')).toBe(0);

    quota.down = true;
    // Spending past what the lease holds makes it renew, which fails: the outage starts.
    for (let i = 0; i < 8; i++) m.settle(await m.reserve('interactive', 500), 500, 'm');
    await vi.waitFor(() => expect(sample('llmgw_quota_degraded')).toBe(1));
    clock.advance(4000);
    expect(sample('llmgw_quota_degraded_seconds_total')).toBeCloseTo(4, 1);
    clock.advance(3000);
    expect(sample('llmgw_quota_degraded_seconds_total')).toBeCloseTo(7, 1);

    quota.down = false;
    clock.advance(2001);
    await vi.waitFor(() => expect(sample('llmgw_quota_degraded')).toBe(0));
    const total = sample('llmgw_quota_degraded_seconds_total');
    expect(total).toBeGreaterThanOrEqual(9);
    // Over: no more seconds are counted.
    clock.advance(60_000);
    expect(sample('llmgw_quota_degraded_seconds_total')).toBe(total);
  });

  it('fails closed with 503 llmgw_quota_unavailable when configured to', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.down = true;
    const m = manager(quota, clock, database(), { failMode: 'failClosed' });
    const err = await refusal(() => m.reserve('interactive', 100));
    expect(err.code).toBe('llmgw_quota_unavailable');
    expect(err.status).toBe(503);
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1);
  });

  it('keeps undelivered usage across a restart and delivers it exactly once', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-outbox-')), 'sidecar.db');

    const db1 = openDatabase(path);
    const first = manager(quota, clock, db1);
    const r = await first.reserve('interactive', 1000);
    quota.down = true;
    first.settle(r, 777, 'm');
    await first.close(); // the release fails: the record stays on disk
    db1.close();
    expect(used(quota)).toBe(0);

    quota.down = false;
    const db2 = database(path);
    const second = manager(quota, clock, db2, {}, 20);
    second.warmUp('interactive');
    await vi.waitFor(() => expect(used(quota)).toBe(777));
    await vi.waitFor(() => expect(new UsageOutbox(db2).counts().get('interactive') ?? 0).toBe(0));
    // A replay of the same sequence changes nothing.
    const outbox = new UsageOutbox(db2);
    const acked = quota.allocator.report(IDENTITY, '', outbox.incarnation('interactive'), [{ sequence: 1, tokens: 777, startedAtMs: clock.now() }]);
    expect(acked).toBe(1);
    expect(used(quota)).toBe(777);
  });

  it('refuses requests (503, whatever the fail mode) while the service refuses its credentials, and recovers once they pass', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    let refuse = true;
    const acquire = quota.rpc.acquire;
    let asked = 0;
    quota.rpc.acquire = (req, t) => {
      asked++;
      return refuse ? Promise.reject(new QuotaRpcError(grpcStatus.UNAUTHENTICATED, 'AcquireLease: UNAUTHENTICATED: expired: the token expired')) : acquire(req, t);
    };
    let refusedCount = 0;
    const m = new LeaseManager({
      rpc: quota.rpc,
      outbox: new UsageOutbox(database()),
      identity: () => IDENTITY,
      onRefused: () => refusedCount++,
      config: { ...CONFIG, failMode: 'failOpen' },
      clock,
      logger: pino({ level: 'silent' }),
      tickEveryMs: 60_000,
    });
    open.push(m);
    const err = await refusal(() => m.reserve('interactive', 100));
    expect(err.status).toBe(503);
    expect(err.code).toBe('llmgw_quota_unavailable');
    expect(err.message).toMatch(/refused this pod's credentials: .*expired/);
    expect(refusedCount).toBe(1); // the token file is read again before the next call
    // Within the back-off nothing is asked: refused at once.
    expect((await refusal(() => m.reserve('interactive', 100))).code).toBe('llmgw_quota_unavailable');
    expect(asked).toBe(1);
    refuse = false;
    clock.advance(2001);
    await m.tick();
    expect(asked).toBe(2);
    expect((await m.reserve('interactive', 100)).unlimited).toBe(false);
  });

  it('starts a new incarnation when the service forgot the old numbering (OUT_OF_RANGE), and delivers everything under it', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const db = database();
    const outbox = new UsageOutbox(db);
    // A long-lived pod numbered 20,000 records; the service lost its database since.
    db.prepare("INSERT INTO quota_meta (key, value) VALUES ('sequence:interactive', '20000')").run();
    const before = outbox.incarnation('interactive');
    const m = new LeaseManager({ rpc: quota.rpc, outbox, identity: () => IDENTITY, config: CONFIG, clock, logger: pino({ level: 'silent' }), tickEveryMs: 60_000 });
    open.push(m);
    const r = await m.reserve('interactive', 500);
    m.settle(r, 321, 'm');
    const r2 = m.reserve('interactive', 500) as Reservation;
    m.settle(r2, 79, 'm');
    await m.tick();
    clock.advance(11_000);
    await m.tick(); // the renewal carrying the records is refused: OUT_OF_RANGE
    await m.tick();
    await vi.waitFor(async () => {
      await m.tick();
      expect(used(quota)).toBe(400);
    });
    expect(outbox.incarnation('interactive')).not.toBe(before);
    expect(outbox.counts().get('interactive') ?? 0).toBe(0);
  });

  it('re-acquires when the service says its lease belongs to another identity', async () => {
    const clock = fakeClock();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const m = manager(quota, clock, database());
    m.settle(await m.reserve('interactive', 100), 100, 'm');
    const renew = quota.rpc.renew;
    quota.rpc.renew = () => Promise.reject(new QuotaRpcError(grpcStatus.PERMISSION_DENIED, 'RenewLease: PERMISSION_DENIED: lease x belongs to another identity'));
    clock.advance(11_000);
    await m.tick();
    quota.rpc.renew = renew;
    expect(quota.calls.AcquireLease).toBeGreaterThanOrEqual(2);
    // The new lease is the pod's only one, and serves.
    expect(quota.allocator.activeLeases).toBe(1);
    expect((await m.reserve('interactive', 100)).unlimited).toBe(false);
    expect(used(quota)).toBe(100);
  });
});

describe('lease manager refusals', () => {
  // One second into an hour (and a minute): window ends stay out of the way.
  const start = (): FakeClock => fakeClock(Date.UTC(2026, 10, 23, 10, 0, 1));
  const earlier = (q: InProcessQuota, tokens: number, at: number) => q.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier-pod', [{ sequence: 1, tokens, startedAtMs: at }]);

  it('keeps serving small requests right after `budget set` when a large one was refused (the ~10 s refusal race)', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    const m = manager(quota, clock, database());
    m.settle(await m.reserve('interactive', 25), 25, 'm'); // no budget yet: an unlimited lease
    quota.allocator.setBudget('namespace/demo', 'minute', 500);
    clock.advance(10_000);
    await m.tick(); // the renewal that learns of the budget
    // A request without max_tokens: its prompt plus the default 1024 output tokens, more than the budget.
    await expect(m.reserve('interactive', 1074)).rejects.toThrow(GatewayError);
    // The budget is far from spent; small requests must not be refused until the next renewal.
    expect(quota.allocator.getBudgets('namespace/demo')[0]).toMatchObject({ tokens: 500, used: 25 });
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      m.settle(await m.reserve('interactive', 60), 12, 'm');
    }
  });

  it('refuses a request larger than a whole budget window with 400 llmgw_request_exceeds_budget, and serves smaller ones at once', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'minute', 500);
    const m = manager(quota, clock, database());
    m.settle(await m.reserve('interactive', 25), 25, 'm');
    const err = await refusal(() => m.reserve('interactive', 1074));
    expect(err.code).toBe('llmgw_request_exceeds_budget');
    expect(err.status).toBe(400);
    expect(err.retryAfterSeconds).toBeUndefined();
    expect(err.message).toContain('estimated 1074 tokens');
    expect(err.message).toContain('interactive requests may use of budget namespace/demo (500 tokens a minute)');
    expect(err.message).toContain('lower max_tokens');
    expect(err.message).toContain('llmgw budget set namespace/demo --tokens N --window minute');
    // Asked again, the same answer, without a call.
    const calls = { ...quota.calls };
    expect((await refusal(() => m.reserve('interactive', 1074))).code).toBe('llmgw_request_exceeds_budget');
    expect(quota.calls).toEqual(calls);
    // The refusal of the large request is no refusal of small ones: 475 of 500 are left.
    const small = await m.reserve('interactive', 60);
    expect(small.estimate).toBe(60);
  });

  it('refuses a request larger than what is left with Retry-After to the window end, naming the budget, and admits it then', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'hour', 1000);
    earlier(quota, 700, clock.now());
    const m = manager(quota, clock, database());
    const err = await refusal(() => m.reserve('interactive', 400));
    const end = Date.UTC(2026, 10, 23, 11, 0, 0);
    expect(err.code).toBe('llmgw_quota_exhausted');
    expect(err.status).toBe(429);
    expect(err.retryAfterSeconds).toBe(Math.ceil((end - clock.now()) / 1000));
    expect(err.message).toContain('budget namespace/demo (1000 tokens a hour) has 300 tokens left for interactive requests in this hour, fewer than this request\'s estimated 400');
    expect(err.message).toContain('2026-11-23T11:00:00Z');
    // What is left still serves what fits.
    m.settle(await m.reserve('interactive', 100), 100, 'm');
    clock.advance(err.retryAfterSeconds! * 1000);
    expect((await m.reserve('interactive', 400)).estimate).toBe(400);
  });

  it('admits a request that what its class holds plus what is left covers, though the whole estimate is not left', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'hour', 1000);
    earlier(quota, 600, clock.now());
    const m = manager(quota, clock, database());
    m.settle(await m.reserve('interactive', 350), 50, 'm'); // holds 300 of the 400 left; 350 really are
    const r = await m.reserve('interactive', 340);
    expect(r.estimate).toBe(340);
    m.settle(r, 340, 'm');
    await m.close();
    expect(quota.allocator.getBudgets('namespace/demo')[0]!.used).toBe(990);
  });

  it('sees a budget raised after a refusal within a second, not at the next renewal', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'hour', 25);
    const m = manager(quota, clock, database());
    m.settle(await m.reserve('interactive', 25), 25, 'm');
    await m.tick();
    clock.advance(10_000);
    await m.tick(); // the usage is reported: the budget is spent
    const spent = await refusal(() => m.reserve('interactive', 12));
    expect(spent.code).toBe('llmgw_quota_exhausted');
    expect(spent.message).toContain('budget namespace/demo (25 tokens a hour) is spent for interactive requests in this hour');
    quota.allocator.setBudget('namespace/demo', 'hour', 500);
    clock.advance(1000);
    expect((await m.reserve('interactive', 12)).estimate).toBe(12);
  });

  it('tells a pod refused for what another pod holds when that is back, and admits it then', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    quota.allocator.setBudget('namespace/demo', 'minute', 1000);
    const pod = (name: string) =>
      new LeaseManager({ rpc: quota.rpc, outbox: new UsageOutbox(database()), identity: () => ({ ...IDENTITY, pod: name }), config: CONFIG, clock, logger: pino({ level: 'silent' }), tickEveryMs: 60_000 });
    const a = pod('a');
    const b = pod('b');
    open.push(a, b);
    // b reserved 600 and used 10: it holds the rest, idle.
    b.settle(await b.reserve('interactive', 600), 10, 'm');
    const err = await refusal(() => a.reserve('interactive', 500));
    expect(err.code).toBe('llmgw_quota_exhausted');
    expect(err.message).toMatch(/has 1000 tokens left for interactive requests in this minute, but the leases of other pods or classes hold all but \d+ of them/);
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(err.retryAfterSeconds).toBeLessThanOrEqual(14); // b renews within 10 s, and gives back at once
    clock.advance(err.retryAfterSeconds! * 1000);
    await b.tick(); // what b's timer does by then
    await vi.waitFor(() => expect(quota.allocator.getBudgets('namespace/demo')[0]!.outstanding).toBeLessThan(200));
    expect((await a.reserve('interactive', 500)).estimate).toBe(500);
  });

  it('refuses a request larger than the fail-open cap while the service is out of reach with 503, and a smaller one with an honest Retry-After', async () => {
    const clock = start();
    const quota = inProcessQuota(clock);
    quota.down = true;
    const m = manager(quota, clock, database());
    const big = await refusal(() => m.reserve('interactive', 5000));
    expect(big.code).toBe('llmgw_quota_unavailable');
    expect(big.message).toContain('quota.failOpenTokensPerMinute: 3000');
    m.settle(m.reserve('interactive', 2999) as Reservation, 2999, 'm');
    const small = await refusal(() => m.reserve('interactive', 2));
    expect(small.code).toBe('llmgw_rate_limited');
    expect(small.retryAfterSeconds).toBe(1); // 3000 a minute: 50 a second
    clock.advance(1000);
    expect((m.reserve('interactive', 2) as Reservation).estimate).toBe(2);
  });
});
