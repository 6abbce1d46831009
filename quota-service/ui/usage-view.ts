// What the usage page reads from the quota service: a narrow, read-only view, so the page does not depend
// on the allocator's or the store's shapes. Fields the service does not keep yet (cost, per-model usage,
// refusal details, prices) are optional; the page shows "—" where they are absent. A view answers at once
// (SQLite, one replica) or asynchronously (PostgreSQL, several replicas); the page awaits either.
import type { WindowName } from '../windows.js';

export type PriorityName = 'interactive' | 'background' | 'batch';

/** One budget in its current window. Amounts are in the budget's unit (tokens, or USD for dollar budgets). */
export interface BudgetStatus {
  scope: string;
  window: WindowName;
  /** Default `tokens`. */
  unit?: 'tokens' | 'usd';
  limit: number;
  /** Consumed in the current window. */
  used: number;
  /** Held by live leases in the current window (granted, not spent yet). */
  reserved: number;
  /** limit − used − reserved, at least 0: what can still be granted. */
  remaining: number;
  windowStartMs: number;
  windowEndMs: number;
  /** Dollars consumed in the current window, when the service prices usage. */
  usedUsd?: number;
}

/** A live lease of one sidecar (pod) and priority class. */
export interface LeaseStatus {
  namespace: string;
  /** The pod's service account ('' when unknown). */
  service: string;
  pod: string;
  priority: PriorityName;
  /** Tokens granted and not spent or given back yet. */
  tokensHeld: number;
  /** Epoch ms when the lease lapses unless renewed. */
  expiresAtMs: number;
  /** What the lease holds in dollars, when dollar budgets apply to it. */
  usdHeld?: number;
}

/** One window of consumption. */
export interface UsagePoint {
  startMs: number;
  tokens: number;
  costUsd?: number;
}

/** One window of consumption of one value (a tag value, a model). */
export interface LabelledPoint extends UsagePoint {
  label: string;
}

export interface RefusalCounts {
  /** Since the service started: lease needs refused, by priority class. */
  byPriority: { priority: PriorityName; count: number }[];
  /** Since the service started: gRPC calls answered with an error, by method and status code. */
  byCode?: { method: string; code: string; count: number }[];
  /** The latest refusals, newest first, when the service keeps them. */
  recent?: { atMs: number; scope: string; window: WindowName; priority: PriorityName; reason: string; need: number }[];
}

/** USD per million tokens; an absent kind is not priced apart. */
export interface PriceRow {
  provider: string;
  model: string;
  input?: number;
  cachedInput?: number;
  cacheWrite?: number;
  output?: number;
  reasoning?: number;
}

export interface PriceTable {
  /** The table's date and source, as shipped or overridden. */
  asOf?: string;
  source?: string;
  /** What an unpriced model is charged. */
  fallback?: Omit<PriceRow, 'provider' | 'model'>;
  rows: PriceRow[];
}

/** A value now, or later (a view over a database several replicas share answers asynchronously). */
export type MaybePromise<T> = T | Promise<T>;

export interface UsageView {
  /** Every budget in its current window. */
  budgets(): MaybePromise<BudgetStatus[]>;
  /** Live (not lapsed) leases. */
  leases(): MaybePromise<LeaseStatus[]>;
  /** Scopes that may have consumption to chart: namespace/…, namespace/…/service/…, team/…. */
  scopes(): MaybePromise<string[]>;
  /** A scope's windows that started at or after `sinceMs`, any order; windows without consumption may be left out. */
  history(scope: string, window: WindowName, sinceMs: number): MaybePromise<UsagePoint[]>;
  /** The same, per value of tag `key` (label = the value). */
  tagHistory(scope: string, window: WindowName, sinceMs: number, key: string): MaybePromise<LabelledPoint[]>;
  /** Consumption of all scopes per model (label = the model), when the service keeps it. */
  modelHistory?(window: WindowName, sinceMs: number): MaybePromise<LabelledPoint[]>;
  refusals?(): MaybePromise<RefusalCounts>;
  prices?(): MaybePromise<PriceTable>;
}

/** A view that answers at once (one replica's, over SQLite): what UsageView's methods return, never a promise. */
export interface SyncUsageView extends UsageView {
  budgets(): BudgetStatus[];
  leases(): LeaseStatus[];
  scopes(): string[];
  history(scope: string, window: WindowName, sinceMs: number): UsagePoint[];
  tagHistory(scope: string, window: WindowName, sinceMs: number, key: string): LabelledPoint[];
  modelHistory?(window: WindowName, sinceMs: number): LabelledPoint[];
  refusals?(): RefusalCounts;
  prices?(): PriceTable;
}
