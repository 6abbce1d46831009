// The SQLite replica's allocator with group commits, on a real file: a turn's calls are one transaction,
// answered only once it is on disk; a failed commit refuses them and leaves memory as the file is, so
// that resent reports are counted (not taken for duplicates of reports the disk never got).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { SyncFailed, type Transactional } from '../../../quota-service/group-commit.js';
import { groupCommitted } from '../../../quota-service/group-committed-allocator.js';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { fakeClock } from '../../helpers/fake-clock.js';

const open: { close(): void }[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

function setup(wrap?: (tx: Transactional) => Transactional, onSyncFailure: (err: SyncFailed) => void = () => expect.fail('no failed fsync')) {
  const file = join(mkdtempSync(join(tmpdir(), 'llmgw-group-commit-')), 'quota.db');
  const clock = fakeClock();
  const store = new SqliteQuotaStore(file);
  const { allocator } = groupCommitted(store, { clock }, onSyncFailure, undefined, wrap);
  // Another connection to the file: what it sees is what is on disk.
  const reader = new Database(file, { readonly: true });
  open.push(reader, store);
  const onDisk = (): number => (reader.prepare("SELECT coalesce(sum(used), 0) AS n FROM consumption WHERE scope = 'namespace/demo' AND window = 'day'").get() as { n: number }).n;
  return { clock, store, allocator, onDisk };
}

const identity = { namespace: 'demo', service: 'app', pod: 'p' };

describe('the SQLite allocator with group commits', () => {
  it("commits a turn's calls together and answers each only once they are on disk", async () => {
    let commits = 0;
    const { clock, allocator, onDisk } = setup((tx) => ({ ...tx, commit: () => (tx.commit(), void commits++) }));
    await allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const before = commits;
    const answered: number[] = [];
    const calls = Array.from({ length: 20 }, (_, i) =>
      Promise.resolve(allocator.report(identity, 'o', `inc-${i}`, [{ sequence: 1, tokens: 10, startedAtMs: clock.now() }])).then((acked) => {
        // Told only once the file holds every call of the turn.
        answered.push(onDisk());
        return acked;
      }),
    );
    expect(onDisk()).toBe(0);
    expect(await Promise.all(calls)).toEqual(Array(20).fill(1));
    expect(answered).toEqual(Array(20).fill(200));
    expect(commits - before).toBe(1);
  });

  it('refuses the calls of a turn whose commit failed as UNAVAILABLE, and counts their reports when sent again', async () => {
    let fail = false;
    const { clock, allocator, onDisk } = setup((tx) => ({
      ...tx,
      commit: () => {
        if (fail) throw new Error('disk I/O error');
        tx.commit();
      },
    }));
    await allocator.setBudget('namespace/demo', 'day', 1_000_000);
    const report = { sequence: 1, tokens: 500, startedAtMs: clock.now() };
    fail = true;
    await expect(allocator.report(identity, 'o', 'inc-1', [report])).rejects.toMatchObject({ code: status.UNAVAILABLE });
    fail = false;
    expect(onDisk()).toBe(0);
    // Had memory kept the refused report, this resend would be taken for a duplicate and the usage lost.
    expect(await allocator.report(identity, 'o', 'inc-1', [report])).toBe(1);
    expect(onDisk()).toBe(500);
    expect((await allocator.usage('namespace/demo', 'day', 1))[0]!.used).toBe(500);
  });

  it('refuses nothing but the failed turn: later calls commit as usual', async () => {
    let failNext = false;
    const { clock, allocator, onDisk } = setup((tx) => ({
      ...tx,
      commit: () => {
        if (failNext) {
          failNext = false;
          throw new Error('disk I/O error');
        }
        tx.commit();
      },
    }));
    failNext = true;
    await expect(allocator.report(identity, 'o', 'inc-a', [{ sequence: 1, tokens: 5, startedAtMs: clock.now() }])).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(await allocator.report(identity, 'o', 'inc-b', [{ sequence: 1, tokens: 7, startedAtMs: clock.now() }])).toBe(1);
    expect(onDisk()).toBe(7);
  });

  it("answers a turn's calls only once the fsync of the file's WAL returned", async () => {
    let hold = false;
    const held: (() => void)[] = [];
    const { clock, allocator, onDisk } = setup((tx) => ({
      ...tx,
      sync: (done) => (hold ? held.push(() => tx.sync!(done)) : tx.sync!(done)),
    }));
    await allocator.setBudget('namespace/demo', 'day', 1_000_000);
    hold = true;
    let answered = false;
    const call = Promise.resolve(allocator.report(identity, 'o', 'inc-1', [{ sequence: 1, tokens: 40, startedAtMs: clock.now() }])).then((acked) => {
      answered = true;
      return acked;
    });
    for (let i = 0; i < 5 && held.length === 0; i++) await new Promise((r) => setImmediate(r));
    // Committed (another connection reads it), but not answered while its fsync has not run.
    expect(held).toHaveLength(1);
    expect(onDisk()).toBe(40);
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false);
    hold = false;
    held.shift()!();
    expect(await call).toBe(1);
  });

  it('refuses the calls as UNAVAILABLE from a failed fsync on, and tells the service to end', async () => {
    let fail = false;
    const failures: SyncFailed[] = [];
    const { clock, allocator } = setup(
      (tx) => ({ ...tx, sync: (done) => (fail ? done(new Error('EIO: i/o error, fsync')) : tx.sync!(done)) }),
      (err) => failures.push(err),
    );
    await allocator.setBudget('namespace/demo', 'day', 1_000_000);
    fail = true;
    await expect(allocator.report(identity, 'o', 'inc-1', [{ sequence: 1, tokens: 5, startedAtMs: clock.now() }])).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(failures).toHaveLength(1);
    fail = false;
    await expect(allocator.report(identity, 'o', 'inc-2', [{ sequence: 1, tokens: 5, startedAtMs: clock.now() }])).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(failures).toHaveLength(1);
  });
});
