// Usage the quota service has not acknowledged yet, kept in the sidecar's SQLite file so a restart or an
// outage of the service loses nothing. Each priority class numbers its records 1, 2, 3, … under its own
// incarnation (`<sidecar id>:<class>`), so the service can drop replays by sequence. When the service no
// longer knows an incarnation's numbering (it lost its database, or forgot a pod silent for a month) or
// holds it for another identity, the class starts a new incarnation and numbers what waits from 1 again.
//
// One record holds the usage of every request of a class, model and set of tags (`x-llmgw-tags`) that
// started in the same second and settled before the record was handed out for delivery, so a busy pod
// sends a handful of records a second instead of one per request (seconds never straddle a budget window:
// every token is still charged to the right window).
//
// The same file holds the in-flight journal (inflight-journal.ts): a metered request's row is written
// before its first upstream byte, with the rows of every request that started in the same event-loop
// turn, in one transaction right after that turn. Settles (the usage record, the row's removal) can wait a
// little longer, up to SETTLE_WAIT_MS, and go in one transaction with the next turn's rows: what a settle
// waits with is covered meanwhile by its request's row (at the prompt and the output checkpointed), so
// nothing is lost, and a pod serving one request at a time writes once per request, not twice.
import { randomUUID } from 'node:crypto';
import { columnsOf } from '../../common/sqlite.js';
import { canonical } from '../canonical-json.js';
import type { Priority } from '../http/caller-headers.js';
import { type SidecarDatabase } from '../storage/database.js';
import { InflightJournal, type InflightEntry } from './inflight-journal.js';

/** The longest a settle waits in memory for the next write. */
const SETTLE_WAIT_MS = 100;
/** How often running streams' usage so far is written (issue: at least once a second). */
const CHECKPOINT_EVERY_MS = 1000;

export interface UsageRecord {
  sequence: number;
  tokens: number;
  startedAtMs: number;
  model: string;
  /** The requests' attribution labels; empty when they carried none. */
  tags: Record<string, string>;
}

/** What settles to one record: the class, model, second and tags (as canonical JSON, '' for none). */
interface Settled {
  priority: Priority;
  model: string;
  second: number;
  tags: string;
  tokens: number;
}

export class UsageOutbox {
  readonly id: string;
  private readonly stmts;
  private readonly ackTx: (priority: Priority, sequence: number) => void;
  /** Next sequence to hand out per class. */
  private readonly next = new Map<Priority, number>();
  /** Records still taking usage, per class, model and tags: not yet handed out for delivery. */
  private readonly open = new Map<string, { sequence: number; second: number }>();
  /** Settles of this turn, per class, model, second and tags, written by `flush`. */
  private readonly buffered = new Map<string, Settled>();
  private scheduled = false;
  private settleTimer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly writeTx: (items: Settled[]) => void;
  private readonly restartTx: (priority: Priority) => string;
  /** Classes that started an incarnation of their own (see restart). */
  private readonly incarnations = new Map<Priority, string>();
  private readonly journal: InflightJournal;
  /** Runs while requests are in flight. */
  private checkpoints: NodeJS.Timeout | undefined;
  /** Requests a dead process left running, settled at start: how many, and their tokens. */
  readonly recovered: { requests: number; tokens: number };

