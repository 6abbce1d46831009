// Group commit for the SQLite store. The file is written with `synchronous = FULL`: a call is answered
// only once its writes reached the disk, so a grant or an acknowledged report survives the loss of the
// node. One fsync per call capped the service at a few hundred calls a second and made every call wait
// for its own. Here the writes of every call made in one turn of the event loop go into one transaction
// (each call's writes in a savepoint of it, so a call that fails undoes only its own), committed once at
// the end of the turn; each call is answered after that commit.
//
// When the commit fails, or SQLite rolled the turn's transaction back by itself (a full disk or an I/O
// error in a statement), nothing of the turn is on disk but the allocator's memory holds it: the turn's
// calls are refused, and `onFailure` has the memory read again from the file.

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
}

export class GroupCommit {
  private open = false;
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(
    private readonly tx: Transactional,
    /** Told once per lost turn, after its callers were refused; it must not throw. */
    private readonly onFailure: (err: unknown) => void,
  ) {}

  /**
   * Before a write: opens this turn's transaction unless one is open. Throws TurnLost when SQLite rolled the
   * turn's transaction back under the calls made so far: they fail, and so does this one (it may have
   * changed memory already; the rebuild read the file before it could write).
   */
  join(): void {
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

  /** Resolves once everything written so far is committed; rejects when that commit failed. */
  durable(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Commits what is open now (at shutdown). */
  commit(): void {
    if (!this.open) return;
    try {
      this.tx.commit();
    } catch (err) {
      this.fail(err);
      return;
    }
    const waiting = this.waiting;
    this.waiting = [];
    this.open = false;
    for (const w of waiting) w.resolve();
  }

  /** The turn's writes are lost: its callers are refused first, whatever undoing them or `onFailure` does. */
  private fail(err: unknown): void {
    const waiting = this.waiting;
    this.waiting = [];
    this.open = false;
    for (const w of waiting) w.reject(err);
    try {
      this.tx.rollback();
    } catch {
      // Nothing more can be undone; onFailure reads the file again.
    }
    this.onFailure(err);
  }
}
