// Why a lease's need was refused, and when it can be granted (DESIGN §4: every 429 carries a Retry-After
// after which the same request can be admitted, or says it never can by waiting). Per budget a need is
// - more than the class may use of a whole window (the budget less its floor): never, whatever the wait;
// - more than is left of the window for the class: at the window's end;
// - covered by what is left, but other leases hold part of it: once enough of them gave it back. A lease
//   told `give_back` returns what it holds unspent at its next renewal (see allocator.ts), so that is its
//   next renewal, or its expiry if it stopped renewing. Only leases of the same class or a lower one are
//   told to: what a higher class holds is not left for this one.
// Amounts are in the refusing budget's unit: tokens, or nano-USD for a USD budget.
import type { PriorityClass } from './allocator.js';
import type { BudgetUnit } from './store.js';
import type { WindowName } from './windows.js';

export type RefusalReason = 'exceeds' | 'window' | 'held';

export interface Refusal {
  scope: string;
  window: WindowName;
  priority: PriorityClass;
  reason: RefusalReason;
  /** The budget's unit: every amount below is in it (nano-USD for USD). */
  unit: BudgetUnit;
  windowEndMs: number;
  /** The budget's tokens per window. */
  budgetTokens: number;
  /** What the class may use of a whole window: the budget less its floor. */
  classLimit: number;
  /** What the class may still use of this window, what leases of its class or lower hold included (higher classes' are theirs). */
  left: number;
  /** What the lease could be granted now. */
  available: number;
  need: number;
  /** When the need can be granted (epoch ms); 0 for `exceeds`. */
  retryAtMs: number;
}

/** What a lease holding tokens tells about when they come back. */
export interface Holder {
  outstanding: number;
  /** When its sidecar was told to renew. */
  renewAtMs: number;
  expiresAtMs: number;
}

/**
 * How long after it was due a renewal can come: a sidecar checks on a 2 s timer whether a renewal is due,
 * and gives back at once what it was told to, one more round trip.
 */
export const RENEWAL_SLACK_MS = 3000;

/** When a holder's tokens are back: at its next renewal, or when it lapses if it is overdue. */
export function backAt(h: Holder, now: number): number {
  const renewal = h.renewAtMs + RENEWAL_SLACK_MS;
  return renewal > now ? Math.min(renewal, h.expiresAtMs) : h.expiresAtMs;
}

/** When enough of what `holders` hold is back to cover `deficit` tokens (Infinity if it never is). */
export function heldUntil(holders: readonly Holder[], deficit: number, now: number): number {
  let back = 0;
  for (const h of [...holders].sort((a, b) => backAt(a, now) - backAt(b, now))) {
    back += h.outstanding;
    if (back >= deficit) return backAt(h, now);
  }
  return Infinity;
}

/** Classifies a need `available` does not cover, for one budget. */
export function refusalOf(
  b: { scope: string; window: WindowName; tokens: number; unit: BudgetUnit },
  at: { priority: PriorityClass; floor: number; left: number; own: number; available: number; need: number; windowEndMs: number; holders: readonly Holder[]; now: number },
): Refusal {
  const classLimit = Math.floor(b.tokens - at.floor);
  const left = Math.max(0, Math.floor(at.left - at.floor));
  // What this lease could get on top of what it holds, were every other lease to give everything back.
  const pool = left - at.own;
  const reason: RefusalReason = at.need > classLimit ? 'exceeds' : at.need > pool ? 'window' : 'held';
  let retryAtMs = 0;
  if (reason === 'window') retryAtMs = at.windowEndMs;
  if (reason === 'held') retryAtMs = Math.min(at.windowEndMs, heldUntil(at.holders, at.need - at.available, at.now));
  return {
    scope: b.scope,
    window: b.window,
    priority: at.priority,
    reason,
    unit: b.unit,
    windowEndMs: at.windowEndMs,
    budgetTokens: b.tokens,
    classLimit,
    left,
    available: Math.floor(at.available),
    need: at.need,
    retryAtMs,
  };
}

/** Of the budgets that refused a need, the one that decides: one it can never fit (the tightest), else the one granting latest. */
export function decisive(refusals: readonly Refusal[]): Refusal {
  const never = refusals.filter((r) => r.reason === 'exceeds').sort((a, b) => a.classLimit - b.classLimit);
  if (never.length > 0) return never[0]!;
  return refusals.reduce((a, b) => (b.retryAtMs > a.retryAtMs ? b : a));
}
