// The usage page's view over what one replica keeps in SQLite: budgets from the allocator, live leases and
// consumption (tokens and cost, per scope, tag value and model) from the store, refusal counts from the
// service's metrics, and the price table in force. It answers synchronously (usage-rows.ts maps the rows).
import type { Clock } from '../../common/clock.js';
import type { PriceTable as ServicePriceTable } from '../../common/pricing/price-table.js';
import type { Allocator } from '../allocator.js';
import type { QuotaMetrics } from '../quota-metrics.js';
import type { SqliteQuotaStore } from '../store.js';
import type { WindowName } from '../windows.js';
import { budgetStatus, chartScopes, historyReach, isNamespaceScope, labelledPoint, leaseStatus, liveLeases, serviceFigures, usagePoint } from './usage-rows.js';
import type { LabelledPoint, SyncUsageView, UsagePoint } from './usage-view.js';

export { refusalCounts } from './refusal-counts.js';

export interface AllocatorUsageViewOptions {
  allocator: Pick<Allocator, 'listBudgets' | 'listTeams'>;
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

export function allocatorUsageView(opts: AllocatorUsageViewOptions): SyncUsageView {
  const { allocator, store, clock } = opts;
  const live = () => liveLeases(store.leases(), clock.now());
  const history = (scope: string, window: WindowName, sinceMs: number): UsagePoint[] => {
    const reach = historyReach(window, sinceMs, clock.now());
    return store
      .history(scope, window, reach.beforeMs, reach.limit)
      .filter((r) => r.startMs >= sinceMs)
      .map(usagePoint);
  };
  const view: SyncUsageView = {
    budgets: () => allocator.listBudgets().map(budgetStatus),
    leases: () => live().map(leaseStatus),
    scopes: () =>
      chartScopes({ budgetScopes: allocator.listBudgets().map((b) => b.scope), teams: allocator.listTeams(), leases: live(), extra: opts.extraScopes?.() ?? [] }),
    history,
    tagHistory: (scope, window, sinceMs, key): LabelledPoint[] =>
      history(scope, window, sinceMs).flatMap((w) => store.taggedUsage(scope, window, w.startMs, key).map((t) => labelledPoint(w.startMs, t.value, t))),
    modelHistory: (window, sinceMs): LabelledPoint[] =>
      view
        .scopes()
        .filter(isNamespaceScope)
        .flatMap((scope) =>
          history(scope, window, sinceMs).flatMap((w) => store.modelUsage(scope, window, w.startMs).map((m) => labelledPoint(w.startMs, m.model, m))),
        ),
    ...serviceFigures(opts),
  };
  return view;
}
