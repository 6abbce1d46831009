// The SQLite store's group commits without the event loop waiting for the disk (group-commit.ts). A turn's
// transaction runs with `synchronous = OFF`, so its COMMIT writes the WAL without an fsync; `sync` then
// fsyncs the WAL file on libuv's thread pool, and the turn's calls are answered once that returned. Writes
// made outside group commits keep `synchronous = FULL`.
//
// Checkpoints. SQLite's automatic checkpoint would run inside such a COMMIT, with its fsyncs off too: the
// WAL could then be written over from its start before the database file held the checkpointed pages on
// disk, and a power loss would lose committed writes. So the automatic checkpoint is off, and one runs
// after a commit at most once every CHECKPOINT_EVERY_MS (and when the store closes), with `synchronous =
// FULL`: SQLite syncs the WAL before copying it and the database file before the WAL may be reused.
//
// Restarts. Once a checkpoint copied the whole WAL, the next write starts it again from its beginning with
// a new header, which SQLite syncs before the first frame unless syncing is off: otherwise a disk that
// writes out of order could leave frames under the wrong header (sqlite.org ticket ff5be73dee). So from
// such a checkpoint until the WAL's header shows the restart (its checkpoint sequence number, bytes 12-15,
// changed), turns run with `synchronous = FULL`: their COMMIT syncs in the event loop, about once a second.
import { closeSync, fsync, fsyncSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SqliteDatabase } from '../common/sqlite.js';
import type { Transactional } from './group-commit.js';

/** How often, at most, the WAL is copied into the database file. */
const CHECKPOINT_EVERY_MS = 1000;

export interface WalSynced extends Transactional {
  /** After the database closed (its last checkpoint made everything durable): releases the WAL file. */
  close(): void;
}

export function walSyncedTransaction(db: SqliteDatabase, now: () => number = () => performance.now()): WalSynced {
  db.pragma('wal_autocheckpoint = 0');
  let wal: number | undefined;
  let syncing = false;
  let closed = false;
  let lastCheckpoint = now();
  /** The WAL's checkpoint sequence number when a checkpoint copied all of it (undefined: no restart due). */
  let restartFrom: number | undefined;
  const walFd = (): number => {
    if (wal === undefined) {
      wal = openSync(`${db.name}-wal`, 'r');
      // The WAL's name in its folder must be on disk too (once: SQLite keeps the file while it is open).
      const dir = openSync(dirname(db.name), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return wal;
  };
  const header = Buffer.alloc(4);
  /** The WAL header's checkpoint sequence number (-1: no header yet). */
  const walSequence = (): number => (readSync(walFd(), header, 0, 4, 12) === 4 ? header.readUInt32BE(0) : -1);
  const closeWal = (): void => {
    if (wal !== undefined) closeSync(wal);
    wal = undefined;
  };
  // Prepared once: they run on every turn. (Not the pragmas: SQLite applies `synchronous` when it prepares
  // the statement, not when it runs it.)
  const beginTurn = db.prepare('BEGIN IMMEDIATE');
  const commitTurn = db.prepare('COMMIT');
  const full = (): void => void db.exec('PRAGMA synchronous = FULL');
  const checkpoint = (): void => {
    lastCheckpoint = now();
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    if (r !== undefined && r.busy === 0 && r.log === r.checkpointed) restartFrom ??= walSequence();
  };
  return {
    begin: () => {
      db.exec(restartFrom === undefined ? 'PRAGMA synchronous = OFF' : 'PRAGMA synchronous = FULL');
      try {
        beginTurn.run();
      } catch (err) {
        full();
        throw err;
      }
    },
    commit: () => {
      try {
        commitTurn.run();
      } finally {
        if (!db.inTransaction) full();
      }
      try {
        if (restartFrom !== undefined && walSequence() !== restartFrom) restartFrom = undefined;
        if (now() - lastCheckpoint >= CHECKPOINT_EVERY_MS) checkpoint();
      } catch {
        // The turn is committed all the same (its fsync makes it durable); the WAL is copied next time.
      }
    },
    rollback: () => {
      if (db.inTransaction) db.exec('ROLLBACK');
      full();
    },
    active: () => db.inTransaction,
    sync: (done) => {
      // Closed: the database's last checkpoint, with fsyncs on, made every commit durable.
      if (closed) return done(null);
      let fd: number;
      try {
        fd = walFd();
      } catch (err) {
        return done(err as Error);
      }
      syncing = true;
      fsync(fd, (err) => {
        syncing = false;
        if (closed) closeWal();
        done(err);
      });
    },
    close: () => {
      closed = true;
      if (!syncing) closeWal();
    },
  };
}
