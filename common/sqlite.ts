// Opening a SQLite file the way every component wants it: its folder created, write-ahead logging, the
// durability and lock wait the caller chose, and a first read that fails at once on a file that is not a
// database (better-sqlite3 opens such files lazily).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;

export interface SqliteOptions {
  /** NORMAL: committed rows survive a crash of the process; FULL: also a power loss. */
  synchronous: 'NORMAL' | 'FULL';
  /** How long a write waits, on the event loop, for a lock another process holds. */
  busyTimeoutMs: number;
}

export function openSqlite(path: string, opts: SqliteOptions): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous}`);
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs}`);
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** The column names of `table` (none when it does not exist), for tables that change layout between builds. */
export function columnsOf(db: SqliteDatabase, table: string): string[] {
  return (db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
}
