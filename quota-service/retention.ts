// How long the quota service keeps consumption and report sequences, and the pruning that holds it to
// that: rows of windows that ended too long ago, and the sequences of sidecar incarnations silent for a
// month, are deleted a batch at a time, yielding to the event loop between batches, so a large backlog
// (tags of many values, a service that was down for days) never stalls the lease RPCs.
import type { QuotaRecords } from './store-api.js';
import type { WindowName } from './windows.js';

const DAY = 86_400_000;

/**
 * Windows that ended longer ago than `keepMs` are deleted; those not listed are kept. Totals are a row
 * per scope and window; per tag there is a row per value, and per model a row per model (up to 100), which
 * can be many: day windows per tag and per model go after 400 days (a year compares with the year before),
 * month windows stay.
 */
export const RETENTION: readonly { window: WindowName; tagged: boolean; models?: boolean; keepMs: number }[] = [
  { window: 'minute', tagged: false, keepMs: 7 * DAY },
  { window: 'minute', tagged: true, keepMs: 7 * DAY },
  { window: 'minute', tagged: false, models: true, keepMs: 7 * DAY },
  { window: 'hour', tagged: false, keepMs: 90 * DAY },
  { window: 'hour', tagged: true, keepMs: 90 * DAY },
  { window: 'hour', tagged: false, models: true, keepMs: 90 * DAY },
  { window: 'day', tagged: true, keepMs: 400 * DAY },
  { window: 'day', tagged: false, models: true, keepMs: 400 * DAY },
];

/**
 * Every pod start is a new incarnation with its own sequence. One that reported nothing for this long is
 * gone (its pod deleted) or holds nothing unacknowledged; should it report again, its new reports count,
 * and only a report whose acknowledgement was lost a month ago could count twice.
 */
export const SEQUENCES_KEEP_MS = 30 * DAY;

/** Rows one statement deletes (a few milliseconds of work). */
const BATCH = 1000;

/** Deletes what RETENTION and SEQUENCES_KEEP_MS no longer keep, until done or `stopped()`; returns how many rows went. */
/** The SQLite store (synchronous) or the PostgreSQL one. */
type Prunable = { [K in 'pruneUsage' | 'pruneAcked']: (...args: Parameters<QuotaRecords[K]>) => number | Promise<number> };

export async function pruneExpired(store: Prunable, nowMs: number, stopped: () => boolean): Promise<number> {
  const passes = [
    ...RETENTION.map((r) => () => store.pruneUsage(r.window, nowMs - r.keepMs, { tagged: r.tagged, models: r.models === true, limit: BATCH })),
    () => store.pruneAcked(nowMs - SEQUENCES_KEEP_MS, BATCH),
  ];
  let total = 0;
  for (const pass of passes) {
    for (;;) {
      if (stopped()) return total;
      const n = await pass();
      total += n;
      if (n < BATCH) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return total;
}
