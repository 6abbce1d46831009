// The quota service's durable state in one SQLite file (WAL, full sync: an acknowledged report is on
// disk): budgets (in tokens, and in USD in a table of their own, so a scope can have both for a window), consumption per scope and window in tokens and cost (also per tag of the requests, for
// attribution, and per model), outstanding leases, the highest report sequence processed per sidecar incarnation (and when, and which
// verified identity owns it), and the operators' mapping of namespaces to teams.
import { columnsOf, openSqlite, type SqliteDatabase } from '../common/sqlite.js';
import { noKinds, type TokenKinds } from '../proto/token-kinds.js';
import type { WindowName } from './windows.js';
import { GroupCommit, type SyncFailed, type Transactional } from './group-commit.js';
import { walSyncedTransaction, type WalSynced } from './wal-sync.js';

/** What a budget limits: tokens, or USD (its amounts in nano-USD). */
export type BudgetUnit = 'tokens' | 'usd';

export interface BudgetRow {
  scope: string;
  window: WindowName;
  unit: BudgetUnit;
  /** The limit per window, in the budget's unit: tokens, or nano-USD for a USD budget. */
  tokens: number;
  batchFloor: number;
  backgroundFloor: number;
}

export interface LeaseRow {
  id: string;
  namespace: string;
  service: string;
  team: string;
  pod: string;
  priority: number;
  incarnation: string;
  outstanding: number;
  demand: number;
  /** The largest recent request estimate its sidecar saw. */
  requestTokens: number;
  expiresAtMs: number;
  /** When its sidecar was told to renew (0 in rows from before it was kept). */
  renewAtMs: number;
  /** JSON: budget key → start of the window the outstanding tokens belong to. */
  windows: string;
  /** The verified identity that acquired it (see Allocator). */
  owner: string;
  /** Its pod's fail-open allowance in that window, and in later ones (see lease-sizing.ts). */
  failOpen: number;
  failOpenNext: number;
  /** 1 when its sidecar keeps a USD balance (usd_leases), and that balance as the fields above, in nano-USD. */
  usd: number;
  outstandingNano: number;
  demandNano: number;
  requestNano: number;
  failOpenNano: number;
  failOpenNextNano: number;
  /** The highest renewal number its sidecar sent (0: none yet, or a sidecar that predates them). */
  renewal: number;
  /**
   * JSON {keys, untilMs} of the lease's claim (see Allocator.grant). Kept by the PostgreSQL store, where each
   * call's allocator starts from the rows; one replica over SQLite keeps claims in memory only.
   */
  claim?: string | null;
}

export interface TeamRow {
  team: string;
  namespace: string;
}

export interface UsageRow {
  startMs: number;
  endMs: number;
  used: number;
  /** Cost in nano-USD (0 for usage from before the service priced it). */
  costNano: number;
}

export interface TagUsageRow {
  value: string;
  used: number;
  /** Cost in nano-USD (0 for usage from before the service priced it). */
  costNano: number;
}

/** A window's totals beside `used`: by kind of token, and the cost in nano-USD. */
export interface WindowTotals extends TokenKinds {
  costNano: number;
}

export interface ModelUsageRow extends WindowTotals {
  provider: string;
  model: string;
  used: number;
}

export interface ScopeUsageRow {
  scope: string;
  used: number;
  costNano: number;
}

