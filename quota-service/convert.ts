// Proto enums and messages ↔ the allocator's types.
import { kindsFromMsg } from '../proto/token-kinds.js';
import type { BudgetMsg, BudgetUnitName, PriorityName, RefusalMsg, RefusalReasonName, UsageReportMsg, WindowEnum } from '../proto/messages.js';
import type { BudgetUnit } from './store.js';
import type { BudgetView, PriorityClass, UsageReport } from './allocator.js';
import { invalidArgument } from './errors.js';
import type { Refusal } from './refusal.js';
import type { WindowName } from './windows.js';

/** A number as it crosses the wire: anything not a finite number counts as 0 (NaN must not reach a store). */
export function wireNumber(v: unknown): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
}

export function priorityOf(p: PriorityName | undefined): PriorityClass {
  if (p === 'PRIORITY_BATCH') return 'batch';
  if (p === 'PRIORITY_BACKGROUND') return 'background';
  return 'interactive';
}

export function priorityName(p: PriorityClass): PriorityName {
  return p === 'batch' ? 'PRIORITY_BATCH' : p === 'background' ? 'PRIORITY_BACKGROUND' : 'PRIORITY_INTERACTIVE';
}

const WINDOWS: Record<Exclude<WindowEnum, 'WINDOW_UNSPECIFIED'>, WindowName> = {
  WINDOW_MINUTE: 'minute',
  WINDOW_HOUR: 'hour',
  WINDOW_DAY: 'day',
  WINDOW_MONTH: 'month',
};

export function windowOf(w: WindowEnum): WindowName {
  if (w === 'WINDOW_UNSPECIFIED' || !(w in WINDOWS)) throw invalidArgument('window must be minute, hour, day or month');
  return WINDOWS[w];
}

export const optionalWindowOf = (w: WindowEnum): WindowName | undefined => (w === 'WINDOW_UNSPECIFIED' ? undefined : windowOf(w));

export function windowEnum(w: WindowName): WindowEnum {
  return `WINDOW_${w.toUpperCase()}` as WindowEnum;
}

export const unitName = (u: BudgetUnit): BudgetUnitName => (u === 'usd' ? 'BUDGET_UNIT_USD' : 'BUDGET_UNIT_TOKENS');

/** A unit that selects (DeleteBudget): unspecified is every unit. */
export const optionalUnitOf = (u: BudgetUnitName | undefined): BudgetUnit | undefined =>
  u === 'BUDGET_UNIT_USD' ? 'usd' : u === 'BUDGET_UNIT_TOKENS' ? 'tokens' : undefined;

export function reportsOf(reports: UsageReportMsg[] | undefined): UsageReport[] {
  // Older sidecars name only the app's model: it is priced by that name (else at the default).
  return (reports ?? []).map((r) => ({
    sequence: Number(r.sequence),
    tokens: Number(r.tokens),
    kinds: kindsFromMsg(r),
    startedAtMs: Number(r.startedAtMs),
    tags: r.tags ?? {},
    providerType: r.providerType ?? '',
    model: r.upstreamModel || r.model || '',
  }));
}

export function budgetMsg(b: BudgetView): BudgetMsg {
  const usd = b.unit === 'usd';
  return {
    scope: b.scope,
    window: windowEnum(b.window),
    tokens: usd ? 0 : b.tokens,
    floors: { batch: b.batchFloor, background: b.backgroundFloor },
    usedTokens: b.usedTokens,
    outstandingTokens: usd ? 0 : b.outstanding,
    windowStartMs: b.windowStartMs,
    windowEndMs: b.windowEndMs,
    unit: unitName(b.unit),
    nanoUsd: usd ? b.tokens : 0,
    usedNanoUsd: b.usedNano,
    outstandingNanoUsd: usd ? b.outstanding : 0,
  };
}

const REASONS: Record<Refusal['reason'], RefusalReasonName> = {
  window: 'REFUSAL_WINDOW_SPENT',
  held: 'REFUSAL_HELD_BY_LEASES',
  exceeds: 'REFUSAL_EXCEEDS_BUDGET',
};

export function refusalMsg(r: Refusal): RefusalMsg {
  return {
    scope: r.scope,
    window: windowEnum(r.window),
    priority: priorityName(r.priority),
    reason: REASONS[r.reason],
    windowEndMs: r.windowEndMs,
    budgetTokens: r.budgetTokens,
    classLimitTokens: r.classLimit,
    leftTokens: r.left,
    availableTokens: r.available,
    needTokens: r.need,
    unit: unitName(r.unit),
  };
}