  constructor(private readonly db: SidecarDatabase) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS quota_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS usage_outbox (
        priority TEXT NOT NULL, sequence INTEGER NOT NULL, tokens INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL, model TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '', PRIMARY KEY (priority, sequence)
      );`);
    // A file from a build that kept no tags: its records keep their usage and carry none.
    if (!columnsOf(db, 'usage_outbox').includes('tags')) db.exec("ALTER TABLE usage_outbox ADD COLUMN tags TEXT NOT NULL DEFAULT ''");
    const get = db.prepare('SELECT value FROM quota_meta WHERE key = ?');
    const set = db.prepare('INSERT INTO quota_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    let id = (get.get('incarnation') as { value: string } | undefined)?.value;
    if (id === undefined) {
      id = randomUUID();
      set.run('incarnation', id);
    }
    this.id = id;
    this.stmts = {
      get,
      set,
      insert: db.prepare('INSERT INTO usage_outbox (priority, sequence, tokens, started_at_ms, model, tags) VALUES (?, ?, ?, ?, ?, ?)'),
      add: db.prepare('UPDATE usage_outbox SET tokens = tokens + ? WHERE priority = ? AND sequence = ?'),
      pending: db.prepare('SELECT sequence, tokens, started_at_ms AS startedAtMs, model, tags FROM usage_outbox WHERE priority = ? ORDER BY sequence LIMIT ?'),
      sequences: db.prepare('SELECT sequence FROM usage_outbox WHERE priority = ? ORDER BY sequence'),
      renumber: db.prepare('UPDATE usage_outbox SET sequence = ? WHERE priority = ? AND sequence = ?'),
      classIncarnations: db.prepare("SELECT key, value FROM quota_meta WHERE key LIKE 'incarnation:%'"),
      ack: db.prepare('DELETE FROM usage_outbox WHERE priority = ? AND sequence <= ?'),
      count: db.prepare('SELECT priority, COUNT(*) AS n FROM usage_outbox GROUP BY priority'),
      highest: db.prepare('SELECT MAX(sequence) AS s FROM usage_outbox WHERE priority = ?'),
    };
    this.journal = new InflightJournal(db);
    this.writeTx = db.transaction((items: Settled[]) => {
      for (const i of items) this.write(i);
      this.journal.write();
    });
    for (const row of this.stmts.classIncarnations.all() as { key: string; value: string }[]) {
      this.incarnations.set(row.key.slice('incarnation:'.length) as Priority, row.value);
    }
    this.restartTx = db.transaction((priority: Priority) => {
      const incarnation = `${randomUUID()}:${priority}`;
      const sequences = (this.stmts.sequences.all(priority) as { sequence: number }[]).map((r) => r.sequence);
      // Through negative numbers, so no two records ever share a sequence on the way.
      for (const n of sequences) this.stmts.renumber.run(-n, priority, n);
      sequences.forEach((n, i) => this.stmts.renumber.run(i + 1, priority, -n));
      this.stmts.set.run(`incarnation:${priority}`, incarnation);
      this.stmts.set.run(`sequence:${priority}`, String(sequences.length));
      return incarnation;
    });
    // The highest sequence handed out must outlive the rows it numbered: a restart continues above it.
    this.ackTx = db.transaction((priority: Priority, sequence: number) => {
      const key = `sequence:${priority}`;
      const kept = Number((this.stmts.get.get(key) as { value: string } | undefined)?.value ?? '0');
      if (sequence > kept) this.stmts.set.run(key, String(sequence));
      this.stmts.ack.run(priority, sequence);
    });
    // Requests a killed process left running are settled now, at the prompt plus the output checkpointed.
    this.recovered = db.transaction(() => {
      const orphans = this.journal.takeOrphans();
      let tokens = 0;
      for (const o of orphans) {
        if (o.tokens <= 0) continue;
        tokens += o.tokens;
        this.write({ priority: o.priority, model: o.model, second: o.startedAtMs - (o.startedAtMs % 1000), tags: o.tags, tokens: o.tokens });
      }
      return { requests: orphans.length, tokens };
    })();
    this.open.clear();
  }

  incarnation(priority: Priority): string {
    return this.incarnations.get(priority) ?? `${this.id}:${priority}`;
  }

  /** Starts a new incarnation for the class; what waits to be delivered is numbered 1, 2, 3, … under it. */
  restart(priority: Priority): string {
    this.flush();
    this.closeRecords(priority);
    this.next.delete(priority);
    const incarnation = this.restartTx(priority);
    this.incarnations.set(priority, incarnation);
    return incarnation;
  }

  /**
   * Starts tracking a metered request that is about to go upstream; its row is on disk when the entry's
   * `durable` resolves (after this event-loop turn, with every other request of the turn). When the
   * request settles, `end` it in the same turn as its usage is appended: both go in one transaction.
   */
  begin(priority: Priority, startedAtMs: number, model: string, tags: Readonly<Record<string, string>> | undefined, promptTokens: number): InflightEntry {
    const entry = this.journal.begin(priority, startedAtMs, model, canonicalTags(tags), promptTokens);
    this.schedule();
    if (this.checkpoints === undefined) {
      this.checkpoints = setInterval(() => {
        if (this.journal.checkpoint() > 0) this.flush();
        if (this.journal.running === 0) {
          clearInterval(this.checkpoints);
          this.checkpoints = undefined;
        }
      }, CHECKPOINT_EVERY_MS);
      this.checkpoints.unref();
    }
    return entry;
  }

  /** The request of `entry` settled: its row goes with the transaction that records its usage. */
  end(entry: InflightEntry): void {
    this.journal.end(entry);
    this.scheduleSettle();
  }

  /** Records one settled request; it is on disk with the next write, within SETTLE_WAIT_MS. */
  append(priority: Priority, tokens: number, startedAtMs: number, model: string, tags?: Readonly<Record<string, string>>): void {
    const n = Math.max(0, Math.round(tokens));
    if (n === 0) return;
    const second = startedAtMs - (startedAtMs % 1000);
    this.buffer({ priority, model, second, tags: canonicalTags(tags), tokens: n });
    this.scheduleSettle();
  }

  /** A write right after this turn (new in-flight rows cannot wait). */
  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** A write within SETTLE_WAIT_MS, or sooner with the next one. */
  private scheduleSettle(): void {
    if (this.settleTimer === undefined && !this.scheduled) {
      this.settleTimer = setTimeout(() => this.flush(), SETTLE_WAIT_MS);
      this.settleTimer.unref();
    }
  }

  /** Writes what waits, running streams' usage so far included (before a shutdown). */
  checkpointNow(): void {
    this.journal.checkpoint();
    this.flush();
  }

  /**
   * Writes what waits (also done before anything is read or the file is closed). When the
   * file cannot be written (locked by another process, disk full) the settles stay in memory and the
   * write is tried again a second later.
   */
  flush(): void {
    this.scheduled = false;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    if ((this.buffered.size === 0 && !this.journal.dirty) || !this.db.open) return;
    const items = [...this.buffered.values()];
    this.buffered.clear();
    try {
      this.writeTx(items);
      this.journal.committed();
    } catch {
      this.journal.failed();
      // The transaction rolled back, but the records and sequences it opened are still in memory: forget
      // them; the next write numbers from the file again (nextSequence) and opens new records.
      this.open.clear();
      this.next.clear();
      for (const i of items) this.buffer(i);
      if (this.retry === undefined) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.flush();
        }, 1000);
        this.retry.unref();
      }
    }
  }

  private buffer(s: Settled): void {
    const key = `${s.priority}|${s.second}|${s.model}\n${s.tags}`;
    const b = this.buffered.get(key);
    if (b !== undefined) b.tokens += s.tokens;
    else this.buffered.set(key, { ...s });
  }

  private write(s: Settled): void {
    const key = `${s.priority}|${s.model}\n${s.tags}`;
    const open = this.open.get(key);
    if (open !== undefined && open.second === s.second) {
      this.stmts.add.run(s.tokens, s.priority, open.sequence);
      return;
    }
    const sequence = this.nextSequence(s.priority);
    this.stmts.insert.run(s.priority, sequence, s.tokens, s.second, s.model, s.tags);
    this.open.set(key, { sequence, second: s.second });
  }

  /** Records to deliver, oldest first; they take no more usage from now on. */
  pending(priority: Priority, limit = 1000): UsageRecord[] {
    this.flush();
    this.closeRecords(priority);
    const rows = this.stmts.pending.all(priority, limit) as (Omit<UsageRecord, 'tags'> & { tags: string })[];
    return rows.map((r) => ({ ...r, tags: r.tags === '' ? {} : (JSON.parse(r.tags) as Record<string, string>) }));
  }

  /** Drops every record of `priority` up to `sequence` (the service has them). */
  ack(priority: Priority, sequence: number): void {
    if (sequence > 0) this.ackTx(priority, sequence);
  }

  /** Records waiting per priority. */
  counts(): Map<Priority, number> {
    this.flush();
    return new Map((this.stmts.count.all() as { priority: Priority; n: number }[]).map((r) => [r.priority, r.n]));
  }

  /** The class's open records take no more usage: the next settle of each opens a new record. */
  private closeRecords(priority: Priority): void {
    for (const key of this.open.keys()) if (key.startsWith(`${priority}|`)) this.open.delete(key);
  }

  private nextSequence(priority: Priority): number {
    let n = this.next.get(priority);
    if (n === undefined) {
      const kept = Number((this.stmts.get.get(`sequence:${priority}`) as { value: string } | undefined)?.value ?? '0');
      const rows = (this.stmts.highest.get(priority) as { s: number | null }).s ?? 0;
      n = Math.max(kept, rows) + 1;
    }
    this.next.set(priority, n + 1);
    return n;
  }
}

/** Tags as canonical JSON, so one set of tags always groups into one record; '' for none. */
function canonicalTags(tags: Readonly<Record<string, string>> | undefined): string {
  return tags === undefined || Object.keys(tags).length === 0 ? '' : canonical(tags);
}
