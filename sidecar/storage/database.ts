// The sidecar's one SQLite file (`storage.path`): the response cache and unsent usage. A file that is
// not a database (corrupt, truncated) is moved aside and a new one created, with a warning: the cache is
// only a cache, and usage the old file held is better reported late by hand than blocking the pod.
import { renameSync } from 'node:fs';
import type { Logger } from 'pino';
import { openSqlite, type SqliteDatabase } from '../../common/sqlite.js';

export type SidecarDatabase = SqliteDatabase;

// Committed rows survive a crash of the process; only a power loss may cost the last transactions. Only
// another process (someone inspecting the file) can hold its lock: a write waits 100 ms at most, then the
// cache steps aside and the outbox keeps its records for later.
const open = (path: string): SidecarDatabase => openSqlite(path, { synchronous: 'NORMAL', busyTimeoutMs: 100 });

export function openDatabase(path: string, logger?: Logger): SidecarDatabase {
  try {
    return open(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (path === ':memory:' || (code !== 'SQLITE_NOTADB' && code !== 'SQLITE_CORRUPT')) throw err;
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