/** Distinct models kept per scope and window: model names in reports are tenant input. Past it: `other`. */
export const MAX_MODELS_PER_WINDOW = 100;
export const OTHER_MODEL = 'other';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS budgets (
  scope TEXT NOT NULL, window TEXT NOT NULL, tokens INTEGER NOT NULL,
  batch_floor REAL NOT NULL, background_floor REAL NOT NULL,
  PRIMARY KEY (scope, window)
);
CREATE TABLE IF NOT EXISTS usd_budgets (
  scope TEXT NOT NULL, window TEXT NOT NULL, nano_usd INTEGER NOT NULL,
  batch_floor REAL NOT NULL, background_floor REAL NOT NULL,
  PRIMARY KEY (scope, window)
);
CREATE TABLE IF NOT EXISTS consumption (
  scope TEXT NOT NULL, window TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
  used INTEGER NOT NULL, PRIMARY KEY (scope, window, start_ms)
);
CREATE TABLE IF NOT EXISTS tagged_consumption (
  scope TEXT NOT NULL, window TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
  tag_key TEXT NOT NULL, tag_value TEXT NOT NULL, used INTEGER NOT NULL,
  PRIMARY KEY (scope, window, start_ms, tag_key, tag_value)
);
CREATE TABLE IF NOT EXISTS model_consumption (
  scope TEXT NOT NULL, window TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
  provider TEXT NOT NULL, model TEXT NOT NULL, used INTEGER NOT NULL, input INTEGER NOT NULL, output INTEGER NOT NULL,
  cached_input INTEGER NOT NULL, cache_write INTEGER NOT NULL, cost_nano INTEGER NOT NULL,
  PRIMARY KEY (scope, window, start_ms, provider, model)
);
CREATE INDEX IF NOT EXISTS model_consumption_ended ON model_consumption (window, end_ms);
CREATE INDEX IF NOT EXISTS consumption_ended ON consumption (window, end_ms);
CREATE INDEX IF NOT EXISTS tagged_consumption_ended ON tagged_consumption (window, end_ms);
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, namespace TEXT NOT NULL, service TEXT NOT NULL, team TEXT NOT NULL, pod TEXT NOT NULL,
  priority INTEGER NOT NULL, incarnation TEXT NOT NULL, outstanding INTEGER NOT NULL, demand REAL NOT NULL,
  expires_at_ms INTEGER NOT NULL, windows TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acked (incarnation TEXT PRIMARY KEY, sequence INTEGER NOT NULL, seen_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS team_namespaces (team TEXT NOT NULL, namespace TEXT NOT NULL, PRIMARY KEY (team, namespace));
`;

export class SqliteQuotaStore {
  private readonly db: SqliteDatabase;
  private readonly stmts;
  private group: GroupCommit | undefined;
  private wal: WalSynced | undefined;

  constructor(path: string) {
    this.db = openSqlite(path, { synchronous: 'FULL', busyTimeoutMs: 5000 });
    this.db.exec(SCHEMA);
    const db = this.db;
    // Files from before sequences were dated: date them now, so they are kept a full retention period.
    if (!columnsOf(db, 'acked').includes('seen_ms')) {
      db.exec(`ALTER TABLE acked ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0;
               UPDATE acked SET seen_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000;`);
    }
    db.exec('CREATE INDEX IF NOT EXISTS acked_seen ON acked (seen_ms)');
    // Files from before identities were verified: their incarnations are claimed by the next verified caller.
    // Consumption by kind of token: windows from before it was kept say 0.
    if (!columnsOf(db, 'consumption').includes('input')) {
      db.exec(`ALTER TABLE consumption ADD COLUMN input INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE consumption ADD COLUMN output INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE consumption ADD COLUMN cached_input INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE consumption ADD COLUMN cache_write INTEGER NOT NULL DEFAULT 0;`);
    }
    // Cost beside tokens: windows from before the service priced usage say 0.
    if (!columnsOf(db, 'consumption').includes('cost_nano')) db.exec('ALTER TABLE consumption ADD COLUMN cost_nano INTEGER NOT NULL DEFAULT 0');
    if (!columnsOf(db, 'tagged_consumption').includes('cost_nano')) db.exec('ALTER TABLE tagged_consumption ADD COLUMN cost_nano INTEGER NOT NULL DEFAULT 0');
    if (!columnsOf(db, 'acked').includes('owner')) db.exec("ALTER TABLE acked ADD COLUMN owner TEXT NOT NULL DEFAULT ''");
    // Leases from before identities were verified carry no owner: they lapse, and sidecars acquire anew.
    if (!columnsOf(db, 'leases').includes('owner')) db.exec("DELETE FROM leases; ALTER TABLE leases ADD COLUMN owner TEXT NOT NULL DEFAULT ''");
    // Leases from before demand-sized leases: no renewal time, request size or fail-open allowance kept.
    if (!columnsOf(db, 'leases').includes('renew_at_ms')) {
      db.exec(`ALTER TABLE leases ADD COLUMN renew_at_ms INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN request_tokens REAL NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN fail_open INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN fail_open_next INTEGER NOT NULL DEFAULT 0;`);
    }
    // Leases from before dollar budgets: no USD balance.
    if (!columnsOf(db, 'leases').includes('usd')) {
      db.exec(`ALTER TABLE leases ADD COLUMN usd INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN outstanding_nano INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN demand_nano REAL NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN request_nano REAL NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN fail_open_nano INTEGER NOT NULL DEFAULT 0;
               ALTER TABLE leases ADD COLUMN fail_open_next_nano INTEGER NOT NULL DEFAULT 0;`);
    }
    // Leases from before renewal numbers: none seen yet.
    if (!columnsOf(db, 'leases').includes('renewal')) db.exec('ALTER TABLE leases ADD COLUMN renewal INTEGER NOT NULL DEFAULT 0');
    this.stmts = {
      usdBudgets: db.prepare(
        "SELECT scope, window, 'usd' AS unit, nano_usd AS tokens, batch_floor AS batchFloor, background_floor AS backgroundFloor FROM usd_budgets ORDER BY scope, window",
      ),
      upsertUsdBudget: db.prepare(
        `INSERT INTO usd_budgets (scope, window, nano_usd, batch_floor, background_floor) VALUES (@scope, @window, @tokens, @batchFloor, @backgroundFloor)
         ON CONFLICT (scope, window) DO UPDATE SET nano_usd = excluded.nano_usd, batch_floor = excluded.batch_floor, background_floor = excluded.background_floor`,
      ),
      deleteUsdBudget: db.prepare('DELETE FROM usd_budgets WHERE scope = ? AND window = ?'),
      deleteUsdScope: db.prepare('DELETE FROM usd_budgets WHERE scope = ?'),
      costNano: db.prepare('SELECT cost_nano AS costNano FROM consumption WHERE scope = ? AND window = ? AND start_ms = ?'),
      budgets: db.prepare("SELECT scope, window, 'tokens' AS unit, tokens, batch_floor AS batchFloor, background_floor AS backgroundFloor FROM budgets ORDER BY scope, window"),
      upsertBudget: db.prepare(
        `INSERT INTO budgets (scope, window, tokens, batch_floor, background_floor) VALUES (@scope, @window, @tokens, @batchFloor, @backgroundFloor)
         ON CONFLICT (scope, window) DO UPDATE SET tokens = excluded.tokens, batch_floor = excluded.batch_floor, background_floor = excluded.background_floor`,
      ),
      deleteBudget: db.prepare('DELETE FROM budgets WHERE scope = ? AND window = ?'),
      deleteScope: db.prepare('DELETE FROM budgets WHERE scope = ?'),
      used: db.prepare('SELECT used FROM consumption WHERE scope = ? AND window = ? AND start_ms = ?'),
      addUsage: db.prepare(
        `INSERT INTO consumption (scope, window, start_ms, end_ms, used, input, output, cached_input, cache_write, cost_nano) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (scope, window, start_ms) DO UPDATE SET used = used + excluded.used, input = input + excluded.input,
         output = output + excluded.output, cached_input = cached_input + excluded.cached_input, cache_write = cache_write + excluded.cache_write,
         cost_nano = cost_nano + excluded.cost_nano`,
      ),
      totals: db.prepare(
        'SELECT input, output, cached_input AS cachedInput, cache_write AS cacheWrite, cost_nano AS costNano FROM consumption WHERE scope = ? AND window = ? AND start_ms = ?',
      ),
      addTaggedUsage: db.prepare(
        `INSERT INTO tagged_consumption (scope, window, start_ms, end_ms, tag_key, tag_value, used, cost_nano) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (scope, window, start_ms, tag_key, tag_value) DO UPDATE SET used = used + excluded.used, cost_nano = cost_nano + excluded.cost_nano`,
      ),
      taggedUsage: db.prepare(
        'SELECT tag_value AS value, used, cost_nano AS costNano FROM tagged_consumption WHERE scope = ? AND window = ? AND start_ms = ? AND tag_key = ? ORDER BY used DESC, tag_value',
      ),
      addToKeptModel: db.prepare(
        `UPDATE model_consumption SET used = used + ?, input = input + ?, output = output + ?, cached_input = cached_input + ?,
         cache_write = cache_write + ?, cost_nano = cost_nano + ? WHERE scope = ? AND window = ? AND start_ms = ? AND provider = ? AND model = ?`,
      ),
      modelCount: db.prepare('SELECT COUNT(*) AS n FROM model_consumption WHERE scope = ? AND window = ? AND start_ms = ?'),
      addModelUsage: db.prepare(
        `INSERT INTO model_consumption (scope, window, start_ms, end_ms, provider, model, used, input, output, cached_input, cache_write, cost_nano)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (scope, window, start_ms, provider, model) DO UPDATE SET used = used + excluded.used, input = input + excluded.input,
         output = output + excluded.output, cached_input = cached_input + excluded.cached_input, cache_write = cache_write + excluded.cache_write,
         cost_nano = cost_nano + excluded.cost_nano`,
      ),
      modelUsage: db.prepare(
        `SELECT provider, model, used, input, output, cached_input AS cachedInput, cache_write AS cacheWrite, cost_nano AS costNano
         FROM model_consumption WHERE scope = ? AND window = ? AND start_ms = ? ORDER BY cost_nano DESC, used DESC, model, provider`,
      ),
      // A window's rows all end at its end: the (window, end_ms) index finds them.
      scopesUnder: db.prepare(
        `SELECT scope, used, cost_nano AS costNano FROM consumption WHERE window = ? AND end_ms = ? AND start_ms = ? AND (scope = ? OR substr(scope, 1, ?) = ?)
         ORDER BY cost_nano DESC, used DESC, scope`,
      ),
      pruneModelUsage: db.prepare(
        'DELETE FROM model_consumption WHERE rowid IN (SELECT rowid FROM model_consumption WHERE window = ? AND end_ms < ? LIMIT ?)',
      ),
      pruneTaggedUsage: db.prepare(
        'DELETE FROM tagged_consumption WHERE rowid IN (SELECT rowid FROM tagged_consumption WHERE window = ? AND end_ms < ? LIMIT ?)',
      ),
      history: db.prepare('SELECT start_ms AS startMs, end_ms AS endMs, used, cost_nano AS costNano FROM consumption WHERE scope = ? AND window = ? AND start_ms <= ? ORDER BY start_ms DESC LIMIT ?'),
      pruneUsage: db.prepare('DELETE FROM consumption WHERE rowid IN (SELECT rowid FROM consumption WHERE window = ? AND end_ms < ? LIMIT ?)'),
      leases: db.prepare(
        `SELECT id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens AS requestTokens,
           expires_at_ms AS expiresAtMs, renew_at_ms AS renewAtMs, windows, owner, fail_open AS failOpen, fail_open_next AS failOpenNext,
           usd, outstanding_nano AS outstandingNano, demand_nano AS demandNano, request_nano AS requestNano,
           fail_open_nano AS failOpenNano, fail_open_next_nano AS failOpenNextNano, renewal, NULL AS claim FROM leases`,
      ),
      saveLease: db.prepare(
        `INSERT INTO leases (id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens, expires_at_ms,
           renew_at_ms, windows, owner, fail_open, fail_open_next, usd, outstanding_nano, demand_nano, request_nano, fail_open_nano, fail_open_next_nano, renewal)
         VALUES (@id, @namespace, @service, @team, @pod, @priority, @incarnation, @outstanding, @demand, @requestTokens, @expiresAtMs,
           @renewAtMs, @windows, @owner, @failOpen, @failOpenNext, @usd, @outstandingNano, @demandNano, @requestNano, @failOpenNano, @failOpenNextNano, @renewal)
         ON CONFLICT (id) DO UPDATE SET outstanding = excluded.outstanding, demand = excluded.demand, request_tokens = excluded.request_tokens,
           expires_at_ms = excluded.expires_at_ms, renew_at_ms = excluded.renew_at_ms, windows = excluded.windows,
           fail_open = excluded.fail_open, fail_open_next = excluded.fail_open_next, usd = excluded.usd, outstanding_nano = excluded.outstanding_nano,
           demand_nano = excluded.demand_nano, request_nano = excluded.request_nano, fail_open_nano = excluded.fail_open_nano,
           fail_open_next_nano = excluded.fail_open_next_nano, renewal = excluded.renewal`,
      ),
      deleteLease: db.prepare('DELETE FROM leases WHERE id = ?'),
      acked: db.prepare('SELECT sequence FROM acked WHERE incarnation = ?'),
      setAcked: db.prepare(
        'INSERT INTO acked (incarnation, sequence, seen_ms) VALUES (?, ?, ?) ON CONFLICT (incarnation) DO UPDATE SET sequence = excluded.sequence, seen_ms = excluded.seen_ms',
      ),
      owner: db.prepare('SELECT owner FROM acked WHERE incarnation = ?'),
      setOwner: db.prepare(
        'INSERT INTO acked (incarnation, sequence, seen_ms, owner) VALUES (?, 0, ?, ?) ON CONFLICT (incarnation) DO UPDATE SET owner = excluded.owner, seen_ms = excluded.seen_ms',
      ),
      teams: db.prepare('SELECT team, namespace FROM team_namespaces ORDER BY team, namespace'),
      deleteTeam: db.prepare('DELETE FROM team_namespaces WHERE team = ?'),
      addTeamNamespace: db.prepare('INSERT INTO team_namespaces (team, namespace) VALUES (?, ?)'),
      pruneAcked: db.prepare('DELETE FROM acked WHERE rowid IN (SELECT rowid FROM acked WHERE seen_ms < ? LIMIT ?)'),
    };
  }

  /**
   * Runs `fn` in one transaction: all its writes land together or not at all. With group commits on, that
   * is a savepoint of the turn's transaction, committed at the end of the turn (see `durable`).
   */
  transaction<T>(fn: () => T): T {
    this.group?.join();
    return this.db.transaction(fn)();
  }

  /**
   * From now on the writes of one turn of the event loop are committed together (group-commit.ts), and made
   * durable off the event loop (wal-sync.ts); `onFailure` is told when such a commit failed (the turn's
   * writes are then undone), `onSyncFailure` when an fsync did. `wrap`: what drives the transaction instead
   * of the store's own (tests count or fail its commits and fsyncs).
   */
  groupCommits(onFailure: (err: unknown) => void, onSyncFailure?: (err: SyncFailed) => void, wrap: (tx: Transactional) => Transactional = (tx) => tx): void {
    this.wal = this.db.memory ? undefined : walSyncedTransaction(this.db);
    this.group = new GroupCommit(wrap(this.wal ?? this.sqliteTransaction()), onFailure, onSyncFailure);
  }

  /** Resolves once every write so far is on disk (at once without group commits: each was committed). */
  durable(): Promise<void> {
    return this.group?.durable() ?? Promise.resolve();
  }

  private sqliteTransaction(): Transactional {
    const db = this.db;
    return {
      begin: () => db.exec('BEGIN IMMEDIATE'),
      commit: () => db.exec('COMMIT'),
      rollback: () => {
        if (db.inTransaction) db.exec('ROLLBACK');
      },
      active: () => db.inTransaction,
    };
  }

  /** Every budget, token budgets first. */
  budgets(): BudgetRow[] {
    return [...(this.stmts.budgets.all() as BudgetRow[]), ...(this.stmts.usdBudgets.all() as BudgetRow[])];
  }

  upsertBudget(b: BudgetRow): void {
    const row = { scope: b.scope, window: b.window, tokens: b.tokens, batchFloor: b.batchFloor, backgroundFloor: b.backgroundFloor };
    (b.unit === 'usd' ? this.stmts.upsertUsdBudget : this.stmts.upsertBudget).run(row);
  }

  /** Deletes the scope's budgets of `window` (undefined: every window) in `unit` (undefined: both); returns how many. */
  deleteBudget(scope: string, window: WindowName | undefined, unit?: BudgetUnit): number {
    let n = 0;
    if (unit !== 'usd') n += (window === undefined ? this.stmts.deleteScope.run(scope) : this.stmts.deleteBudget.run(scope, window)).changes;
    if (unit !== 'tokens') n += (window === undefined ? this.stmts.deleteUsdScope.run(scope) : this.stmts.deleteUsdBudget.run(scope, window)).changes;
    return n;
  }

  /** What a window's consumption cost, in nano-USD. */
  costNano(scope: string, window: WindowName, startMs: number): number {
    const row = this.stmts.costNano.get(scope, window, startMs) as { costNano: number } | undefined;
    return row?.costNano ?? 0;
  }

  used(scope: string, window: WindowName, startMs: number): number {
    const row = this.stmts.used.get(scope, window, startMs) as { used: number } | undefined;
    return row?.used ?? 0;
  }

  /** `costNano`: what the tokens cost, in nano-USD (a whole number). */
  addUsage(scope: string, window: WindowName, startMs: number, endMs: number, tokens: number, kinds: TokenKinds = noKinds(), costNano = 0): void {
    this.stmts.addUsage.run(scope, window, startMs, endMs, tokens, kinds.input, kinds.output, kinds.cachedInput, kinds.cacheWrite, costNano);
  }

  /** A window's consumption by kind of token, and its cost. */
  totals(scope: string, window: WindowName, startMs: number): WindowTotals {
    return (this.stmts.totals.get(scope, window, startMs) as WindowTotals | undefined) ?? { ...noKinds(), costNano: 0 };
  }

  addTaggedUsage(scope: string, window: WindowName, startMs: number, endMs: number, tag: { key: string; value: string }, tokens: number, costNano = 0): void {
    this.stmts.addTaggedUsage.run(scope, window, startMs, endMs, tag.key, tag.value, tokens, costNano);
  }

  /**
   * Adds to a window's consumption by model. A window keeps MAX_MODELS_PER_WINDOW models; usage of any other
   * goes to the model `other` (provider '') from then on, so a tenant naming endless models cannot grow it.
   */
  addModelUsage(
    scope: string,
    window: WindowName,
    span: { startMs: number; endMs: number },
    model: { provider: string; model: string },
    tokens: number,
    totals: WindowTotals,
  ): void {
    const t = totals;
    // A model the window keeps already (the usual case): one statement.
    if (this.stmts.addToKeptModel.run(tokens, t.input, t.output, t.cachedInput, t.cacheWrite, t.costNano, scope, window, span.startMs, model.provider, model.model).changes > 0) return;
    let { provider, model: name } = model;
    if ((this.stmts.modelCount.get(scope, window, span.startMs) as { n: number }).n >= MAX_MODELS_PER_WINDOW - 1) {
      provider = '';
      name = OTHER_MODEL;
    }
    this.stmts.addModelUsage.run(scope, window, span.startMs, span.endMs, provider, name, tokens, t.input, t.output, t.cachedInput, t.cacheWrite, t.costNano);
  }

  /** A window's consumption per model, most cost first. */
  modelUsage(scope: string, window: WindowName, startMs: number): ModelUsageRow[] {
    return this.stmts.modelUsage.all(scope, window, startMs) as ModelUsageRow[];
  }

  /** The window's consumption of `scope` and of every scope under it (`<scope>/…`) that has some, most cost first. */
  scopesUnder(scope: string, window: WindowName, span: { startMs: number; endMs: number }): ScopeUsageRow[] {
    const prefix = `${scope}/`;
    return this.stmts.scopesUnder.all(window, span.endMs, span.startMs, scope, prefix.length, prefix) as ScopeUsageRow[];
  }

  /** A window's consumption per value of tag `key`, most first. */
  taggedUsage(scope: string, window: WindowName, startMs: number, key: string): TagUsageRow[] {
    return this.stmts.taggedUsage.all(scope, window, startMs, key) as TagUsageRow[];
  }

  /** Up to `limit` windows that started at or before `beforeMs`, newest first. */
  history(scope: string, window: WindowName, beforeMs: number, limit: number): UsageRow[] {
    return this.stmts.history.all(scope, window, beforeMs, limit) as UsageRow[];
  }

  /**
   * Deletes up to `limit` consumption rows of `window` (per tag when `tagged`, per model when `models`) that ended before
   * `beforeMs`; returns how many. Callers delete in batches so that no single statement holds the
   * process for long (the index on window and end finds them without a scan).
   */
  pruneUsage(window: WindowName, beforeMs: number, opts: { tagged: boolean; models?: boolean; limit: number }): number {
    const stmt = opts.models === true ? this.stmts.pruneModelUsage : opts.tagged ? this.stmts.pruneTaggedUsage : this.stmts.pruneUsage;
    return stmt.run(window, beforeMs, opts.limit).changes;
  }

  leases(): LeaseRow[] {
    return this.stmts.leases.all() as LeaseRow[];
  }

  saveLease(l: LeaseRow): void {
    this.stmts.saveLease.run(l);
  }

  deleteLease(id: string): void {
    this.stmts.deleteLease.run(id);
  }

  acked(incarnation: string): number {
    const row = this.stmts.acked.get(incarnation) as { sequence: number } | undefined;
    return row?.sequence ?? 0;
  }

  /** Records the highest sequence processed for a sidecar incarnation, and when. */
  setAcked(incarnation: string, sequence: number, seenMs: number): void {
    this.stmts.setAcked.run(incarnation, sequence, seenMs);
  }

  /** The identity that owns an incarnation ('' when unclaimed or unknown). */
  owner(incarnation: string): string {
    const row = this.stmts.owner.get(incarnation) as { owner: string } | undefined;
    return row?.owner ?? '';
  }

  /** Records the identity an incarnation belongs to (dated, so it is kept a full retention period). */
  setOwner(incarnation: string, owner: string, seenMs: number): void {
    this.stmts.setOwner.run(incarnation, seenMs, owner);
  }

  teams(): TeamRow[] {
    return this.stmts.teams.all() as TeamRow[];
  }

  /** Replaces a team's namespaces (none: the team is deleted). */
  setTeam(team: string, namespaces: readonly string[]): void {
    this.transaction(() => {
      this.stmts.deleteTeam.run(team);
      for (const ns of namespaces) this.stmts.addTeamNamespace.run(team, ns);
    });
  }

  /** Deletes up to `limit` incarnations' sequences last advanced before `beforeMs`; returns how many. */
  pruneAcked(beforeMs: number, limit: number): number {
    return this.stmts.pruneAcked.run(beforeMs, limit).changes;
  }

  close(): void {
    this.group?.commit();
    this.db.close();
    this.wal?.close();
  }
}
