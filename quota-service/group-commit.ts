// Group commit for the SQLite store. A call is answered only once its writes reached the disk, so a grant
// or an acknowledged report survives the loss of the node. One fsync per call capped the service at a few
// hundred calls a second and made every call wait for its own. Here the writes of every call made in one
// turn of the event loop go into one transaction (each call's writes in a savepoint of it, so a call that
// fails undoes only its own), committed once at the end of the turn; each call is answered after that
// commit reached the disk.
//
// Reaching the disk: with a store that can `sync` (a file), the commit itself does not wait for the disk;
// the fsync runs off the event loop, and the calls of every turn committed before it started are answered
// when it ends. Calls of the next turns are served meanwhile, and one fsync covers all the turns committed
// while the previous one ran. Before this, the event loop stood still in every commit's fsync: most of the
// service's time at 2,000 calls a second (a CPU profile of `npm run bench:quota`).
//
// When the commit fails, or SQLite rolled the turn's transaction back by itself (a full disk or an I/O
// error in a statement), nothing of the turn is on disk but the allocator's memory holds it: the turn's
// calls are refused, and `onFailure` has the memory read again from the file. When an fsync fails, what
// the file's pages hold can no longer be trusted to be on the disk (Linux may drop the pages it could not
// write): the calls waiting for it are refused, every later one too, and `onSyncFailure` is told, once.

/** SQLite rolled back the transaction of the turn by itself. */
export class TurnLost extends Error {
  constructor() {
    super('the store rolled back the writes of this turn');
    this.name = 'TurnLost';
  }
}

/** The store's transaction, as group commit drives it. */
export interface Transactional {
  begin(): void;
  commit(): void;
  /** Undoes what the open transaction holds; does nothing when none is open. */
  rollback(): void;
  /** A transaction is open (SQLite ends one by itself on some errors). */
  active(): boolean;
  /**
   * Makes what every commit so far wrote durable, without blocking: `done` is called once it is (or with
   * the error). Absent: `commit` itself returns only once the writes are on disk.
   */
  sync?(done: (err: Error | null) => void): void;
}

/** An fsync failed: nothing written since the last good one is known to be on disk. */
export class SyncFailed extends Error {
  constructor(cause: unknown) {
    super(`the store could not make its writes durable (${cause instanceof Error ? cause.message : String(cause)}); the service must start again`, { cause });
    this.name = 'SyncFailed';
  }
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  private open = false;
  /** Callers of the open turn. */
  private waiting: Waiter[] = [];
  /** Callers of committed turns that no fsync started since covers; `dirty`: such turns were committed. */
  private unsynced: Waiter[] = [];
  private dirty = false;
  private syncing = false;
  private broken: SyncFailed | undefined;

  constructor(
    private readonly tx: Transactional,
    /** Told once per lost turn, after its callers were refused; it must not throw. */
    private readonly onFailure: (err: unknown) => void,
    /** Told once when an fsync failed, after the callers were refused; it must not throw. */
    private readonly onSyncFailure: (err: SyncFailed) => void = () => undefined,
  ) {}

  /**
   * Before a write: opens this turn's transaction unless one is open. Throws TurnLost when SQLite rolled the
   * turn's transaction back under the calls made so far: they fail, and so does this one (it may have
   * changed memory already; the rebuild read the file before it could write).
   */
  join(): void {
    if (this.broken !== undefined) throw this.broken;
    if (this.open) {
      if (this.tx.active()) return;
      const lost = new TurnLost();
      this.fail(lost);
      throw lost;
    }
    this.tx.begin();
    this.open = true;
    setImmediate(() => this.commit());
  }

  /** Resolves once everything written so far is committed and on disk; rejects when that failed. */
  durable(): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    if (this.open) return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (!this.dirty && !this.syncing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.unsynced.push({ resolve, reject });
      this.dirty = true;
      this.startSync();
    });
  }

  /** Commits what is open now (the end of the turn, and at shutdown). */
  commit(): void {
    if (!this.open) return;
    // Nothing more is written once an fsync failed: the service starts again from what the disk holds.
    if (this.broken !== undefined) {
      this.undo(this.broken);
      return;
    }
    try {
      this.tx.commit();
    } catch (err) {
      this.fail(err);
      return;
    }
    const waiting = this.waiting;
    this.waiting = [];
    this.open = false;
    if (this.tx.sync === undefined) {
      for (const w of waiting) w.resolve();
      return;
    }
    this.unsynced.push(...waiting);
    this.dirty = true;
    this.startSync();
  }

  /** One fsync at a time: it covers every turn committed before it started. */
  private startSync(): void {
    if (this.syncing || !this.dirty || this.broken !== undefined) return;
    const covered = this.unsynced;
    this.unsynced = [];
    this.dirty = false;
    this.syncing = true;
    this.tx.sync!((err) => {
      this.syncing = false;
      if (err !== null) {
        this.broken = new SyncFailed(err);
        for (const w of [...covered, ...this.unsynced, ...this.waiting]) w.reject(this.broken);
        this.unsynced = [];
        this.waiting = [];
        this.onSyncFailure(this.broken);
        return;
      }
      for (const w of covered) w.resolve();
      this.startSync();
    });
  }

  /** The turn's writes are lost: its callers are refused first, whatever undoing them or `onFailure` does. */
  private fail(err: unknown): void {
    this.undo(err);
    this.onFailure(err);
  }

  /** Refuses the open turn's callers and rolls it back. */
  private undo(err: unknown): void {
    const waiting = this.waiting;
    this.waiting = [];
    this.open = false;
    for (const w of waiting) w.reject(err);
    try {
      this.tx.rollback();
    } catch {
      // Nothing more can be undone; onFailure reads the file again.
    }
  }
}
