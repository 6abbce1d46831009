// Spends global budgets locally (DESIGN §6). One lease per priority class; a request reserves its
// estimate from the lease's balance with no RPC while the balance covers it, and settles to the real
// usage when it ends (the record goes to the durable outbox, then to the service with a renewal).
// The service sizes each lease for the class's demand (an exponentially weighted rate, estimate.ts) over a
// horizon of several renewals; the lease is renewed in the background when less than half of that target
// is left, when due (a 2 s tick), or to deliver usage, so only a request larger than its lease can hold
// waits, once and boundedly, for a renewal. A new budget window starts with the lease's target spendable
// while the renewal that asks for it is under way (no request waits at a window boundary).
//
// When the service is out of reach, the lease's balance of its window is spent, then the configured
// policy applies: failOpen spends at most the class's share of the budget the service last gave it (its
// fail-open allowance, a new one per window) under the local rate cap, and the usage goes with the first
// call once the service is back, before anything is granted. When the service refuses this pod's
// credentials, requests are refused (503) whatever the policy: that is a denial, not an outage.
//
// When the service grants nothing, its answer says which budget refused and when the need can be granted
// (refusal-errors.ts turns that into the app's error). The refusal is remembered for the needs it covers
// (larger than what the service could grant) and for a second at most: smaller requests still ask, and a
// budget an operator raised meanwhile is seen within that second; a spent window ends at the window's end
// on the service's clock (not at a Retry-After that crossed the network), and a request refused in the
// last moments of a window waits for the next one instead, if it starts before its deadline. An answer
// saying another lease waits for tokens this class holds makes it give back what it holds unspent at once.
//
// Dollar budgets: while the service says they match, each class also keeps a dollar balance (nano-USD,
// usd-balance.ts) under the same rules; a request reserves its priced estimate from it beside its tokens,
// waits, is refused (in dollars) or spends its fail-open share the same way, and settles to its priced usage.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import type { IdentityMsg, LeaseResponse, PriorityName } from '../../proto/messages.js';
import type { QuotaConfig } from '../config/schema.js';
import type { Priority } from '../http/caller-headers.js';
import { TokenBucket } from '../limits/token-bucket.js';
import type { LeaseMetrics } from '../metrics/sidecar-metrics.js';
import { DemandRate } from './estimate.js';
import { QuotaRpcError, RpcStatus, type QuotaRpc } from './quota-rpc.js';
import { failOpenSpent, failOpenSpentUsd, retrySeconds } from './refusal-errors.js';
import { amountIn, heldRefusal, needFor, needIn, REFUSAL_HELD_MS, refusalError, windowWait, type QuotaRefusal } from './held-refusal.js';
import type { TokenKinds } from '../../proto/token-kinds.js';
import type { InflightEntry } from './inflight-log.js';
import type { PriceSink } from '../pricing/price-book.js';
import type { UsageOutbox } from './usage-outbox.js';
import { UsdBalance } from './usd-balance.js';

export interface Reservation {
  priority: Priority;
  estimate: number;
  /** Balance generation the estimate came out of; a voided balance is not refunded into. */
  epoch: number;
  startedAtMs: number;
  unlimited: boolean;
  /** Spent from the fail-open allowance of its epoch's window (the service out of reach). */
  failOpen?: boolean;
  /** What it reserved of the class's dollar balance or fail-open share (nano-USD; 0 while no dollar budget applies). */
  nano: number;
}

/** Why a lease call was made (the `reason` label of llmgw_quota_lease_calls_total). */
type CallReason = 'ahead' | 'due' | 'request' | 'window' | 'give_back' | 'report';

interface ClassLease {
  priority: Priority;
  leaseId: string | undefined;
  /** The last renewal's number: a renewal the client sends again (another replica) keeps its number. */
  renewals: number;
  balance: number;
  epoch: number;
  /** Estimates of this epoch's requests still running: a replacement lease must cover them again. */
  inflightTokens: number;
  /** Start of the budget window the balance belongs to, as the service said (or as it rolled over since). */
  windowStartMs: number;
  /** End of that window (epoch ms, the service's clock; 0: the service did not say), and when that is, monotonic. */
  windowEndMs: number;
  windowEndAt: number;
  windowLenMs: number;
  /** Of the balance, what was made spendable when a new window started, before its grant arrived. */
  provisional: number;
  /** The window the class left when it started that one (-1: none since the last answer). */
  rolledFrom: number;
  unlimited: boolean;
  /** Monotonic ms: the balance is void after this unless the service is out of reach. */
  expiresAt: number;
  refreshAt: number;
  /** The service's suggested renewal period. */
  periodMs: number;
  remaining: number;
  /** Tokens this class settled since it started, and that count when the call `remaining` answers was sent. */
  spent: number;
  spentAtSend: number;
  /** The service's last refusal of a need, while it holds (see QuotaRefusal). */
  quotaRefusal: QuotaRefusal | undefined;
  /** The service asked this class to give back what it holds unspent: it keeps nothing at its renewals. */
  giveBack: boolean;
  /** Monotonic ms: the service was out of reach; no request waits on it until then. */
  unreachableUntil: number;
  /** Monotonic ms: the service refused this pod's credentials (why: `refusal`); requests are refused until then. */
  refusedUntil: number;
  refusal: string;
  inflight: Promise<void> | undefined;
  demand: DemandRate;
  /** The unspent balance the service sized the lease for (0: a service that predates that). */
  target: number;
  /** The balance right after the last answer: renewal starts below half of it or of the target. */
  sizeAfterAnswer: number;
  /** A service that predates targets: its last grant, and the demand sent with the last call. */
  lastGrant: number;
  lastDemand: number;
  /** Monotonic ms of the last answer. */
  lastAnswerAt: number;
  /** What the class may spend beyond its lease while the service is out of reach, in its window and later ones. */
  failOpen: { left: number; next: number } | undefined;
  /** Spent while the service was out of reach: delivered with the first call that can be made. */
  reportSoon: boolean;
  /** Requests that waited for the service since the last call told it, and their seconds (telemetry). */
  waited: { requests: number; seconds: number };
  /** The estimates of the requests waiting for the service now: a renewal asks for all of them at first. */
  waitingTokens: number;
  /** The dollar balance beside the tokens (on while dollar budgets match). */
  usd: UsdBalance;
}

