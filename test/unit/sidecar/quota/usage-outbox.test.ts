// The usage outbox when its file cannot be written: settles stay in memory and reach the file later,
// with the sequences they would have had. And its in-flight log: a running request's line is on disk
// before it goes upstream, its settle's line covers the usage until it moves into the SQLite file, and
// what a killed process left (taken here as a copy of the files at that moment) is recorded once at the
// next start.
import Database from 'better-sqlite3';
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';

/** Tokens by kind of a record whose settles did not know them. */
const UNKNOWN_KINDS = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 };

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
      { sequence: 1, tokens: 15, startedAtMs: 1_000, model: 'm', tags: { feature: 'search', team: 'core' }, ...UNKNOWN_KINDS },
      { sequence: 2, tokens: 7, startedAtMs: 1_000, model: 'm', tags: { feature: 'chat' }, ...UNKNOWN_KINDS },
      { sequence: 3, tokens: 5, startedAtMs: 1_000, model: 'm', tags: {}, ...UNKNOWN_KINDS },
    ]);
  });

  it('adds up tokens by kind per record, and carries them through a kill in the settle line', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-outbox-')), 'llmgw.db');
    const outbox = new UsageOutbox(openDatabase(path));
    outbox.append('interactive', 100, 1_000, 'm', undefined, undefined, { input: 80, output: 20, cachedInput: 40, cacheWrite: 10 });
    const a = outbox.begin('interactive', 1_200, 'm', undefined, 30);
    outbox.append('interactive', 50, 1_200, 'm', undefined, a, { input: 30, output: 20, cachedInput: 0, cacheWrite: 30 });
    await new Promise((r) => setTimeout(r, 150)); // the settle lines are on disk
    // As a kill -9 leaves the files (a copy in another folder): the log is replayed with the kinds.
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-outbox-'));
    for (const name of readdirSync(dirname(path))) {
      if (!name.endsWith('-shm')) copyFileSync(join(dirname(path), name), join(dir, name));
    }
    const after = new UsageOutbox(openDatabase(join(dir, 'llmgw.db')));
    expect(after.pending('interactive')).toEqual([
      { sequence: 1, tokens: 150, startedAtMs: 1_000, model: 'm', tags: {}, inputTokens: 110, outputTokens: 40, cachedInputTokens: 40, cacheWriteTokens: 40 },
    ]);
    expect(outbox.pending('interactive')).toEqual(after.pending('interactive'));
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
      { sequence: 4, tokens: 99, startedAtMs: 5000, model: 'old', tags: {}, ...UNKNOWN_KINDS },
      { sequence: 5, tokens: 1, startedAtMs: 9_000, model: 'new', tags: { feature: 'x' }, ...UNKNOWN_KINDS },
    ]);
  });

  describe('in-flight log', () => {
    const fresh = (): string => join(mkdtempSync(join(tmpdir(), 'llmgw-inflight-')), 'llmgw.db');
    const logsOf = (path: string): string[] => readdirSync(dirname(path)).filter((n) => n.startsWith(`${basename(path)}-inflight-`));
    /** The files as a kill -9 at this moment leaves them, in another folder (so no live outbox owns them). */
    const killedCopy = (path: string): string => {
      const copy = fresh();
      for (const name of readdirSync(dirname(path))) {
        if (name.endsWith('-shm')) continue; // rebuilt from the write-ahead log, as after a crash
        copyFileSync(join(dirname(path), name), join(dirname(copy), name.replace(basename(path), basename(copy))));
      }
      return copy;
    };

    it('has each request\'s line on disk when begin returns, in the same turn as others', async () => {
      const path = fresh();
      const outbox = new UsageOutbox(openDatabase(path));
      outbox.begin('interactive', 61_200, 'm', { team: 'x' }, 40);
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toEqual({ requests: 1, tokens: 40, settledTokens: 0 });
      outbox.begin('batch', 62_500, 'm', undefined, 7);
      // A kill now: both are settled at their prompt, once.
      const copy = killedCopy(path);
      const after = new UsageOutbox(openDatabase(copy));
      expect(after.recovered).toEqual({ requests: 2, tokens: 47, settledTokens: 0 });
      expect(after.pending('interactive')).toEqual([{ sequence: 1, tokens: 40, startedAtMs: 61_000, model: 'm', tags: { team: 'x' }, ...UNKNOWN_KINDS }]);
      expect(after.pending('batch')).toMatchObject([{ tokens: 7, startedAtMs: 62_000 }]);
      // The replayed log is gone; only the new outbox's own remains.
      expect(logsOf(copy)).toHaveLength(1);
      expect(new UsageOutbox(openDatabase(copy)).recovered).toEqual({ requests: 0, tokens: 0, settledTokens: 0 });
    });

    it('covers a settle by its line until the usage moves into the file, and never counts it twice', async () => {
      const path = fresh();
      const outbox = new UsageOutbox(openDatabase(path));
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      outbox.append('interactive', 55, 1_000, 'm', undefined, a);
      await new Promise((r) => setImmediate(r)); // the next turn: the next request's line goes at once
      outbox.begin('interactive', 1_100, 'm', undefined, 9); // and the settle's line with it
      let after = new UsageOutbox(openDatabase(killedCopy(path)));
      expect(after.recovered).toEqual({ requests: 1, tokens: 9, settledTokens: 55 });
      expect(after.pending('interactive')).toMatchObject([{ tokens: 64 }]);

      outbox.flush(); // moves the 55 into the file and starts a new log with the running request
      expect(logsOf(path)).toHaveLength(1);
      after = new UsageOutbox(openDatabase(killedCopy(path)));
      expect(after.recovered).toEqual({ requests: 1, tokens: 9, settledTokens: 0 });
      expect(after.pending('interactive')).toMatchObject([{ sequence: 1, tokens: 55 }, { sequence: 2, tokens: 9 }]); // from the file, and from the log
      expect(outbox.pending('interactive')).toMatchObject([{ sequence: 1, tokens: 55 }]);
    });

    it('writes a settle\'s line within 100 ms when no other request comes', async () => {
      const path = fresh();
      const outbox = new UsageOutbox(openDatabase(path));
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      outbox.append('interactive', 55, 1_000, 'm', undefined, a);
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toEqual({ requests: 1, tokens: 40, settledTokens: 0 });
      await new Promise((r) => setTimeout(r, 150));
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toEqual({ requests: 0, tokens: 0, settledTokens: 55 });
    });

    it('checkpoints a running stream\'s usage so far, never lowering it', () => {
      const path = fresh();
      const outbox = new UsageOutbox(openDatabase(path));
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      let used = 52;
      a.progress = () => used;
      outbox.checkpointNow();
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toMatchObject({ requests: 1, tokens: 52 });
      used = 45;
      outbox.checkpointNow();
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toMatchObject({ requests: 1, tokens: 52 });
      // Carried into each new log.
      outbox.append('batch', 3, 1_000, 'm');
      outbox.flush();
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toMatchObject({ requests: 1, tokens: 52 });
    });

    it('leaves the log of another outbox of this process alone', () => {
      const path = fresh();
      const first = new UsageOutbox(openDatabase(path));
      const mine = first.begin('interactive', 1_500, 'm', undefined, 30);
      // A second outbox on the file, as after a change of the quota settings in this process.
      const second = new UsageOutbox(openDatabase(path));
      expect(second.recovered).toEqual({ requests: 0, tokens: 0, settledTokens: 0 });
      expect(logsOf(path)).toHaveLength(2);
      first.append('interactive', 33, 1_500, 'm', undefined, mine);
      expect(first.pending('interactive')).toMatchObject([{ tokens: 33 }]);
      // Closed with nothing running, an outbox removes its log.
      first.close();
      second.close();
      expect(logsOf(path)).toEqual([]);
    });

    it('ignores a torn last line and damaged lines, and removes logs no outbox names', () => {
      const path = fresh();
      const outbox = new UsageOutbox(openDatabase(path));
      outbox.begin('interactive', 1_000, 'm', undefined, 40);
      const copy = killedCopy(path);
      const [log] = logsOf(copy);
      appendFileSync(join(dirname(copy), log!), '["b",999,"interactive",1000,"m","",1]\n[1,2]\n{}\n["b",1000,"interactive",1000,"m","",5');
      writeFileSync(`${copy}-inflight-left-by-a-rotation-that-never-committed`, '["s",0,"interactive",1000,"m","",777]\n');
      const after = new UsageOutbox(openDatabase(copy));
      expect(after.recovered).toEqual({ requests: 2, tokens: 41, settledTokens: 0 });
      expect(logsOf(copy)).toHaveLength(1);
    });

    it('settles the rows a build with an in-flight table left, and drops the table', () => {
      const db = openDatabase(':memory:');
      db.exec(`CREATE TABLE quota_inflight (process TEXT NOT NULL, id INTEGER NOT NULL, priority TEXT NOT NULL, started_at_ms INTEGER NOT NULL,
        model TEXT NOT NULL, tags TEXT NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (process, id));
        INSERT INTO quota_inflight VALUES ('dead', 1, 'interactive', 61000, 'gpt', '{"team":"x"}', 120), ('dead', 2, 'batch', 62500, 'gpt', '', 80);`);
      const outbox = new UsageOutbox(db);
      expect(outbox.recovered).toEqual({ requests: 2, tokens: 200, settledTokens: 0 });
      expect(outbox.pending('interactive')).toEqual([{ sequence: 1, tokens: 120, startedAtMs: 61_000, model: 'gpt', tags: { team: 'x' }, ...UNKNOWN_KINDS }]);
      expect(outbox.pending('batch')).toEqual([{ sequence: 1, tokens: 80, startedAtMs: 62_000, model: 'gpt', tags: {}, ...UNKNOWN_KINDS }]);
      expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'quota_inflight'").all()).toEqual([]);
    });

    it('lets requests go on while another process holds the file\'s lock, and moves their usage afterwards', () => {
      const path = fresh();
      const outbox = new UsageOutbox(openDatabase(path));
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      const a = outbox.begin('interactive', 1_000, 'm', undefined, 40);
      outbox.append('interactive', 50, 1_000, 'm', undefined, a);
      expect(() => outbox.flush()).not.toThrow();
      expect(logsOf(path)).toHaveLength(1); // the rotation that could not commit left nothing behind
      other.exec('ROLLBACK');
      other.close();
      expect(new UsageOutbox(openDatabase(killedCopy(path))).recovered).toEqual({ requests: 0, tokens: 0, settledTokens: 50 });
      expect(outbox.pending('interactive')).toMatchObject([{ sequence: 1, tokens: 50 }]);
    });
  });
});
