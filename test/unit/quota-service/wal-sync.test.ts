// The SQLite store's commits with their fsync off the event loop (wal-sync.ts), on a real file: a turn's
// COMMIT does not sync, other writes still do, SQLite never checkpoints by itself, and the store's own
// checkpoints (at most once a second) keep the WAL from growing.
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqlite, type SqliteDatabase } from '../../../common/sqlite.js';
import { walSyncedTransaction } from '../../../quota-service/wal-sync.js';

const open: SqliteDatabase[] = [];
afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
});

function database(): SqliteDatabase {
  const db = openSqlite(join(mkdtempSync(join(tmpdir(), 'llmgw-wal-sync-')), 'quota.db'), { synchronous: 'FULL', busyTimeoutMs: 1000 });
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)');
  open.push(db);
  return db;
}

const synchronous = (db: SqliteDatabase): number => db.pragma('synchronous', { simple: true }) as number;
const syncNow = (tx: { sync?: (done: (err: Error | null) => void) => void }): Promise<void> =>
  new Promise((resolve, reject) => tx.sync!((err) => (err === null ? resolve() : reject(err))));

describe('group commits with the fsync off the event loop', () => {
  it("commits a turn without syncing, keeps FULL for every other write, and fsyncs the WAL when asked", async () => {
    const db = database();
    const tx = walSyncedTransaction(db);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    expect(synchronous(db)).toBe(2);
    tx.begin();
    expect(synchronous(db)).toBe(0);
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(100));
    tx.commit();
    expect(synchronous(db)).toBe(2);
    await syncNow(tx);
    tx.begin();
    tx.rollback();
    expect(synchronous(db)).toBe(2);
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 1 });
  });

  it('checkpoints after a commit at most once a second, so the WAL does not grow with the commits', () => {
    const walSize = (every: number): number => {
      const db = database();
      let t = 0;
      const tx = walSyncedTransaction(db, () => t);
      for (let i = 0; i < 300; i++) {
        t += every;
        tx.begin();
        db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(4000));
        tx.commit();
      }
      return statSync(`${db.name}-wal`).size;
    };
    // 300 commits of a page each: within a second of each other nothing is copied; a second apart, the WAL
    // is copied and written over from its start each time.
    const unchecked = walSize(1);
    const checked = walSize(1000);
    expect(unchecked).toBeGreaterThan(300 * 4096);
    expect(checked).toBeLessThan(unchecked / 10);
  });

  it('syncs in the event loop the turn that starts the WAL again after a checkpoint copied all of it', () => {
    const db = database();
    let t = 0;
    const tx = walSyncedTransaction(db, () => t);
    const turn = (): number => {
      tx.begin();
      const during = synchronous(db);
      db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(100));
      tx.commit();
      return during;
    };
    expect(turn()).toBe(0);
    // A second later: this commit is followed by a checkpoint that copies the whole WAL.
    t = 1000;
    expect(turn()).toBe(0);
    // The next write starts the WAL from its beginning, with a new header that must reach the disk before
    // its frames: with syncing on, as SQLite does it.
    expect(turn()).toBe(2);
    // The restart is done (the header's checkpoint sequence number changed): back to fsyncs off the loop.
    expect(turn()).toBe(0);
    expect(turn()).toBe(0);
  });

  it('lets an fsync under way finish when the database closes, and answers later ones at once', async () => {
    const db = database();
    const tx = walSyncedTransaction(db);
    tx.begin();
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(100));
    tx.commit();
    const running = syncNow(tx);
    db.close();
    tx.close();
    await running;
    await syncNow(tx);
  });
});
