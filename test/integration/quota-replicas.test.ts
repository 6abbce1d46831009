// Several quota-service replicas over one real PostgreSQL: leases live in the database (any replica renews
// or releases any lease), grants from one budget window never add up past it whichever replicas hand them
// out, and a report is applied once whichever replica receives it. Fifty sidecar lease clients race for
// one budget at 1.5x its rate, spread over the replicas, on one fake clock shared with them.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../common/errors.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { windowAt } from '../../quota-service/windows.js';
import { LeaseManager, type Reservation } from '../../sidecar/quota/lease-manager.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { createGrpcQuotaClient } from '../../sidecar/quota/quota-client.js';
import { QuotaRpcError } from '../../sidecar/quota/quota-rpc.js';
import { UsageOutbox } from '../../sidecar/quota/usage-outbox.js';
import { openDatabase } from '../../sidecar/storage/database.js';
import { fakeClock, type FakeClock } from '../helpers/fake-clock.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { prng } from '../helpers/prng.js';

const silent = pino({ level: 'silent' });
let pg: TestPostgres;
const stopping: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  for (const s of stopping.splice(0).reverse()) await s();
  await pg?.stop();
});


async function replicas(n: number, clock: FakeClock, storeUrl: string): Promise<QuotaService[]> {
  const out: QuotaService[] = [];
  for (let i = 0; i < n; i++) {
    const q = await startQuotaService({
      listen: { host: '127.0.0.1', port: 0 },
      statusListen: { host: '127.0.0.1', port: 0 },
      dbPath: '/nonexistent/not-used.db',
      storeUrl,
      logger: silent,
      clock,
      auth: { mode: 'none' },
    });
    stopping.push(() => q.stop());
    out.push(q);
  }
  return out;
}

const CONFIG = { tokenFile: '/nonexistent/token', failMode: 'failClosed', failOpenTokensPerMinute: 1, defaultOutputTokens: 1024, acquireTimeoutMs: 5000, defaultPriority: 'interactive' } as const;

function client(address: string, clock: FakeClock, i: number) {
  const rpc = createGrpcQuotaClient(address, { token: () => '' });
  const db = openDatabase(':memory:');
  const manager = new LeaseManager({ rpc, outbox: new UsageOutbox(db), identity: () => ({ namespace: 'race', service: `svc-${i % 5}`, team: '', pod: `pod-${i}` }), config: { address, ...CONFIG }, clock, logger: silent });
  stopping.push(() => void db.close());
  return { manager, rpc };
}

