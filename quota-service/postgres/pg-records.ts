// The quota service's records in PostgreSQL (schema-v1.ts), over a pool or over one client inside a
// transaction: the same operations and semantics as SqliteQuotaStore, as parameterized SQL. Increments are
// single upserts (x = x + EXCLUDED.x), so concurrent replicas never lose one.
import type pg from 'pg';
import { noKinds, type TokenKinds } from '../../proto/token-kinds.js';
import {
  MAX_MODELS_PER_WINDOW,
  OTHER_MODEL,
  type BudgetRow,
  type BudgetUnit,
  type LeaseRow,
  type ModelUsageRow,
  type QuotaRecords,
  type ScopeUsageRow,
  type Span,
  type TagUsageRow,
  type TeamRow,
  type UsageRow,
  type WindowTotals,
} from '../store-api.js';
import type { WindowName } from '../windows.js';

/** A pool or a client: what the records run their statements on. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/** One window's consumption of one tag value. */
export interface TaggedWindowRow extends TagUsageRow {
  startMs: number;
}

/** One window's consumption of one model, in tokens and nano-USD. */
export interface ModelWindowRow {
  startMs: number;
  model: string;
  used: number;
  costNano: number;
}

/** Runs `fn` in a transaction: a new one over a pool, the current one for records already bound to one. */
export type Atomically = <T>(fn: (q: Queryable) => Promise<T>) => Promise<T>;

/** A lease row's columns as LeaseRow names them. */
export const LEASE_COLUMNS = `SELECT id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens AS "requestTokens",
  expires_at_ms AS "expiresAtMs", renew_at_ms AS "renewAtMs", windows, owner, fail_open AS "failOpen", fail_open_next AS "failOpenNext",
  usd, outstanding_nano AS "outstandingNano", demand_nano AS "demandNano", request_nano AS "requestNano",
  fail_open_nano AS "failOpenNano", fail_open_next_nano AS "failOpenNextNano", renewal, claim`;

