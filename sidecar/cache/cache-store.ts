// Cached answers in the sidecar's SQLite file: statements prepared once, least-recently-used eviction by
// bytes and entries, expired rows swept in the background, and for semantic mode a prompt vector per
// entry, searched by cosine similarity within a partition. Every failure (a locked or full database)
// makes the cache step aside, never the request fail: reads answer undefined, writes do nothing.
import { columnsOf } from '../../common/sqlite.js';
import { type SidecarDatabase } from '../storage/database.js';

/**
 * How the answer is kept: the JSON body, or the SSE text forwarded to the app (`sse+usage`: recorded for
 * an OpenAI app that asked for the usage chunk).
 */
export type EntryForm = 'json' | 'sse' | 'sse+usage';

export interface CachedAnswer {
  form: EntryForm;
  body: Buffer;
  createdMs: number;
  /** What the provider reported for the answer; null when it reported nothing. */
  inputTokens: number | null;
  outputTokens: number | null;
}

export interface CacheLimits {
  maxBytes: number;
  maxEntries: number;
}

/** A unit-length prompt vector and the partition (scope and non-prompt parameters) it may match in. */
export interface PromptVector {
  partition: string;
  vector: Float32Array;
}

/** Bytes an entry counts for beside its body and vector (key, row and index overhead). */
const ROW_OVERHEAD = 64;
/** Vectors a semantic lookup reads between two turns of the event loop (≈1 ms at 1536 dimensions). */
const VECTOR_PAGE = 256;
/** Bytes of recently used answers also kept in memory: a hit on one of them reads nothing from SQLite. */
const HOT_BYTES = 8 * 1024 * 1024;
/** Answers larger than this are read from the file each time (one would push out too many others). */
const HOT_MAX_ANSWER = HOT_BYTES / 16;

interface HotEntry {
  answer: CachedAnswer;
  expiresMs: number;
  size: number;
}

