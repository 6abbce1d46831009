// Versioned schema migrations, applied when the service starts. Several replicas may start at once: the
// whole run holds one advisory lock, so one applies each migration and the others find it done. A
// database migrated by a newer build is refused rather than written with a schema this build misreads.
import type pg from 'pg';
import { SCHEMA_V1 } from './schema-v1.js';
import { SCHEMA_V2 } from './schema-v2.js';
import { SCHEMA_V3 } from './schema-v3.js';

export interface Migration {
  /** 1, 2, …: applied in this order, each once. */
  version: number;
  name: string;
  /** Statements run in one transaction with the recording of the version (DDL is transactional in PostgreSQL). */
  sql: string;
}

/** Append only: a released migration is never edited, a change is a new version. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: SCHEMA_V1 },
  { version: 2, name: 'lease call functions', sql: SCHEMA_V2 },
  { version: 3, name: 'lease call lookups by index', sql: SCHEMA_V3 },
];

/** The advisory lock's key: arbitrary, but the same in every build forever (bigint, passed as text). */
export const MIGRATION_LOCK_KEY = '7813012309812345';

export class SchemaTooNewError extends Error {
  readonly code = 'SCHEMA_TOO_NEW';
  constructor(
    readonly databaseVersion: number,
    readonly knownVersion: number,
  ) {
    super(
      `the database's schema is at version ${databaseVersion}, newer than this build knows (${knownVersion}): ` +
        'run a build at least as new as the one that migrated it',
    );
    this.name = 'SchemaTooNewError';
  }
}

export interface MigrateOptions {
  /** Waiting for another replica's run plus running the migrations, per statement (ms); default 5 minutes. */
  timeoutMs?: number;
  /** For tests of the run itself; default MIGRATIONS. */
  migrations?: readonly Migration[];
}

/** Applies the migrations the database lacks; returns their versions (none: it was up to date). */
export async function migrate(pool: pg.Pool, opts: MigrateOptions = {}): Promise<number[]> {
  const migrations = [...(opts.migrations ?? MIGRATIONS)].sort((a, b) => a.version - b.version);
  const known = migrations.at(-1)?.version ?? 0;
  const client = await pool.connect();
  try {
    // This connection's own settings: the pool's statement timeout is for requests, not for schema changes.
    await client.query("SELECT set_config('statement_timeout', $1, false)", [String(opts.timeoutMs ?? 300_000)]);
    // A session lock (not a transaction's) so that it spans the table's creation and every migration.
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    const done = new Set(rows.map((r) => r.version));
    const newest = rows.at(-1)?.version ?? 0;
    if (newest > known) throw new SchemaTooNewError(newest, known);
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        // The connection may be what failed: the original error is the one to report.
        await client.query('ROLLBACK').catch(() => undefined);
        throw new Error(`schema migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.version);
    }
    return applied;
  } finally {
    // Closing the connection releases the lock and drops its settings, whatever state an error left it in.
    client.release(true);
  }
}