const SQL = {
  budgets: `SELECT scope, window_name AS "window", unit, amount AS tokens, batch_floor AS "batchFloor", background_floor AS "backgroundFloor"
    FROM budgets ORDER BY unit = 'usd', scope, window_name`,
  upsertBudget: `INSERT INTO budgets (scope, window_name, unit, amount, batch_floor, background_floor) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (scope, window_name, unit) DO UPDATE SET amount = EXCLUDED.amount, batch_floor = EXCLUDED.batch_floor, background_floor = EXCLUDED.background_floor`,
  // NULL window or unit: every one.
  deleteBudget: 'DELETE FROM budgets WHERE scope = $1 AND ($2::text IS NULL OR window_name = $2) AND ($3::text IS NULL OR unit = $3)',
  totals: `SELECT used, input, output, cached_input AS "cachedInput", cache_write AS "cacheWrite", cost_nano AS "costNano"
    FROM consumption WHERE scope = $1 AND window_name = $2 AND start_ms = $3`,
  addUsage: `INSERT INTO consumption AS c (scope, window_name, start_ms, end_ms, used, input, output, cached_input, cache_write, cost_nano)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (scope, window_name, start_ms) DO UPDATE SET used = c.used + EXCLUDED.used, input = c.input + EXCLUDED.input,
      output = c.output + EXCLUDED.output, cached_input = c.cached_input + EXCLUDED.cached_input,
      cache_write = c.cache_write + EXCLUDED.cache_write, cost_nano = c.cost_nano + EXCLUDED.cost_nano`,
  addTaggedUsage: `INSERT INTO tagged_consumption AS t (scope, window_name, start_ms, end_ms, tag_key, tag_value, used, cost_nano)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (scope, window_name, start_ms, tag_key, tag_value) DO UPDATE SET used = t.used + EXCLUDED.used, cost_nano = t.cost_nano + EXCLUDED.cost_nano`,
  taggedUsage: `SELECT tag_value AS value, used, cost_nano AS "costNano" FROM tagged_consumption
    WHERE scope = $1 AND window_name = $2 AND start_ms = $3 AND tag_key = $4 ORDER BY used DESC, tag_value`,
  // One statement: a model the window keeps, or a new one while fewer than $13 are kept, gets its own row;
  // any other goes to OTHER_MODEL ($14). Two replicas adding new models at the very moment the window fills
  // can each see room, so the cap can be passed by one row per concurrent writer; no increment is ever lost.
  addModelUsage: `INSERT INTO model_consumption AS m (scope, window_name, start_ms, end_ms, provider, model, used, input, output, cached_input, cache_write, cost_nano)
    SELECT $1::text, $2::text, $3::bigint, $4::bigint, CASE WHEN k.kept THEN $5::text ELSE '' END, CASE WHEN k.kept THEN $6::text ELSE $14::text END,
      $7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint
    FROM (SELECT EXISTS (SELECT 1 FROM model_consumption WHERE scope = $1 AND window_name = $2 AND start_ms = $3 AND provider = $5 AND model = $6)
      OR (SELECT count(*) FROM model_consumption WHERE scope = $1 AND window_name = $2 AND start_ms = $3) < $13::bigint AS kept) k
    ON CONFLICT (scope, window_name, start_ms, provider, model) DO UPDATE SET used = m.used + EXCLUDED.used, input = m.input + EXCLUDED.input,
      output = m.output + EXCLUDED.output, cached_input = m.cached_input + EXCLUDED.cached_input,
      cache_write = m.cache_write + EXCLUDED.cache_write, cost_nano = m.cost_nano + EXCLUDED.cost_nano`,
  modelUsage: `SELECT provider, model, used, input, output, cached_input AS "cachedInput", cache_write AS "cacheWrite", cost_nano AS "costNano"
    FROM model_consumption WHERE scope = $1 AND window_name = $2 AND start_ms = $3 ORDER BY cost_nano DESC, used DESC, model, provider`,
  // A window's rows all end at its end: the (window_name, end_ms) index finds them.
  scopesUnder: `SELECT scope, used, cost_nano AS "costNano" FROM consumption
    WHERE window_name = $1 AND end_ms = $2 AND start_ms = $3 AND (scope = $4 OR starts_with(scope, $5))
    ORDER BY cost_nano DESC, used DESC, scope`,
  history: `SELECT start_ms AS "startMs", end_ms AS "endMs", used, cost_nano AS "costNano" FROM consumption
    WHERE scope = $1 AND window_name = $2 AND start_ms <= $3 ORDER BY start_ms DESC LIMIT $4`,
  // The usage page's reads of many windows at once (one statement rather than one per window).
  taggedHistory: `SELECT start_ms AS "startMs", tag_value AS value, used, cost_nano AS "costNano" FROM tagged_consumption
    WHERE scope = $1 AND window_name = $2 AND start_ms >= $3 AND start_ms <= $4 AND tag_key = $5
    ORDER BY start_ms DESC, used DESC, tag_value LIMIT $6`,
  modelHistory: `SELECT start_ms AS "startMs", model, sum(used)::bigint AS used, sum(cost_nano)::bigint AS "costNano" FROM model_consumption
    WHERE scope = ANY($1::text[]) AND window_name = $2 AND start_ms >= $3 AND start_ms <= $4
    GROUP BY start_ms, model ORDER BY start_ms DESC, "costNano" DESC, used DESC, model LIMIT $5`,
  // No DELETE … LIMIT in PostgreSQL: the batch is chosen by primary key.
  pruneUsage: `DELETE FROM consumption WHERE (scope, window_name, start_ms) IN
    (SELECT scope, window_name, start_ms FROM consumption WHERE window_name = $1 AND end_ms < $2 LIMIT $3)`,
  pruneTaggedUsage: `DELETE FROM tagged_consumption WHERE (scope, window_name, start_ms, tag_key, tag_value) IN
    (SELECT scope, window_name, start_ms, tag_key, tag_value FROM tagged_consumption WHERE window_name = $1 AND end_ms < $2 LIMIT $3)`,
  pruneModelUsage: `DELETE FROM model_consumption WHERE (scope, window_name, start_ms, provider, model) IN
    (SELECT scope, window_name, start_ms, provider, model FROM model_consumption WHERE window_name = $1 AND end_ms < $2 LIMIT $3)`,
  leases: `${LEASE_COLUMNS} FROM leases ORDER BY id`,
  // Identity and owner are set when a lease is acquired and never change, as in SQLite.
  saveLease: `INSERT INTO leases (id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens, expires_at_ms,
      renew_at_ms, windows, owner, fail_open, fail_open_next, usd, outstanding_nano, demand_nano, request_nano, fail_open_nano, fail_open_next_nano, claim, renewal)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
    ON CONFLICT (id) DO UPDATE SET outstanding = EXCLUDED.outstanding, demand = EXCLUDED.demand, request_tokens = EXCLUDED.request_tokens,
      expires_at_ms = EXCLUDED.expires_at_ms, renew_at_ms = EXCLUDED.renew_at_ms, windows = EXCLUDED.windows,
      fail_open = EXCLUDED.fail_open, fail_open_next = EXCLUDED.fail_open_next, usd = EXCLUDED.usd, outstanding_nano = EXCLUDED.outstanding_nano,
      demand_nano = EXCLUDED.demand_nano, request_nano = EXCLUDED.request_nano, fail_open_nano = EXCLUDED.fail_open_nano,
      fail_open_next_nano = EXCLUDED.fail_open_next_nano, claim = EXCLUDED.claim, renewal = EXCLUDED.renewal`,
  setAcked: `INSERT INTO acked (incarnation, sequence, seen_ms) VALUES ($1, $2, $3)
    ON CONFLICT (incarnation) DO UPDATE SET sequence = EXCLUDED.sequence, seen_ms = EXCLUDED.seen_ms`,
  setOwner: `INSERT INTO acked (incarnation, sequence, seen_ms, owner) VALUES ($1, 0, $2, $3)
    ON CONFLICT (incarnation) DO UPDATE SET owner = EXCLUDED.owner, seen_ms = EXCLUDED.seen_ms`,
  pruneAcked: 'DELETE FROM acked WHERE incarnation IN (SELECT incarnation FROM acked WHERE seen_ms < $1 LIMIT $2)',
  // Team changes are rare operator actions: one at a time (the lock conflicts with itself, not with readers).
  lockTeams: 'LOCK TABLE team_namespaces IN SHARE ROW EXCLUSIVE MODE',
  deleteTeam: 'DELETE FROM team_namespaces WHERE team = $1',
  addTeamNamespaces: 'INSERT INTO team_namespaces (team, namespace) SELECT $1, unnest($2::text[])',
} as const;

