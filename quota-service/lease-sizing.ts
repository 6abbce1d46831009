// How large a lease is, and what its pod may spend if it loses the service (DESIGN §6). A lease is topped up
// to its target: its recent demand over a horizon of several renewals (default 10 s; a sidecar renews when
// half of it is left), and at least a few of its largest recent requests, so that requests almost never
// wait for an RPC. It never holds more than its demand-weighted share of half of what remains of a window,
// and once what remains would last less than 20 s at the total demand, of a fraction shrinking with that
// runway: leases shrink smoothly as a window runs low, so tokens idle in one pod are not what another is
// refused (a lease cannot be taken back before its pod calls again).
//
// Degraded mode: each answer tells the pod how much it may spend beyond its lease while the service is out
// of reach: what its lease lacks of its fair share (above its class's floor), and its fair share of a whole
// budget in each later window the outage lasts into. What leases hold plus these allowances is then at most
// half of what remains, so an outage does not overshoot by the number of pods. A lease that has missed its
// renewal (its pod may be spending its allowance) has that allowance counted as spent until its pod's usage
// arrives (or the lease lapses): nothing is granted against it meanwhile.
import { RENEWAL_SLACK_MS } from './refusal.js';

/** Leases together hold at most this fraction of what remains (by demand-weighted share)… */
export const SHARE_OF_REMAINING = 0.5;
/** …and less once what remains would last less than this long (ms) at the total demand: in proportion to that. */
export const SHRINK_BELOW_MS = 20_000;
/** A lease's target covers at least this many of its largest recent requests. */
export const REQUESTS_PER_LEASE = 4;
/** Default horizon: a lease's target is its demand over this long (ms). */
export const DEFAULT_HORIZON_MS = 10_000;
/** Demand below this (tokens/s) counts as this: an idle lease still has a weight. */
export const MIN_DEMAND = 1;

/** What sizing knows about a lease. */
export interface Sizable {
  /** Tokens per second, as the sidecar estimated them (exponentially weighted). */
  demand: number;
  /** The largest recent request estimate, in tokens (0: unknown). */
  requestTokens: number;
}

/** A lease's weight in fair shares: its demand (tokens/s), at least MIN_DEMAND. */
export const weightOf = (l: Sizable): number => Math.max(MIN_DEMAND, l.demand);

/** The unspent balance the lease is topped up to, in tokens, before the fair-share cap. */
export function targetOf(l: Sizable, horizonMs: number): number {
  return Math.ceil(Math.max((l.demand * horizonMs) / 1000, REQUESTS_PER_LEASE * l.requestTokens));
}

/**
 * The most a lease may hold of a budget whose class may still use `left - floor`: its share (by weight, of
 * `totalWeight` tokens/s in all) of half of it, or of less when that would last less than SHRINK_BELOW_MS.
 */
export function fairShare(left: number, floor: number, weight: number, totalWeight: number): number {
  const pool = Math.max(0, left - floor);
  const runwayMs = (pool * 1000) / totalWeight;
  return (pool * SHARE_OF_REMAINING * Math.min(1, runwayMs / SHRINK_BELOW_MS) * weight) / totalWeight;
}

/** A pod's fail-open allowance against one budget: what its lease (holding `outstanding`) lacks of its fair share. */
export function failOpenAllowance(left: number, floor: number, weight: number, totalWeight: number, outstanding: number): number {
  return Math.floor(Math.max(0, fairShare(left, floor, weight, totalWeight) - outstanding));
}

/** What degraded mode knows about a lease. */
export interface Silenceable {
  renewAtMs: number;
  /** Budget key → start of the window the lease's tokens belong to. */
  windows: Record<string, number>;
}

/** A lease's fail-open allowance in one unit: for the window of its balance, and for each later one. */
export interface Allowance {
  failOpen: number;
  failOpenNext: number;
}

/**
 * What a lease's pod may have spent on its own in the window starting at `startMs` of budget `key` (in
 * that budget's unit, from `allowance`): its allowance once it has missed its renewal (by more than a
 * timer's slack), else nothing.
 */
export function atRisk(l: Silenceable, allowance: Allowance, key: string, startMs: number, now: number): number {
  if (now <= l.renewAtMs + RENEWAL_SLACK_MS) return 0;
  const since = l.windows[key];
  if (since === undefined) return 0;
  if (since === startMs) return allowance.failOpen;
  return since < startMs ? allowance.failOpenNext : 0;
}