export class CacheStore {
  private readonly stmts;
  private bytes = 0;
  private entries = 0;
  /** Last-use times of hits not written yet: a hit costs no write; they are written in one batch. */
  private readonly touched = new Map<string, number>();
  /**
   * Recently used entries, least recent first (a Map keeps insertion order), up to HOT_BYTES. The file
   * stays the truth: an entry leaves here when it leaves the file, and one missing here is read there.
   */
  private readonly hot = new Map<string, HotEntry>();
  private hotBytes = 0;
  private touchTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: SidecarDatabase,
    /** Called each time the cache steps aside because the database failed (locked, full, unreadable). */
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    // A file from a build with another layout: the cache is only a cache, start it again.
    const columns = columnsOf(db, 'cache_entries');
    if (columns.length > 0 && !columns.includes('form')) db.exec('DROP TABLE cache_entries; DROP TABLE IF EXISTS cache_vectors');
    db.exec(`
      CREATE TABLE IF NOT EXISTS cache_entries (
        key TEXT PRIMARY KEY, form TEXT NOT NULL, body BLOB NOT NULL, size INTEGER NOT NULL,
        created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL,
        input_tokens INTEGER, output_tokens INTEGER
      );
      CREATE INDEX IF NOT EXISTS cache_entries_used ON cache_entries (used_ms);
      CREATE INDEX IF NOT EXISTS cache_entries_expires ON cache_entries (expires_ms);
      CREATE TABLE IF NOT EXISTS cache_vectors (key TEXT PRIMARY KEY, partition TEXT NOT NULL, vector BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS cache_vectors_partition ON cache_vectors (partition);`);
    this.stmts = {
      get: db.prepare(
        'SELECT form, body, created_ms AS createdMs, expires_ms AS expiresMs, input_tokens AS inputTokens, output_tokens AS outputTokens FROM cache_entries WHERE key = ? AND expires_ms > ?',
      ),
      touch: db.prepare('UPDATE cache_entries SET used_ms = ? WHERE key = ?'),
      sizeOf: db.prepare('SELECT size FROM cache_entries WHERE key = ?'),
      put: db.prepare(
        'INSERT INTO cache_entries (key, form, body, size, created_ms, expires_ms, used_ms, input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET form = excluded.form, body = excluded.body, size = excluded.size, created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, used_ms = excluded.used_ms, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens',
      ),
      putVector: db.prepare('INSERT INTO cache_vectors (key, partition, vector) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET partition = excluded.partition, vector = excluded.vector'),
      removeVector: db.prepare('DELETE FROM cache_vectors WHERE key = ?'),
      candidates: db.prepare(
        `SELECT v.rowid AS id, v.key AS key, v.vector AS vector FROM cache_vectors v JOIN cache_entries e ON e.key = v.key
         WHERE v.partition = ? AND v.rowid > ? AND e.expires_ms > ? AND e.created_ms >= ? ORDER BY v.rowid LIMIT ${VECTOR_PAGE}`,
      ),
      oldest: db.prepare('SELECT key, size FROM cache_entries ORDER BY used_ms LIMIT ?'),
      remove: db.prepare('DELETE FROM cache_entries WHERE key = ?'),
      expired: db.prepare('SELECT key, size FROM cache_entries WHERE expires_ms <= ? LIMIT 1000'),
      totals: db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM cache_entries'),
    };
    this.recount();
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries, bytes: this.bytes };
  }

  /** A live entry, at most `maxAgeMs` old when given. */
  get(key: string, nowMs: number, maxAgeMs?: number): CachedAnswer | undefined {
    try {
      let answer: CachedAnswer;
      const hot = this.hot.get(key);
      if (hot !== undefined && hot.expiresMs > nowMs) {
        this.hot.delete(key); // and back at the end: the most recently used
        this.hot.set(key, hot);
        answer = hot.answer;
      } else {
        if (hot !== undefined) this.forget(key);
        const row = this.stmts.get.get(key, nowMs) as (CachedAnswer & { expiresMs: number }) | undefined;
        if (row === undefined) return undefined;
        const { expiresMs, ...rest } = row;
        answer = rest;
        if (answer.body.length <= HOT_MAX_ANSWER) this.remember(key, answer, expiresMs);
      }
      if (maxAgeMs !== undefined && nowMs - answer.createdMs > maxAgeMs) return undefined;
      this.touched.set(key, nowMs);
      if (this.touchTimer === undefined) {
        this.touchTimer = setTimeout(() => this.flushTouches(), 1000);
        this.touchTimer.unref();
      }
      return answer;
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }

  /**
   * The live entry of `partition` whose vector is most similar to `vector` (both unit length: the dot
   * product is the cosine), when that similarity reaches `threshold`. The vectors are read a page at a
   * time, yielding to the event loop between pages: a large partition slows this lookup, not every other
   * request of the process.
   */
  async nearest(q: PromptVector, threshold: number, nowMs: number, maxAgeMs?: number): Promise<{ key: string; similarity: number } | undefined> {
    let best: { key: string; similarity: number } | undefined;
    const notBefore = maxAgeMs === undefined ? 0 : nowMs - maxAgeMs;
    let after = 0;
    try {
      for (;;) {
        const rows = this.stmts.candidates.all(q.partition, after, nowMs, notBefore) as { id: number; key: string; vector: Buffer }[];
        for (const row of rows) {
          const v = asFloats(row.vector);
          if (v.length !== q.vector.length) continue; // another embedding size (the model's settings changed)
          const similarity = dot(v, q.vector);
          if (similarity >= threshold && (best === undefined || similarity > best.similarity)) best = { key: row.key, similarity };
        }
        if (rows.length < VECTOR_PAGE) return best;
        after = rows[rows.length - 1]!.id;
        await new Promise((resolve) => setImmediate(resolve));
        if (!this.db.open) return undefined; // closed while we waited (shutdown)
      }
    } catch (err) {
      this.onError(err);
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
    } catch (err) {
      this.onError(err);
    }
  }

  /** Stores (or replaces) an entry, with its prompt vector in semantic mode. */
  set(key: string, answer: CachedAnswer, ttlMs: number, limits: CacheLimits, vector?: PromptVector): void {
    const size = answer.body.length + key.length + ROW_OVERHEAD + (vector === undefined ? 0 : vector.vector.byteLength + vector.partition.length);
    if (size > limits.maxBytes) return;
    this.flushTouches();
    try {
      this.db.transaction(() => {
        const old = this.stmts.sizeOf.get(key) as { size: number } | undefined;
        this.stmts.put.run(key, answer.form, answer.body, size, answer.createdMs, answer.createdMs + ttlMs, answer.createdMs, answer.inputTokens, answer.outputTokens);
        if (vector === undefined) this.stmts.removeVector.run(key);
        else this.stmts.putVector.run(key, vector.partition, Buffer.from(vector.vector.buffer, vector.vector.byteOffset, vector.vector.byteLength));
        if (old === undefined) this.entries++;
        this.bytes += size - (old?.size ?? 0);
        this.evict(limits);
      })();
      this.forget(key);
      if (answer.body.length <= HOT_MAX_ANSWER) this.remember(key, answer, answer.createdMs + ttlMs);
    } catch (err) {
      this.failedWrite(err);
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
    } catch (err) {
      this.failedWrite(err);
      return 0;
    }
  }

  /** A write transaction rolled back: the counts it moved are read again from what the file holds. */
  private failedWrite(err: unknown): void {
    this.onError(err);
    try {
      this.recount();
    } catch {
      // Unreadable as well: the counts stay; the next failed write reads them again.
    }
  }

  private recount(): void {
    const t = this.stmts.totals.get() as { n: number; bytes: number };
    this.entries = t.n;
    this.bytes = t.bytes;
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

  /** Keeps an entry among the recently used, making room by letting the least recent go. */
  private remember(key: string, answer: CachedAnswer, expiresMs: number): void {
    const entry = { answer, expiresMs, size: answer.body.length + key.length + ROW_OVERHEAD };
    this.hot.set(key, entry);
    this.hotBytes += entry.size;
    for (const [k] of this.hot) {
      if (this.hotBytes <= HOT_BYTES || k === key) break;
      this.forget(k);
    }
  }

  private forget(key: string): void {
    const entry = this.hot.get(key);
    if (entry === undefined) return;
    this.hot.delete(key);
    this.hotBytes -= entry.size;
  }

  private drop(r: { key: string; size: number }): void {
    // Out of memory first: should the transaction roll back, the file still has it and is read again.
    this.forget(r.key);
    if (this.stmts.remove.run(r.key).changes > 0) {
      this.stmts.removeVector.run(r.key);
      this.entries--;
      this.bytes -= r.size;
    }
  }
}

/** The dot product of two vectors of one length, four lanes at a time. */
function dot(a: Float32Array, b: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length;
  const whole = n - (n % 4);
  let i = 0;
  for (; i < whole; i += 4) {
    s0 += a[i]! * b[i]!;
    s1 += a[i + 1]! * b[i + 1]!;
    s2 += a[i + 2]! * b[i + 2]!;
    s3 += a[i + 3]! * b[i + 3]!;
  }
  for (; i < n; i++) s0 += a[i]! * b[i]!;
  return s0 + s1 + s2 + s3;
}

/** A stored vector as floats (copied only when SQLite's buffer is not 4-byte aligned). */
function asFloats(b: Buffer): Float32Array {
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.length >> 2);
  return new Float32Array(new Uint8Array(b).buffer);
}
