// Requests that are running, kept in the sidecar's SQLite file so that a process killed without warning
// (OOM kill, node loss, an eviction past its grace period) loses none of their usage. Each metered
// request has a row from before its first upstream byte until it settles; a running stream's row is
// brought up to the tokens it has used so far at least once a second. At the next start the rows a dead
// process left are settled at what they say: the prompt plus the output checkpointed.
//
// Rows carry the id of the process that wrote them: a second journal on the same file in the same process
// (the quota settings changed while requests ran) leaves the first one's rows alone.
//
// The journal never writes on its own: the usage outbox runs its statements inside the one transaction it
// writes per event-loop turn, so a request's settled usage and the removal of its row commit together
// (never counted twice, never lost between the two).
import { randomUUID } from 'node:crypto';
import type { Priority } from '../http/caller-headers.js';
import type { SidecarDatabase } from '../storage/database.js';

/** A running request, as the journal tracks it. */
export class InflightEntry {
  /** Tokens the request has used as far as the journal knows (the prompt at first). */
  tokens: number;
  /** What it has used so far (a stream's checkpoint); set once its answer started. */
  progress: (() => number) | undefined;
  /** Resolves once the entry's row is committed (or its write failed and will be tried again). */
  readonly durable: Promise<void>;
  resolve!: () => void;

  constructor(
    readonly id: number,
    readonly priority: Priority,
    readonly startedAtMs: number,
    readonly model: string,
    /** Canonical JSON of the request's tags, '' for none. */
    readonly tags: string,
    promptTokens: number,
  ) {
    this.tokens = promptTokens;
    this.durable = new Promise((r) => (this.resolve = r));
  }
}

/** A row a dead process left: a request that never settled. */
export interface Orphan {
  priority: Priority;
  startedAtMs: number;
  model: string;
  tags: string;
  tokens: number;
}

/** This process: rows of another are orphans. */
const PROCESS_ID = randomUUID();
/** Entry ids, unique in this process whatever the number of journals. */
let nextId = 1;

export class InflightJournal {
  private readonly stmts;
  /** Entries whose row is not written yet. */
  private readonly added = new Map<number, InflightEntry>();
  /** Rows to delete: their requests settled. */
  private readonly removed = new Set<number>();
  /** Entries with a row, for checkpoints. */
  private readonly live = new Map<number, InflightEntry>();
  /** Checkpoints taken and not written yet. */
  private readonly updates = new Map<number, number>();

  constructor(db: SidecarDatabase) {
    db.exec(`CREATE TABLE IF NOT EXISTS quota_inflight (
      process TEXT NOT NULL, id INTEGER NOT NULL, priority TEXT NOT NULL, started_at_ms INTEGER NOT NULL,
      model TEXT NOT NULL, tags TEXT NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (process, id))`);
    this.stmts = {
      insert: db.prepare('INSERT INTO quota_inflight (process, id, priority, started_at_ms, model, tags, tokens) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE quota_inflight SET tokens = ? WHERE process = ? AND id = ?'),
      delete: db.prepare('DELETE FROM quota_inflight WHERE process = ? AND id = ?'),
      orphans: db.prepare('SELECT priority, started_at_ms AS startedAtMs, model, tags, tokens FROM quota_inflight WHERE process <> ? ORDER BY id'),
      clear: db.prepare('DELETE FROM quota_inflight WHERE process <> ?'),
    };
  }

  /**
   * The rows a dead process left, removed from the file: call once at start, inside the transaction
   * that records their usage.
   */
  takeOrphans(): Orphan[] {
    const rows = this.stmts.orphans.all(PROCESS_ID) as Orphan[];
    this.stmts.clear.run(PROCESS_ID);
    return rows;
  }

  begin(priority: Priority, startedAtMs: number, model: string, tags: string, promptTokens: number): InflightEntry {
    const entry = new InflightEntry(nextId++, priority, startedAtMs, model, tags, Math.max(0, Math.round(promptTokens)));
    this.added.set(entry.id, entry);
    return entry;
  }

  /** The entry's request settled: its row goes (or is never written). */
  end(entry: InflightEntry): void {
    this.live.delete(entry.id);
    this.updates.delete(entry.id);
    if (this.added.delete(entry.id)) entry.resolve();
    else this.removed.add(entry.id);
  }

  /** Requests being tracked. */
  get running(): number {
    return this.live.size + this.added.size;
  }

  /** Whether anything waits to be written. */
  get dirty(): boolean {
    return this.added.size > 0 || this.removed.size > 0 || this.updates.size > 0;
  }

  /** Takes the checkpoint of every running stream that used more since the last one; returns how many. */
  checkpoint(): number {
    let n = 0;
    for (const entry of this.live.values()) {
      if (entry.progress === undefined) continue;
      const tokens = Math.round(entry.progress());
      if (tokens <= entry.tokens) continue;
      entry.tokens = tokens;
      this.updates.set(entry.id, tokens);
      n++;
    }
    return n;
  }

  /** Runs what waits, inside the caller's transaction; `committed` or `failed` follows. */
  write(): void {
    for (const e of this.added.values()) this.stmts.insert.run(PROCESS_ID, e.id, e.priority, e.startedAtMs, e.model, e.tags, e.tokens);
    for (const [id, tokens] of this.updates) this.stmts.update.run(tokens, PROCESS_ID, id);
    for (const id of this.removed) this.stmts.delete.run(PROCESS_ID, id);
  }

  committed(): void {
    for (const e of this.added.values()) {
      this.live.set(e.id, e);
      e.resolve();
    }
    this.added.clear();
    this.updates.clear();
    this.removed.clear();
  }

  /**
   * The transaction rolled back: everything stays to be written with the next one. Requests do not wait
   * for it (a file another process locks must not stop traffic); their rows follow when the file allows.
   */
  failed(): void {
    for (const e of this.added.values()) e.resolve();
  }
}
