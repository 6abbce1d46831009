// How long the quota service keeps consumption, and the pruning that holds it to that: rows of windows
// that ended too long ago are deleted a batch at a time, yielding to the event loop between batches, so
// a large backlog (tags of many values, a service that was down for days) never stalls the lease RPCs.
import type { SqliteQuotaStore } from './store.js';
import type { WindowName } from './windows.js';

const DAY = 86_400_000;

/**
 * Windows that ended longer ago than `keepMs` are deleted; those not listed are kept. Totals are a row
 * per scope and window; per tag there is a row per value, which can be many: day windows per tag go after
 * 400 days (a year compares with the year before), month windows stay.
 */
export const RETENTION: readonly { window: WindowName; tagged: boolean; keepMs: number }[] = [
  { window: 'minute', tagged: false, keepMs: 7 * DAY },
  { window: 'minute', tagged: true, keepMs: 7 * DAY },
  { window: 'hour', tagged: false, keepMs: 90 * DAY },
  { window: 'hour', tagged: true, keepMs: 90 * DAY },
  { window: 'day', tagged: true, keepMs: 400 * DAY },
];

/** Rows one statement deletes (a few milliseconds of work). */
const BATCH = 1000;

/** Deletes what RETENTION no longer keeps, until done or `stopped()`; returns how many rows went. */
export async function pruneOldUsage(store: SqliteQuotaStore, nowMs: number, stopped: () => boolean): Promise<number> {
  let total = 0;
  for (const r of RETENTION) {
    for (;;) {
      if (stopped()) return total;
      const n = store.pruneUsage(r.window, nowMs - r.keepMs, { tagged: r.tagged, limit: BATCH });
      total += n;
      if (n < BATCH) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return total;
}
