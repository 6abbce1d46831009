// The two database functions a replica's lease call runs (postgres/schema-v3.ts), on a real PostgreSQL
// server: what llmgw_lock_and_load reads for a call (its namespaces' budgets, teams, live leases and current
// windows, nothing of other namespaces), what llmgw_apply writes (model rows past a window's cap fold into
// `other`), and that both find their rows by index on a large cluster's tables (migration 2 read
// team_namespaces whole there: it had no index by namespace).
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PgQuotaStore } from '../../quota-service/postgres/pg-store.js';
import { flushChanges, lockAndLoad } from '../../quota-service/postgres/snapshot-sql.js';
import type { Changes } from '../../quota-service/postgres/snapshot-store.js';
import { MAX_MODELS_PER_WINDOW, OTHER_MODEL, type LeaseRow } from '../../quota-service/store-api.js';
import { windowAt } from '../../quota-service/windows.js';
import { postgresPerFile } from '../helpers/postgres-per-file.js';

const NOW = Date.UTC(2026, 10, 23, 10, 30, 0);
const DAY = windowAt('day', NOW);
const HOUR = windowAt('hour', NOW);

const server = postgresPerFile();

function lease(id: string, namespace: string, expiresAtMs = NOW + 30_000): LeaseRow {
  return {
    id, namespace, service: 'app', team: '', pod: `pod-${id}`, priority: 1, incarnation: `inc-${id}`, outstanding: 10, demand: 1, requestTokens: 0,
    expiresAtMs, renewAtMs: NOW + 10_000, windows: '{}', owner: '', failOpen: 0, failOpenNext: 0, usd: 0, outstandingNano: 0, demandNano: 0,
    requestNano: 0, failOpenNano: 0, failOpenNextNano: 0, renewal: 0,
  };
}

const noChanges = (): Changes => ({
  budgets: { upsert: [], delete: [] }, teams: [], usage: [], tagged: [], models: [], savedLeases: new Map(), deletedLeases: new Set(), acked: new Map(), owners: new Map(),
});

/** A database migrated to the latest schema, with a pool on it; both closed by `fn`'s end. */
async function withDatabase(fn: (store: PgQuotaStore, pool: pg.Pool) => Promise<void>): Promise<void> {
  const url = await server().createDatabase();
  const store = await PgQuotaStore.open(url);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await fn(store, pool);
  } finally {
    await pool.end();
    await store.close();
  }
}

/** Runs `fn` in one transaction and returns, beside its result, the sequential scans it made per table. */
async function scansOf<T>(pool: pg.Pool, fn: (q: pg.PoolClient) => Promise<T>): Promise<{ result: T; seqScans: Record<string, number> }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    const { rows } = await client.query<{ relname: string; seq_scan: string }>('SELECT relname, seq_scan FROM pg_stat_xact_user_tables');
    await client.query('COMMIT');
    return { result, seqScans: Object.fromEntries(rows.map((r) => [r.relname, Number(r.seq_scan)])) };
  } finally {
    client.release();
  }
}