export class PgQuotaRecords implements QuotaRecords {
  constructor(
    protected readonly db: Queryable,
    private readonly atomically: Atomically,
  ) {}

  async budgets(): Promise<BudgetRow[]> {
    return this.rows<BudgetRow>(SQL.budgets, []);
  }

  async upsertBudget(b: BudgetRow): Promise<void> {
    await this.db.query(SQL.upsertBudget, [b.scope, b.window, b.unit, b.tokens, b.batchFloor, b.backgroundFloor]);
  }

  async deleteBudget(scope: string, window: WindowName | undefined, unit?: BudgetUnit): Promise<number> {
    return (await this.db.query(SQL.deleteBudget, [scope, window ?? null, unit ?? null])).rowCount ?? 0;
  }

  async used(scope: string, window: WindowName, startMs: number): Promise<number> {
    return (await this.window(scope, window, startMs))?.used ?? 0;
  }

  async costNano(scope: string, window: WindowName, startMs: number): Promise<number> {
    return (await this.window(scope, window, startMs))?.costNano ?? 0;
  }

  async addUsage(scope: string, window: WindowName, startMs: number, endMs: number, tokens: number, kinds: TokenKinds = noKinds(), costNano = 0): Promise<void> {
    await this.db.query(SQL.addUsage, [scope, window, startMs, endMs, tokens, kinds.input, kinds.output, kinds.cachedInput, kinds.cacheWrite, costNano]);
  }

  async totals(scope: string, window: WindowName, startMs: number): Promise<WindowTotals> {
    const row = await this.window(scope, window, startMs);
    if (row === undefined) return { ...noKinds(), costNano: 0 };
    return { input: row.input, output: row.output, cachedInput: row.cachedInput, cacheWrite: row.cacheWrite, costNano: row.costNano };
  }

  async addTaggedUsage(scope: string, window: WindowName, startMs: number, endMs: number, tag: { key: string; value: string }, tokens: number, costNano = 0): Promise<void> {
    await this.db.query(SQL.addTaggedUsage, [scope, window, startMs, endMs, tag.key, tag.value, tokens, costNano]);
  }

  async taggedUsage(scope: string, window: WindowName, startMs: number, key: string): Promise<TagUsageRow[]> {
    return this.rows<TagUsageRow>(SQL.taggedUsage, [scope, window, startMs, key]);
  }

  async addModelUsage(scope: string, window: WindowName, span: Span, model: { provider: string; model: string }, tokens: number, t: WindowTotals): Promise<void> {
    await this.db.query(SQL.addModelUsage, [
      scope, window, span.startMs, span.endMs, model.provider, model.model,
      tokens, t.input, t.output, t.cachedInput, t.cacheWrite, t.costNano, MAX_MODELS_PER_WINDOW - 1, OTHER_MODEL,
    ]);
  }

  async modelUsage(scope: string, window: WindowName, startMs: number): Promise<ModelUsageRow[]> {
    return this.rows<ModelUsageRow>(SQL.modelUsage, [scope, window, startMs]);
  }

