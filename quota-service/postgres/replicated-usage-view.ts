// The usage page's view over the PostgreSQL database several replicas share: budgets from the replicated
// allocator (what every replica holds), live leases and consumption from the records, refusal counts from
// this replica's metrics, and the price table in force. Every read is asynchronous and bounded: a chart's
// tag values or models are one statement per scope or per chart, never one per window.
import type { Clock } from '../../common/clock.js';
import type { PriceTable as ServicePriceTable } from '../../common/pricing/price-table.js';
import type { QuotaMetrics } from '../quota-metrics.js';
import type { TeamRow } from '../store-api.js';
import { MAX_SCOPES } from '../ui/usage-api.js';
import { budgetStatus, chartScopes, historyReach, isNamespaceScope, labelledPoint, leaseStatus, liveLeases, serviceFigures, usagePoint } from '../ui/usage-rows.js';
import type { UsageView } from '../ui/usage-view.js';
import type { PgQuotaRecords } from './pg-records.js';
import type { ReplicatedAllocator } from './replicated-allocator.js';

export interface ReplicatedUsageViewOptions {
  allocator: Pick<ReplicatedAllocator, 'listBudgets'>;
  store: Pick<PgQuotaRecords, 'budgets' | 'teams' | 'leases' | 'history' | 'taggedHistory' | 'modelHistory'>;
  clock: Clock;
  /** For refusal counts (this replica's, since it started); without it the page shows "—" for refusals. */
  metrics?: QuotaMetrics;
  /** The price table usage is charged by; without it the page shows "—" for prices. */
  prices?: () => Readonly<ServicePriceTable>;
}

/** Most rows one tag or model read returns (the page charts at most 60 windows; values past this are left out, oldest windows' first). */
export const MAX_LABELLED_ROWS = 20_000;

export function replicatedUsageView(opts: ReplicatedUsageViewOptions): UsageView {
  const { allocator, store, clock } = opts;
  const live = async () => liveLeases(await store.leases(), clock.now());
  const view: UsageView = {
    budgets: async () => (await allocator.listBudgets()).map(budgetStatus),
    leases: async () => (await live()).map(leaseStatus),
    // From the records themselves: the allocator's lists would also load every budget's window.
    scopes: async () => {
      const [budgets, teams, leases] = await Promise.all([store.budgets(), store.teams(), live()]);
      return chartScopes({ budgetScopes: budgets.map((b) => b.scope), teams: grouped(teams), leases });
    },
    history: async (scope, window, sinceMs) => {
      const reach = historyReach(window, sinceMs, clock.now());
      return (await store.history(scope, window, reach.beforeMs, reach.limit)).filter((r) => r.startMs >= sinceMs).map(usagePoint);
    },
    tagHistory: async (scope, window, sinceMs, key) => {
      const { beforeMs } = historyReach(window, sinceMs, clock.now());
      return (await store.taggedHistory(scope, window, sinceMs, beforeMs, key, MAX_LABELLED_ROWS)).map((r) => labelledPoint(r.startMs, r.value, r));
    },
    // Summed over the namespace scopes the page charts, as the SQLite view does (at most MAX_SCOPES of them).
    modelHistory: async (window, sinceMs) => {
      const scopes = (await view.scopes()).filter(isNamespaceScope).slice(0, MAX_SCOPES);
      if (scopes.length === 0) return [];
      const { beforeMs } = historyReach(window, sinceMs, clock.now());
      return (await store.modelHistory(scopes, window, sinceMs, beforeMs, MAX_LABELLED_ROWS)).map((r) => labelledPoint(r.startMs, r.model, r));
    },
    ...serviceFigures(opts),
  };
  return view;
}

/** Team rows (one per namespace) as the teams and their namespaces. */
function grouped(rows: readonly TeamRow[]): { team: string; namespaces: string[] }[] {
  const byTeam = new Map<string, string[]>();
  for (const r of rows) {
    const namespaces = byTeam.get(r.team);
    if (namespaces === undefined) byTeam.set(r.team, [r.namespace]);
    else namespaces.push(r.namespace);
  }
  return [...byTeam].map(([team, namespaces]) => ({ team, namespaces }));
}
