// What only the PostgreSQL store has to get right: migrations when several replicas start at once, a
// database migrated by a newer build, increments from several replicas at once, and transactions.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS, SchemaTooNewError } from '../../quota-service/postgres/migrations.js';
import { PgQuotaStore } from '../../quota-service/postgres/pg-store.js';
import { windowAt } from '../../quota-service/windows.js';
import { postgresPerFile } from '../helpers/postgres-per-file.js';

const HOUR = windowAt('hour', Date.UTC(2026, 10, 23, 10, 0, 0));
const LATEST = MIGRATIONS.at(-1)!.version;

const server = postgresPerFile();

/** Runs `fn` with pools of its own on `url`, ended afterwards. */
async function withPools<T>(url: string, n: number, fn: (pools: pg.Pool[]) => Promise<T>): Promise<T> {
  const pools = Array.from({ length: n }, () => new pg.Pool({ connectionString: url, max: 4 }));
  try {
    return await fn(pools);
  } finally {
    await Promise.all(pools.map((p) => p.end()));
  }
}

async function query<R extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<R[]> {
  return withPools(url, 1, async ([p]) => (await p!.query<R>(sql, values)).rows);
}

describe('schema migrations', () => {
  it('applies each migration once: a second run is a no-op', async () => {
    const url = await server().createDatabase();
    await withPools(url, 1, async ([pool]) => {
      expect(await migrate(pool!)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(await migrate(pool!)).toEqual([]);
    });
    expect(await query(url, 'SELECT version, name FROM schema_migrations')).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
  });

  it('lets two replicas migrate a fresh database at once: one applies the schema, the other finds it done', async () => {
    const url = await server().createDatabase();
    const results = await withPools(url, 2, (pools) => Promise.all(pools.map((p) => migrate(p))));
    expect(results.map((r) => r.length).sort()).toEqual([0, MIGRATIONS.length]);
    expect(await query(url, 'SELECT count(*)::int AS n FROM schema_migrations')).toEqual([{ n: MIGRATIONS.length }]);
    const tables = await query<{ table_name: string }>(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name");
    expect(tables.map((t) => t.table_name)).toEqual(['acked', 'budgets', 'consumption', 'leases', 'model_consumption', 'schema_migrations', 'tagged_consumption', 'team_namespaces']);
  });

  it('refuses a database a newer build migrated, naming both versions', async () => {
    const url = await server().createDatabase();
    await (await PgQuotaStore.open(url)).close();
    await query(url, 'INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [LATEST + 1, 'from the future']);
    const err = await PgQuotaStore.open(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaTooNewError);
    expect(err).toMatchObject({ databaseVersion: LATEST + 1, knownVersion: LATEST });
    expect((err as Error).message).toContain(`version ${LATEST + 1}, newer than this build knows (${LATEST})`);
  });

  it('rolls a failing migration back entirely and does not record it', async () => {
    const url = await server().createDatabase();
    const broken = [...MIGRATIONS, { version: LATEST + 1, name: 'broken', sql: 'CREATE TABLE half_done (x int); SELECT no_such_function();' }];
    await withPools(url, 1, async ([pool]) => {
      await expect(migrate(pool!, { migrations: broken })).rejects.toThrow(`schema migration ${LATEST + 1} (broken) failed`);
    });
    expect(await query(url, 'SELECT max(version) AS v FROM schema_migrations')).toEqual([{ v: LATEST }]);
    expect(await query(url, "SELECT to_regclass('half_done') AS t")).toEqual([{ t: null }]);
  });
});

describe('PgQuotaStore', () => {
  it('sums 20 concurrent increments from 4 replicas exactly, into rows none of them had created', async () => {
    const url = await server().createDatabase();
    const stores = await Promise.all([1, 2, 3, 4].map(() => PgQuotaStore.open(url, { maxConnections: 5 })));
    try {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          const s = stores[i % 4]!;
          const tokens = i + 1;
          return Promise.all([
            s.addUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, tokens, { input: tokens, output: 0, cachedInput: i, cacheWrite: 1 }, 1_000_000_000 * tokens),
            s.addTaggedUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, { key: 'feature', value: 'search' }, tokens, tokens),
            s.addModelUsage('team/core', 'hour', HOUR, { provider: 'openai', model: 'gpt-4o' }, tokens, { input: tokens, output: 0, cachedInput: 0, cacheWrite: 0, costNano: tokens }),
          ]);
        }),
      );
      const s = stores[0]!;
      // 1 + 2 + … + 20 = 210; 0 + 1 + … + 19 = 190.
      expect(await s.used('team/core', 'hour', HOUR.startMs)).toBe(210);
      expect(await s.totals('team/core', 'hour', HOUR.startMs)).toEqual({ input: 210, output: 0, cachedInput: 190, cacheWrite: 20, costNano: 210_000_000_000 });
      expect(await s.taggedUsage('team/core', 'hour', HOUR.startMs, 'feature')).toEqual([{ value: 'search', used: 210, costNano: 210 }]);
      expect(await s.modelUsage('team/core', 'hour', HOUR.startMs)).toMatchObject([{ model: 'gpt-4o', used: 210, input: 210, costNano: 210 }]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('commits everything a transaction did, or nothing when it throws', async () => {
    const store = await PgQuotaStore.open(await server().createDatabase());
    try {
      const boom = new Error('boom');
      await expect(
        store.transaction(async (tx) => {
          await tx.setAcked('inc-1', 7, 1);
          await tx.addUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, 50);
          await tx.setTeam('core', ['a']);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect([await store.acked('inc-1'), await store.used('team/core', 'hour', HOUR.startMs), await store.teams()]).toEqual([0, 0, []]);
      const result = await store.transaction(async (tx) => {
        await tx.setAcked('inc-1', 7, 1);
        await tx.addUsage('team/core', 'hour', HOUR.startMs, HOUR.endMs, 50);
        return tx.acked('inc-1');
      });
      expect(result).toBe(7);
      expect([await store.acked('inc-1'), await store.used('team/core', 'hour', HOUR.startMs)]).toEqual([7, 50]);
    } finally {
      await store.close();
    }
  });

  it('runs a transaction again when PostgreSQL aborts it for a concurrent update, so neither update is lost', async () => {
    const store = await PgQuotaStore.open(await server().createDatabase());
    try {
      await store.setAcked('inc-1', 0, 1);
      let attempts = 0;
      let bothRead!: () => void;
      const barrier = new Promise<void>((resolve) => (bothRead = resolve));
      // Both read the sequence before either writes it: in repeatable read the second writer is aborted (40001).
      const bump = () =>
        store.transaction(async (tx) => {
          const seq = await tx.acked('inc-1');
          if (++attempts === 2) bothRead();
          await barrier;
          await tx.setAcked('inc-1', seq + 1, 2);
        }, 'repeatable read');
      await Promise.all([bump(), bump()]);
      expect(await store.acked('inc-1')).toBe(2);
      expect(attempts).toBe(3);
    } finally {
      await store.close();
    }
  });

  it('refuses a count it cannot return exactly rather than rounding it', async () => {
    const url = await server().createDatabase();
    const store = await PgQuotaStore.open(url);
    try {
      await query(url, 'INSERT INTO consumption (scope, window_name, start_ms, end_ms, used) VALUES ($1, $2, $3, $4, $5)', ['team/core', 'hour', HOUR.startMs, HOUR.endMs, '9007199254740993']);
      await expect(store.used('team/core', 'hour', HOUR.startMs)).rejects.toThrow(RangeError);
    } finally {
      await store.close();
    }
  });

  it('fails to open, with the reason, when the server is not there', async () => {
    const err = await PgQuotaStore.open('postgres://postgres@127.0.0.1:1/none', { connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('identifies its connections as llmgw-quota', async () => {
    const url = await server().createDatabase();
    const store = await PgQuotaStore.open(url);
    try {
      await store.ping();
      const names = await query<{ application_name: string }>(url, 'SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      expect(names.map((r) => r.application_name)).toContain('llmgw-quota');
    } finally {
      await store.close();
    }
  });
});