export interface LeaseManagerOptions {
  rpc: QuotaRpc;
  outbox: UsageOutbox;
  /** The Identity message of the calls that carry one (read at each call: the token may appear later). */
  identity: () => IdentityMsg;
  /** Every lease answer, e.g. for its provider keys version. */
  onAnswer?: (res: LeaseResponse) => void;
  /** The service refused the pod's credentials: the token is read again before the next call. */
  onRefused?: () => void;
  config: QuotaConfig;
  clock: Clock;
  logger: Logger;
  /** Deadline of background calls (default 5 s). */
  backgroundTimeoutMs?: number;
  /** How often due renewals and undelivered usage are handled (default 2 s). */
  tickEveryMs?: number;
  metrics?: LeaseMetrics;
}

const PRIORITY_NAMES: Record<Priority, PriorityName> = {
  interactive: 'PRIORITY_INTERACTIVE',
  background: 'PRIORITY_BACKGROUND',
  batch: 'PRIORITY_BATCH',
};
const UNREACHABLE_BACKOFF_MS = 2000;
/** A renewal starts once the balance is below this fraction of the lease's target (or of its last size, when less). */
const RENEW_AT = 0.5;
/** An answer leaving more than this many times the target (the class went quiet) gives the excess back at once. */
const GIVE_BACK_ABOVE = 2;
/** Usage waiting in the outbox goes with a renewal at least this often (ms), even for a class that needs none. */
const REPORT_EVERY_MS = 5000;
/**
 * A new window's renewal is sent within this long (ms) of its start, at random: every lease of every pod
 * starts a window at once, and its provisional balance covers the wait, so the service gets them spread.
 */
const WINDOW_SPREAD_MS = 2000;
const REPORT_BATCH = 1000;

export class LeaseManager {
  private readonly leases = new Map<Priority, ClassLease>();
  private readonly failOpen: TokenBucket;
  private readonly ticker: NodeJS.Timeout;
  private closed = false;
  private readonly bgTimeoutMs: number;
  /** The sidecar's price book: the table the service sends with an answer goes there; its version goes with each call. */
  private prices: PriceSink | undefined;
  /** Since when the quota service has been out of reach (monotonic ms; undefined while it answers)… */
  private outageSince: number | undefined;
  /** …and up to when that time is counted in llmgw_quota_degraded_seconds_total. */
  private outageCountedTo = 0;
  /** Until the first lease call ended (answered or not): what waits for it; undefined from then on. */
  private firstCall: { done: Promise<void>; end: () => void } | undefined;

  constructor(private readonly opts: LeaseManagerOptions) {
    let end = (): void => undefined;
    const done = new Promise<void>((resolve) => (end = resolve));
    this.firstCall = { done, end };
    this.failOpen = new TokenBucket(opts.config.failOpenTokensPerMinute, opts.clock);
    this.bgTimeoutMs = opts.backgroundTimeoutMs ?? 5000;
    // The one timer: renews leases that are due (also after an outage) and delivers what the outbox holds
    // (after a restart, or for classes gone idle). Requests renew early on their own (see take).
    this.ticker = setInterval(() => void this.tick(), opts.tickEveryMs ?? 2000);
    this.ticker.unref();
    opts.metrics?.onCollect(() => {
      if (this.closed) return;
      for (const l of this.leases.values()) if (!l.unlimited && l.leaseId !== undefined) opts.metrics!.leaseTokens.set(Math.floor(l.balance), { priority: l.priority });
      this.countOutage(opts.clock.monotonic());
      opts.metrics!.degraded.set(this.outageSince === undefined ? 0 : 1);
    });
  }

  /** Adds the outage's time up to `now` to llmgw_quota_degraded_seconds_total. */
  private countOutage(now: number): void {
    if (this.outageSince === undefined) return;
    this.opts.metrics?.degradedSeconds.inc(undefined, Math.max(0, now - this.outageCountedTo) / 1000);
    this.outageCountedTo = now;
  }

  /** Hands the price tables the service sends with its answers to `sink`. */
  usePrices(sink: PriceSink): void {
    this.prices = sink;
  }

  /** The price book requests' dollar estimates and costs are priced by (undefined: none, no dollar reservations). */
  get priceBook(): PriceSink | undefined {
    return this.prices;
  }

  /**
   * Until the first lease call has ended, a promise of its end (its answer brings the service's price table,
   * which requests' dollar estimates need); undefined from then on.
   */
  untilFirstCall(): Promise<void> | undefined {
    return this.firstCall?.done;
  }

