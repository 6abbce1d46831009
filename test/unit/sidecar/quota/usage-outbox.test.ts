// The usage outbox when its file cannot be written: settles stay in memory and reach the file later,
// with the sequences they would have had.
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';

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
});
