// The usage page's JSON answers, built from a UsageView: the summary (budgets, leases, refusals, prices)
// and spend over time per group. Every answer is bounded whatever the service holds: at most
// MAX_ROWS rows per table, MAX_POINTS windows and MAX_SERIES series per chart (the rest in one "other").
// A chart reads the store per scope: it lets the event loop (and the lease RPCs) run between slices. The
// view's reads may answer at once (SQLite) or asynchronously (PostgreSQL): every one is awaited.
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { TAG_KEY } from '../../proto/tags.js';
import { windowBefore, type WindowName } from '../windows.js';
import type { BudgetStatus, LabelledPoint, LeaseStatus, PriceTable, RefusalCounts, UsageView } from './usage-view.js';

export const MAX_ROWS = 200;
export const MAX_SERIES = 8;
/** Scopes summed or charted per answer; more are left out and counted in `scopesLeftOut`. */
export const MAX_SCOPES = 200;

/** The ranges a chart can show: how many windows of which size, newest last. */
export const RANGES = {
  '1h': { window: 'minute', points: 60 },
  '24h': { window: 'hour', points: 24 },
  '30d': { window: 'day', points: 30 },
  '12mo': { window: 'month', points: 12 },
} as const satisfies Record<string, { window: WindowName; points: number }>;
export type RangeName = keyof typeof RANGES;
export const MAX_POINTS = Math.max(...Object.values(RANGES).map((r) => r.points));

export const GROUPS = ['team', 'namespace', 'service', 'model', 'tag'] as const;
export type GroupName = (typeof GROUPS)[number];

export interface Summary {
  generatedAtMs: number;
  budgets: { rows: BudgetStatus[]; more: number };
  leases: { rows: LeaseStatus[]; more: number };
  /** null: the service keeps none. */
  refusals: RefusalCounts | null;
  prices: PriceTable | null;
}

export interface Series {
  label: string;
  /** The bucket of every value beyond the top MAX_SERIES: how many values it sums. */
  other?: number;
  tokens: number[];
  /** Present when the service priced this consumption. */
  costUsd?: number[];
}

export interface SeriesAnswer {
  group: GroupName;
  range: RangeName;
  window: WindowName;
  /** Tag key, for group `tag`. */
  tag?: string;
  /** false: the service does not keep this grouping (per-model usage); no series. */
  available: boolean;
  /** Window starts, epoch ms, oldest first. */
  startsMs: number[];
  series: Series[];
  scopesLeftOut: number;
}

/** A request the API refuses with 400, and why. */
export class BadQuery extends Error {}

const truncate = <T>(rows: T[]): { rows: T[]; more: number } => ({ rows: rows.slice(0, MAX_ROWS), more: Math.max(0, rows.length - MAX_ROWS) });

/** The summary, once every part the view answers (at once or asynchronously) is in. */
export async function summary(view: UsageView, now: number): Promise<Summary> {
  const [budgets, leases, refusals, prices] = await Promise.all([view.budgets(), view.leases(), view.refusals?.(), view.prices?.()]);
  return {
    generatedAtMs: now,
    budgets: truncate(budgets),
    leases: truncate([...leases].sort((a, b) => b.tokensHeld - a.tokensHeld || a.namespace.localeCompare(b.namespace) || a.pod.localeCompare(b.pod))),
    refusals: refusals ?? null,
    prices: prices === undefined ? null : { ...prices, rows: prices.rows.slice(0, MAX_ROWS) },
  };
}

export interface SeriesQuery {
  group: string | null;
  range: string | null;
  tag: string | null;
}

export function parseSeriesQuery(q: SeriesQuery): { group: GroupName; range: RangeName; tag?: string } {
  const group = q.group ?? '';
  if (!(GROUPS as readonly string[]).includes(group)) throw new BadQuery(`group: expected one of ${GROUPS.join(', ')}`);
  const range = q.range ?? '24h';
  if (!Object.hasOwn(RANGES, range)) throw new BadQuery(`range: expected one of ${Object.keys(RANGES).join(', ')}`);
  if (group !== 'tag') return { group: group as GroupName, range: range as RangeName };
  const tag = q.tag ?? '';
  if (!TAG_KEY.test(tag)) throw new BadQuery('tag: a tag key is letters, digits and _.-/ (up to 64)');
  return { group: 'tag', range: range as RangeName, tag };
}

