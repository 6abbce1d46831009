// Fifty sidecar lease clients race for one dollar budget at 1.5× its rate, over real gRPC, on one fake
// clock shared with the quota service: the overshoot targets hold in dollars as they do in tokens
// (quota-race.test.ts). Requests reserve a priced estimate and cost somewhat less or a little more (the
// estimate error); the service charges by its own table (every token $1 per million: 1,000 nano-USD), so
// its ledger in dollars is the test's own, exactly.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../common/errors.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { windowAt, type WindowName } from '../../quota-service/windows.js';
import { LeaseManager, type Reservation } from '../../sidecar/quota/lease-manager.js';
import { createGrpcQuotaClient } from '../../sidecar/quota/quota-client.js';
import { UsageOutbox } from '../../sidecar/quota/usage-outbox.js';
import { openDatabase } from '../../sidecar/storage/database.js';
import { fakeClock } from '../helpers/fake-clock.js';
import { prng } from '../helpers/prng.js';

const silent = pino({ level: 'silent' });


interface Race {
  window: WindowName;
  budget: number;
  stepMs: number;
  steps: number;
  leaseTtlMs: number;
}

interface RaceResult {
  /** Nano-USD spent per window start, by the test's own ledger. */
  ledger: Map<number, number>;
  /** What the service recorded for the same windows. */
  recorded: Map<number, number>;
  /** Nano-USD already spent in its window when each refusal happened. */
  refusedAt: number[];
  other: string[];
}

const CLIENTS = 50;
const NANO_PER_TOKEN = 1000;
const usd = (dollars: number): number => Math.round(dollars * 1e9);
const stopping: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stopping.splice(0).reverse()) await s();
});

async function race(r: Race): Promise<RaceResult> {
  const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-usd-race-'));
  const pricesFile = join(dir, 'prices.yaml');
  writeFileSync(pricesFile, 'default: { input: 1, output: 1 }\nmodels: { openai: { gpt-4o-mini: { input: 1, output: 1 } } }\n');
  const service: QuotaService = await startQuotaService({
    pricesFile,
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: silent,
    clock,
    leaseTtlMs: r.leaseTtlMs,
    // What is raced here is the allocation; who may call is quota-auth.test.ts's concern.
    auth: { mode: 'none' },
  });
  stopping.push(() => service.stop());
  await service.allocator.setBudget('namespace/race', r.window, r.budget, undefined, 'usd');
  const address = `127.0.0.1:${service.address.port}`;
  const config = { address, tokenFile: '/nonexistent/token', failMode: 'failClosed', failOpenTokensPerMinute: 1, defaultOutputTokens: 1024, acquireTimeoutMs: 5000, defaultPriority: 'interactive' } as const;
  const clients = Array.from({ length: CLIENTS }, (_, i) => {
    const rpc = createGrpcQuotaClient(address, { token: () => '' });
    const db = openDatabase(':memory:');
    const manager = new LeaseManager({ rpc, outbox: new UsageOutbox(db), identity: () => ({ namespace: 'race', service: `svc-${i % 5}`, team: '', pod: `pod-${i}` }), config, clock, logger: silent });
    stopping.push(async () => void db.close());
    return { manager, rpc };
  });

  // 1.5× the budget's rate in actual dollars; estimates average $0.001 (1000 tokens) and requests cost
  // 50–105% of theirs.
  const random = prng(42);
  const windowMs = windowAt(r.window, clock.now()).endMs - clock.now();
  const meanUse = 1000 * NANO_PER_TOKEN * 0.775;
  const perStep = (1.5 * r.budget * r.stepMs) / windowMs / meanUse;
  const ledger = new Map<number, number>();
  const refusedAt: number[] = [];
  const other: string[] = [];
  let inflight: { client: LeaseManager; res: Reservation; used: number; window: number; doneAt: number }[] = [];
  let carry = 0;
  for (let step = 0; step < r.steps; step++) {
    clock.advance(r.stepMs);
    // What the clients' timers would have done by now.
    await Promise.all(clients.map((c) => c.manager.tick()));
    const now = clock.now();
    const window = windowAt(r.window, now).startMs;
    carry += perStep;
    const n = Math.floor(carry);
    carry -= n;
    const asks = Array.from({ length: n }, () => {
      const client = clients[Math.floor(random() * CLIENTS)]!.manager;
      const estimate = 500 + Math.floor(random() * 1000);
      const used = Math.round(estimate * (0.5 + random() * 0.55));
      return { client, estimate, used };
    });
    const admitted = await Promise.all(
      asks.map(async (a) => {
        try {
          return { ...a, res: await a.client.reserve('interactive', a.estimate, a.estimate * NANO_PER_TOKEN) };
        } catch (err) {
          if (err instanceof GatewayError && err.code === 'llmgw_quota_exhausted') refusedAt.push(ledger.get(window) ?? 0);
          else other.push(String(err));
          return undefined;
        }
      }),
    );
    for (const a of admitted) {
      if (a === undefined) continue;
      ledger.set(window, (ledger.get(window) ?? 0) + a.used * NANO_PER_TOKEN);
      // A request takes two steps to answer, so there is always spending in flight.
      inflight.push({ client: a.client, res: a.res, used: a.used, window, doneAt: step + 2 });
    }
    for (const f of inflight) if (f.doneAt <= step) f.client.settle(f.res, f.used, 'gpt-4o-mini', undefined, undefined, undefined, f.used * NANO_PER_TOKEN);
    inflight = inflight.filter((f) => f.doneAt > step);
  }
  for (const f of inflight) f.client.settle(f.res, f.used, 'gpt-4o-mini', undefined, undefined, undefined, f.used * NANO_PER_TOKEN);
  // Leases go back with the last usage reports.
  await Promise.all(clients.map((c) => c.manager.close()));
  for (const c of clients) c.rpc.close();
  const recorded = new Map<number, number>();
  for (const w of ledger.keys()) recorded.set(w, (await service.allocator.usage('namespace/race', r.window, 10_000)).find((u) => u.startMs === w)?.costNano ?? 0);
  return { ledger, recorded, refusedAt, other };
}