describe('replicas over one PostgreSQL', () => {
  it('a lease acquired at one replica is renewed and released at another; a report is applied once whichever replica gets it', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
    const [a, b] = await replicas(2, clock, await pg.createDatabase());
    await a!.allocator.setBudget('namespace/race', 'day', 1_000_000);
    const identity = { namespace: 'race', service: 'web', pod: 'p1' };
    const g = await a!.allocator.acquire({ identity, owner: '', priority: 'interactive', incarnation: 'inc-1', need: 1000, demand: 100 });
    expect(g.granted).toBeGreaterThanOrEqual(1000);
    const report = { sequence: 1, tokens: 400, startedAtMs: clock.now() };
    const r = await b!.allocator.renew({ leaseId: g.leaseId, owner: '', need: 0, demand: 100, reports: [report], unused: 0 });
    expect(r.acked).toBe(1);
    // The same report again, at the other replica (a retry after a lost answer): not counted twice.
    expect(await a!.allocator.report(identity, '', 'inc-1', [report])).toBe(1);
    const [day] = await b!.allocator.usage('namespace/race', 'day', 1);
    expect(day!.used).toBe(400);
    const views = await a!.allocator.getBudgets('namespace/race');
    expect(views[0]!.outstanding).toBe(r.leaseTokens);
    expect((await b!.allocator.release(g.leaseId, '', [])).acked).toBe(1);
    expect((await a!.allocator.getBudgets('namespace/race'))[0]!.outstanding).toBe(0);
    await expect(a!.allocator.renew({ leaseId: g.leaseId, owner: '', need: 0, demand: 1, reports: [], unused: 0 })).rejects.toThrow(/unknown or expired/);
  });

  it('a claim made at one replica makes the holder give back at another (claims live with the lease rows)', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
    const [a, b] = await replicas(2, clock, await pg.createDatabase());
    await a!.allocator.setBudget('namespace/demo', 'hour', 100_000, { batch: 0.1, background: 0.1 });
    await a!.allocator.report({ namespace: 'demo', service: '', pod: 'earlier' }, '', 'earlier', [{ sequence: 1, tokens: 80_000, startedAtMs: clock.now() }]);
    const acquire = (at: QuotaService, pod: string, need: number) =>
      at.allocator.acquire({ owner: '', identity: { namespace: 'demo', service: '', pod }, priority: 'background', incarnation: pod, need, demand: 100 });
    const holder = await a!.allocator.acquire({ owner: '', identity: { namespace: 'demo', service: '', pod: 'g' }, priority: 'background', incarnation: 'g', need: 0, demand: 100 });
    expect(holder.leaseTokens).toBe(1000);
    // Needs more than is free for background; the holder holds part of it: refused as held, at replica B.
    expect((await acquire(b!, 'wb', 9500)).refusal).toMatchObject({ reason: 'held' });
    // The holder renews at replica A: told to give back.
    expect((await a!.allocator.renew({ owner: '', leaseId: holder.leaseId, need: 0, demand: 100, reports: [], unused: 0 })).giveBack).toBe(true);
  });

  it('counts an incarnation\'s grants and reports across replicas: no false over-report, one true one', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
    const [a, b] = await replicas(2, clock, await pg.createDatabase());
    await a!.allocator.setBudget('namespace/cov', 'day', 100_000_000);
    const identity = { namespace: 'cov', service: '', pod: 'p' };
    const g = await a!.allocator.acquire({ identity, owner: '', priority: 'interactive', incarnation: 'cov-1', need: 400_000, demand: 100_000 });
    expect(g.granted).toBeGreaterThanOrEqual(400_000);
    const overReports = async (q: QuotaService): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${q.statusAddress.port}/metrics`)).text();
      return Number(/^llmgw_quota_over_reports_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    // Reported at the replica that granted nothing: within what the lease was granted at the other.
    await b!.allocator.report(identity, '', 'cov-1', [{ sequence: 1, tokens: 400_000, startedAtMs: clock.now() }]);
    expect(await overReports(b!)).toBe(0);
    // Far beyond it: flagged once, whichever replica gets the reports.
    await b!.allocator.report(identity, '', 'cov-1', [{ sequence: 2, tokens: 2_000_000, startedAtMs: clock.now() }]);
    await a!.allocator.report(identity, '', 'cov-1', [{ sequence: 3, tokens: 2_000_000, startedAtMs: clock.now() }]);
    expect((await overReports(a!)) + (await overReports(b!))).toBe(1);
  });

  it('a database that stops answering: lease calls are UNAVAILABLE (sent again elsewhere), and the replica is not ready', async () => {
    const own = await startPostgres();
    stopping.push(() => own.stop());
    const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
    const [q] = await replicas(1, clock, await own.createDatabase());
    const rpc = createGrpcQuotaClient(`127.0.0.1:${q!.address.port}`, { token: () => '' });
    stopping.push(() => rpc.close());
    const ask = { identity: { namespace: 'gone', service: 'web', team: '', pod: 'p' }, priority: 'PRIORITY_INTERACTIVE' as const, incarnation: 'gone-1', needTokens: 10, demandTokensPerSecond: 1, reports: [] };
    await rpc.acquire(ask, 5000);
    const ready = async (): Promise<number> => (await fetch(`http://127.0.0.1:${q!.statusAddress.port}/healthz/ready`)).status;
    expect(await ready()).toBe(200);
    await own.stop();
    const err = await rpc.acquire(ask, 8000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuotaRpcError);
    expect((err as QuotaRpcError).code).toBe(grpcStatus.UNAVAILABLE);
    expect((err as Error).message).toMatch(/database is unavailable/);
    // The readiness probe follows the database within a couple of its pings (one a second).
    const deadline = Date.now() + 5000;
    while ((await ready()) !== 503 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await ready()).toBe(503);
  }, 30_000);

  it('lease calls carrying NaN or infinite numbers are answered, and do not fail the other calls of their batch', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
    const [q] = await replicas(1, clock, await pg.createDatabase());
    await q!.allocator.setBudget('namespace/odd', 'day', 1_000_000);
    const rpc = createGrpcQuotaClient(`127.0.0.1:${q!.address.port}`, { token: () => '' });
    stopping.push(() => rpc.close());
    const ask = (i: number, numbers: { demandTokensPerSecond: number; requestTokens?: number }) =>
      rpc.acquire({ identity: { namespace: 'odd', service: 'web', team: '', pod: `p-${i}` }, priority: 'PRIORITY_INTERACTIVE', incarnation: `odd-${i}`, needTokens: 10, reports: [], ...numbers }, 5000);
    const answers = await Promise.allSettled([
      ask(0, { demandTokensPerSecond: 5 }),
      ask(1, { demandTokensPerSecond: NaN }),
      ask(2, { demandTokensPerSecond: 5, requestTokens: Infinity }),
      ask(3, { demandTokensPerSecond: -Infinity }),
      ask(4, { demandTokensPerSecond: 5 }),
    ]);
    expect(answers.map((a) => a.status)).toEqual(Array(5).fill('fulfilled'));
    expect((await q!.allocator.getBudgets('namespace/odd'))[0]!.outstanding).toBeGreaterThanOrEqual(50);
  });

  it('50 clients over 2 replicas at 1.5x a per-minute budget: grants never exceed a window, usage recorded exactly, nothing refused before 98%', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
    const services = await replicas(2, clock, await pg.createDatabase());
    const budget = 6_000_000;
    await services[0]!.allocator.setBudget('namespace/race', 'minute', budget);
    const clients = Array.from({ length: 50 }, (_, i) => client(`127.0.0.1:${services[i % services.length]!.address.port}`, clock, i));
    const random = prng(42);
    const stepMs = 250;
    const windowMs = 60_000;
    const meanUse = 1000 * 0.775;
    const perStep = (1.5 * budget * stepMs) / windowMs / meanUse;
    const ledger = new Map<number, number>();
    const refusedAt: number[] = [];
    const other: string[] = [];
    let worst = 0;
    let inflight: { client: LeaseManager; res: Reservation; used: number; doneAt: number }[] = [];
    let carry = 0;
    for (let step = 0; step < 4 * 60 * 2 - 1; step++) {
      clock.advance(stepMs);
      await Promise.all(clients.map((c) => c.manager.tick()));
      const window = windowAt('minute', clock.now()).startMs;
      carry += perStep;
      const n = Math.floor(carry);
      carry -= n;
      const asks = Array.from({ length: n }, () => {
        const c = clients[Math.floor(random() * clients.length)]!.manager;
        const estimate = 500 + Math.floor(random() * 1000);
        return { c, estimate, used: Math.round(estimate * (0.5 + random() * 0.55)) };
      });
      const admitted = await Promise.all(
        asks.map(async (a) => {
          try {
            return { ...a, res: await a.c.reserve('interactive', a.estimate) };
          } catch (err) {
            if (err instanceof GatewayError && err.code === 'llmgw_quota_exhausted') refusedAt.push(ledger.get(window) ?? 0);
            else other.push(String(err));
            return undefined;
          }
        }),
      );
      for (const a of admitted) {
        if (a === undefined) continue;
        ledger.set(window, (ledger.get(window) ?? 0) + a.used);
        inflight.push({ client: a.c, res: a.res, used: a.used, doneAt: step + 2 });
      }
      for (const f of inflight) if (f.doneAt <= step) f.client.settle(f.res, f.used, 'gpt-4o-mini');
      inflight = inflight.filter((f) => f.doneAt > step);
      // The invariant, as the database holds it: what was consumed and what leases hold never pass the limit.
      if (step % 8 === 0) {
        const [v] = await services[step % 2]!.allocator.getBudgets('namespace/race');
        worst = Math.max(worst, (v!.used + v!.outstanding) / budget);
      }
    }
    for (const f of inflight) f.client.settle(f.res, f.used, 'gpt-4o-mini');
    await Promise.all(clients.map((c) => c.manager.close()));
    for (const c of clients) c.rpc.close();
    const recorded = new Map<number, number>();
    const minutes = await services[1]!.allocator.usage('namespace/race', 'minute', 10);
    for (const w of ledger.keys()) recorded.set(w, minutes.find((u) => u.startMs === w)?.used ?? 0);
    console.log('replicas race', { worst: worst.toFixed(4), ledger: [...ledger.values()], refusals: refusedAt.length, firstRefusalAt: Math.min(...refusedAt) / budget });
    expect(other).toEqual([]);
    expect(recorded).toEqual(ledger);
    expect(worst).toBeLessThanOrEqual(1.03);
    expect([...ledger.keys()]).toHaveLength(2);
    for (const used of ledger.values()) {
      expect(used).toBeGreaterThanOrEqual(budget * 0.98);
      expect(used).toBeLessThanOrEqual(budget * 1.03);
    }
    expect(refusedAt.length).toBeGreaterThan(0);
    for (const at of refusedAt) expect(at).toBeGreaterThanOrEqual(budget * 0.98);
  }, 120_000);
});