describe('llmgw_lock_and_load', () => {
  it("reads a call's own budgets, teams, live leases and current windows, and nothing of other namespaces", () =>
    withDatabase(async (store, pool) => {
      await store.upsertBudget({ scope: 'namespace/a', window: 'day', unit: 'tokens', tokens: 1000, batchFloor: 0.1, backgroundFloor: 0.2 });
      await store.upsertBudget({ scope: 'namespace/a/service/app', window: 'hour', unit: 'tokens', tokens: 500, batchFloor: 0.1, backgroundFloor: 0.2 });
      await store.upsertBudget({ scope: 'team/core', window: 'day', unit: 'tokens', tokens: 5000, batchFloor: 0.1, backgroundFloor: 0.2 });
      await store.upsertBudget({ scope: 'namespace/b', window: 'day', unit: 'tokens', tokens: 7000, batchFloor: 0.1, backgroundFloor: 0.2 });
      // A scope that sorts inside a's services' key range by text but is another namespace's.
      await store.upsertBudget({ scope: 'namespace/a-other', window: 'day', unit: 'tokens', tokens: 9000, batchFloor: 0.1, backgroundFloor: 0.2 });
      await store.setTeam('core', ['a', 'c']);
      await store.addUsage('namespace/a', 'day', DAY.startMs, DAY.endMs, 120, undefined, 7);
      await store.addUsage('namespace/a', 'day', DAY.startMs - 86_400_000, DAY.startMs, 999);
      await store.addUsage('namespace/a/service/app', 'hour', HOUR.startMs, HOUR.endMs, 40);
      await store.addUsage('namespace/b', 'day', DAY.startMs, DAY.endMs, 300);
      for (const l of [lease('a1', 'a'), lease('a2', 'a', NOW - 1), lease('b1', 'b')]) await store.saveLease(l);

      const snap = await lockAndLoad(pool, { locks: ['a'], namespaces: ['a'], incarnations: ['inc-a1'], now: NOW });
      expect(snap.budgets.map((b) => b.scope).sort()).toEqual(['namespace/a', 'namespace/a/service/app', 'team/core']);
      expect(snap.teams).toEqual([{ team: 'core', namespace: 'a' }, { team: 'core', namespace: 'c' }]);
      expect(snap.leases.map((l) => l.id)).toEqual(['a1']);
      expect(snap.windows.get(`namespace/a|day|${DAY.startMs}`)).toEqual({ used: 120, costNano: 7 });
      expect(snap.windows.get(`namespace/a/service/app|hour|${HOUR.startMs}`)).toEqual({ used: 40, costNano: 0 });
      expect(snap.windows.get(`team/core|day|${DAY.startMs}`)).toEqual({ used: 0, costNano: 0 });
      expect([...snap.windows.keys()].some((k) => k.startsWith('namespace/b'))).toBe(false);

      // An operator's read (no namespaces): every budget and live lease.
      const all = await lockAndLoad(pool, { locks: [], namespaces: undefined, incarnations: [], now: NOW });
      expect(all.budgets).toHaveLength(5);
      expect(all.leases.map((l) => l.id)).toEqual(['a1', 'b1']);
      expect(all.windows.get(`namespace/b|day|${DAY.startMs}`)).toEqual({ used: 300, costNano: 0 });
    }));

  it("finds a call's rows by index, not by reading the tables, whatever they hold", () =>
    withDatabase(async (_store, pool) => {
      // A large cluster's tables: 2,000 namespaces' budgets and teams, 30 days of their daily windows, 20,000 leases and incarnations.
      await pool.query(`INSERT INTO budgets SELECT 'namespace/ns-' || i, 'day', 'tokens', 1000000, 0.1, 0.2 FROM generate_series(1, 2000) i`);
      await pool.query(`INSERT INTO consumption (scope, window_name, start_ms, end_ms, used)
        SELECT 'namespace/ns-' || i, 'day', ${DAY.startMs} - d::bigint * 86400000, ${DAY.endMs} - d::bigint * 86400000, 1 FROM generate_series(1, 2000) i, generate_series(0, 29) d`);
      await pool.query(`INSERT INTO leases (id, namespace, service, team, pod, priority, incarnation, outstanding, demand, expires_at_ms, windows)
        SELECT 'l-' || i, 'ns-' || (i % 2000), 'app', '', 'pod-' || i, 1, 'inc-' || i, 0, 1, ${NOW + 30_000}, '{}' FROM generate_series(1, 20000) i`);
      await pool.query(`INSERT INTO acked (incarnation, sequence) SELECT 'inc-' || i, 1 FROM generate_series(1, 20000) i`);
      await pool.query(`INSERT INTO team_namespaces SELECT 'team-' || i, 'ns-' || i FROM generate_series(1, 2000) i`);
      await pool.query('ANALYZE');
      const { result: snap, seqScans } = await scansOf(pool, (q) => lockAndLoad(q, { locks: ['ns-7'], namespaces: ['ns-7'], incarnations: ['inc-7'], now: NOW }));
      expect(snap.budgets.map((b) => b.scope)).toEqual(['namespace/ns-7']);
      expect(snap.leases).toHaveLength(10);
      expect(snap.windows.get(`namespace/ns-7|day|${DAY.startMs}`)).toEqual({ used: 1, costNano: 0 });
      expect(seqScans).toMatchObject({ budgets: 0, consumption: 0, leases: 0, team_namespaces: 0, acked: 0 });
    }));
});