  /** Starts the default class's lease in the background so the first request need not wait. */
  warmUp(priority: Priority): void {
    void this.refresh(this.lease(priority), 0, this.bgTimeoutMs, { reason: 'due' });
    void this.flush();
  }

  /**
   * What the timer does: renews leases that are due (not while the service is known to be out of reach)
   * and delivers what the outbox holds. Tests that move a fake clock call it after each move.
   */
  async tick(): Promise<void> {
    const now = this.opts.clock.monotonic();
    // A class refused for its credentials is tried again too (the kubelet may have rotated the token).
    const due = [...this.leases.values()].filter(
      (l) => (l.leaseId !== undefined || l.refusal !== '') && l.inflight === undefined && now >= l.refreshAt && now >= l.unreachableUntil && now >= l.refusedUntil,
    );
    await Promise.all(due.map((l) => this.refresh(l, 0, this.bgTimeoutMs, { reason: l.provisional > 0 ? 'window' : 'due' })));
    await this.flush();
  }

  /**
   * Reserves `estimate` tokens for a request, and `nano` (its priced estimate, nano-USD) while dollar budgets
   * apply: synchronously when the lease covers it.
   */
  reserve(priority: Priority, estimate: number, nano = 0): Reservation | Promise<Reservation> {
    const l = this.lease(priority);
    const now = this.opts.clock.monotonic();
    const fast = this.take(l, estimate, nano, now, false);
    if (fast !== undefined) return fast;
    if (now < l.refusedUntil) throw this.refused(l, now);
    const refusal = heldRefusal(l, estimate, nano, now, this.opts.clock.now(), this.opts.config.acquireTimeoutMs);
    if (refusal !== undefined) throw refusal;
    if (now < l.unreachableUntil) return this.degraded(l, estimate, nano, now);
    // The request waits for the service: counted here, and told to the service with the next call.
    this.opts.metrics?.waits.inc({ priority });
    return this.slow(l, estimate, nano).finally(() => {
      const seconds = (this.opts.clock.monotonic() - now) / 1000;
      this.opts.metrics?.waitSeconds.observe(seconds, { priority });
      l.waited.requests += 1;
      l.waited.seconds += seconds;
    });
  }

  /**
   * Settles `r` at what the request used (and, when it reserved dollars, `costNano`: what that cost) and
   * records the usage durably; `entry`, its in-flight log entry, ends with that record.
   */
  settle(r: Reservation, used: number, model: string, tags?: Readonly<Record<string, string>>, entry?: InflightEntry, kinds?: TokenKinds, costNano = 0): void {
    const l = this.lease(r.priority);
    if (r.epoch === l.epoch) {
      if (!r.unlimited) {
        l.balance += r.estimate - used;
        l.inflightTokens -= r.estimate;
        if (r.nano > 0 && l.usd.on) l.usd.settle(r.nano, costNano);
      } else if (r.failOpen === true && l.failOpen !== undefined) {
        l.failOpen.left += r.estimate - used;
        if (r.nano > 0 && l.usd.failOpen !== undefined) l.usd.failOpen.left += r.nano - costNano;
      }
    }
    l.spent += used;
    this.opts.outbox.append(r.priority, used, r.startedAtMs, model, tags, entry, kinds);
  }

  /** Tokens left in the budget as last known, minus what this pod spent since (undefined: unlimited). */
  remaining(priority: Priority): number | undefined {
    const l = this.leases.get(priority);
    // A negative figure: no token budget applies (only dollar ones).
    if (l === undefined || l.unlimited || l.leaseId === undefined || l.remaining < 0) return undefined;
    // The service's figure covers what was reported with that call: not what settled after it was sent.
    return Math.max(0, l.remaining - (l.spent - l.spentAtSend));
  }

  /** Gives leases back with their last usage (SIGTERM); bounded by the background deadline. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.ticker);
    await Promise.allSettled([...this.leases.values()].map((l) => l.inflight));
    const work = [...this.leases.values()].map(async (l) => {
      if (l.leaseId === undefined) return this.report(l.priority);
      const reports = this.opts.outbox.pending(l.priority, REPORT_BATCH);
      try {
        const res = await this.opts.rpc.release({ leaseId: l.leaseId, reports, waitedRequests: l.waited.requests, waitedSeconds: l.waited.seconds }, this.bgTimeoutMs);
        this.opts.outbox.ack(l.priority, res.ackedSequence);
      } catch (err) {
        // The lease lapsed on the service's side, or the numbering starts anew: the usage goes as a plain report.
        if ((err instanceof QuotaRpcError && err.code === RpcStatus.NOT_FOUND) || this.restartIfUnknown(l.priority, err)) return this.report(l.priority);
        // Unsent usage stays in the outbox for the next start.
        this.opts.logger.warn({ err: String(err), priority: l.priority }, 'could not release the quota lease');
      }
    });
    await Promise.allSettled(work);
    // Whatever settled meanwhile is on disk for the next start.
    this.opts.outbox.flush();
  }

  /** `degraded`: the service is out of reach, so the lease's balance is spent past its expiry (not past its window). */
  private take(l: ClassLease, estimate: number, nano: number, now: number, degraded: boolean): Reservation | undefined {
    if (l.leaseId === undefined) return undefined;
    if (now >= l.windowEndAt) this.roll(l, now);
    const live = now < l.expiresAt || (degraded && now < l.windowEndAt);
    if (!live) return undefined;
    if (!l.unlimited && (l.balance < estimate || !l.usd.covers(nano))) return undefined;
    let reservedNano = 0;
    if (!l.unlimited) {
      l.balance -= estimate;
      l.inflightTokens += estimate;
      reservedNano = l.usd.take(nano, now);
    }
    l.demand.note(estimate, now);
    // Renew ahead of need when the balance runs low, and on time even if the timer is late (a stalled event
    // loop); the service sizes the lease from what is left unreserved, so this reservation shrinks nothing.
    // Not while requests wait: they are about to ask, for all of them.
    if (l.inflight === undefined && l.waitingTokens === 0 && now >= l.unreachableUntil && now >= l.refusedUntil) {
      if (now >= l.refreshAt) void this.refresh(l, 0, this.bgTimeoutMs, { reason: l.provisional > 0 ? 'window' : 'due' });
      else if (!l.unlimited && (l.balance < this.lowWater(l) || l.usd.low())) void this.refresh(l, 0, this.bgTimeoutMs, { reason: 'ahead' });
    }
    return { priority: l.priority, estimate, epoch: l.epoch, startedAtMs: this.opts.clock.now(), unlimited: l.unlimited, nano: reservedNano };
  }

