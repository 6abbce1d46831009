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
});
