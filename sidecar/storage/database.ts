// The sidecar's one SQLite file (`storage.path`): the response cache and unsent usage. A file that is
// not a database (corrupt, truncated) is moved aside and a new one created, with a warning: the cache is
// only a cache, and usage the old file held is better reported late by hand than blocking the pod.
import { mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';

export type SidecarDatabase = Database.Database;

function open(path: string): SidecarDatabase {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    // Committed rows survive a crash of the process; only a power loss may cost the last transactions.
    db.pragma('synchronous = NORMAL');
    // Only another process (someone inspecting the file) can hold its lock. A write waits this long at
    // most, on the event loop: then the cache steps aside and the outbox keeps its records for later.
    db.pragma('busy_timeout = 100');
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

export function openDatabase(path: string, logger?: Logger): SidecarDatabase {
  if (path === ':memory:') return open(path);
  mkdirSync(dirname(path), { recursive: true });
  try {
    return open(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'SQLITE_NOTADB' && code !== 'SQLITE_CORRUPT') throw err;
    const aside = `${path}.corrupt-${Date.now()}`;
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        renameSync(path + suffix, aside + suffix);
      } catch {
        // that part did not exist
      }
    }
    logger?.warn({ path, movedTo: aside, err: String(err) }, 'the SQLite file was unreadable; moved it aside and started a new one');
    return open(path);
  }
}

/** The column names of `table` (none when it does not exist), for tables that change layout between builds. */
export function columnsOf(db: SidecarDatabase, table: string): string[] {
  return (db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
}
