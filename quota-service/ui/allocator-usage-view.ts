// The usage page's view over what the quota service keeps: budgets from the allocator, live leases and
// consumption (tokens and cost, per scope, tag value and model) from the store, refusal counts from the
// service's metrics, and the price table in force.
import type { Clock } from '../../common/clock.js';
import { PRICED_PROVIDERS, type ModelPrice, type PriceTable as ServicePriceTable } from '../../common/pricing/price-table.js';
import type { Allocator } from '../allocator.js';
import type { QuotaMetrics } from '../quota-metrics.js';
import { scopesOf } from '../scopes.js';
import type { SqliteQuotaStore } from '../store.js';
import { windowAt, type WindowName } from '../windows.js';
import type { BudgetStatus, LabelledPoint, LeaseStatus, PriceRow, PriceTable, PriorityName, RefusalCounts, UsagePoint, UsageView } from './usage-view.js';

export interface AllocatorUsageViewOptions {
  allocator: Allocator;
  store: SqliteQuotaStore;
  clock: Clock;
  /** For refusal counts (since start); without it the page shows "—" for refusals. */
  metrics?: QuotaMetrics;
  /**
   * More scopes to chart. By default the page charts the scopes it can find: those with a budget, every
   * team, and the scopes of live leases; a namespace with neither a budget nor a live lease is not found.
   */
  extraScopes?: () => Iterable<string>;
  /** The price table usage is charged by; without it the page shows "—" for prices. */
  prices?: () => Readonly<ServicePriceTable>;
}

const PRIORITIES: PriorityName[] = ['interactive', 'background', 'batch'];
/** Most windows one history read looks at (the page asks for at most 60). */
const MAX_HISTORY_ROWS = 1000;

export function allocatorUsageView(opts: AllocatorUsageViewOptions): UsageView {
  const { allocator, store, clock } = opts;
  const liveLeases = () => {
    const now = clock.now();
    return store.leases().filter((l) => l.expiresAtMs > now);
  };
  const history = (scope: string, window: WindowName, sinceMs: number): UsagePoint[] => {
    const now = clock.now();
    return store
      .history(scope, window, windowAt(window, now).startMs, Math.min(MAX_HISTORY_ROWS, windowsBetween(window, sinceMs, now)))
      .filter((r) => r.startMs >= sinceMs)
      .map((r) => ({ startMs: r.startMs, tokens: r.used, costUsd: r.costNano / 1e9 }));
  };
  const view: UsageView = {
    budgets: (): BudgetStatus[] =>
      allocator.listBudgets().map((b) => {
        // A USD budget's amounts are kept in nano-USD: shown in USD.
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
      }),
    leases: (): LeaseStatus[] =>
      liveLeases().map((l) => ({
        namespace: l.namespace,
        service: l.service,
        pod: l.pod,
        priority: PRIORITIES[l.priority - 1] ?? 'interactive',
        tokensHeld: l.outstanding,
        expiresAtMs: l.expiresAtMs,
        ...(l.usd === 1 ? { usdHeld: l.outstandingNano / 1e9 } : {}),
      })),
    scopes: (): string[] => {
      const found = new Set<string>();
      for (const b of allocator.listBudgets()) found.add(b.scope);
      const teams = allocator.listTeams();
      for (const t of teams) found.add(`team/${t.team}`);
      const teamsOf = (ns: string): string[] => teams.filter((t) => t.namespaces.includes(ns)).map((t) => t.team);
      for (const l of liveLeases()) for (const s of scopesOf(l, teamsOf(l.namespace))) found.add(s);
      for (const s of opts.extraScopes?.() ?? []) found.add(s);
      return [...found].sort();
    },
    history,
    tagHistory: (scope, window, sinceMs, key): LabelledPoint[] =>
      history(scope, window, sinceMs).flatMap((w) =>
        store.taggedUsage(scope, window, w.startMs, key).map((t) => ({ startMs: w.startMs, label: t.value, tokens: t.used, costUsd: t.costNano / 1e9 })),
      ),
    // Every request is charged to exactly one namespace scope, so their per-model rows add up to the
    // cluster's without counting a request twice (its service and team scopes hold it again).
    modelHistory: (window, sinceMs): LabelledPoint[] =>
      view.scopes()
        .filter((scope) => /^namespace\/[^/]+$/.test(scope))
        .flatMap((scope) =>
          history(scope, window, sinceMs).flatMap((w) =>
            store.modelUsage(scope, window, w.startMs).map((m) => ({ startMs: w.startMs, label: m.model, tokens: m.used, costUsd: m.costNano / 1e9 })),
          ),
        ),
  };
  if (opts.prices !== undefined) {
    const prices = opts.prices;
    view.prices = () => priceTableOf(prices());
  }
  if (opts.metrics !== undefined) {
    const metrics = opts.metrics;
    view.refusals = () => refusalCounts(metrics);
  }
  return view;
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

/** How many windows of `window` from the one holding `sinceMs` to the one holding `now` (at least 1). */
function windowsBetween(window: WindowName, sinceMs: number, now: number): number {
  const approx: Record<WindowName, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 28 * 86_400_000 };
  return Math.max(1, Math.ceil((now - sinceMs) / approx[window]) + 1);
}

/**
 * Refusal counts from the metrics' exposition text: reading it leaves the series as they are (reading a
 * labelled counter directly would create the series it asks about).
 */
export function refusalCounts(metrics: QuotaMetrics): RefusalCounts {
  const byPriority = new Map<PriorityName, number>(PRIORITIES.map((p) => [p, 0]));
  for (const s of samples(metrics.grants.render())) {
    const p = s.labels.priority as PriorityName;
    if (s.labels.result === 'refused' && byPriority.has(p)) byPriority.set(p, byPriority.get(p)! + s.value);
  }
  const byCode = samples(metrics.rpcs.render())
    .filter((s) => s.labels.code !== undefined && s.labels.code !== 'OK' && s.value > 0)
    .map((s) => ({ method: s.labels.method ?? '', code: s.labels.code!, count: s.value }))
    .sort((a, b) => b.count - a.count);
  return { byPriority: [...byPriority].map(([priority, count]) => ({ priority, count })), byCode };
}

const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{(.*)\} (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function samples(text: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of m[1]!.matchAll(LABEL)) labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(m[2]);
    if (Number.isFinite(value)) out.push({ labels, value });
  }
  return out;
}
