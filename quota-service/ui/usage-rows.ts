// What the usage page's views share, whatever the store behind them (allocator-usage-view.ts over SQLite,
// postgres/replicated-usage-view.ts over PostgreSQL): rows as the page reads them (budgets, leases,
// consumption points, prices), which scopes are charted, and how far back a history read looks.
import { PRICED_PROVIDERS, type ModelPrice, type PriceTable as ServicePriceTable } from '../../common/pricing/price-table.js';
import type { BudgetView } from '../allocator.js';
import type { QuotaMetrics } from '../quota-metrics.js';
import { scopesOf } from '../scopes.js';
import type { LeaseRow, TagUsageRow, UsageRow } from '../store-api.js';
import { windowAt, type WindowName } from '../windows.js';
import { PRIORITIES, refusalCounts } from './refusal-counts.js';
import type { BudgetStatus, LabelledPoint, LeaseStatus, PriceRow, PriceTable, RefusalCounts, UsagePoint } from './usage-view.js';

/** Most windows one history read looks at (the page asks for at most 60). */
export const MAX_HISTORY_ROWS = 1000;

/** A budget in its current window; a USD budget's amounts, kept in nano-USD, shown in USD. */
export function budgetStatus(b: BudgetView): BudgetStatus {
  const scale = b.unit === 'usd' ? 1e-9 : 1;
  return {
    scope: b.scope,
    window: b.window,
    unit: b.unit,
    limit: b.tokens * scale,
    used: b.used * scale,
    reserved: b.outstanding * scale,
    remaining: Math.max(0, b.tokens - b.used - b.outstanding) * scale,
    windowStartMs: b.windowStartMs,
    windowEndMs: b.windowEndMs,
    usedUsd: b.usedNano / 1e9,
  };
}

/** The leases that have not lapsed at `now` (epoch ms). */
export const liveLeases = (leases: readonly LeaseRow[], now: number): LeaseRow[] => leases.filter((l) => l.expiresAtMs > now);

export function leaseStatus(l: LeaseRow): LeaseStatus {
  return {
    namespace: l.namespace,
    service: l.service,
    pod: l.pod,
    priority: PRIORITIES[l.priority - 1] ?? 'interactive',
    tokensHeld: l.outstanding,
    expiresAtMs: l.expiresAtMs,
    ...(l.usd === 1 ? { usdHeld: l.outstandingNano / 1e9 } : {}),
  };
}

export const usagePoint = (r: UsageRow): UsagePoint => ({ startMs: r.startMs, tokens: r.used, costUsd: r.costNano / 1e9 });

/** A tag value's (or a model's: `label`) consumption in the window that started at `startMs`. */
export const labelledPoint = (startMs: number, label: string, r: Pick<TagUsageRow, 'used' | 'costNano'>): LabelledPoint => ({
  startMs,
  label,
  tokens: r.used,
  costUsd: r.costNano / 1e9,
});

/**
 * The scopes the page charts: those with a budget, every team, the scopes of live leases, and `extra`. A
 * namespace with neither a budget nor a live lease is not found.
 */
export function chartScopes(found: {
  budgetScopes: Iterable<string>;
  teams: readonly { team: string; namespaces: readonly string[] }[];
  leases: readonly LeaseRow[];
  extra?: Iterable<string>;
}): string[] {
  const out = new Set<string>(found.budgetScopes);
  for (const t of found.teams) out.add(`team/${t.team}`);
  const teamsOf = (ns: string): string[] => found.teams.filter((t) => t.namespaces.includes(ns)).map((t) => t.team);
  for (const l of found.leases) for (const s of scopesOf(l, teamsOf(l.namespace))) out.add(s);
  for (const s of found.extra ?? []) out.add(s);
  return [...out].sort();
}

/**
 * Every request is charged to exactly one namespace scope: summing over these counts no request twice (its
 * service and team scopes hold it again).
 */
export const isNamespaceScope = (scope: string): boolean => /^namespace\/[^/]+$/.test(scope);

/**
 * What a history read from `sinceMs` asks the store for: windows that started at or before the one holding
 * `now` (`beforeMs`), at most `limit` of them (newest first), enough to reach back to `sinceMs`.
 */
export function historyReach(window: WindowName, sinceMs: number, now: number): { beforeMs: number; limit: number } {
  return { beforeMs: windowAt(window, now).startMs, limit: Math.min(MAX_HISTORY_ROWS, windowsBetween(window, sinceMs, now)) };
}

/** How many windows of `window` from the one holding `sinceMs` to the one holding `now` (at least 1). */
function windowsBetween(window: WindowName, sinceMs: number, now: number): number {
  const approx: Record<WindowName, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 28 * 86_400_000 };
  return Math.max(1, Math.ceil((now - sinceMs) / approx[window]) + 1);
}

/** The price table and refusal counts a view offers: each only when the service gave its source. */
export function serviceFigures(from: { metrics?: QuotaMetrics; prices?: () => Readonly<ServicePriceTable> }): { prices?: () => PriceTable; refusals?: () => RefusalCounts } {
  const { metrics, prices } = from;
  return {
    ...(prices === undefined ? {} : { prices: () => priceTableOf(prices()) }),
    ...(metrics === undefined ? {} : { refusals: () => refusalCounts(metrics) }),
  };
}

/** The table as the page lists it: one row per provider type and model. */
function priceTableOf(t: Readonly<ServicePriceTable>): PriceTable {
  const rates = (p: ModelPrice): Omit<PriceRow, 'provider' | 'model'> => ({
    input: p.input,
    output: p.output,
    cachedInput: p.cachedInput ?? p.input,
    cacheWrite: p.cacheWrite ?? p.input,
    ...(p.reasoning === undefined ? {} : { reasoning: p.reasoning }),
  });
  const rows: PriceRow[] = [];
  for (const provider of PRICED_PROVIDERS) for (const [model, p] of Object.entries(t.models[provider] ?? {})) rows.push({ provider, model, ...rates(p) });
  return { asOf: t.asOf, fallback: rates(t.default), rows };
}
