// Responses the sidecar keeps in its SQLite file, so that a `previous_response_id` follow-up works on any
// provider (one that has no Responses API, or another than the one that answered first) and an app can
// `GET` or `DELETE /v1/responses/{id}` what was stored. Each row holds the conversation the response
// answered (every input item, previous turns included, as items), its output items, and the Response as
// the app got it. Rows are per caller scope (namespace/service): one scope never reads another's. Bounded:
// rows expire after storeTtlSeconds, the oldest go past storeMaxBytes, and one response larger than a
// tenth of that is not kept. Every failure (a locked or full file) makes the store step aside: a lookup
// finds nothing, a write keeps nothing.
import { type SidecarDatabase } from '../storage/database.js';

export interface StoredResponse {
  /** The items the response answered, earlier turns included. */
  conversation: unknown[];
  /** Its output items. */
  output: unknown[];
  /** The Response object as the app got it. */
  response: string;
}

export interface StoreLimits {
  ttlMs: number;
  maxBytes: number;
}

export class ResponseStore {
  private readonly stmts;
  private bytes: number;

  constructor(
    db: SidecarDatabase,
    private readonly onError: (err: unknown) => void,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS responses_store (
      scope TEXT NOT NULL, id TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
      bytes INTEGER NOT NULL, conversation TEXT NOT NULL, output TEXT NOT NULL, response TEXT NOT NULL,
      PRIMARY KEY (scope, id));
      CREATE INDEX IF NOT EXISTS responses_store_created ON responses_store (created_ms);`);
    this.stmts = {
      put: db.prepare(`INSERT INTO responses_store (scope, id, created_ms, expires_ms, bytes, conversation, output, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (scope, id) DO UPDATE SET created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, bytes = excluded.bytes,
        conversation = excluded.conversation, output = excluded.output, response = excluded.response`),
      get: db.prepare('SELECT conversation, output, response FROM responses_store WHERE scope = ? AND id = ? AND expires_ms > ?'),
      size: db.prepare('SELECT bytes FROM responses_store WHERE scope = ? AND id = ?'),
      delete: db.prepare('DELETE FROM responses_store WHERE scope = ? AND id = ? RETURNING bytes'),
      oldest: db.prepare('SELECT scope, id, bytes FROM responses_store ORDER BY created_ms LIMIT 100'),
      expired: db.prepare('DELETE FROM responses_store WHERE expires_ms <= ? RETURNING bytes'),
      total: db.prepare('SELECT COALESCE(SUM(bytes), 0) AS n FROM responses_store'),
    };
    this.bytes = (this.stmts.total.get() as { n: number }).n;
  }

  put(scope: string, id: string, stored: StoredResponse, nowMs: number, limits: StoreLimits): void {
    const conversation = JSON.stringify(stored.conversation);
    const output = JSON.stringify(stored.output);
    const size = conversation.length + output.length + stored.response.length + id.length + scope.length;
    if (size > limits.maxBytes / 10) return;
    try {
      const previous = (this.stmts.size.get(scope, id) as { bytes: number } | undefined)?.bytes ?? 0;
      this.stmts.put.run(scope, id, nowMs, nowMs + limits.ttlMs, size, conversation, output, stored.response);
      this.bytes += size - previous;
      this.evict(limits.maxBytes);
    } catch (err) {
      this.onError(err);
    }
  }

  get(scope: string, id: string, nowMs: number): StoredResponse | undefined {
    try {
      const row = this.stmts.get.get(scope, id, nowMs) as { conversation: string; output: string; response: string } | undefined;
      if (row === undefined) return undefined;
      return { conversation: JSON.parse(row.conversation) as unknown[], output: JSON.parse(row.output) as unknown[], response: row.response };
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }

  /** Whether there was such a response to delete. */
  delete(scope: string, id: string): boolean {
    try {
      const row = this.stmts.delete.get(scope, id) as { bytes: number } | undefined;
      if (row === undefined) return false;
      this.bytes -= row.bytes;
      return true;
    } catch (err) {
      this.onError(err);
      return false;
    }
  }

  /** Drops expired rows (in the background). */
  sweep(nowMs: number): void {
    try {
      for (const row of this.stmts.expired.all(nowMs) as { bytes: number }[]) this.bytes -= row.bytes;
    } catch (err) {
      this.onError(err);
    }
  }

  get size(): number {
    return this.bytes;
  }

  private evict(maxBytes: number): void {
    while (this.bytes > maxBytes) {
      const rows = this.stmts.oldest.all() as { scope: string; id: string; bytes: number }[];
      if (rows.length === 0) return;
      for (const r of rows) {
        if (this.bytes <= maxBytes) return;
        this.stmts.delete.get(r.scope, r.id);
        this.bytes -= r.bytes;
      }
    }
  }
}