describe('llmgw_apply', () => {
  const model = (name: string, tokens: number, startMs = HOUR.startMs) => ({
    scope: 'team/core', window: 'hour' as const, startMs, endMs: startMs + 3_600_000, provider: 'p', model: name, tokens,
    totals: { input: tokens, output: 0, cachedInput: 0, cacheWrite: 0, costNano: tokens },
  });

  it(`keeps ${MAX_MODELS_PER_WINDOW} models per window: new ones past the cap count as "${OTHER_MODEL}", kept ones add up, in one call or several`, () =>
    withDatabase(async (store, pool) => {
      const apply = (models: ReturnType<typeof model>[]) => flushChanges(pool, { ...noChanges(), models }, new Map(), NOW);
      await apply(Array.from({ length: MAX_MODELS_PER_WINDOW - 2 }, (_, i) => model(`m${i}`, 1)));
      // One call: a kept model twice, the last free place, then two past the cap.
      await apply([model('m3', 100), model('m3', 10), model('last', 2), model('late-1', 5), model('late-2', 7)]);
      // Another window has room of its own.
      await apply([model('late-1', 1, HOUR.startMs + 3_600_000)]);
      const rows = await store.modelUsage('team/core', 'hour', HOUR.startMs);
      expect(rows).toHaveLength(MAX_MODELS_PER_WINDOW);
      expect(rows.find((r) => r.model === OTHER_MODEL)).toMatchObject({ provider: '', used: 12, costNano: 12 });
      expect(rows.find((r) => r.model === 'm3')).toMatchObject({ provider: 'p', used: 111, input: 111, costNano: 111 });
      expect(rows.find((r) => r.model === 'last')).toMatchObject({ used: 2 });
      expect(rows.some((r) => r.model.startsWith('late'))).toBe(false);
      expect(await store.modelUsage('team/core', 'hour', HOUR.startMs + 3_600_000)).toMatchObject([{ model: 'late-1', used: 1 }]);
    }));

  it('adds to the models a window keeps and deletes leases by index, whatever the tables hold', () =>
    withDatabase(async (store, pool) => {
      await pool.query(`INSERT INTO model_consumption (scope, window_name, start_ms, end_ms, provider, model, used, input, output, cached_input, cache_write, cost_nano)
        SELECT 'namespace/ns-' || i, 'hour', ${HOUR.startMs} - h * 3600000, ${HOUR.endMs} - h * 3600000, 'p', 'm', 1, 1, 0, 0, 0, 1
        FROM generate_series(1, 2000) i, generate_series(0, 9) h`);
      await pool.query(`INSERT INTO leases (id, namespace, service, team, pod, priority, incarnation, outstanding, demand, expires_at_ms, windows)
        SELECT 'l-' || i, 'ns-' || (i % 2000), 'app', '', 'pod-' || i, 1, 'inc-' || i, 0, 1, ${NOW + 30_000}, '{}' FROM generate_series(1, 20000) i`);
      await pool.query('ANALYZE');
      const changes = { ...noChanges(), models: [{ ...model('m', 5), scope: 'namespace/ns-7' }], deletedLeases: new Set(['l-7']) };
      const { seqScans } = await scansOf(pool, (q) => flushChanges(q, changes, new Map(), NOW));
      expect(seqScans).toMatchObject({ model_consumption: 0, leases: 0 });
      expect(await store.modelUsage('namespace/ns-7', 'hour', HOUR.startMs)).toMatchObject([{ model: 'm', used: 6 }]);
      expect((await pool.query("SELECT count(*)::int AS n FROM leases WHERE id = 'l-7'")).rows).toEqual([{ n: 0 }]);
    }));
});
