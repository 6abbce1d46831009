// What the quota service accepts in a batch of usage reports, checked before any of it is applied: what
// no honest sidecar sends is refused whole, and a start time off the service's clock is brought into range.
import type { UsageReport } from './allocator.js';
import { invalidArgument, QuotaError } from './errors.js';
import { status } from '@grpc/grpc-js';

/**
 * A report's sequence may be at most this far above the highest one processed for its incarnation (a
 * sidecar numbers its records 1, 2, 3, … and sends them in order, so real gaps are a handful). Without the
 * bound, one report with sequence 9e15 would make every later report of the incarnation count as a replay.
 * A jump is OUT_OF_RANGE: the sidecar then starts a new incarnation and numbers its records from 1 again
 * (what it does when the service forgot it: a lost database, a month of silence).
 */
export const MAX_SEQUENCE_GAP = 10_000;
/** One report adds up the requests of one class, model and second of one pod: more than this is refused. */
export const MAX_REPORT_TOKENS = 50_000_000;
/** A report starting further ahead of the service's clock than this (skew) is charged to now… */
export const MAX_REPORT_SKEW_MS = 5 * 60_000;
/** …and one older than this (no window that old is kept per tag) to this long ago. */
export const MAX_REPORT_AGE_MS = 400 * 86_400_000;

/**
 * The reports in sequence order, their start times brought into range; throws INVALID_ARGUMENT (a malformed
 * report) or OUT_OF_RANGE (a sequence jump past `acked`, the highest one processed) for the whole batch.
 */
export function checkedReports(reports: readonly UsageReport[], acked: number, now: number): UsageReport[] {
  const sorted = [...reports].sort((a, b) => a.sequence - b.sequence);
  for (const r of sorted) {
    if (!Number.isSafeInteger(r.sequence) || r.sequence < 1) throw invalidArgument(`report sequence ${r.sequence} is not a positive integer`);
    if (!(r.tokens >= 0 && r.tokens <= MAX_REPORT_TOKENS)) throw invalidArgument(`report ${r.sequence}: tokens must be from 0 to ${MAX_REPORT_TOKENS}, got ${r.tokens}`);
    if (!Number.isFinite(r.startedAtMs)) throw invalidArgument(`report ${r.sequence}: started_at_ms is not a time`);
    if (r.kinds !== undefined) {
      for (const [kind, n] of Object.entries(r.kinds)) {
        if (!(n >= 0 && n <= MAX_REPORT_TOKENS)) throw invalidArgument(`report ${r.sequence}: ${kind} tokens must be from 0 to ${MAX_REPORT_TOKENS}, got ${n}`);
      }
      if (r.kinds.cachedInput + r.kinds.cacheWrite > r.kinds.input) throw invalidArgument(`report ${r.sequence}: cached input and cache write tokens are part of input tokens, and exceed them`);
    }
    if (r.sequence > acked + MAX_SEQUENCE_GAP) {
      throw new QuotaError(status.OUT_OF_RANGE, `report sequence ${r.sequence} jumps more than ${MAX_SEQUENCE_GAP} past ${acked}, the last one processed for this incarnation`);
    }
  }
  return sorted.map((r) => {
    const startedAtMs = r.startedAtMs > now + MAX_REPORT_SKEW_MS ? now : Math.max(now - MAX_REPORT_AGE_MS, r.startedAtMs);
    return startedAtMs === r.startedAtMs ? r : { ...r, startedAtMs };
  });
}
