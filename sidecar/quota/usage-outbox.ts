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
// Beside the file, an append-only log (inflight-log.ts) makes what is in memory durable: a metered
// request's line is written before its first upstream byte, and its settle is one more line, written with
// the next request's or within SETTLE_WAIT_MS. Settled usage moves from memory into the SQLite file (the
// records above) at most TRANSFER_EVERY_MS later, or at once when records are read for delivery, in one
// transaction that also starts a new log; until then the log covers it. So a request costs one small
// `write`, not a SQLite transaction, and a killed process loses nothing.
import { randomUUID } from 'node:crypto';
import { columnsOf } from '../../common/sqlite.js';
import { addKinds, noKinds, type TokenKinds } from '../../proto/token-kinds.js';
import { canonical } from '../canonical-json.js';
import type { Priority } from '../http/caller-headers.js';
import { type SidecarDatabase } from '../storage/database.js';
import { InflightLog, type InflightEntry, type Rotation, type Settled } from './inflight-log.js';

/** The longest a settle's line waits in memory for the next write to the log. */
const SETTLE_WAIT_MS = 100;
/** The longest settled usage waits in the log before it moves into the SQLite file. */
const TRANSFER_EVERY_MS = 1000;
/** A log this large moves into the SQLite file (and starts anew) even with nothing settled. */
const ROTATE_BYTES = 4 * 1024 * 1024;
/** How often running streams' usage so far is written (issue: at least once a second). */
const CHECKPOINT_EVERY_MS = 1000;

export interface UsageRecord {
  sequence: number;
  tokens: number;
  /** The tokens by kind (0 when unknown), as the quota protocol names them. */
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  startedAtMs: number;
  model: string;
  /** The requests' attribution labels; empty when they carried none. */
  tags: Record<string, string>;
  /** What served the requests, for the service's pricing (absent when not known, e.g. requests a killed sidecar left running). */
  providerType?: string;
  upstreamModel?: string;
}

/**
 * The model a settle is recorded under: the app's model name, and what served it (provider type and
 * upstream model) when known. One string, so the in-flight log and the outbox keep and group it as they
 * keep a model name (requests of one name served by different upstreams go into different records);
 * `pending` splits it again.
 */
export function recordModel(model: string, providerType: string | undefined, upstreamModel: string | undefined): string {
  return providerType === undefined || upstreamModel === undefined ? model : `${model}${SEP}${providerType}${SEP}${upstreamModel}`;
}

/** The unit separator: in no model name a config or a provider gives. */
const SEP = '\u001f';

function splitModel(recorded: string): { model: string; providerType?: string; upstreamModel?: string } {
  const last = recorded.lastIndexOf(SEP);
  const first = last <= 0 ? -1 : recorded.lastIndexOf(SEP, last - 1);
  if (first < 0) return { model: recorded };
  return { model: recorded.slice(0, first), providerType: recorded.slice(first + 1, last), upstreamModel: recorded.slice(last + 1) };
}

export class UsageOutbox {
  readonly id: string;
  private readonly stmts;
  private readonly ackTx: (priority: Priority, sequence: number) => void;
  /** Next sequence to hand out per class. */
  private readonly next = new Map<Priority, number>();
  /** Records still taking usage, per class, model and tags: not yet handed out for delivery. */
  private readonly open = new Map<string, { sequence: number; second: number }>();
  /** Settled usage not in the SQLite file yet (it is in the log), per class, model, second and tags. */
  private readonly buffered = new Map<string, Settled>();
  private lineTimer: NodeJS.Timeout | undefined;
  private transferTimer: NodeJS.Timeout | undefined;
  private readonly writeTx: (items: Settled[], rotation: Rotation | undefined) => void;
  private readonly restartTx: (priority: Priority) => string;
  /** Classes that started an incarnation of their own (see restart). */
  private readonly incarnations = new Map<Priority, string>();
  private readonly log: InflightLog;
  /** Runs while requests are in flight. */
  private checkpoints: NodeJS.Timeout | undefined;
  /**
   * What a dead process left, recorded at start: the requests it left running (how many, their tokens),
   * and the tokens of requests that had settled but were not in the SQLite file yet.
   */
  readonly recovered: { requests: number; tokens: number; settledTokens: number };

