// The usage outbox when its file cannot be written: settles stay in memory and reach the file later,
// with the sequences they would have had. And its in-flight journal: a running request's row is on disk
// before it goes upstream, goes with its settle in one transaction, and a dead process's rows are settled
// at the next start.
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { openDatabase, type SidecarDatabase } from '../../../../sidecar/storage/database.js';

describe('usage outbox', () => {
  it('keeps what it could not write while another process holds the lock, and writes it afterwards', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-outbox-')), 'llmgw.db');
    const outbox = new UsageOutbox(openDatabase(path));
    outbox.append('interactive', 100, 1_000, 'm');
    expect(outbox.pending('interactive')).toMatchObject([{ sequence: 1, tokens: 100 }]);

    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE'); // holds the write lock, as a person with the sqlite3 shell might
    outbox.append('interactive', 30, 2_000, 'm');
    outbox.append('interactive', 12, 2_500, 'm');
    expect(() => outbox.flush()).not.toThrow();
    expect(outbox.pending('interactive')).toMatchObject([{ sequence: 1, tokens: 100 }]); // not on disk yet
    other.exec('ROLLBACK');
    other.close();

    outbox.append('interactive', 8, 2_900, 'm');
    const records = outbox.pending('interactive');
    expect(records).toMatchObject([
      { sequence: 1, tokens: 100 },
      { sequence: 2, tokens: 50, startedAtMs: 2_000 },
    ]);
  });

  it('keeps one record per set of tags, whatever their order, and carries them to delivery', () => {
    const outbox = new UsageOutbox(openDatabase(':memory:'));
    outbox.append('interactive', 10, 1_000, 'm', { feature: 'search', team: 'core' });
    outbox.append('interactive', 5, 1_200, 'm', { team: 'core', feature: 'search' });
    outbox.append('interactive', 7, 1_300, 'm', { feature: 'chat' });
    outbox.append('interactive', 3, 1_400, 'm');
    outbox.append('interactive', 2, 1_500, 'm', {});
    expect(outbox.pending('interactive')).toEqual([
      { sequence: 1, tokens: 15, startedAtMs: 1_000, model: 'm', tags: { feature: 'search', team: 'core' } },
      { sequence: 2, tokens: 7, startedAtMs: 1_000, model: 'm', tags: { feature: 'chat' } },
      { sequence: 3, tokens: 5, startedAtMs: 1_000, model: 'm', tags: {} },
    ]);
  });

  it('adds the tags column to a file from a build without it, keeping its records', () => {
    const db = openDatabase(':memory:');
    db.exec(`CREATE TABLE usage_outbox (
      priority TEXT NOT NULL, sequence INTEGER NOT NULL, tokens INTEGER NOT NULL,
      started_at_ms INTEGER NOT NULL, model TEXT NOT NULL, PRIMARY KEY (priority, sequence));
      INSERT INTO usage_outbox VALUES ('batch', 4, 99, 5000, 'old');`);
    const outbox = new UsageOutbox(db);
    outbox.append('batch', 1, 9_000, 'new', { feature: 'x' });
    expect(outbox.pending('batch')).toEqual([
      { sequence: 4, tokens: 99, startedAtMs: 5000, model: 'old', tags: {} },
      { sequence: 5, tokens: 1, startedAtMs: 9_000, model: 'new', tags: { feature: 'x' } },
    ]);
  });

  describe('in-flight journal', () => {
    const rows = (db: SidecarDatabase): { id: number; tokens: number }[] =>
      db.prepare('SELECT id, tokens FROM quota_inflight ORDER BY id').all() as { id: number; tokens: number }[];

    it('writes a request\'s row before its durable promise resolves, and removes it with its settled usage', async () => {
      const db = openDatabase(':memory:');
      const outbox = new UsageOutbox(db);
      const a = outbox.begin('interactive', 1_000, 'm', { team: 'x' }, 40);
      const b = outbox.begin('batch', 1_200, 'm', undefined, 7);
      expect(rows(db)).toEqual([]);
      await Promise.all([a.durable, b.durable]);
      expect(rows(db)).toEqual([{ id: a.id, tokens: 40 }, { id: b.id, tokens: 7 }]);

      outbox.append('interactive', 55, 1_000, 'm', { team: 'x' });
      outbox.end(a);
      outbox.flush();
      expect(rows(db)).toEqual([{ id: b.id, tokens: 7 }]);
      expect(outbox.pending('interactive')).toMatchObject([{ tokens: 55, tags: { team: 'x' } }]);
    });

    it('never writes the row of a request that settled in the turn it began', () => {
      const db = openDatabase(':memory:');
      const outbox = new UsageOutbox(db);
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      outbox.end(a);
      outbox.flush();
      expect(rows(db)).toEqual([]);
    });

    it('checkpoints a running stream\'s usage so far, never lowering it', async () => {
      const db = openDatabase(':memory:');
      const outbox = new UsageOutbox(db);
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      await a.durable;
      let used = 52;
      a.progress = () => used;
      outbox.checkpointNow();
      expect(rows(db)).toEqual([{ id: a.id, tokens: 52 }]);
      used = 45;
      outbox.checkpointNow();
      expect(rows(db)).toEqual([{ id: a.id, tokens: 52 }]);
    });

    it('settles the rows another process left at their tokens, once, and leaves this process\'s own alone', async () => {
      const path = join(mkdtempSync(join(tmpdir(), 'llmgw-inflight-')), 'llmgw.db');
      const first = new UsageOutbox(openDatabase(path));
      const mine = first.begin('interactive', 1_500, 'm', undefined, 30);
      await mine.durable;
      const db = openDatabase(path);
      db.prepare('INSERT INTO quota_inflight (process, id, priority, started_at_ms, model, tags, tokens) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
        'dead', 1, 'interactive', 61_000, 'gpt', '{"team":"x"}', 120,
      );
      db.prepare('INSERT INTO quota_inflight (process, id, priority, started_at_ms, model, tags, tokens) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
        'dead', 2, 'batch', 62_500, 'gpt', '', 80,
      );

      // A second outbox on the file, as after a change of the quota settings in this process.
      const second = new UsageOutbox(db);
      expect(second.recovered).toEqual({ requests: 2, tokens: 200 });
      expect(second.pending('interactive')).toEqual([{ sequence: 1, tokens: 120, startedAtMs: 61_000, model: 'gpt', tags: { team: 'x' } }]);
      expect(second.pending('batch')).toEqual([{ sequence: 1, tokens: 80, startedAtMs: 62_000, model: 'gpt', tags: {} }]);
      expect(rows(db)).toEqual([{ id: mine.id, tokens: 30 }]);
      expect(new UsageOutbox(db).recovered).toEqual({ requests: 0, tokens: 0 });
    });

    it('lets requests go on while another process holds the file\'s lock, and writes their rows afterwards', async () => {
      const path = join(mkdtempSync(join(tmpdir(), 'llmgw-inflight-')), 'llmgw.db');
      const db = openDatabase(path);
      const outbox = new UsageOutbox(db);
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      await a.durable;
      expect(rows(db)).toEqual([]);
      other.exec('ROLLBACK');
      other.close();
      outbox.flush();
      expect(rows(db)).toEqual([{ id: a.id, tokens: 40 }]);
    });
  });
});
