// Group commit for the SQLite store. The file is written with `synchronous = FULL`: a call is answered
// only once its writes reached the disk, so a grant or an acknowledged report survives the loss of the
// node. One fsync per call capped the service at a few hundred calls a second and made every call wait
// for its own. Here the writes of every call made in one turn of the event loop go into one transaction
// (each call's writes in a savepoint of it, so a call that fails undoes only its own), committed once at
// the end of the turn; each call is answered after that commit.
//
// When the commit fails, nothing of the turn is on disk but the allocator's memory holds it: the calls are
// refused (UNAVAILABLE, so sidecars resend them) and `onFailure` rebuilds the memory from the file.

/** The store's transaction, as group commit drives it. */
export interface Transactional {
  begin(): void;
  commit(): void;
  /** Undoes what the open transaction holds; does nothing when none is open. */
  rollback(): void;
}

export class GroupCommit {
  private open = false;
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(
    private readonly tx: Transactional,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  /** Before a write: opens this turn's transaction unless one is open. */
  join(): void {
    if (this.open) return;
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
    const waiting = this.waiting;
    this.waiting = [];
    this.open = false;
    try {
      this.tx.commit();
    } catch (err) {
      try {
        this.tx.rollback();
      } finally {
        this.onFailure(err);
        for (const w of waiting) w.reject(err);
      }
      return;
    }
    for (const w of waiting) w.resolve();
  }
}
