// A usage query's checks and the windows it reads, shared by the allocator (reads from the SQLite store)
// and the replicated allocator (reads from PostgreSQL): the last `n` windows of a scope, newest first, or
// every window from the one holding `sinceMs` (at most 1000).
import { TAG_KEY } from '../proto/tags.js';
import { invalidArgument } from './errors.js';
import { scopeProblem } from './scopes.js';
import { windowAt, windowBefore, type WindowName } from './windows.js';

export interface UsageOptions {
  by?: 'model' | 'scope';
  sinceMs?: number;
}

/** The windows a usage query reads, newest first; throws INVALID_ARGUMENT for a bad scope, tag key or `since`. */
export function usageSpans(scope: string, window: WindowName, n: number, byTag: string | undefined, more: UsageOptions, now: number): { startMs: number; endMs: number }[] {
  const problem = scopeProblem(scope);
  if (problem !== undefined) throw invalidArgument(`scope "${scope}": ${problem}`);
  if (byTag !== undefined && !TAG_KEY.test(byTag)) throw invalidArgument(`by_tag "${byTag}": a tag key is letters, digits and _.-/ (up to 64)`);
  const since = more.sinceMs ?? 0;
  if (since > now) throw invalidArgument('since_ms is in the future');
  const count = since > 0 ? windowsSince(window, now, since) : Math.max(1, Math.min(n, 1000));
  return Array.from({ length: count }, (_, i) => windowBefore(window, now, i));
}

/** How many `window`s from the one holding `sinceMs` to the one holding `now` (1 to 1000). */
function windowsSince(window: WindowName, now: number, sinceMs: number): number {
  let n = 1;
  for (let span = windowAt(window, now); n < 1000 && span.startMs > sinceMs; n++) span = windowAt(window, span.startMs - 1);
  return n;
}
