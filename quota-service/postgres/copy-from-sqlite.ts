// Moves a SQLite quota file into an empty PostgreSQL database (`llmgw quota-service migrate`): the schema
// migrated as the service would, then in ONE transaction: the tables locked, found empty, every row copied
// in batches, every row read back and compared with the file, and only then committed. Any failure or
// difference rolls everything back, so a failed run leaves the target as it found it and may run again.
import pg from 'pg';
import { compareSorted, type TableComparison } from './compare-rows.js';
import { COPY_TABLES, pgInsert, pgSelect, type CopyTable, type Row } from './copy-tables.js';
import { migrate } from './migrations.js';
import { redactUrl } from './redact-url.js';
import { SqliteSource } from './sqlite-source.js';

export interface CopyOptions {
  sqlitePath: string;
  /** postgres://… of the target database. */
  url: string;
  /** Leases that expire at or before this instant (ms since the epoch) are not copied; default now. */
  nowMs?: number;
  /** Rows per INSERT (one round trip each); default 5000. */
  batchRows?: number;
  /** Differences kept per table for the report; default 20. */
  maxDifferences?: number;
  /** How long to wait for another session's locks on the target's tables (ms); default 10 s. */
  lockTimeoutMs?: number;
  /** Progress, one line at a time (a table being copied or checked). */
  progress?: (line: string) => void;
  /** For tests: runs after the check, while both transactions are still open. */
  beforeCommit?: () => Promise<void> | void;
}

export interface CopySummary {
  /** Rows copied (and checked) per table. */
  tables: { table: string; rows: number }[];
  tokenBudgets: number;
  usdBudgets: number;
  owners: number;
  /** Leases in the file, and how many of them had not expired (the ones copied). */
  leases: number;
  liveLeases: number;
}

export type CopyResult =
  | { status: 'copied'; summary: CopySummary }
  /** The target held rows already (in any table): nothing was written. `rows` is a count, or "1000+". */
  | { status: 'target-not-empty'; found: { table: string; rows: string }[] }
  /** The check found differences: rolled back. */
  | { status: 'mismatch'; comparisons: TableComparison[] }
  /** Something committed to the SQLite file during the copy (a service still running on it): rolled back. */
  | { status: 'source-changed' };

const FETCH_ROWS = 5000;

export async function copyFromSqlite(opts: CopyOptions): Promise<CopyResult> {
  const progress = opts.progress ?? (() => undefined);
  const source = new SqliteSource(opts.sqlitePath, opts.nowMs ?? Date.now());
  const pool = new pg.Pool({ connectionString: opts.url, max: 2, connectionTimeoutMillis: 10_000, application_name: 'llmgw-quota-migrate' });
  pool.on('error', () => undefined);
  try {
    const client = await pool.connect().catch((err: unknown) => {
      throw new Error(`cannot connect to PostgreSQL at ${redactUrl(opts.url)}: ${reason(err)}`, { cause: err });
    });
    try {
      // Before the schema is migrated too: a database holding anything (another application's tables) is left as found.
      const found = await rowsIn(client, await tablesOf(client));
      if (found.length > 0) return { status: 'target-not-empty', found };
      await migrate(pool);
      await client.query('BEGIN');
      try {
        const result = await copyInTransaction(client, source, opts, progress);
        await client.query(result.status === 'copied' ? 'COMMIT' : 'ROLLBACK');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } finally {
      client.release(true);
    }
  } finally {
    source.close();
    await pool.end();
  }
}

async function copyInTransaction(client: pg.PoolClient, source: SqliteSource, opts: CopyOptions, progress: (line: string) => void): Promise<CopyResult> {
  const lockTimeoutMs = opts.lockTimeoutMs ?? 10_000;
  await client.query(`SET LOCAL lock_timeout = ${Math.trunc(lockTimeoutMs)}`);
  await client.query('SET LOCAL statement_timeout = 0');
  // Checked again under the lock, which makes writers wait until the commit (readers do not), so nothing
  // lands between the check and the copy (a replica started meanwhile, a second migration).
  const tables = await tablesOf(client);
  await client.query(`LOCK TABLE ${tables.join(', ')} IN EXCLUSIVE MODE`).catch((err: unknown) => {
    if ((err as { code?: string }).code !== '55P03') throw err;
    throw new Error(`another session holds the target's tables (a quota service running on it?): waited ${lockTimeoutMs} ms`, { cause: err });
  });
  const found = await rowsIn(client, tables);
  if (found.length > 0) return { status: 'target-not-empty', found };

  for (const t of COPY_TABLES) {
    progress(`copying ${t.name}`);
    await copyTable(client, t, source.rows(t), opts.batchRows ?? 5000);
  }
  const comparisons: TableComparison[] = [];
  for (const t of COPY_TABLES) {
    progress(`checking ${t.name}`);
    comparisons.push(await compareSorted(t, source.rows(t), readBack(client, t), opts.maxDifferences ?? 20));
  }
  if (comparisons.some((c) => c.count > 0)) return { status: 'mismatch', comparisons: comparisons.filter((c) => c.count > 0) };
  const counts = source.counts();
  await opts.beforeCommit?.();
  if (source.end()) return { status: 'source-changed' };
  return { status: 'copied', summary: { tables: comparisons.map((c) => ({ table: c.table, rows: c.rows })), ...counts } };
}

/**
 * Every table of the schema but the migrations' own (quoted names), including any this copy does not fill:
 * a target holding data of any kind is refused.
 */
async function tablesOf(client: pg.PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    "SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations' ORDER BY tablename",
  );
  return rows.map((r) => r.name);
}

