// Where the quota service keeps its state, and what differs with it: one replica over a SQLite file (the
// embedded default), or several replicas over one PostgreSQL database (postgres/postgres-backend.ts, loaded
// only when asked for). The composition root (quota-service.ts) sees only this.
import type { Clock } from '../common/clock.js';
import type { PriceTable } from '../common/pricing/price-table.js';
import type { Logger } from 'pino';
import type { AllocatorOptions, BudgetView } from './allocator.js';
import { groupCommitted } from './group-committed-allocator.js';
import type { QuotaAllocator } from './quota-allocator.js';
import type { QuotaMetrics } from './quota-metrics.js';
import { SqliteQuotaStore } from './store.js';
import { allocatorUsageView } from './ui/allocator-usage-view.js';
import type { UsageView } from './ui/usage-view.js';

export interface StoreBackend {
  readonly allocator: QuotaAllocator;
  /** For the start-up log: the file, or the database without its password. */
  readonly where: Record<string, string>;
  /** Deletes old consumption and report sequences (retention.ts). */
  readonly prunable: { pruneUsage(...args: Parameters<SqliteQuotaStore['pruneUsage']>): number | Promise<number>; pruneAcked(...args: Parameters<SqliteQuotaStore['pruneAcked']>): number | Promise<number> };
  /** The store answers (readiness). */
  ready(): boolean;
  /** Every budget in its current window, for the metrics (read synchronously at a scrape)… */
  budgets(): BudgetView[];
  /** …after this, when the budgets are read from elsewhere (awaited before each scrape). */
  refreshBudgets?: () => Promise<void>;
  /** Every second: lapsed leases go (their grants are no longer outstanding). */
  tick(): void | Promise<void>;
  /** The usage page's view of the state. */
  usageView(deps: { metrics: QuotaMetrics; prices: () => Readonly<PriceTable> }): UsageView;
  close(): Promise<void>;
}

/** How long the refusals of a failed fsync have to go out before the process ends. */
const EXIT_AFTER_SYNC_FAILURE_MS = 200;

export function sqliteBackend(path: string, allocatorOptions: AllocatorOptions, clock: Clock, logger?: Logger): StoreBackend {
  const store = new SqliteQuotaStore(path);
  // After a failed fsync the file's pages may not be what the disk holds: the service ends and starts again
  // from the disk (Kubernetes restarts it), as PostgreSQL does; sidecars resend what was not acknowledged.
  const endProcess = (): void => void setTimeout(() => process.exit(1), EXIT_AFTER_SYNC_FAILURE_MS);
  const { allocator, current } = groupCommitted(store, allocatorOptions, endProcess, logger);
  return {
    allocator,
    where: { db: path },
    prunable: store,
    ready: () => true,
    budgets: () => current().listBudgets(),
    tick: () => void current().sweep(),
    usageView: (deps) => allocatorUsageView({ allocator: { listBudgets: () => current().listBudgets(), listTeams: () => current().listTeams() }, store, clock, ...deps }),
    close: async () => store.close(),
  };
}
