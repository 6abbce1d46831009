// A replica's lease calls that arrive together share one transaction over PostgreSQL (replicated-allocator.ts):
// they run in order on one Allocator, so what one grants the next sees; a call that fails is answered with
// its error and writes nothing, while the others of its batch are applied.
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgQuotaStore } from '../../quota-service/postgres/pg-store.js';
import { ReplicatedAllocator } from '../../quota-service/postgres/replicated-allocator.js';
import { fakeClock } from '../helpers/fake-clock.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

let pg: TestPostgres;
const stores: PgQuotaStore[] = [];

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  for (const s of stores.splice(0)) await s.close();
  await pg?.stop();
});

/** A replica whose transactions are counted. */
async function replica() {
  const store = await PgQuotaStore.open(await pg.createDatabase());
  stores.push(store);
  let transactions = 0;
  const inOne = store.inOneTransaction.bind(store);
  store.inOneTransaction = (fn) => {
    transactions++;
    return inOne(fn);
  };
  const clock = fakeClock(Date.UTC(2026, 10, 23, 0, 0, 0));
  return { alloc: new ReplicatedAllocator(store, { clock }), clock, transactions: () => transactions };
}

const identity = (i: number) => ({ namespace: 'batch', service: 'web', pod: `pod-${i}` });

describe("a replica's batches of lease calls", () => {
  it('runs the calls of one turn in one transaction, and never grants past the window across them', async () => {
    const { alloc, transactions } = await replica();
    await alloc.setBudget('namespace/batch', 'hour', 10_000);
    const before = transactions();
    // Twenty sidecars each asking for a fifth of the window at once.
    const grants = await Promise.all(
      Array.from({ length: 20 }, (_, i) => alloc.acquire({ identity: identity(i), owner: '', priority: 'interactive', incarnation: `inc-${i}`, need: 2_000, demand: 100 })),
    );
    // At most two transactions run at once: the first call's, then the rest together.
    expect(transactions() - before).toBeLessThanOrEqual(3);
    const held = grants.reduce((n, g) => n + g.leaseTokens, 0);
    expect(held).toBeLessThanOrEqual(10_000);
    expect((await alloc.getBudgets('namespace/batch'))[0]!.outstanding).toBe(held);
  });

  it('answers the failing calls of a batch with their errors and applies the others once', async () => {
    const { alloc, clock, transactions } = await replica();
    await alloc.setBudget('namespace/batch', 'day', 1_000_000);
    const leases = await Promise.all([0, 1, 2].map((i) => alloc.acquire({ identity: identity(i), owner: 'owner-a', priority: 'interactive', incarnation: `inc-${i}`, need: 100, demand: 10 })));
    const before = transactions();
    const report = (tokens: number) => [{ sequence: 1, tokens, startedAtMs: clock.now() }];
    const results = await Promise.allSettled([
      alloc.renew({ leaseId: leases[0]!.leaseId, owner: 'owner-a', need: 0, demand: 10, unused: 0, reports: report(100) }),
      // Unknown lease: NOT_FOUND.
      alloc.renew({ leaseId: 'no-such-lease', owner: 'owner-a', need: 0, demand: 10, unused: 0, reports: report(1_000) }),
      // Another identity reporting for an incarnation that is owner-a's: PERMISSION_DENIED.
      alloc.report({ namespace: 'batch', service: 'web', pod: 'pod-1' }, 'someone-else', 'inc-1', report(5_000)),
      alloc.renew({ leaseId: leases[2]!.leaseId, owner: 'owner-a', need: 0, demand: 10, unused: 0, reports: report(300) }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: status.NOT_FOUND });
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: status.PERMISSION_DENIED });
    // One batch, run again without each failing call.
    expect(transactions() - before).toBeGreaterThanOrEqual(2);
    const [day] = await alloc.usage('namespace/batch', 'day', 1);
    expect(day!.used).toBe(400);
  });
});
