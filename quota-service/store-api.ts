// What the quota service keeps durably, as one asynchronous interface that both stores satisfy: SQLite
// (embedded, one replica; behind this interface in the store tests only, test/helpers/async-store.ts) and
// PostgreSQL (several replicas; PgQuotaStore). The row types are SqliteQuotaStore's, so both speak the same
// shapes; the semantics are those documented there.
import type { TokenKinds } from '../proto/token-kinds.js';
import type {
  BudgetRow,
  BudgetUnit,
  LeaseRow,
  ModelUsageRow,
  ScopeUsageRow,
  TagUsageRow,
  TeamRow,
  UsageRow,
  WindowTotals,
} from './store.js';
import type { WindowName } from './windows.js';

export type { BudgetRow, BudgetUnit, LeaseRow, ModelUsageRow, ScopeUsageRow, TagUsageRow, TeamRow, UsageRow, WindowTotals };
export { MAX_MODELS_PER_WINDOW, OTHER_MODEL } from './store.js';

/** A window's span, in ms since the epoch: [startMs, endMs). */
export interface Span {
  startMs: number;
  endMs: number;
}

/**
 * The quota service's records. Token counts are whole tokens and costs whole nano-USD; all of them stay
 * below 2^53. No transaction spans several calls here: PgQuotaStore.transaction gives records bound to one.
 */
export interface QuotaRecords {
  /** Every budget, token budgets first, then by scope and window. */
  budgets(): Promise<BudgetRow[]>;
  upsertBudget(b: BudgetRow): Promise<void>;
  /** Deletes the scope's budgets of `window` (undefined: every window) in `unit` (undefined: both); returns how many. */
  deleteBudget(scope: string, window: WindowName | undefined, unit?: BudgetUnit): Promise<number>;

  /** A window's consumption in tokens (0 when none). */
  used(scope: string, window: WindowName, startMs: number): Promise<number>;
  /** What a window's consumption cost, in nano-USD. */
  costNano(scope: string, window: WindowName, startMs: number): Promise<number>;
  /** Adds to a window's consumption; never loses an increment to a concurrent one. `costNano`: whole nano-USD. */
  addUsage(scope: string, window: WindowName, startMs: number, endMs: number, tokens: number, kinds?: TokenKinds, costNano?: number): Promise<void>;
  /** A window's consumption by kind of token, and its cost. */
  totals(scope: string, window: WindowName, startMs: number): Promise<WindowTotals>;
  addTaggedUsage(scope: string, window: WindowName, startMs: number, endMs: number, tag: { key: string; value: string }, tokens: number, costNano?: number): Promise<void>;
  /** A window's consumption per value of tag `key`, most first. */
  taggedUsage(scope: string, window: WindowName, startMs: number, key: string): Promise<TagUsageRow[]>;
  /** Adds to a window's consumption by model; past MAX_MODELS_PER_WINDOW models, new ones count as OTHER_MODEL. */
  addModelUsage(scope: string, window: WindowName, span: Span, model: { provider: string; model: string }, tokens: number, totals: WindowTotals): Promise<void>;
  /** A window's consumption per model, most cost first. */
  modelUsage(scope: string, window: WindowName, startMs: number): Promise<ModelUsageRow[]>;
  /** The window's consumption of `scope` and of every scope under it (`<scope>/…`) that has some, most cost first. */
  scopesUnder(scope: string, window: WindowName, span: Span): Promise<ScopeUsageRow[]>;
  /** Up to `limit` windows that started at or before `beforeMs`, newest first. */
  history(scope: string, window: WindowName, beforeMs: number, limit: number): Promise<UsageRow[]>;
  /** Deletes up to `limit` rows of `window` (per tag when `tagged`, per model when `models`) that ended before `beforeMs`; returns how many. */
  pruneUsage(window: WindowName, beforeMs: number, opts: { tagged: boolean; models?: boolean; limit: number }): Promise<number>;

  leases(): Promise<LeaseRow[]>;
  /** Inserts a lease, or updates its balances, times and windows (its identity and owner are kept). */
  saveLease(l: LeaseRow): Promise<void>;
  deleteLease(id: string): Promise<void>;

  /** The highest report sequence processed for a sidecar incarnation (0 when none). */
  acked(incarnation: string): Promise<number>;
  setAcked(incarnation: string, sequence: number, seenMs: number): Promise<void>;
  /** The identity that owns an incarnation ('' when unclaimed or unknown). */
  owner(incarnation: string): Promise<string>;
  setOwner(incarnation: string, owner: string, seenMs: number): Promise<void>;
  /** Deletes up to `limit` incarnations' sequences last advanced before `beforeMs`; returns how many. */
  pruneAcked(beforeMs: number, limit: number): Promise<number>;

  /** Every team's namespaces, by team then namespace. */
  teams(): Promise<TeamRow[]>;
  /** Replaces a team's namespaces at once (none: the team is deleted). */
  setTeam(team: string, namespaces: readonly string[]): Promise<void>;
}

/** The records, and the store's lifecycle. */
export interface QuotaStore extends QuotaRecords {
  /** Resolves when the store answers a trivial query within `timeoutMs` (readiness); rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}
