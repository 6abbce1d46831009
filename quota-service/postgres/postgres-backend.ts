// The quota service over PostgreSQL, one replica of several (store-backend.ts): the store, migrated at open;
// the replicated allocator; readiness that is the database's (pinged every second); the budgets the
// metrics show, refreshed every few seconds in the background (a scrape reads them synchronously); the usage
// page's view, which reads the database at each (cached) answer.
import type { Logger } from 'pino';
import { throttledWarn } from '../../common/logger.js';
import type { AllocatorOptions, BudgetView } from '../allocator.js';
import type { StoreBackend } from '../store-backend.js';
import { PgQuotaStore } from './pg-store.js';
import { redactUrl } from './redact-url.js';
import { ReplicatedAllocator } from './replicated-allocator.js';
import { replicatedUsageView } from './replicated-usage-view.js';

/** How often the metrics' budget figures are read again. */
const BUDGETS_EVERY_MS = 5000;
const PING_TIMEOUT_MS = 1000;

export async function postgresBackend(url: string, allocatorOptions: AllocatorOptions, logger: Logger): Promise<StoreBackend> {
  const warn = throttledWarn(logger, allocatorOptions.clock, 'the PostgreSQL store failed');
  const store = await PgQuotaStore.open(url, { onIdleError: (err) => warn({ err }) });
  const allocator = new ReplicatedAllocator(store, allocatorOptions);
  let ok = true;
  let budgets: BudgetView[] = [];
  let budgetsAt = -Infinity;
  const refreshBudgets = async (): Promise<void> => {
    budgets = await allocator.listBudgets();
    budgetsAt = allocatorOptions.clock.monotonic();
  };
  await refreshBudgets();
  await allocator.sweep();
  return {
    allocator,
    where: { store: redactUrl(url) },
    prunable: store,
    ready: () => ok,
    budgets: () => budgets,
    async tick() {
      try {
        await store.ping(PING_TIMEOUT_MS);
        await allocator.sweep();
        if (allocatorOptions.clock.monotonic() - budgetsAt >= BUDGETS_EVERY_MS) await refreshBudgets();
        if (!ok) logger.info('the PostgreSQL store answers again: ready');
        ok = true;
      } catch (err) {
        if (ok) logger.warn({ err: String(err) }, 'the PostgreSQL store does not answer: not ready');
        ok = false;
      }
    },
    usageView: (deps) => replicatedUsageView({ allocator, store, clock: allocatorOptions.clock, ...deps }),
    close: () => store.close(),
  };
}
