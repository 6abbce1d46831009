// One set of store behaviours run against every QuotaStore: SQLite (through asyncStore) and PostgreSQL (a
// real server from test/helpers/postgres.ts). Each test gets an empty store (a fresh database in PostgreSQL).
import { describe, expect, it } from 'vitest';
import { asyncStore } from '../helpers/async-store.js';
import { PgQuotaStore } from '../../quota-service/postgres/pg-store.js';
import { MAX_MODELS_PER_WINDOW, OTHER_MODEL, type BudgetRow, type LeaseRow, type QuotaStore } from '../../quota-service/store-api.js';
import { SqliteQuotaStore } from '../../quota-service/store.js';
import { windowAt, windowBefore } from '../../quota-service/windows.js';
import { postgresPerFile } from '../helpers/postgres-per-file.js';

const NOW = Date.UTC(2026, 10, 23, 10, 0, 0);
const HOUR = windowAt('hour', NOW);
const DAY = windowAt('day', NOW);
const kinds = (input: number, output: number, cachedInput = 0, cacheWrite = 0) => ({ input, output, cachedInput, cacheWrite });
const totals = (input: number, output: number, costNano: number) => ({ ...kinds(input, output), costNano });

const server = postgresPerFile();

const implementations: { name: string; open: () => Promise<QuotaStore> }[] = [
  { name: 'SQLite', open: async () => asyncStore(new SqliteQuotaStore(':memory:')) },
  { name: 'PostgreSQL', open: async () => PgQuotaStore.open(await server().createDatabase()) },
];

