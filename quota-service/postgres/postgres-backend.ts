// The quota service over PostgreSQL, one replica of several (store-backend.ts): the store, migrated at open;
// the replicated allocator; readiness that is the database's (pinged every second); the budgets the
// metrics show, read again before a scrape (at most once a second, concurrent scrapes sharing the read);
// the usage page's view, which reads the database at each (cached) answer.
import type { Logger } from 'pino';
import { throttledWarn } from '../../common/logger.js';
import type { AllocatorOptions, BudgetView } from '../allocator.js';
import type { StoreBackend } from '../store-backend.js';
import { PgQuotaStore } from './pg-store.js';
import { redactUrl } from './redact-url.js';
import { ReplicatedAllocator } from './replicated-allocator.js';
import { replicatedUsageView } from './replicated-usage-view.js';

/** The metrics' budget figures are read again at most this often (however often they are scraped). */
const BUDGETS_EVERY_MS = 1000;
const PING_TIMEOUT_MS = 1000;

export async function postgresBackend(url: string, allocatorOptions: AllocatorOptions, logger: Logger): Promise<StoreBackend> {
  const warn = throttledWarn(logger, allocatorOptions.clock, 'the PostgreSQL store failed');
  const store = await PgQuotaStore.open(url, { onIdleError: (err) => warn({ err }) });
  let budgetsAt = -Infinity;
  // A budget this replica changed is shown at the next scrape (others' changes within BUDGETS_EVERY_MS).
  const allocator = new ReplicatedAllocator(store, allocatorOptions, () => void (budgetsAt = -Infinity));
  let ok = true;
  let budgets: BudgetView[] = [];
  let reading: Promise<void> | undefined;
  const refreshBudgets = (): Promise<void> => {
    if (allocatorOptions.clock.monotonic() - budgetsAt < BUDGETS_EVERY_MS) return Promise.resolve();
    return (reading ??= allocator
      .listBudgets()
      .then((b) => {
        budgets = b;
        budgetsAt = allocatorOptions.clock.monotonic();
      })
      .finally(() => {
        reading = undefined;
      }));
  };
  await refreshBudgets();
  await allocator.sweep();
  return {
    allocator,
    where: { store: redactUrl(url) },
    prunable: store,
    ready: () => ok,
    budgets: () => budgets,
    refreshBudgets,
    async tick() {
      try {
        await store.ping(PING_TIMEOUT_MS);
        await allocator.sweep();
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
