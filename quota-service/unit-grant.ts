// One unit's part of a lease grant (DESIGN §6): the same rules for tokens and for dollars (nano-USD), each
// unit against its own budgets. A lease is topped up to its target within its demand-weighted fair share
// of what remains above its class's floor; what other leases hold (and what silent ones may have spent on
// their own) is not free; a need more than is available is refused (refusal.ts). The allocator runs it once
// per unit and combines the two (allocator.ts): the invariant consumed + outstanding ≤ limit holds per
// budget window in that budget's unit.
import { atRisk, failOpenAllowance, fairShare, MIN_DEMAND, targetOf, weightOf } from './lease-sizing.js';
import { refusalOf, type Holder, type Refusal } from './refusal.js';
import type { BudgetRow } from './store.js';
import { windowAt } from './windows.js';

export type PriorityClass = 'interactive' | 'background' | 'batch';
const PRIORITIES: PriorityClass[] = ['interactive', 'background', 'batch'];

/** A lease's balance in one unit: its token fields, or its USD ones (nano-USD). */
export interface UnitState {
  outstanding: number;
  /** Per second, as its sidecar estimated it. */
  demand: number;
  /** The largest recent request estimate. */
  requestTokens: number;
  /** Of `outstanding`, the estimates of requests still running. */
  inflight: number;
  failOpen: number;
  failOpenNext: number;
}

/** What the grant reads of a lease beside its balance. */
export interface UnitLease {
  priority: PriorityClass;
  renewAtMs: number;
  expiresAtMs: number;
  /** Budget key → start of the window its balances belong to. */
  windows: Record<string, number>;
  claim?: { keys: string[]; untilMs: number } | undefined;
}

export interface UnitGrantInput<L extends UnitLease> {
  lease: L;
  /** The lease's balance in this unit. */
  state: UnitState;
  /** The unit's budgets matching the lease, with their keys and what their current windows consumed (in the unit). */
  budgets: readonly { b: BudgetRow; key: string; used: number }[];
  /** The other leases charged to a scope, and their balance in this unit (undefined: none, e.g. a caller without USD leases). */
  others: (scope: string) => Iterable<L>;
  stateOf: (l: L) => UnitState | undefined;
  need: number;
  now: number;
  horizonMs: number;
}

export interface UnitGrant {
  /** What may be granted (not yet checked against the need: below it, nothing is). */
  grant: number;
  /** Least left in the current windows (Infinity without budgets). */
  remaining: number;
  /** End of the earliest window (Infinity without budgets). */
  windowEnd: number;
  /** Another lease waits for what leases hold of one of these budgets. */
  contended: boolean;
  refusals: Refusal[];
  /** The balance the lease is sized for. */
  target: number;
  /** Per budget, what the fail-open allowance is computed from. */
  seen: { b: BudgetRow; endMs: number; left: number; floor: number; weights: number }[];
}


/** One unit's grant. Without budgets in the unit, the lease is topped up to its target with no limit. */
export function grantUnit<L extends UnitLease>(i: UnitGrantInput<L>): UnitGrant {
  const { lease, state, need, now } = i;
  const weight = weightOf(state);
  const target = targetOf(state, i.horizonMs);
  // What the sidecar can still spend: running requests' estimates are held, but not spendable.
  const spendable = Math.max(0, state.outstanding - state.inflight);
  if (i.budgets.length === 0) {
    return { grant: Math.max(need, target - spendable), remaining: Infinity, windowEnd: Infinity, contended: false, refusals: [], target, seen: [] };
  }
  let grant = Infinity;
  let remaining = Infinity;
  let windowEnd = Infinity;
  let contended = false;
  const refusals: Refusal[] = [];
  const seen: UnitGrant['seen'] = [];
  const rank = PRIORITIES.indexOf(lease.priority);
  for (const { b, key: k, used } of i.budgets) {
    const span = windowAt(b.window, now);
    windowEnd = Math.min(windowEnd, span.endMs);
    const left = Math.max(0, b.tokens - used);
    remaining = Math.min(remaining, left);
    const floor = b.tokens * (lease.priority === 'batch' ? b.batchFloor : lease.priority === 'background' ? b.backgroundFloor : 0);
    let others = 0;
    let weights = weight;
    let claimed = false;
    // Leases of this class or a lower one give back what they hold when this one waits for it; what
    // higher classes hold is theirs (and their claims are not this lease's to serve).
    const holders: Holder[] = [];
    let higher = 0;
    for (const other of i.others(b.scope)) {
      if (other === lease) continue;
      const s = i.stateOf(other);
      if (s === undefined) continue;
      const held = (other.windows[k] === span.startMs ? s.outstanding : 0) + atRisk(other, s, k, span.startMs, now);
      others += held;
      const otherRank = PRIORITIES.indexOf(other.priority);
      if (otherRank < rank) higher += held;
      else if (held > 0) holders.push({ outstanding: held, renewAtMs: other.renewAtMs, expiresAtMs: other.expiresAtMs });
      weights += weightOf(s);
      // A claim of this lease's class or a higher one: this lease holds what it waits for.
      if (otherRank <= rank && other.claim !== undefined && other.claim.untilMs > now && other.claim.keys.includes(k)) claimed = true;
    }
    const free = left - others - state.outstanding;
    const available = Math.max(0, free - floor);
    if (claimed) {
      // Another lease waits for what leases hold of this budget: what comes back is for it, not for top-ups.
      contended = true;
      grant = Math.min(grant, available, need);
    } else {
      // Top the lease up to its target from what its sidecar can spend, within its share of what remains.
      const share = Math.max(0, fairShare(left, floor, weight, weights) - state.outstanding);
      const want = Math.max(need, target - spendable);
      grant = Math.min(grant, available, Math.max(share, need), want);
    }
    if (need > available) {
      refusals.push(refusalOf(b, { priority: lease.priority, floor, left: left - higher, own: state.outstanding, available, need, windowEndMs: span.endMs, holders, now }));
    }
    seen.push({ b, endMs: span.endMs, left, floor, weights });
  }
  return { grant, remaining, windowEnd, contended, refusals, target, seen };
}

/** The largest amount the wire carries for "no limit" in a unit without budgets. */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * What the pod may spend in this unit if it loses the service: what the lease lacks of its fair share
 * (floors kept), and its share of a whole window later (budgets whose window outlasts the earliest keep the
 * former). `windowEnd`: the earliest end of all the lease's budgets, of both units.
 */
export function unitFailOpen(g: UnitGrant, state: UnitState, windowEnd: number): { failOpen: number; failOpenNext: number } {
  if (g.seen.length === 0) return { failOpen: NO_LIMIT, failOpenNext: NO_LIMIT };
  const weight = weightOf(state);
  let failOpen = Infinity;
  let failOpenNext = Infinity;
  for (const s of g.seen) {
    const allowance = failOpenAllowance(s.left, s.floor, weight, s.weights, state.outstanding);
    failOpen = Math.min(failOpen, allowance);
    failOpenNext = Math.min(failOpenNext, s.endMs === windowEnd ? failOpenAllowance(s.b.tokens, s.floor, weight, s.weights, 0) : allowance);
  }
  return { failOpen, failOpenNext };
}

/** The balance of a caller that keeps none in this unit, for checking whether the unit's budgets are spent for it. */
export const emptyState = (): UnitState => ({ outstanding: 0, demand: MIN_DEMAND, requestTokens: 0, inflight: 0, failOpen: 0, failOpenNext: 0 });