/** The tables (quoted names) holding any row, with how many (counted up to 1000). */
async function rowsIn(client: pg.PoolClient, tables: readonly string[]): Promise<{ table: string; rows: string }[]> {
  if (tables.length === 0) return [];
  const sql = tables.map((t, i) => `SELECT $${i + 1}::text AS "table", count(*)::int AS n FROM (SELECT 1 FROM ${t} LIMIT 1001) r`).join(' UNION ALL ');
  const { rows } = await client.query<{ table: string; n: number }>(sql, [...tables]);
  return rows.filter((r) => r.n > 0).map((r) => ({ table: r.table, rows: r.n > 1000 ? '1000+' : String(r.n) }));
}

/** Inserts the rows in batches: each column's values as one array parameter, unnested into rows. */
async function copyTable(client: pg.PoolClient, t: CopyTable, rows: Iterable<Row>, batchRows: number): Promise<void> {
  const sql = pgInsert(t);
  let columns: Row[] = t.columns.map(() => []);
  const flush = async (): Promise<void> => {
    if (columns[0]!.length === 0) return;
    await client.query(sql, columns);
    columns = t.columns.map(() => []);
  };
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) columns[i]!.push(row[i]!);
    if (columns[0]!.length >= batchRows) await flush();
  }
  await flush();
}

/** The table's rows in PostgreSQL, sorted by key, through a cursor (a page at a time, not all in memory). */
async function* readBack(client: pg.PoolClient, t: CopyTable): AsyncGenerator<Row> {
  await client.query(`DECLARE migrate_check NO SCROLL CURSOR FOR ${pgSelect(t)}`);
  try {
    for (;;) {
      const { rows } = await client.query<unknown[]>({ text: `FETCH FORWARD ${FETCH_ROWS} FROM migrate_check`, rowMode: 'array' });
      if (rows.length === 0) return;
      for (const r of rows) yield r.map((v, i) => toCellFromPg(t, i, v, r));
    }
  } finally {
    await client.query('CLOSE migrate_check');
  }
}

function toCellFromPg(t: CopyTable, i: number, v: unknown, r: unknown[]): Row[number] {
  const type = t.columns[i]!.type;
  if (type === 'int' && typeof v === 'number') return String(v); // smallint columns arrive as numbers
  if (type === 'int' && typeof v === 'string') return v; // bigint as its digits (pg's default)
  if (type === 'real' && typeof v === 'number') return v;
  if (type === 'text' && typeof v === 'string') return v;
  throw new Error(`PostgreSQL: ${t.name} (${r.slice(0, t.keyLength).map(String).join(', ')}) ${t.columns[i]!.name}: unexpected ${typeof v}`);
}

function reason(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map((e: unknown) => reason(e)).join('; ');
  if (err instanceof Error) return err.message !== '' ? err.message : ((err as { code?: string }).code ?? err.name);
  return String(err);
}
