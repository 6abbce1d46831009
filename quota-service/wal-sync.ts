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
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
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
  const closeWal = (): void => {
    if (wal !== undefined) closeSync(wal);
    wal = undefined;
  };
  const full = (): void => void db.pragma('synchronous = FULL');
  return {
    begin: () => {
      db.pragma('synchronous = OFF');
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (err) {
        full();
        throw err;
      }
    },
    commit: () => {
      try {
        db.exec('COMMIT');
      } finally {
        if (!db.inTransaction) full();
      }
      if (now() - lastCheckpoint >= CHECKPOINT_EVERY_MS) {
        lastCheckpoint = now();
        try {
          db.pragma('wal_checkpoint(PASSIVE)');
        } catch {
          // The turn is committed all the same (its fsync makes it durable); the WAL is copied next time.
        }
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
      try {
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
      } catch (err) {
        return done(err as Error);
      }
      syncing = true;
      fsync(wal, (err) => {
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