  constructor(private readonly db: SidecarDatabase) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS quota_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS usage_outbox (
        priority TEXT NOT NULL, sequence INTEGER NOT NULL, tokens INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL, model TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '', PRIMARY KEY (priority, sequence)
      );`);
    // A file from a build that kept no tags: its records keep their usage and carry none.
    if (!columnsOf(db, 'usage_outbox').includes('tags')) db.exec("ALTER TABLE usage_outbox ADD COLUMN tags TEXT NOT NULL DEFAULT ''");
    // …nor tokens by kind: its records report them as unknown (0).
    if (!columnsOf(db, 'usage_outbox').includes('input')) {
      db.exec(`ALTER TABLE usage_outbox ADD COLUMN input INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE usage_outbox ADD COLUMN output INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE usage_outbox ADD COLUMN cached_input INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE usage_outbox ADD COLUMN cache_write INTEGER NOT NULL DEFAULT 0;`);
    }
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
      insert: db.prepare(
        'INSERT INTO usage_outbox (priority, sequence, tokens, started_at_ms, model, tags, input, output, cached_input, cache_write) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      add: db.prepare(
        'UPDATE usage_outbox SET tokens = tokens + ?, input = input + ?, output = output + ?, cached_input = cached_input + ?, cache_write = cache_write + ? WHERE priority = ? AND sequence = ?',
      ),
      pending: db.prepare(
        `SELECT sequence, tokens, started_at_ms AS startedAtMs, model, tags, input AS inputTokens, output AS outputTokens, cached_input AS cachedInputTokens,
         cache_write AS cacheWriteTokens FROM usage_outbox WHERE priority = ? ORDER BY sequence LIMIT ?`,
      ),
      sequences: db.prepare('SELECT sequence FROM usage_outbox WHERE priority = ? ORDER BY sequence'),
      renumber: db.prepare('UPDATE usage_outbox SET sequence = ? WHERE priority = ? AND sequence = ?'),
      classIncarnations: db.prepare("SELECT key, value FROM quota_meta WHERE key LIKE 'incarnation:%'"),
      ack: db.prepare('DELETE FROM usage_outbox WHERE priority = ? AND sequence <= ?'),
      count: db.prepare('SELECT priority, COUNT(*) AS n FROM usage_outbox GROUP BY priority'),
      highest: db.prepare('SELECT MAX(sequence) AS s FROM usage_outbox WHERE priority = ?'),
    };
    this.log = new InflightLog(db);
    this.writeTx = db.transaction((items: Settled[], rotation: Rotation | undefined) => {
      for (const i of items) this.write(i);
      if (rotation !== undefined) this.log.commitRotation(rotation);
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
    // What a killed process's log held: its settles as they were, and the requests it left running at the
    // prompt plus the output checkpointed.
    this.recovered = db.transaction(() => {
      const { orphans, settled } = this.log.takeLeftovers();
      let tokens = 0;
      for (const o of orphans) {
        if (o.tokens <= 0) continue;
        tokens += o.tokens;
        this.write(o);
      }
      let settledTokens = 0;
      for (const s of settled) {
        if (s.tokens <= 0) continue;
        settledTokens += s.tokens;
        this.write(s);
      }
      return { requests: orphans.length, tokens, settledTokens };
    })();
    this.log.removeLeftovers();
    this.log.start();
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
   * Starts tracking a metered request that is about to go upstream: its line is on disk when this returns.
   * When the request settles, `append` its usage with the entry (one line), or `end` it if it used nothing.
   */
  begin(priority: Priority, startedAtMs: number, model: string, tags: Readonly<Record<string, string>> | undefined, promptTokens: number): InflightEntry {
    const entry = this.log.begin(priority, startedAtMs, model, canonicalTags(tags), promptTokens);
    if (this.checkpoints === undefined) {
      this.checkpoints = setInterval(() => {
        if (this.log.checkpoint() > 0) this.log.writeWaiting();
        if (this.log.running === 0) {
          clearInterval(this.checkpoints);
          this.checkpoints = undefined;
        }
      }, CHECKPOINT_EVERY_MS);
      this.checkpoints.unref();
    }
    return entry;
  }

  /** The request of `entry` ended with nothing to record. */
  end(entry: InflightEntry): void {
    this.log.end(entry);
    this.scheduleLines();
  }

  /**
   * Records settled usage (and ends `entry`, the request's, in the same line): on disk with the next write
   * to the log, within SETTLE_WAIT_MS.
   */
  append(
    priority: Priority,
    tokens: number,
    startedAtMs: number,
    model: string,
    tags?: Readonly<Record<string, string>>,
    entry?: InflightEntry,
    kinds: TokenKinds = noKinds(),
  ): void {
    const n = Math.max(0, Math.round(tokens));
    if (n === 0) {
      if (entry !== undefined) this.end(entry);
      return;
    }
    const s: Settled = { priority, model, second: startedAtMs - (startedAtMs % 1000), tags: entry?.tags ?? canonicalTags(tags), tokens: n, kinds: roundKinds(kinds) };
    this.log.settle(entry, s);
    this.buffer(s);
    this.scheduleLines();
    if (this.transferTimer === undefined) {
      this.transferTimer = setTimeout(() => this.flush(), TRANSFER_EVERY_MS);
      this.transferTimer.unref();
    }
  }

  /** The lines that wait go to the log within SETTLE_WAIT_MS, or sooner with the next request's. */
  private scheduleLines(): void {
    if (this.lineTimer === undefined) {
      this.lineTimer = setTimeout(() => {
        this.lineTimer = undefined;
        this.log.writeWaiting();
      }, SETTLE_WAIT_MS);
      this.lineTimer.unref();
    }
  }

  /** Writes what waits, running streams' usage so far included (before a shutdown). */
  checkpointNow(): void {
    this.log.checkpoint();
    this.flush();
  }

  /**
   * Moves settled usage from memory (and the log) into the SQLite file, starting a new log; done before
   * anything is read or the file is closed, and within TRANSFER_EVERY_MS of a settle. When the file
   * cannot be written (locked by another process, disk full) the usage stays in memory and in the log, and
   * the move is tried again a second later.
   */
  flush(): void {
    clearTimeout(this.transferTimer);
    this.transferTimer = undefined;
    if (!this.db.open) return;
    if (this.buffered.size === 0 && this.log.size < ROTATE_BYTES) {
      this.log.writeWaiting();
      return;
    }
    const items = [...this.buffered.values()];
    let rotation: Rotation | undefined;
    try {
      rotation = this.log.prepareRotation();
      try {
        this.writeTx(items, rotation);
      } catch (err) {
        if (rotation !== undefined) this.log.abandonRotation(rotation);
        throw err;
      }
    } catch {
      // The transaction rolled back, but the records and sequences it opened are still in memory: forget
      // them; the next write numbers from the file again (nextSequence) and opens new records.
      this.open.clear();
      this.next.clear();
      this.log.writeWaiting();
      this.transferTimer = setTimeout(() => this.flush(), 1000);
      this.transferTimer.unref();
      return;
    }
    this.buffered.clear();
    if (rotation !== undefined) this.log.finishRotation(rotation);
  }

  /** Moves what waits into the file and, when nothing runs any more, removes this outbox's log. */
  close(): void {
    this.checkpointNow();
    if (this.buffered.size === 0) this.log.retire();
  }

  private buffer(s: Settled): void {
    const key = `${s.priority}|${s.second}|${s.model}\n${s.tags}`;
    const b = this.buffered.get(key);
    if (b !== undefined) {
      b.tokens += s.tokens;
      addKinds(b.kinds, s.kinds);
    } else {
      this.buffered.set(key, { ...s, kinds: { ...s.kinds } });
    }
  }

  private write(s: Settled): void {
    const key = `${s.priority}|${s.model}\n${s.tags}`;
    const open = this.open.get(key);
    if (open !== undefined && open.second === s.second) {
      this.stmts.add.run(s.tokens, s.kinds.input, s.kinds.output, s.kinds.cachedInput, s.kinds.cacheWrite, s.priority, open.sequence);
      return;
    }
    const sequence = this.nextSequence(s.priority);
    this.stmts.insert.run(s.priority, sequence, s.tokens, s.second, s.model, s.tags, s.kinds.input, s.kinds.output, s.kinds.cachedInput, s.kinds.cacheWrite);
    this.open.set(key, { sequence, second: s.second });
  }

  /** Records to deliver, oldest first; they take no more usage from now on. */
  pending(priority: Priority, limit = 1000): UsageRecord[] {
    this.flush();
    this.closeRecords(priority);
    const rows = this.stmts.pending.all(priority, limit) as (Omit<UsageRecord, 'tags'> & { tags: string })[];
    return rows.map((r) => ({ ...r, ...splitModel(r.model), tags: r.tags === '' ? {} : (JSON.parse(r.tags) as Record<string, string>) }));
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

function roundKinds(k: TokenKinds): TokenKinds {
  const r = (n: number): number => Math.max(0, Math.round(n));
  return { input: r(k.input), output: r(k.output), cachedInput: r(k.cachedInput), cacheWrite: r(k.cacheWrite) };
}