  async scopesUnder(scope: string, window: WindowName, span: Span): Promise<ScopeUsageRow[]> {
    return this.rows<ScopeUsageRow>(SQL.scopesUnder, [window, span.endMs, span.startMs, scope, `${scope}/`]);
  }

  async history(scope: string, window: WindowName, beforeMs: number, limit: number): Promise<UsageRow[]> {
    return this.rows<UsageRow>(SQL.history, [scope, window, beforeMs, limit]);
  }

  /**
   * Up to `limit` rows of `scope`'s consumption per value of tag `key`, in the windows that started at or
   * after `sinceMs` and at or before `beforeMs`: newest window first, most used first within one.
   */
  async taggedHistory(scope: string, window: WindowName, sinceMs: number, beforeMs: number, key: string, limit: number): Promise<TaggedWindowRow[]> {
    return this.rows<TaggedWindowRow>(SQL.taggedHistory, [scope, window, sinceMs, beforeMs, key, limit]);
  }

  /**
   * Up to `limit` rows of consumption per model (whatever its provider) summed over `scopes`, in the windows
   * that started at or after `sinceMs` and at or before `beforeMs`: newest window first, most cost first within one.
   */
  async modelHistory(scopes: readonly string[], window: WindowName, sinceMs: number, beforeMs: number, limit: number): Promise<ModelWindowRow[]> {
    return this.rows<ModelWindowRow>(SQL.modelHistory, [[...scopes], window, sinceMs, beforeMs, limit]);
  }

  async pruneUsage(window: WindowName, beforeMs: number, opts: { tagged: boolean; models?: boolean; limit: number }): Promise<number> {
    const sql = opts.models === true ? SQL.pruneModelUsage : opts.tagged ? SQL.pruneTaggedUsage : SQL.pruneUsage;
    return (await this.db.query(sql, [window, beforeMs, opts.limit])).rowCount ?? 0;
  }

  async leases(): Promise<LeaseRow[]> {
    return this.rows<LeaseRow>(SQL.leases, []);
  }

  async saveLease(l: LeaseRow): Promise<void> {
    await this.db.query(SQL.saveLease, [
      l.id, l.namespace, l.service, l.team, l.pod, l.priority, l.incarnation, l.outstanding, l.demand, l.requestTokens, l.expiresAtMs,
      l.renewAtMs, l.windows, l.owner, l.failOpen, l.failOpenNext, l.usd, l.outstandingNano, l.demandNano, l.requestNano, l.failOpenNano, l.failOpenNextNano, l.claim ?? null, l.renewal,
    ]);
  }

  async deleteLease(id: string): Promise<void> {
    await this.db.query('DELETE FROM leases WHERE id = $1', [id]);
  }

  async acked(incarnation: string): Promise<number> {
    return (await this.rows<{ sequence: number }>('SELECT sequence FROM acked WHERE incarnation = $1', [incarnation]))[0]?.sequence ?? 0;
  }

  async setAcked(incarnation: string, sequence: number, seenMs: number): Promise<void> {
    await this.db.query(SQL.setAcked, [incarnation, sequence, seenMs]);
  }

  async owner(incarnation: string): Promise<string> {
    return (await this.rows<{ owner: string }>('SELECT owner FROM acked WHERE incarnation = $1', [incarnation]))[0]?.owner ?? '';
  }

  async setOwner(incarnation: string, owner: string, seenMs: number): Promise<void> {
    await this.db.query(SQL.setOwner, [incarnation, seenMs, owner]);
  }

  async pruneAcked(beforeMs: number, limit: number): Promise<number> {
    return (await this.db.query(SQL.pruneAcked, [beforeMs, limit])).rowCount ?? 0;
  }

  async teams(): Promise<TeamRow[]> {
    return this.rows<TeamRow>('SELECT team, namespace FROM team_namespaces ORDER BY team, namespace', []);
  }

  async setTeam(team: string, namespaces: readonly string[]): Promise<void> {
    await this.atomically(async (q) => {
      await q.query(SQL.lockTeams);
      await q.query(SQL.deleteTeam, [team]);
      if (namespaces.length > 0) await q.query(SQL.addTeamNamespaces, [team, [...namespaces]]);
    });
  }

  private async window(scope: string, window: WindowName, startMs: number): Promise<(WindowTotals & { used: number }) | undefined> {
    return (await this.rows<WindowTotals & { used: number }>(SQL.totals, [scope, window, startMs]))[0];
  }

  private async rows<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<R[]> {
    return (await this.db.query<R>(sql, values)).rows;
  }
}
