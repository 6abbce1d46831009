// A class's remembered refusal of the quota service (lease-manager.ts): which requests it covers without
// asking again, and the error each is told (refusal-errors.ts). Needs are compared in the unit of the budget
// that refused: tokens, or nano-USD for a dollar budget (the request's priced estimate against the class's
// dollar balance).
import type { GatewayError } from '../../common/errors.js';
import type { RefusalMsg } from '../../proto/messages.js';
import type { Priority } from '../http/caller-headers.js';
import { exceedsBudget, heldByLeases, inUsd, unnamedRefusal, windowSpent } from './refusal-errors.js';
import type { UsdBalance } from './usd-balance.js';

/** A refusal of the service, remembered so that a flood of requests that cannot fit does not each ask again. */
export interface QuotaRefusal {
  /** Monotonic ms of the answer: trusted for REFUSAL_HELD_MS after it. */
  at: number;
  /** Monotonic ms after which the refused need can be granted: a spent window's end, else the call's send time plus retry_after_ms. */
  until: number;
  /** The most the service could grant (in the refusing budget's unit): larger needs are refused without asking. */
  maxNeed: number;
  /** Which budget refused, and why (null from a service that predates it). */
  info: RefusalMsg | null;
}

/**
 * How long a refusal is taken as the answer without asking again: long enough that refused requests cost
 * the service at most one call a second per class, short enough that a budget raised meanwhile counts at once.
 */
export const REFUSAL_HELD_MS = 1000;
/** A request refused because its window is spent waits for the next one if it starts within this long (and its deadline). */
const WINDOW_WAIT_MAX_MS = 1000;

/** What this reads of a class's lease. */
export interface RefusedClass {
  priority: Priority;
  quotaRefusal: QuotaRefusal | undefined;
  leaseId: string | undefined;
  unlimited: boolean;
  balance: number;
  /** Monotonic ms: the balance is void after this unless the service is out of reach. */
  expiresAt: number;
  usd: UsdBalance;
}

/** A request's estimate in the unit of the budget a refusal names: tokens, or nano-USD. */
export const amountIn = (q: QuotaRefusal, estimate: number, nano: number): number => (q.info !== null && inUsd(q.info) ? nano : estimate);

/** The tokens a request of `estimate` needs granted on top of what the class holds (its debt first). */
export function needFor(l: RefusedClass, estimate: number, now: number): number {
  if (l.balance < 0) return estimate - l.balance;
  const held = l.leaseId !== undefined && !l.unlimited && now < l.expiresAt ? l.balance : 0;
  return Math.max(0, estimate - held);
}

/** What a request needs granted in the unit of the budget that refused: tokens, or nano-USD. */
export function needIn(l: RefusedClass, q: QuotaRefusal, estimate: number, nano: number, now: number): number {
  if (q.info === null || !inUsd(q.info)) return needFor(l, estimate, now);
  return l.usd.needFor(nano, l.leaseId !== undefined && !l.unlimited && now < l.expiresAt);
}

/** When the window a held refusal says is spent for this request ends (monotonic ms), if soon and before `deadline`; else 0. */
export function windowWait(l: RefusedClass, estimate: number, nano: number, now: number, deadline: number): number {
  const q = l.quotaRefusal;
  if (q === undefined || q.info?.reason !== 'REFUSAL_WINDOW_SPENT' || now >= q.until || now >= q.at + REFUSAL_HELD_MS) return 0;
  if (q.until > deadline || q.until - now > WINDOW_WAIT_MAX_MS) return 0;
  return needIn(l, q, estimate, nano, now) > q.maxNeed ? q.until : 0;
}

/** The error for a request the remembered refusal covers, if it does (else the service is asked). `wall`: epoch ms now. */
export function heldRefusal(l: RefusedClass, estimate: number, nano: number, now: number, wall: number, acquireTimeoutMs: number): GatewayError | undefined {
  const q = l.quotaRefusal;
  if (q === undefined || now >= q.at + REFUSAL_HELD_MS || needIn(l, q, estimate, nano, now) <= q.maxNeed) return undefined;
  if (q.info?.reason === 'REFUSAL_EXCEEDS_BUDGET') return amountIn(q, estimate, nano) > q.info.classLimitTokens ? refusalError(l, q, estimate, nano, now, wall) : undefined;
  // A window that ends before the request's deadline: it waits for the next one (see LeaseManager.slow).
  if (q.info?.reason === 'REFUSAL_WINDOW_SPENT' && q.until - now <= Math.min(WINDOW_WAIT_MAX_MS, acquireTimeoutMs)) return undefined;
  return now < q.until ? refusalError(l, q, estimate, nano, now, wall) : undefined;
}

/** What a request the refusal `q` covers is told. `now`: monotonic ms; `wall`: epoch ms. */
export function refusalError(l: RefusedClass, q: QuotaRefusal, estimate: number, nano: number, now: number, wall: number): GatewayError {
  const r = q.info;
  if (r === null) return unnamedRefusal(l.priority, estimate, q.until - now);
  // The request's estimate as the refusing budget counts it (a dollar refusal met before this class priced
  // anything names its tokens).
  const usdEstimate = inUsd(r) && nano > 0 ? nano : undefined;
  if (amountIn(q, estimate, nano) > r.classLimitTokens) return exceedsBudget(r, estimate, usdEstimate);
  // Only with what this pod's running requests reserved is it too large: they end with the window.
  if (r.reason === 'REFUSAL_EXCEEDS_BUDGET') return windowSpent(r, estimate, r.windowEndMs - wall, usdEstimate);
  return r.reason === 'REFUSAL_HELD_BY_LEASES' ? heldByLeases(r, estimate, q.until - now, usdEstimate) : windowSpent(r, estimate, q.until - now, usdEstimate);
}