const SCOPE_OF: Record<'team' | 'namespace' | 'service', RegExp> = {
  team: /^team\/[^/]+$/,
  namespace: /^namespace\/[^/]+$/,
  service: /^namespace\/[^/]+\/service\/[^/]+$/,
};

/** Longest the store is read for a chart without letting other work run, in ms. */
export const SLICE_MS = 2;

export async function seriesAnswer(view: UsageView, q: { group: GroupName; range: RangeName; tag?: string }, now: number): Promise<SeriesAnswer> {
  const { window, points } = RANGES[q.range];
  const startsMs = Array.from({ length: points }, (_, i) => windowBefore(window, now, points - 1 - i).startMs);
  const sinceMs = startsMs[0]!;
  const base = { group: q.group, range: q.range, window, ...(q.tag === undefined ? {} : { tag: q.tag }), startsMs };
  if (q.group === 'model') {
    if (view.modelHistory === undefined) return { ...base, available: false, series: [], scopesLeftOut: 0 };
    return { ...base, available: true, series: topSeries(await view.modelHistory(window, sinceMs), startsMs), scopesLeftOut: 0 };
  }
  // Every request is charged to exactly one namespace/<ns> scope: tags are summed over those, never over
  // teams or services (which would count a request more than once).
  const pattern = SCOPE_OF[q.group === 'tag' ? 'namespace' : q.group];
  const scopes = (await view.scopes()).filter((s) => pattern.test(s));
  const used = scopes.slice(0, MAX_SCOPES);
  const labelled: LabelledPoint[] = [];
  let sliceStart = performance.now();
  for (const scope of used) {
    if (q.group === 'tag') labelled.push(...(await view.tagHistory(scope, window, sinceMs, q.tag!)));
    else for (const p of await view.history(scope, window, sinceMs)) labelled.push({ ...p, label: scope.slice(scope.indexOf('/') + 1) });
    if (performance.now() - sliceStart > SLICE_MS) {
      await nextTurn();
      sliceStart = performance.now();
    }
  }
  return { ...base, available: true, series: topSeries(labelled, startsMs), scopesLeftOut: scopes.length - used.length };
}

/** Series per label over `startsMs` (points outside are dropped), the MAX_SERIES largest by tokens and the rest as one. */
export function topSeries(points: readonly LabelledPoint[], startsMs: readonly number[]): Series[] {
  const index = new Map(startsMs.map((s, i) => [s, i]));
  const byLabel = new Map<string, { tokens: number[]; cost: number[]; priced: boolean; total: number }>();
  for (const p of points) {
    const i = index.get(p.startMs);
    if (i === undefined) continue;
    let s = byLabel.get(p.label);
    if (s === undefined) byLabel.set(p.label, (s = { tokens: new Array<number>(startsMs.length).fill(0), cost: new Array<number>(startsMs.length).fill(0), priced: false, total: 0 }));
    s.tokens[i]! += p.tokens;
    s.total += p.tokens;
    if (p.costUsd !== undefined) {
      s.cost[i]! += p.costUsd;
      s.priced = true;
    }
  }
  const ranked = [...byLabel].sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0]));
  const out: Series[] = ranked.slice(0, MAX_SERIES).map(([label, s]) => ({ label, tokens: s.tokens, ...(s.priced ? { costUsd: s.cost } : {}) }));
  const rest = ranked.slice(MAX_SERIES);
  if (rest.length > 0) {
    const tokens = new Array<number>(startsMs.length).fill(0);
    const cost = new Array<number>(startsMs.length).fill(0);
    for (const [, s] of rest) s.tokens.forEach((v, i) => ((tokens[i]! += v), (cost[i]! += s.cost[i]!)));
    const priced = rest.some(([, s]) => s.priced);
    out.push({ label: `other (${rest.length})`, other: rest.length, tokens, ...(priced ? { costUsd: cost } : {}) });
  }
  return out;
}