describe.each(implementations)('$name store', ({ open }) => {
  /** Runs `fn` on an empty store, closed afterwards whatever happens. */
  async function withStore(fn: (s: QuotaStore) => Promise<void>): Promise<void> {
    const s = await open();
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  }

  it('keeps a token and a USD budget side by side, lists token budgets first, and updates one in place', () =>
    withStore(async (s) => {
      const b = (scope: string, window: BudgetRow['window'], unit: BudgetRow['unit'], tokens: number): BudgetRow => ({ scope, window, unit, tokens, batchFloor: 0.2, backgroundFloor: 0.1 });
      await s.upsertBudget(b('team/core', 'month', 'usd', 5_000_000_000_000));
      await s.upsertBudget(b('team/core', 'day', 'tokens', 1000));
      await s.upsertBudget(b('team/core', 'day', 'usd', 3_000_000_000));
      await s.upsertBudget(b('namespace/a', 'hour', 'tokens', 50));
      // Byte order, as SQLite sorts, whatever the database's collation (en-US would put 'team/B' last).
      for (const scope of ['team/ab', 'team/B', 'team/a-b']) await s.upsertBudget(b(scope, 'day', 'tokens', 1));
      await s.upsertBudget({ ...b('team/core', 'day', 'tokens', 2000), batchFloor: 0.5, backgroundFloor: 0.25 });
      expect(await s.budgets()).toEqual([
        b('namespace/a', 'hour', 'tokens', 50),
        b('team/B', 'day', 'tokens', 1),
        b('team/a-b', 'day', 'tokens', 1),
        b('team/ab', 'day', 'tokens', 1),
        { ...b('team/core', 'day', 'tokens', 2000), batchFloor: 0.5, backgroundFloor: 0.25 },
        b('team/core', 'day', 'usd', 3_000_000_000),
        b('team/core', 'month', 'usd', 5_000_000_000_000),
      ]);
    }));

  it('deletes budgets by window and unit, and counts what it deleted', () =>
    withStore(async (s) => {
      for (const window of ['day', 'month'] as const) {
        for (const unit of ['tokens', 'usd'] as const) await s.upsertBudget({ scope: 'team/core', window, unit, tokens: 10, batchFloor: 0, backgroundFloor: 0 });
      }
      await s.upsertBudget({ scope: 'team/other', window: 'day', unit: 'tokens', tokens: 10, batchFloor: 0, backgroundFloor: 0 });
      expect(await s.deleteBudget('team/core', 'day', 'usd')).toBe(1);
      expect(await s.deleteBudget('team/core', 'day', 'usd')).toBe(0);
      expect(await s.deleteBudget('team/core', 'month')).toBe(2);
      expect((await s.budgets()).map((r) => `${r.scope} ${r.window} ${r.unit}`)).toEqual(['team/core day tokens', 'team/other day tokens']);
      expect(await s.deleteBudget('team/core', undefined)).toBe(1);
      expect((await s.budgets()).map((r) => r.scope)).toEqual(['team/other']);
    }));

  it('adds usage into its window: tokens, tokens by kind and cost, nothing for other windows', () =>
    withStore(async (s) => {
      await s.addUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, 100, kinds(70, 30, 20, 5), 1_500);
      await s.addUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, 10, kinds(4, 6), 250);
      await s.addUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, 7);
      await s.addUsage('team/core', 'day', DAY.startMs, DAY.endMs, 1);
      expect(await s.used('team/core', 'hour', HOUR.startMs)).toBe(117);
      expect(await s.costNano('team/core', 'hour', HOUR.startMs)).toBe(1_750);
      expect(await s.totals('team/core', 'hour', HOUR.startMs)).toEqual({ input: 74, output: 36, cachedInput: 20, cacheWrite: 5, costNano: 1_750 });
      expect(await s.used('team/core', 'day', DAY.startMs)).toBe(1);
      expect(await s.used('team/core', 'hour', HOUR.startMs - 3_600_000)).toBe(0);
      expect(await s.costNano('team/none', 'hour', HOUR.startMs)).toBe(0);
      expect(await s.totals('team/none', 'hour', HOUR.startMs)).toEqual({ input: 0, output: 0, cachedInput: 0, cacheWrite: 0, costNano: 0 });
    }));

  it('keeps counts beyond 32 bits exactly, up to 2^53 - 1', () =>
    withStore(async (s) => {
      const big = Number.MAX_SAFE_INTEGER - 10;
      await s.addUsage('team/core', 'month', 0, 1, 5_000_000_000, kinds(4_000_000_000, 1_000_000_000), big);
      await s.addUsage('team/core', 'month', 0, 1, 1, kinds(1, 0), 10);
      expect(await s.used('team/core', 'month', 0)).toBe(5_000_000_001);
      expect(await s.costNano('team/core', 'month', 0)).toBe(Number.MAX_SAFE_INTEGER);
    }));

  it('adds usage per tag value and lists a key\'s values, most used first', () =>
    withStore(async (s) => {
      const add = (key: string, value: string, tokens: number, cost: number) => s.addTaggedUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, { key, value }, tokens, cost);
      await add('feature', 'search', 10, 100);
      await add('feature', 'chat', 30, 50);
      await add('feature', 'search', 25, 100);
      await add('feature', 'ask', 30, 7);
      await add('user', 'alice', 99, 1);
      expect(await s.taggedUsage('team/core', 'hour', HOUR.startMs, 'feature')).toEqual([
        { value: 'search', used: 35, costNano: 200 },
        { value: 'ask', used: 30, costNano: 7 },
        { value: 'chat', used: 30, costNano: 50 },
      ]);
      expect(await s.taggedUsage('team/core', 'hour', HOUR.startMs, 'none')).toEqual([]);
    }));

  it('adds usage per model and lists the models, most cost first', () =>
    withStore(async (s) => {
      const add = (provider: string, model: string, tokens: number, cost: number) =>
        s.addModelUsage('team/core', 'hour', HOUR, { provider, model }, tokens, totals(tokens - 1, 1, cost));
      await add('openai', 'gpt-4o', 10, 500);
      await add('anthropic', 'claude', 20, 900);
      await add('openai', 'gpt-4o', 5, 500);
      expect(await s.modelUsage('team/core', 'hour', HOUR.startMs)).toEqual([
        { provider: 'openai', model: 'gpt-4o', used: 15, input: 13, output: 2, cachedInput: 0, cacheWrite: 0, costNano: 1000 },
        { provider: 'anthropic', model: 'claude', used: 20, input: 19, output: 1, cachedInput: 0, cacheWrite: 0, costNano: 900 },
      ]);
    }));

  it(`keeps ${MAX_MODELS_PER_WINDOW} models per window: new ones past the cap count as "${OTHER_MODEL}", kept ones still add up`, () =>
    withStore(async (s) => {
      const add = (model: string, tokens: number) => s.addModelUsage('team/core', 'hour', HOUR, { provider: 'p', model }, tokens, totals(tokens, 0, tokens));
      for (let i = 0; i < MAX_MODELS_PER_WINDOW - 1; i++) await add(`m${i}`, 1);
      await add('late-1', 5);
      await add('late-2', 7);
      await add('m3', 100);
      // Another window has room of its own.
      await s.addModelUsage('team/core', 'day', DAY, { provider: 'p', model: 'late-1' }, 1, totals(1, 0, 1));
      const rows = await s.modelUsage('team/core', 'hour', HOUR.startMs);
      expect(rows).toHaveLength(MAX_MODELS_PER_WINDOW);
      expect(rows.find((r) => r.model === OTHER_MODEL)).toMatchObject({ provider: '', used: 12, costNano: 12 });
      expect(rows.find((r) => r.model === 'm3')).toMatchObject({ provider: 'p', used: 101 });
      expect(rows.some((r) => r.model.startsWith('late'))).toBe(false);
      expect(await s.modelUsage('team/core', 'day', DAY.startMs)).toMatchObject([{ model: 'late-1', used: 1 }]);
    }));

  it('lists a scope and the scopes under it that used the window, most cost first', () =>
    withStore(async (s) => {
      const add = (scope: string, tokens: number, cost: number, span = HOUR) => s.addUsage(scope, 'hour', span.startMs, span.endMs, tokens, undefined, cost);
      await add('namespace/a', 100, 10);
      await add('namespace/a/service/x', 60, 30);
      await add('namespace/a/service/y', 40, 30);
      await add('namespace/ab', 999, 999);
      await add('namespace/a/service/z', 5, 5, windowBefore('hour', NOW, 1));
      expect(await s.scopesUnder('namespace/a', 'hour', HOUR)).toEqual([
        { scope: 'namespace/a/service/x', used: 60, costNano: 30 },
        { scope: 'namespace/a/service/y', used: 40, costNano: 30 },
        { scope: 'namespace/a', used: 100, costNano: 10 },
      ]);
      expect(await s.scopesUnder('namespace/none', 'hour', HOUR)).toEqual([]);
    }));

  it('returns past windows newest first, from the one starting at or before the given instant, up to a limit', () =>
    withStore(async (s) => {
      for (let n = 0; n < 4; n++) {
        const w = windowBefore('day', NOW, n);
        await s.addUsage('team/core', 'day', w.startMs, w.endMs, 10 + n, undefined, n);
      }
      const [d0, d1, d2] = [0, 1, 2].map((n) => windowBefore('day', NOW, n));
      expect(await s.history('team/core', 'day', d0!.startMs, 2)).toEqual([
        { startMs: d0!.startMs, endMs: d0!.endMs, used: 10, costNano: 0 },
        { startMs: d1!.startMs, endMs: d1!.endMs, used: 11, costNano: 1 },
      ]);
      expect((await s.history('team/core', 'day', d1!.startMs - 1, 10)).map((r) => r.used)).toEqual([12, 13]);
      expect((await s.history('team/core', 'day', d2!.startMs, 10)).map((r) => r.startMs)).toEqual([d2!.startMs, windowBefore('day', NOW, 3).startMs]);
    }));

  it('prunes windows that ended before an instant, in batches, per kind of row', () =>
    withStore(async (s) => {
      for (let n = 0; n < 5; n++) {
        const w = windowBefore('minute', NOW, n);
        await s.addUsage('team/core', 'minute', w.startMs, w.endMs, 1);
        await s.addTaggedUsage('team/core', 'minute', w.startMs, w.endMs, { key: 'k', value: 'v' }, 1);
        await s.addModelUsage('team/core', 'minute', w, { provider: 'p', model: 'm' }, 1, totals(1, 0, 0));
      }
      await s.addUsage('team/core', 'hour', HOUR.startMs - 3_600_000, HOUR.startMs, 1);
      // The minute windows 2, 3 and 4 before NOW's ended before NOW's began; the one just before ends as it begins.
      const before = windowAt('minute', NOW).startMs;
      expect(await s.pruneUsage('minute', before, { tagged: false, limit: 2 })).toBe(2);
      expect(await s.pruneUsage('minute', before, { tagged: false, limit: 2 })).toBe(1);
      expect(await s.pruneUsage('minute', before, { tagged: false, limit: 2 })).toBe(0);
      expect(await s.pruneUsage('minute', before, { tagged: true, limit: 10 })).toBe(3);
      expect(await s.pruneUsage('minute', before, { tagged: false, models: true, limit: 10 })).toBe(3);
      const kept = await s.history('team/core', 'minute', NOW, 10);
      expect(kept.map((r) => r.startMs)).toEqual([0, 1].map((n) => windowBefore('minute', NOW, n).startMs));
      expect(await s.taggedUsage('team/core', 'minute', windowBefore('minute', NOW, 1).startMs, 'k')).toHaveLength(1);
      expect(await s.taggedUsage('team/core', 'minute', windowBefore('minute', NOW, 2).startMs, 'k')).toEqual([]);
      expect(await s.modelUsage('team/core', 'minute', windowBefore('minute', NOW, 4).startMs)).toEqual([]);
      // Other windows are not touched.
      expect(await s.used('team/core', 'hour', HOUR.startMs - 3_600_000)).toBe(1);
    }));

  it('saves leases with both balances, updates their balances and times but not their identity, and deletes them', () =>
    withStore(async (s) => {
      const lease: LeaseRow = {
        id: 'lease-b', namespace: 'a', service: 'x', team: '', pod: 'x-1', priority: 2, incarnation: 'inc-1', outstanding: 5_000_000_000, demand: 12.5,
        requestTokens: 800.25, expiresAtMs: NOW + 30_000, renewAtMs: NOW + 10_000, windows: '{"team/core|day":1795392000000}', owner: 'sa:a:x',
        failOpen: 100, failOpenNext: 50, usd: 1, outstandingNano: 9_000_000_000_000, demandNano: 0.5, requestNano: 1234.5, failOpenNano: 7, failOpenNextNano: 3, renewal: 41,
        // Claims are kept by PostgreSQL only (one replica over SQLite keeps them in memory): none here.
        claim: null,
      };
      const other: LeaseRow = { ...lease, id: 'lease-a', usd: 0, outstandingNano: 0, demandNano: 0, requestNano: 0, failOpenNano: 0, failOpenNextNano: 0 };
      await s.saveLease(lease);
      await s.saveLease(other);
      const byId = async () => (await s.leases()).sort((p, q) => p.id.localeCompare(q.id));
      expect(await byId()).toEqual([other, lease]);
      const renewed = { ...lease, outstanding: 10, demand: 1.5, expiresAtMs: NOW + 60_000, windows: '{}', usd: 0, outstandingNano: 0 };
      await s.saveLease({ ...renewed, namespace: 'changed', owner: 'someone-else', priority: 3 });
      expect(await byId()).toEqual([other, renewed]);
      await s.deleteLease('lease-a');
      await s.deleteLease('missing');
      expect(await byId()).toEqual([renewed]);
    }));

  it('keeps the highest sequence per incarnation and its owner apart, and prunes incarnations silent since an instant', () =>
    withStore(async (s) => {
      expect(await s.acked('inc-1')).toBe(0);
      expect(await s.owner('inc-1')).toBe('');
      await s.setOwner('inc-1', 'sa:a:x', NOW);
      expect(await s.acked('inc-1')).toBe(0);
      await s.setAcked('inc-1', 41, NOW);
      await s.setAcked('inc-1', 2 ** 40, NOW + 1);
      expect(await s.acked('inc-1')).toBe(2 ** 40);
      expect(await s.owner('inc-1')).toBe('sa:a:x');
      await s.setAcked('inc-2', 1, NOW - 5000);
      await s.setAcked('inc-3', 1, NOW - 4000);
      await s.setOwner('inc-4', 'sa:b:y', NOW - 3000);
      expect(await s.pruneAcked(NOW - 3500, 1)).toBe(1);
      expect(await s.pruneAcked(NOW - 3500, 10)).toBe(1);
      expect(await s.pruneAcked(NOW - 3500, 10)).toBe(0);
      expect([await s.acked('inc-2'), await s.acked('inc-3'), await s.owner('inc-4'), await s.acked('inc-1')]).toEqual([0, 0, 'sa:b:y', 2 ** 40]);
    }));

  it("replaces a team's namespaces, lists teams in order, and deletes a team given none", () =>
    withStore(async (s) => {
      await s.setTeam('core', ['b', 'a']);
      await s.setTeam('alpha', ['z']);
      await s.setTeam('core', ['c', 'b']);
      expect(await s.teams()).toEqual([
        { team: 'alpha', namespace: 'z' },
        { team: 'core', namespace: 'b' },
        { team: 'core', namespace: 'c' },
      ]);
      await s.setTeam('core', []);
      expect(await s.teams()).toEqual([{ team: 'alpha', namespace: 'z' }]);
    }));

  it('answers a readiness ping', () =>
    withStore(async (s) => {
      await expect(s.ping(1000)).resolves.toBeUndefined();
    }));
});
