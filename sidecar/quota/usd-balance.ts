// A class lease's dollar balance (nano-USD) beside its tokens, while dollar budgets match this pod (DESIGN
// §6). It follows the token balance's rules (lease-manager.ts): a request reserves its priced estimate
// from it with no RPC while it covers it, and settles to its priced usage; the service sizes it by the
// class's demand in nano-USD per second and tops it up to its target; a new window voids it (and starts a
// provisional balance until the renewal that asks for it is answered); while the service is out of reach the
// class spends at most its fail-open share of the dollar budget. The service charges the budgets by its own
// prices from the reported tokens: this balance only keeps this pod within what it was granted.
import type { LeaseResponse } from '../../proto/messages.js';
import { DemandRate } from './estimate.js';

/** A renewal starts once the balance is below this fraction of the target (or of its last size, when less). */
const RENEW_AT = 0.5;

export class UsdBalance {
  /** The service said dollar budgets match: requests reserve their priced estimate from `balance`. */
  on = false;
  balance = 0;
  /** Estimates of this epoch's running requests. */
  inflight = 0;
  /** Of the balance, what was made spendable when a new window started, before its grant arrived. */
  provisional = 0;
  target = 0;
  sizeAfterAnswer = 0;
  /** What the class may spend beyond its lease while the service is out of reach, in its window and later ones. */
  failOpen: { left: number; next: number } | undefined;
  /** The estimates of requests waiting for the service now. */
  waiting = 0;
  readonly demand = new DemandRate();

  /** Whether a request of `nano` can be reserved now (always, while no dollar budget applies). */
  covers(nano: number): boolean {
    return !this.on || this.balance >= nano;
  }

  /** Reserves `nano`; returns what was reserved (0 while no dollar budget applies). */
  take(nano: number, now: number): number {
    if (!this.on) return 0;
    this.balance -= nano;
    this.inflight += nano;
    this.demand.note(nano, now);
    return nano;
  }

  /** A request that reserved `reserved` ended having cost `cost`. */
  settle(reserved: number, cost: number): void {
    this.balance += reserved - cost;
    this.inflight -= reserved;
  }

  /** Below this balance a renewal starts ahead of need. */
  low(): boolean {
    return this.on && this.target > 0 && this.balance < RENEW_AT * Math.min(this.target, this.sizeAfterAnswer);
  }

  /** Holding far more than the class needs (it went quiet): the excess goes back at once. */
  excess(factor: number): boolean {
    return this.on && this.target > 0 && this.balance > factor * this.target;
  }

  /** The nano-USD a request of `nano` needs granted on top of what the class holds (its debt first); `live`: the balance is spendable. */
  needFor(nano: number, live: boolean): number {
    if (this.balance < 0) return nano - this.balance;
    return Math.max(0, nano - (live && this.on ? this.balance : 0));
  }

  /** What a renewal gives back: what is above `keep` (nothing while a request waits or a provisional balance stands). */
  unused(keep: number, hold: boolean): number {
    if (!this.on || hold || this.provisional > 0) return 0;
    const n = Math.floor(Math.max(0, this.balance - keep));
    this.balance -= n;
    return n;
  }

  /** Of a new window's provisional balance, what requests that already ended spent. */
  spentProvisionally(): number {
    return this.provisional > 0 ? Math.max(0, this.provisional - this.balance - this.inflight) : 0;
  }

  /** The balance of an earlier window or epoch is void. */
  void(): void {
    this.balance = 0;
    this.inflight = 0;
    this.provisional = 0;
  }

  /** A new lease covers the requests still running: it starts owing them. */
  acquired(): void {
    this.balance = -this.inflight;
    this.provisional = 0;
  }

  /**
   * A lease answer. `newWindow`: the answer is for another window than the balance's (void it first);
   * `spentProvisionally`: what ended requests spent of a provisional balance (reported with the call).
   */
  answered(res: LeaseResponse, newWindow: boolean, spentProvisionally: number, windowKnown: boolean): void {
    if (newWindow) {
      this.balance = 0;
      this.inflight = 0;
    } else if (this.provisional > 0) {
      this.balance -= this.provisional - spentProvisionally;
    }
    this.provisional = 0;
    if (res.usd !== true || res.unlimited) {
      this.on = false;
      this.balance = 0;
      this.inflight = 0;
      this.target = 0;
      this.failOpen = undefined;
      return;
    }
    this.on = true;
    this.balance += Number(res.grantedNanoUsd ?? 0);
    this.target = Number(res.targetNanoUsd ?? 0);
    this.sizeAfterAnswer = Math.max(0, this.balance);
    this.failOpen = windowKnown ? { left: Number(res.failOpenNanoUsd ?? 0), next: Number(res.failOpenNextNanoUsd ?? 0) } : undefined;
  }

  /** The window ended: the balance is void, the fail-open share is the next window's; `provisional`: start one at the target. */
  rolled(provisional: boolean): void {
    this.void();
    if (this.failOpen !== undefined) this.failOpen.left = this.failOpen.next;
    if (!provisional || !this.on || this.target === 0) return;
    this.provisional = Math.min(this.target, this.failOpen?.next ?? this.target);
    this.balance = this.provisional;
  }

  /** The renewal a provisional balance waited for failed: what was spent of it comes out of the fail-open share. */
  lostProvisional(): void {
    if (this.provisional === 0) return;
    const spent = this.provisional - Math.max(0, this.balance);
    if (this.failOpen !== undefined) this.failOpen.left -= spent;
    this.void();
  }

  /** The USD fields of a lease call (nano-USD). */
  ask(now: number, need: number, nano: number): { usdLeases: true; needNanoUsd: number; demandNanoUsdPerSecond: number; requestNanoUsd: number; inflightNanoUsd: number } {
    return {
      usdLeases: true,
      needNanoUsd: Math.max(0, Math.ceil(need)),
      demandNanoUsdPerSecond: this.demand.rate(now),
      requestNanoUsd: Math.max(this.demand.requestTokens(now), nano),
      inflightNanoUsd: Math.max(0, this.inflight),
    };
  }
}
