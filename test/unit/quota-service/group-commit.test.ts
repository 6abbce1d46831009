// Group commit: the writes of one turn in one transaction, committed at the end of the turn; callers are
// told only after it, and all refused when it failed.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { GroupCommit, SyncFailed, TurnLost, type Transactional } from '../../../quota-service/group-commit.js';

function fakeTx(opts: { failCommit?: boolean; failRollback?: boolean } = {}) {
  const log: string[] = [];
  let active = false;
  const tx: Transactional & { drop(): void } = {
    begin: () => {
      log.push('begin');
      active = true;
    },
    commit: () => {
      log.push('commit');
      if (opts.failCommit === true) throw new Error('disk I/O error');
      active = false;
    },
    rollback: () => {
      log.push('rollback');
      active = false;
      if (opts.failRollback === true) throw new Error('disk I/O error');
    },
    active: () => active,
    // SQLite ending the transaction by itself (a statement failed on a full disk).
    drop: () => void (active = false),
  };
  return { tx, log };
}

describe('group commit', () => {
  it('commits every write of one turn once, at the end of the turn, and tells each caller only then', async () => {
    const { tx, log } = fakeTx();
    const group = new GroupCommit(tx, () => expect.fail('no failure'));
    const told: string[] = [];
    for (let i = 0; i < 5; i++) {
      group.join();
      void group.durable().then(() => told.push(`call ${i} after ${log.at(-1)}`));
    }
    await Promise.resolve();
    expect(log).toEqual(['begin']);
    expect(told).toEqual([]);
    await nextTurn();
    await Promise.resolve();
    expect(log).toEqual(['begin', 'commit']);
    expect(told).toEqual([0, 1, 2, 3, 4].map((i) => `call ${i} after commit`));
    // The next turn's writes are a transaction of their own.
    group.join();
    await group.durable();
    expect(log).toEqual(['begin', 'commit', 'begin', 'commit']);
  });

  it('answers at once when nothing waits to be committed', async () => {
    const { tx, log } = fakeTx();
    await new GroupCommit(tx, () => undefined).durable();
    expect(log).toEqual([]);
  });

  it("refuses every caller of a turn whose commit failed, rolls back, and says so once", async () => {
    const { tx, log } = fakeTx({ failCommit: true });
    const failures: unknown[] = [];
    const group = new GroupCommit(tx, (err) => failures.push(err));
    group.join();
    const a = group.durable();
    group.join();
    const b = group.durable();
    await expect(a).rejects.toThrow('disk I/O error');
    await expect(b).rejects.toThrow('disk I/O error');
    expect(log).toEqual(['begin', 'commit', 'rollback']);
    expect(failures).toHaveLength(1);
  });

  it('refuses its callers and says so even when undoing the turn fails too', async () => {
    const { tx } = fakeTx({ failCommit: true, failRollback: true });
    const failures: unknown[] = [];
    const group = new GroupCommit(tx, (err) => failures.push(err));
    group.join();
    await expect(group.durable()).rejects.toThrow('disk I/O error');
    expect(failures).toHaveLength(1);
  });

  it('fails the turn, and the call that finds it, when SQLite rolled the turn back by itself', async () => {
    const { tx, log } = fakeTx();
    const failures: unknown[] = [];
    const group = new GroupCommit(tx, (err) => failures.push(err));
    group.join();
    const first = group.durable();
    tx.drop();
    expect(() => group.join()).toThrow(TurnLost);
    await expect(first).rejects.toThrow(TurnLost);
    expect(failures).toHaveLength(1);
    // The next write opens a transaction of its own.
    group.join();
    await group.durable();
    expect(log).toEqual(['begin', 'rollback', 'begin', 'commit']);
  });

  it('commits what is open when asked (shutdown)', async () => {
    const { tx, log } = fakeTx();
    const group = new GroupCommit(tx, () => undefined);
    group.join();
    const done = group.durable();
    group.commit();
    await done;
    expect(log).toEqual(['begin', 'commit']);
    await nextTurn();
    expect(log).toEqual(['begin', 'commit']);
  });

  describe('with fsyncs off the event loop', () => {
    /** A store whose fsyncs end when the test says. */
    function syncingTx() {
      const { tx, log } = fakeTx();
      const syncs: ((err: Error | null) => void)[] = [];
      const withSync: Transactional = {
        ...tx,
        sync: (done) => {
          log.push('sync');
          syncs.push(done);
        },
      };
      return { tx: withSync, log, syncs };
    }

    it('tells the callers of a turn only once the fsync after its commit returned', async () => {
      const { tx, log, syncs } = syncingTx();
      const group = new GroupCommit(tx, () => expect.fail('no failure'));
      const told: number[] = [];
      for (let i = 0; i < 3; i++) {
        group.join();
        void group.durable().then(() => told.push(i));
      }
      await nextTurn();
      expect(log).toEqual(['begin', 'commit', 'sync']);
      await Promise.resolve();
      expect(told).toEqual([]);
      syncs[0]!(null);
      await Promise.resolve();
      expect(told).toEqual([0, 1, 2]);
    });

    it('runs one fsync at a time: the turns committed while one ran share the next', async () => {
      const { tx, log, syncs } = syncingTx();
      const group = new GroupCommit(tx, () => expect.fail('no failure'));
      const told: string[] = [];
      group.join();
      void group.durable().then(() => told.push('turn 1'));
      await nextTurn();
      for (const turn of [2, 3]) {
        group.join();
        void group.durable().then(() => told.push(`turn ${turn}`));
        await nextTurn();
      }
      // Turns 2 and 3 are committed, but the first fsync still runs: no second one yet.
      expect(log.filter((l) => l === 'sync')).toHaveLength(1);
      expect(log.filter((l) => l === 'commit')).toHaveLength(3);
      syncs[0]!(null);
      await Promise.resolve();
      expect(told).toEqual(['turn 1']);
      expect(syncs).toHaveLength(2);
      syncs[1]!(null);
      await Promise.resolve();
      expect(told).toEqual(['turn 1', 'turn 2', 'turn 3']);
      // Nothing is left to sync: a caller now is told at once.
      await group.durable();
      expect(syncs).toHaveLength(2);
    });

    it('waits for the fsync under way when asked after the commit', async () => {
      const { tx, syncs } = syncingTx();
      const group = new GroupCommit(tx, () => expect.fail('no failure'));
      group.join();
      await nextTurn();
      let told = false;
      void group.durable().then(() => (told = true));
      syncs[0]!(null);
      await Promise.resolve();
      // The caller may have written in the turn that fsync covers or later: it is told after one more.
      expect(told).toBe(false);
      syncs[1]!(null);
      await Promise.resolve();
      expect(told).toBe(true);
    });

    it('refuses every caller from a failed fsync on, and says so once', async () => {
      const { tx, syncs, log } = syncingTx();
      const broken: SyncFailed[] = [];
      const group = new GroupCommit(tx, () => expect.fail('not a lost turn'), (err) => broken.push(err));
      group.join();
      const first = group.durable();
      await nextTurn();
      group.join();
      const second = group.durable();
      await nextTurn();
      syncs[0]!(new Error('EIO: i/o error, fsync'));
      await expect(first).rejects.toBeInstanceOf(SyncFailed);
      await expect(second).rejects.toThrow('EIO');
      expect(broken).toHaveLength(1);
      // No write is taken any more, and nothing more is synced: the service must start again.
      expect(() => group.join()).toThrow(SyncFailed);
      await expect(group.durable()).rejects.toBeInstanceOf(SyncFailed);
      expect(syncs).toHaveLength(1);
      expect(log.filter((l) => l === 'sync')).toHaveLength(1);
    });

    it('rolls back a turn still open when an fsync fails', async () => {
      const { tx, syncs, log } = syncingTx();
      const group = new GroupCommit(tx, () => expect.fail('not a lost turn'), () => undefined);
      group.join();
      await nextTurn();
      group.join();
      const open = group.durable();
      syncs[0]!(new Error('EIO'));
      await expect(open).rejects.toBeInstanceOf(SyncFailed);
      await nextTurn();
      expect(log).toEqual(['begin', 'commit', 'sync', 'begin', 'rollback']);
    });
  });
});
