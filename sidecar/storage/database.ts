// The sidecar's one SQLite file (`storage.path`): unsent usage now, the response cache later.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SidecarDatabase = Database.Database;

export function openDatabase(path: string): SidecarDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // Committed rows survive a crash of the process; only a power loss may cost the last transactions.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 2000');
  return db;
}
