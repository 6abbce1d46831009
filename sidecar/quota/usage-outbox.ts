// Usage the quota service has not acknowledged yet, kept in the sidecar's SQLite file so a restart or an
// outage of the service loses nothing. Each priority class numbers its records 1, 2, 3, … under its own
// incarnation (`<sidecar id>:<class>`), so the service can drop replays by sequence.
import { randomUUID } from 'node:crypto';
import type { SidecarDatabase } from '../storage/database.js';
import type { Priority } from '../http/caller-headers.js';

export interface UsageRecord {
  sequence: number;
  tokens: number;
  startedAtMs: number;
  model: string;
}

export class UsageOutbox {
  readonly id: string;
  private readonly stmts;

  constructor(private readonly db: SidecarDatabase) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS quota_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS usage_outbox (
        priority TEXT NOT NULL, sequence INTEGER NOT NULL, tokens INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL, model TEXT NOT NULL, PRIMARY KEY (priority, sequence)
      );`);
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
      insert: db.prepare('INSERT INTO usage_outbox (priority, sequence, tokens, started_at_ms, model) VALUES (?, ?, ?, ?, ?)'),
      pending: db.prepare('SELECT sequence, tokens, started_at_ms AS startedAtMs, model FROM usage_outbox WHERE priority = ? ORDER BY sequence LIMIT ?'),
      ack: db.prepare('DELETE FROM usage_outbox WHERE priority = ? AND sequence <= ?'),
      count: db.prepare('SELECT priority, COUNT(*) AS n FROM usage_outbox GROUP BY priority'),
    };
  }

  incarnation(priority: Priority): string {
    return `${this.id}:${priority}`;
  }

  /** Records one settled request durably; returns its sequence. */
  append(priority: Priority, tokens: number, startedAtMs: number, model: string): number {
    return this.db.transaction(() => {
      const key = `sequence:${priority}`;
      const seq = Number((this.stmts.get.get(key) as { value: string } | undefined)?.value ?? '0') + 1;
      this.stmts.set.run(key, String(seq));
      this.stmts.insert.run(priority, seq, Math.max(0, Math.round(tokens)), startedAtMs, model);
      return seq;
    })();
  }

  pending(priority: Priority, limit = 1000): UsageRecord[] {
    return this.stmts.pending.all(priority, limit) as UsageRecord[];
  }

  /** Drops every record of `priority` up to `sequence` (the service has them). */
  ack(priority: Priority, sequence: number): void {
    if (sequence > 0) this.stmts.ack.run(priority, sequence);
  }

  /** Records waiting per priority. */
  counts(): Map<Priority, number> {
    return new Map((this.stmts.count.all() as { priority: Priority; n: number }[]).map((r) => [r.priority, r.n]));
  }
}
