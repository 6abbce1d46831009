// Cached answers in the sidecar's SQLite file: statements prepared once, least-recently-used eviction by
// bytes and entries, expired rows swept in the background. Every failure (a locked or full database)
// makes the cache step aside, never the request fail: get answers undefined, set does nothing.
import type { SidecarDatabase } from '../storage/database.js';

export interface CachedAnswer {
  status: number;
  body: Buffer;
  contentType: string;
  createdMs: number;
  inputTokens: number;
  outputTokens: number;
}

export interface CacheLimits {
  maxBytes: number;
  maxEntries: number;
}

export class CacheStore {
  private readonly stmts;
  private bytes: number;
  private entries: number;
  /** Bypasses since start, for metrics: a failure of the database. */
  errors = 0;
  /** Last-use times of hits not written yet: a hit costs no write; they are written in one batch. */
  private readonly touched = new Map<string, number>();
  private touchTimer: NodeJS.Timeout | undefined;

  constructor(private readonly db: SidecarDatabase) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS cache_entries (
        key TEXT PRIMARY KEY, status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL,
        size INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS cache_entries_used ON cache_entries (used_ms);
      CREATE INDEX IF NOT EXISTS cache_entries_expires ON cache_entries (expires_ms);`);
    this.stmts = {
      get: db.prepare('SELECT status, content_type AS contentType, body, created_ms AS createdMs, input_tokens AS inputTokens, output_tokens AS outputTokens FROM cache_entries WHERE key = ? AND expires_ms > ?'),
      touch: db.prepare('UPDATE cache_entries SET used_ms = ? WHERE key = ?'),
      sizeOf: db.prepare('SELECT size FROM cache_entries WHERE key = ?'),
      put: db.prepare(
        'INSERT INTO cache_entries (key, status, content_type, body, size, created_ms, expires_ms, used_ms, input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET status = excluded.status, content_type = excluded.content_type, body = excluded.body, size = excluded.size, created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, used_ms = excluded.used_ms, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens',
      ),
      oldest: db.prepare('SELECT key, size FROM cache_entries ORDER BY used_ms LIMIT ?'),
      remove: db.prepare('DELETE FROM cache_entries WHERE key = ?'),
      expired: db.prepare('SELECT key, size FROM cache_entries WHERE expires_ms <= ? LIMIT 1000'),
      totals: db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM cache_entries'),
    };
    const t = this.stmts.totals.get() as { n: number; bytes: number };
    this.entries = t.n;
    this.bytes = t.bytes;
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries, bytes: this.bytes };
  }

  /** A live entry, at most `maxAgeMs` old when given. */
  get(key: string, nowMs: number, maxAgeMs?: number): CachedAnswer | undefined {
    try {
      const row = this.stmts.get.get(key, nowMs) as CachedAnswer | undefined;
      if (row === undefined || (maxAgeMs !== undefined && nowMs - row.createdMs > maxAgeMs)) return undefined;
      this.touched.set(key, nowMs);
      if (this.touchTimer === undefined) {
        this.touchTimer = setTimeout(() => this.flushTouches(), 1000);
        this.touchTimer.unref();
      }
      return row;
    } catch {
      this.errors++;
      return undefined;
    }
  }

  /** Writes the pending last-use times (before eviction reads them, and on a timer). */
  flushTouches(): void {
    clearTimeout(this.touchTimer);
    this.touchTimer = undefined;
    if (this.touched.size === 0 || !this.db.open) return;
    const batch = [...this.touched];
    this.touched.clear();
    try {
      this.db.transaction(() => {
        for (const [key, at] of batch) this.stmts.touch.run(at, key);
      })();
    } catch {
      this.errors++;
    }
  }

  set(key: string, answer: CachedAnswer, ttlMs: number, limits: CacheLimits): void {
    const size = answer.body.length + key.length + 64;
    if (size > limits.maxBytes) return;
    this.flushTouches();
    try {
      this.db.transaction(() => {
        const old = this.stmts.sizeOf.get(key) as { size: number } | undefined;
        this.stmts.put.run(key, answer.status, answer.contentType, answer.body, size, answer.createdMs, answer.createdMs + ttlMs, answer.createdMs, answer.inputTokens, answer.outputTokens);
        if (old === undefined) this.entries++;
        this.bytes += size - (old?.size ?? 0);
        this.evict(limits);
      })();
    } catch {
      this.errors++;
    }
  }

  /** Removes expired rows (a batch at a time); returns how many. */
  sweep(nowMs: number): number {
    try {
      const rows = this.stmts.expired.all(nowMs) as { key: string; size: number }[];
      this.db.transaction(() => {
        for (const r of rows) this.drop(r);
      })();
      return rows.length;
    } catch {
      this.errors++;
      return 0;
    }
  }

  private evict(limits: CacheLimits): void {
    while (this.bytes > limits.maxBytes || this.entries > limits.maxEntries) {
      const rows = this.stmts.oldest.all(64) as { key: string; size: number }[];
      if (rows.length === 0) break;
      for (const r of rows) {
        this.drop(r);
        if (this.bytes <= limits.maxBytes && this.entries <= limits.maxEntries) break;
      }
    }
  }

  private drop(r: { key: string; size: number }): void {
    if (this.stmts.remove.run(r.key).changes > 0) {
      this.entries--;
      this.bytes -= r.size;
    }
  }
}