describe('dollar budget under a race of 50 lease clients over gRPC', () => {
  it('keeps a per-minute dollar budget within 103%, refusing nothing before 98% is used', async () => {
    const budget = usd(6);
    const res = await race({ window: 'minute', budget, stepMs: 250, steps: 4 * 60 * 2 - 1, leaseTtlMs: 30_000 });
    expect(res.other).toEqual([]);
    expect(res.recorded).toEqual(res.ledger);
    expect([...res.ledger.keys()]).toHaveLength(2);
    for (const used of res.ledger.values()) {
      expect(used).toBeGreaterThanOrEqual(budget * 0.98);
      expect(used).toBeLessThanOrEqual(budget * 1.03);
    }
    expect(res.refusedAt.length).toBeGreaterThan(0);
    expect(Math.min(...res.refusedAt)).toBeGreaterThanOrEqual(budget * 0.98);
  }, 60_000);

  it('keeps a per-day dollar budget within 100.5%, refusing nothing before 98% is used', async () => {
    const budget = usd(2);
    const res = await race({ window: 'day', budget, stepMs: 60_000, steps: 24 * 60 - 1, leaseTtlMs: 15 * 60_000 });
    expect(res.other).toEqual([]);
    expect(res.recorded).toEqual(res.ledger);
    const used = [...res.ledger.values()][0]!;
    expect(used).toBeGreaterThanOrEqual(budget * 0.98);
    expect(used).toBeLessThanOrEqual(budget * 1.005);
    expect(res.refusedAt.length).toBeGreaterThan(0);
    expect(Math.min(...res.refusedAt)).toBeGreaterThanOrEqual(budget * 0.98);
  }, 60_000);
});