  /**
   * The lease's window ended: its balance is void, and the class's fail-open allowance is the next window's.
   * A new window starts with nothing spent, so its target is spendable at once until the renewal that asks
   * for it (spread over WINDOW_SPREAD_MS) is answered: the service charges what it reports to the new window,
   * and the renewal's grant replaces this provisional balance. Not while the service is out of reach: then
   * the allowance applies.
   */
  private roll(l: ClassLease, now: number): void {
    const passed = l.windowLenMs > 0 ? Math.floor((now - l.windowEndAt) / l.windowLenMs) + 1 : 1;
    if (l.rolledFrom < 0) l.rolledFrom = l.windowStartMs;
    l.windowStartMs = l.windowEndMs + (passed - 1) * l.windowLenMs;
    l.windowEndMs = l.windowStartMs + l.windowLenMs;
    l.windowEndAt = l.windowLenMs > 0 ? l.windowEndAt + passed * l.windowLenMs : Infinity;
    l.epoch++;
    l.balance = 0;
    l.inflightTokens = 0;
    l.provisional = 0;
    l.quotaRefusal = undefined;
    if (l.failOpen !== undefined) l.failOpen.left = l.failOpen.next;
    const provisional = !(l.unlimited || now < l.unreachableUntil || now < l.refusedUntil || l.target === 0);
    l.usd.rolled(provisional);
    if (!provisional) return;
    l.provisional = Math.min(l.target, l.failOpen?.next ?? l.target);
    l.balance = l.provisional;
    l.expiresAt = now + WINDOW_SPREAD_MS + this.bgTimeoutMs;
    // The renewal that replaces it goes with a reservation (or the timer) after a random part of the spread;
    // one under way was sent for the old window, and its answer asks for another (see apply).
    l.refreshAt = now + Math.random() * WINDOW_SPREAD_MS;
  }

  private async slow(l: ClassLease, estimate: number, nano: number): Promise<Reservation> {
    // Counted among the requests waiting until it is admitted: dropped at once then (not a turn later), so
    // those still waiting ask for themselves only.
    const waiting = { tokens: estimate, nano };
    l.waitingTokens += estimate;
    l.usd.waiting += nano;
    const admitted = (r: Reservation): Reservation => {
      l.waitingTokens -= waiting.tokens;
      l.usd.waiting -= waiting.nano;
      waiting.tokens = 0;
      waiting.nano = 0;
      return r;
    };
    try {
      return await this.waitFor(l, estimate, nano, admitted);
    } finally {
      l.waitingTokens -= waiting.tokens;
      l.usd.waiting -= waiting.nano;
    }
  }

  private async waitFor(l: ClassLease, estimate: number, nano: number, admitted: (r: Reservation) => Reservation): Promise<Reservation> {
    // The one bounded wait on the request path, at most acquireTimeoutMs in all: a renewal asking for
    // this request's need (after the one already under way, which may have asked for less).
    let deadline = this.opts.clock.monotonic() + this.opts.config.acquireTimeoutMs;
    let answered = false;
    // Just refused: what the class holds may be what makes the difference.
    let exact = l.quotaRefusal !== undefined;
    for (let attempt = 0; attempt < 16; attempt++) {
      // Refused because the window is spent, and it ends before the deadline: wait for the next one.
      const until = windowWait(l, estimate, nano, this.opts.clock.monotonic(), deadline);
      if (until > 0) {
        const q = l.quotaRefusal!;
        await sleep(until - this.opts.clock.monotonic());
        const now = this.opts.clock.monotonic();
        // A clock that does not move with the timers (tests): the refusal stands.
        if (now < until) throw refusalError(l, q, estimate, nano, now, this.opts.clock.now());
        const r = this.take(l, estimate, nano, now, false);
        if (r !== undefined) return admitted(r);
        exact = false;
        // The wait was for the window, not for the service: the call for the new one has its own time.
        deadline = Math.max(deadline, now + this.opts.config.acquireTimeoutMs);
      }
      const asked = this.opts.clock.monotonic();
      const left = deadline - asked;
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      // The request waits at most what is left of its deadline; the call itself has the background deadline,
      // so an impatient request does not make the service look out of reach to the whole class.
      answered = await Promise.race([
        this.refresh(l, estimate, this.bgTimeoutMs, { exact, reason: 'request', nano }).then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), left))),
      ]);
      clearTimeout(timer);
      if (!answered) break;
      const now = this.opts.clock.monotonic();
      const r = this.take(l, estimate, nano, now, false);
      if (r !== undefined) return admitted(r);
      if (now < l.refusedUntil) throw this.refused(l, now);
      if (now < l.unreachableUntil) return this.degraded(l, estimate, nano, now);
      // Refused what the class lacks for this request (not only a larger ask): that is the answer. Refused
      // the whole estimate though the class holds part of it: ask for just what it lacks, whose answer says
      // best when it can be had. Else what was granted went to other requests meanwhile: ask again.
      const q = l.quotaRefusal;
      if (q !== undefined && q.at >= asked) {
        // In the refusing budget's unit: tokens, or nano-USD.
        const need = needIn(l, q, estimate, nano, now);
        if ((exact || need >= amountIn(q, estimate, nano)) && need > q.maxNeed) {
          if (windowWait(l, estimate, nano, now, deadline) > 0) continue;
          throw refusalError(l, q, estimate, nano, now, this.opts.clock.now());
        }
        exact = true;
      }
    }
    if (answered) {
      throw new GatewayError('llmgw_quota_exhausted', 429, `other requests of this pod took the tokens granted for this one's estimated ${estimate} within quota.acquireTimeoutMs; retry in 1 s`, {
        retryAfterSeconds: 1,
      });
    }
    // The service did not answer in time: this request is served as if it were out of reach.
    return this.degraded(l, estimate, nano, this.opts.clock.monotonic());
  }

  private degraded(l: ClassLease, estimate: number, nano: number, now: number): Reservation {
    // Out of reach: first what the lease still holds of its window, then the configured policy.
    const r = this.take(l, estimate, nano, now, true);
    if (r !== undefined) return r;
    const retryAfterSeconds = retrySeconds(l.unreachableUntil - now);
    if (this.opts.config.failMode === 'failClosed') {
      throw new GatewayError('llmgw_quota_unavailable', 503, 'the quota service is out of reach and this pod has no tokens left to spend', { retryAfterSeconds });
    }
    // The class's share of the budget as the service last gave it, for the window it is in (a service that
    // predates that: the cap alone).
    if (now >= l.windowEndAt) this.roll(l, now);
    const share = l.leaseId !== undefined && !l.unlimited ? l.failOpen : undefined;
    if (share !== undefined && estimate > share.left) {
      throw failOpenSpent(l.priority, estimate, Math.max(0, Math.floor(share.left)), l.windowEndMs, l.unreachableUntil - now);
    }
    // Likewise its share of the dollar budgets, while they apply.
    const usdShare = share !== undefined && l.usd.on ? l.usd.failOpen : undefined;
    if (usdShare !== undefined && nano > usdShare.left) {
      throw failOpenSpentUsd(l.priority, nano, Math.max(0, Math.floor(usdShare.left)), l.windowEndMs, l.unreachableUntil - now);
    }
    const cap = this.opts.config.failOpenTokensPerMinute;
    if (estimate > cap) {
      // No wait makes it fit the cap: it can be admitted once the service is back.
      throw new GatewayError(
        'llmgw_quota_unavailable',
        503,
        `the quota service is out of reach, and this request's estimated ${estimate} tokens are more than this pod may spend a minute without it (quota.failOpenTokensPerMinute: ${cap}); retry once the service is back, or lower max_tokens`,
        { retryAfterSeconds },
      );
    }
    const got = this.failOpen.take(estimate);
    if (!got.ok) {
      const s = retrySeconds(got.retryAfterMs);
      throw new GatewayError('llmgw_rate_limited', 429, `the quota service is out of reach and this pod reached its fail-open rate (quota.failOpenTokensPerMinute: ${cap}); retry in ${s} s`, {
        retryAfterSeconds: s,
      });
    }
    if (share !== undefined) share.left -= estimate;
    if (usdShare !== undefined) usdShare.left -= nano;
    l.reportSoon = true;
    l.demand.note(estimate, now);
    this.opts.metrics?.failOpenTokens.inc({ priority: l.priority }, estimate);
    return { priority: l.priority, estimate, epoch: l.epoch, startedAtMs: this.opts.clock.now(), unlimited: true, failOpen: share !== undefined, nano: usdShare === undefined ? 0 : nano };
  }

  private refused(l: ClassLease, now: number): GatewayError {
    return new GatewayError('llmgw_quota_unavailable', 503, `the quota service refused this pod's credentials: ${l.refusal}`, {
      retryAfterSeconds: Math.ceil(Math.max(1, l.refusedUntil - now) / 1000),
    });
  }

  /** Below this balance a renewal starts ahead of need. */
  private lowWater(l: ClassLease): number {
    if (l.target > 0) return RENEW_AT * Math.min(l.target, l.sizeAfterAnswer);
    // A service that predates targets.
    return Math.max(l.lastGrant * 0.3, l.lastDemand);
  }

  private lease(priority: Priority): ClassLease {
    let l = this.leases.get(priority);
    if (l === undefined) {
      const now = this.opts.clock.monotonic();
      l = {
        priority,
        leaseId: undefined,
        renewals: 0,
        balance: 0,
        epoch: 0,
        inflightTokens: 0,
        windowStartMs: -1,
        windowEndMs: 0,
        windowEndAt: Infinity,
        windowLenMs: 0,
        provisional: 0,
        rolledFrom: -1,
        unlimited: false,
        expiresAt: 0,
        refreshAt: 0,
        periodMs: 0,
        remaining: 0,
        spent: 0,
        spentAtSend: 0,
        quotaRefusal: undefined,
        giveBack: false,
        unreachableUntil: 0,
        refusedUntil: 0,
        refusal: '',
        inflight: undefined,
        demand: new DemandRate(),
        target: 0,
        sizeAfterAnswer: 0,
        lastGrant: 0,
        lastDemand: 0,
        lastAnswerAt: now,
        failOpen: undefined,
        reportSoon: false,
        waited: { requests: 0, seconds: 0 },
        waitingTokens: 0,
        usd: new UsdBalance(),
      };
      this.leases.set(priority, l);
    }
    return l;
  }

  /**
   * One renewal (or acquisition) at a time per class; callers arriving meanwhile share it. `estimate`: the
   * tokens of the request waiting for it (0: none waits); it asks for all of them, or with `exact` for what
   * the class lacks. `givingBack`: the class's immediate give-back.
   */
  private refresh(l: ClassLease, estimate: number, timeoutMs: number, opts: { exact?: boolean; givingBack?: boolean; reason: CallReason; nano?: number }): Promise<void> {
    if (l.inflight !== undefined) return l.inflight;
    l.inflight = this.doRefresh(l, estimate, opts.nano ?? 0, timeoutMs, opts.exact === true, opts.reason).finally(() => {
      l.inflight = undefined;
      if (this.firstCall !== undefined) {
        this.firstCall.end();
        this.firstCall = undefined;
      }
      // Asked to give back (or holding far more than the class needs): at once, not at the next renewal,
      // once the request waiting has taken its share.
      const excess = (l.target > 0 && l.balance > GIVE_BACK_ABOVE * l.target) || l.usd.excess(GIVE_BACK_ABOVE);
      if ((l.giveBack || excess) && opts.givingBack !== true && !l.unlimited && (l.balance >= 1 || (l.usd.on && l.usd.balance >= 1)) && !this.closed) {
        setImmediate(() => {
          if (l.inflight === undefined) void this.refresh(l, 0, this.bgTimeoutMs, { givingBack: true, reason: 'give_back' });
        });
      }
    });
    return l.inflight;
  }

  private async doRefresh(l: ClassLease, estimate: number, nano: number, timeoutMs: number, exact: boolean, reason: CallReason): Promise<void> {
    if (this.closed) return;
    const sentAt = this.opts.clock.monotonic();
    const spentAtSend = l.spent;
    // The whole estimate (a debt first), and those of the other requests waiting meanwhile (one call for a
    // crowd, not one each), leaves what the class holds for the requests after them; once refused, just
    // what this one lacks.
    const all = Math.max(estimate, l.waitingTokens);
    const need = estimate === 0 ? 0 : exact ? needFor(l, estimate, sentAt) : l.balance < 0 ? all - l.balance : all;
    // The same in dollars (asked for even while no dollar budget applies: one may have been set meanwhile).
    const allNano = Math.max(nano, l.usd.waiting);
    const needNano = estimate === 0 ? 0 : exact ? l.usd.needFor(nano, l.leaseId !== undefined && !l.unlimited && sentAt < l.expiresAt) : l.usd.balance < 0 ? allNano - l.usd.balance : allNano;
    const demand = l.demand.rate(sentAt);
    const requestTokens = Math.max(l.demand.requestTokens(sentAt), estimate);
    l.lastDemand = demand;
    this.opts.metrics?.renewals.inc({ priority: l.priority, reason });
    // Of a new window's provisional balance, what requests that already ended spent: their reports go with
    // this call, which (the first of the window) the service takes as the lease's start in it, so they are
    // charged to the window but not to the grant (see apply).
    const spentProvisionally = l.provisional > 0 ? Math.max(0, l.provisional - l.balance - l.inflightTokens) : 0;
    const spentProvisionallyNano = l.usd.spentProvisionally();
    const waited = { waitedRequests: l.waited.requests, waitedSeconds: l.waited.seconds };
    try {
      let res: LeaseResponse;
      if (l.leaseId !== undefined) {
        const reports = this.opts.outbox.pending(l.priority, REPORT_BATCH);
        try {
          // What is beyond the lease's target goes back, so an idle pod holds nothing for long; all of it
          // when another lease waits for it; none while a request waits. (A service that predates targets:
          // beyond one renewal period of demand.)
          const keep = l.giveBack ? 0 : l.target > 0 ? l.target : (demand * l.periodMs) / 1000;
          const unused = l.unlimited || estimate > 0 || l.provisional > 0 ? 0 : Math.floor(Math.max(0, l.balance - keep));
          l.balance -= unused;
          const unusedNano = l.usd.unused(l.giveBack ? 0 : l.usd.target, l.unlimited || estimate > 0 || l.provisional > 0);
          res = await this.opts.rpc.renew(
            {
              leaseId: l.leaseId,
              renewal: ++l.renewals,
              needTokens: need,
              demandTokensPerSecond: demand,
              reports,
              unusedTokens: unused,
              requestTokens,
              inflightTokens: Math.max(0, l.inflightTokens),
              ...waited,
              pricesVersion: this.prices?.version ?? '',
              ...l.usd.ask(sentAt, needNano, nano),
              unusedNanoUsd: unusedNano,
            },
            timeoutMs,
          );
        } catch (err) {
          // The lease lapsed on the service's side, or belongs to an identity this pod no longer has (the
          // service started verifying tokens): start a new one.
          if (!(err instanceof QuotaRpcError) || (err.code !== RpcStatus.NOT_FOUND && err.code !== RpcStatus.PERMISSION_DENIED)) throw err;
          l.leaseId = undefined;
          res = await this.acquire(l, estimate, nano, demand, requestTokens, waited, timeoutMs);
        }
      } else {
        res = await this.acquire(l, estimate, nano, demand, requestTokens, waited, timeoutMs);
      }
      l.waited.requests -= waited.waitedRequests;
      l.waited.seconds -= waited.waitedSeconds;
      this.apply(l, res, estimate, sentAt, spentAtSend, spentProvisionally, spentProvisionallyNano);
    } catch (err) {
      this.lostProvisional(l);
      if (this.restartIfUnknown(l.priority, err)) {
        // The next request or tick acquires a lease for the new incarnation.
        l.leaseId = undefined;
        return;
      }
      if (err instanceof QuotaRpcError && err.refused) {
        // Not an outage: no fail-open spending. Tried again by the timer, with the token read anew.
        l.refusedUntil = this.opts.clock.monotonic() + UNREACHABLE_BACKOFF_MS;
        l.refusal = err.message;
        l.leaseId = undefined;
        this.opts.onRefused?.();
        this.opts.logger.error({ err: err.message, priority: l.priority }, 'the quota service refused this pod\'s credentials');
        return;
      }
      const unreachable = !(err instanceof QuotaRpcError) || err.unreachable;
      l.unreachableUntil = this.opts.clock.monotonic() + UNREACHABLE_BACKOFF_MS;
      if (this.outageSince === undefined) this.outageSince = this.outageCountedTo = this.opts.clock.monotonic();
      l.reportSoon = true;
      this.opts.logger.warn({ err: String(err), priority: l.priority, unreachable }, 'quota lease renewal failed');
    }
  }

  /**
   * The renewal a new window's provisional balance waited for failed: what was spent of it was spent
   * without the service, so it comes out of the class's fail-open allowance, and the rest is void.
   */
  private lostProvisional(l: ClassLease): void {
    l.usd.lostProvisional();
    if (l.provisional === 0) return;
    const spent = l.provisional - Math.max(0, l.balance);
    if (l.failOpen !== undefined) l.failOpen.left -= spent;
    l.provisional = 0;
    l.balance = 0;
    l.inflightTokens = 0;
    l.epoch++;
  }

  /**
   * The service cannot continue this class's numbering (OUT_OF_RANGE: it forgot the incarnation, its
   * database lost or a month of silence) or holds the incarnation for another identity (this pod's
   * namespace or service account changed): the class starts a new incarnation, and what waits in the
   * outbox goes under it. Returns whether it did.
   */
  private restartIfUnknown(priority: Priority, err: unknown): boolean {
    if (!(err instanceof QuotaRpcError)) return false;
    const taken = err.code === RpcStatus.PERMISSION_DENIED && /incarnation \S+ belongs to another identity/.test(err.message);
    if (err.code !== RpcStatus.OUT_OF_RANGE && !taken) return false;
    const incarnation = this.opts.outbox.restart(priority);
    this.opts.logger.warn({ err: err.message, priority, incarnation }, 'the quota service cannot take this class\'s usage numbering; starting a new incarnation');
    return true;
  }

  private async acquire(
    l: ClassLease,
    estimate: number,
    nano: number,
    demand: number,
    requestTokens: number,
    waited: { waitedRequests: number; waitedSeconds: number },
    timeoutMs: number,
  ): Promise<LeaseResponse> {
    // The old lease's tokens went back to the service, those of requests still running included: the
    // new lease must cover them again (its tokens are the only ones this pod holds from now on). Usage
    // not delivered yet goes first, so that what is granted counts what this pod spent meanwhile.
    const res = await this.opts.rpc.acquire(
      {
        identity: this.opts.identity(),
        priority: PRIORITY_NAMES[l.priority],
        incarnation: this.opts.outbox.incarnation(l.priority),
        needTokens: estimate + l.inflightTokens,
        demandTokensPerSecond: demand,
        requestTokens,
        reports: this.opts.outbox.pending(l.priority, REPORT_BATCH),
        ...waited,
        pricesVersion: this.prices?.version ?? '',
        ...l.usd.ask(this.opts.clock.monotonic(), nano + l.usd.inflight, nano),
      },
      timeoutMs,
    );
    if (!res.unlimited) {
      l.balance = -l.inflightTokens;
      l.provisional = 0;
      l.usd.acquired();
    }
    return res;
  }

  private apply(l: ClassLease, res: LeaseResponse, estimate: number, sentAt: number, spentAtSend: number, spentProvisionally = 0, spentProvisionallyNano = 0): void {
    const now = this.opts.clock.monotonic();
    const wall = this.opts.clock.now();
    if (res.prices) this.prices?.receive(res.prices);
    if (this.outageSince !== undefined) {
      this.countOutage(now);
      this.outageSince = undefined;
    }
    this.opts.outbox.ack(l.priority, res.ackedSequence);
    l.unreachableUntil = 0;
    l.refusedUntil = 0;
    l.refusal = '';
    l.reportSoon = false;
    l.lastAnswerAt = now;
    if (!res.unlimited && l.rolledFrom >= 0 && res.windowStartMs === l.rolledFrom && res.leaseId === l.leaseId) {
      // Answered for the window this class has since left (the call crossed the boundary): its grant is
      // void, and the new window's is asked for at once.
      l.refreshAt = now;
      this.opts.onAnswer?.(res);
      return;
    }
    // What the lease held of an earlier window is void (the service starts the new one at zero too), and
    // so are that window's running requests: they are charged to their own window. A window this class
    // already started provisionally (see roll) keeps its requests: the grant replaces the provisional
    // balance, less what requests that ended spent of it (reported with the call, outside the grant).
    const newWindow = res.windowStartMs !== l.windowStartMs;
    l.usd.answered(res, newWindow, spentProvisionallyNano, (res.windowEndMs ?? 0) > 0);
    if (newWindow) {
      l.balance = 0;
      l.inflightTokens = 0;
      l.epoch++;
      l.windowStartMs = res.windowStartMs;
    } else if (l.provisional > 0) {
      l.balance -= l.provisional - spentProvisionally;
    }
    l.provisional = 0;
    l.rolledFrom = -1;
    l.leaseId = res.leaseId;
    l.unlimited = res.unlimited;
    l.balance += res.grantedTokens;
    if (res.grantedTokens > 0) l.lastGrant = res.grantedTokens;
    l.expiresAt = sentAt + res.ttlMs;
    l.refreshAt = sentAt + res.refreshAfterMs;
    l.periodMs = res.refreshAfterMs;
    l.remaining = res.remainingTokens;
    l.spentAtSend = spentAtSend;
    l.giveBack = res.giveBack === true;
    l.target = res.targetTokens ?? 0;
    l.sizeAfterAnswer = Math.max(0, l.balance);
    const end = res.windowEndMs ?? 0;
    if (end > 0 && !res.unlimited) {
      // The window's end on the service's clock, exactly: not a duration that crossed the network.
      l.windowEndMs = end;
      l.windowEndAt = now + (end - wall);
      l.windowLenMs = end - res.windowStartMs;
      l.failOpen = { left: res.failOpenTokens ?? 0, next: res.failOpenNextTokens ?? 0 };
      // A TTL or renewal time the window's end cut short (and that, counted from the send, ends a trip too
      // early) is that end: the tokens are good until then, and the next window starts on its own (roll).
      const trip = now - sentAt;
      if (l.expiresAt + trip >= l.windowEndAt) l.expiresAt = l.windowEndAt;
      if (l.refreshAt + trip >= l.windowEndAt) l.refreshAt = l.windowEndAt;
    } else {
      l.windowEndMs = 0;
      l.windowEndAt = Infinity;
      l.windowLenMs = 0;
      l.failOpen = undefined;
    }
    // A refusal describes itself; a service that predates that refused when it granted nothing for a need.
    const info = res.refusal ?? null;
    const refused = info !== null || (estimate > 0 && res.grantedTokens === 0 && !res.unlimited && res.retryAfterMs > 0);
    // A spent window is refused until its end on the service's clock; other refusals from when the call was sent.
    const until = info?.reason === 'REFUSAL_WINDOW_SPENT' ? now + (info.windowEndMs - wall) : res.retryAfterMs > 0 ? sentAt + res.retryAfterMs : now + REFUSAL_HELD_MS;
    l.quotaRefusal = refused ? { at: now, until, maxNeed: info?.availableTokens ?? 0, info } : undefined;
    this.opts.onAnswer?.(res);
  }

  /**
   * Delivers outbox records: with a renewal for classes holding a lease (at once for usage spent while the
   * service was out of reach, else at least every REPORT_EVERY_MS), else as plain reports.
   */
  private async flush(): Promise<void> {
    if (this.closed) return;
    const now = this.opts.clock.monotonic();
    for (const [priority, n] of this.opts.outbox.counts()) {
      if (n === 0) continue;
      const l = this.lease(priority);
      if (l.inflight !== undefined) continue;
      if (l.leaseId !== undefined) {
        if (now >= l.unreachableUntil && (l.reportSoon || now - l.lastAnswerAt >= REPORT_EVERY_MS)) void this.refresh(l, 0, this.bgTimeoutMs, { reason: 'report' });
      } else {
        await this.report(priority);
      }
    }
  }

  private async report(priority: Priority, again = true): Promise<void> {
    const reports = this.opts.outbox.pending(priority, REPORT_BATCH);
    if (reports.length === 0) return;
    try {
      const res = await this.opts.rpc.report({ identity: this.opts.identity(), incarnation: this.opts.outbox.incarnation(priority), reports }, this.bgTimeoutMs);
      this.opts.outbox.ack(priority, res.ackedSequence);
    } catch (err) {
      if (again && this.restartIfUnknown(priority, err)) return this.report(priority, false);
      if (err instanceof QuotaRpcError && err.refused) this.opts.onRefused?.();
      this.opts.logger[err instanceof QuotaRpcError && err.refused ? 'error' : 'debug']({ err: String(err), priority }, 'usage report not delivered yet');
    }
  }
}
