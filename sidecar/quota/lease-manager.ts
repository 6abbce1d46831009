// Spends global budgets locally (DESIGN §6). One lease per priority class; a request reserves its
// estimate from the lease's balance with no RPC while the balance covers it, and settles to the real
// usage when it ends (the record goes to the durable outbox, then to the service with the next renewal).
// Renewals run in the background when due (a 2 s tick) or early when the balance runs low; only a
// request the balance cannot cover waits, once and boundedly, for a renewal. When the service is out of
// reach, the remaining balance is spent, then the configured policy applies. When it refuses this pod's
// credentials, requests are refused (503) whatever the policy: that is a denial, not an outage.
//
// When the service grants nothing, its answer says which budget refused and when the need can be granted
// (refusal-errors.ts turns that into the app's error). The refusal is remembered for the needs it covers
// (larger than what the service could grant) and for a second at most: smaller requests still ask, and a
// budget an operator raised meanwhile is seen within that second. An answer saying another lease waits for
// tokens this class holds makes it give back what it holds unspent at once.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import type { IdentityMsg, LeaseResponse, PriorityName, RefusalMsg } from '../../proto/messages.js';
import type { QuotaConfig } from '../config/schema.js';
import type { Priority } from '../http/caller-headers.js';
import { TokenBucket } from '../limits/token-bucket.js';
import { QuotaRpcError, type QuotaRpc } from './quota-client.js';
import { exceedsBudget, heldByLeases, retrySeconds, unnamedRefusal, windowSpent } from './refusal-errors.js';
import type { UsageOutbox } from './usage-outbox.js';

export interface Reservation {
  priority: Priority;
  estimate: number;
  /** Balance generation the estimate came out of; a voided balance is not refunded into. */
  epoch: number;
  startedAtMs: number;
  unlimited: boolean;
}

interface ClassLease {
  priority: Priority;
  leaseId: string | undefined;
  balance: number;
  epoch: number;
  /** Estimates of this epoch's requests still running: a replacement lease must cover them again. */
  inflightTokens: number;
  /** Start of the budget window the balance belongs to, as the service said. */
  windowStartMs: number;
  unlimited: boolean;
  /** Monotonic ms: the balance is void after this unless the service is out of reach. */
  expiresAt: number;
  refreshAt: number;
  /** The service's suggested renewal period. */
  periodMs: number;
  remaining: number;
  spentSinceAnswer: number;
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
  reservedSinceRefresh: number;
  lastRefresh: number;
  demand: number;
  lastGrant: number;
}

/** A refusal of the service, remembered so that a flood of requests that cannot fit does not each ask again. */
interface QuotaRefusal {
  /** Monotonic ms of the answer: trusted for REFUSAL_HELD_MS after it. */
  at: number;
  /** Monotonic ms after which the refused need can be granted (the answer's retry_after_ms). */
  until: number;
  /** The most the service could grant: larger needs are refused without asking. */
  maxNeed: number;
  /** Which budget refused, and why (null from a service that predates it). */
  info: RefusalMsg | null;
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
}

const PRIORITY_NAMES: Record<Priority, PriorityName> = {
  interactive: 'PRIORITY_INTERACTIVE',
  background: 'PRIORITY_BACKGROUND',
  batch: 'PRIORITY_BATCH',
};
const UNREACHABLE_BACKOFF_MS = 2000;
/**
 * How long a refusal is taken as the answer without asking again: long enough that refused requests cost
 * the service at most one call a second per class, short enough that a budget raised meanwhile counts at once.
 */
const REFUSAL_HELD_MS = 1000;
const REPORT_BATCH = 1000;

export class LeaseManager {
  private readonly leases = new Map<Priority, ClassLease>();
  private readonly failOpen: TokenBucket;
  private readonly ticker: NodeJS.Timeout;
  private closed = false;
  private readonly bgTimeoutMs: number;

  constructor(private readonly opts: LeaseManagerOptions) {
    this.failOpen = new TokenBucket(opts.config.failOpenTokensPerMinute, opts.clock);
    this.bgTimeoutMs = opts.backgroundTimeoutMs ?? 5000;
    // The one timer: renews leases that are due (also after an outage) and delivers what the outbox holds
    // (after a restart, or for classes gone idle). Requests renew early on their own (see take).
    this.ticker = setInterval(() => void this.tick(), opts.tickEveryMs ?? 2000);
    this.ticker.unref();
  }

  /** Starts the default class's lease in the background so the first request need not wait. */
  warmUp(priority: Priority): void {
    void this.refresh(this.lease(priority), 0, this.bgTimeoutMs);
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
    await Promise.all(due.map((l) => this.refresh(l, 0, this.bgTimeoutMs)));
    await this.flush();
  }

  /** Reserves `estimate` tokens for a request: synchronously when the lease covers it. */
  reserve(priority: Priority, estimate: number): Reservation | Promise<Reservation> {
    const l = this.lease(priority);
    const now = this.opts.clock.monotonic();
    const fast = this.take(l, estimate, now, false);
    if (fast !== undefined) return fast;
    if (now < l.refusedUntil) throw this.refused(l, now);
    const refusal = this.heldRefusal(l, estimate, now);
    if (refusal !== undefined) throw refusal;
    if (now < l.unreachableUntil) return this.degraded(l, estimate, now);
    return this.slow(l, estimate);
  }

  /** Settles a reservation to what the request used, and records the usage durably. */
  settle(r: Reservation, used: number, model: string, tags?: Readonly<Record<string, string>>): void {
    const l = this.lease(r.priority);
    if (!r.unlimited && r.epoch === l.epoch) {
      l.balance += r.estimate - used;
      l.inflightTokens -= r.estimate;
    }
    l.spentSinceAnswer += used;
    if (used > 0) this.opts.outbox.append(r.priority, used, r.startedAtMs, model, tags);
  }

  /** Tokens left in the budget as last known, minus what this pod spent since (undefined: unlimited). */
  remaining(priority: Priority): number | undefined {
    const l = this.leases.get(priority);
    if (l === undefined || l.unlimited || l.leaseId === undefined) return undefined;
    return Math.max(0, l.remaining - l.spentSinceAnswer);
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
        const res = await this.opts.rpc.release({ leaseId: l.leaseId, reports }, this.bgTimeoutMs);
        this.opts.outbox.ack(l.priority, res.ackedSequence);
      } catch (err) {
        // The lease lapsed on the service's side, or the numbering starts anew: the usage goes as a plain report.
        if ((err instanceof QuotaRpcError && err.code === grpcStatus.NOT_FOUND) || this.restartIfUnknown(l.priority, err)) return this.report(l.priority);
        // Unsent usage stays in the outbox for the next start.
        this.opts.logger.warn({ err: String(err), priority: l.priority }, 'could not release the quota lease');
      }
    });
    await Promise.allSettled(work);
    // Whatever settled meanwhile is on disk for the next start.
    this.opts.outbox.flush();
  }

  private take(l: ClassLease, estimate: number, now: number, ignoreExpiry: boolean): Reservation | undefined {
    const live = ignoreExpiry || now < l.expiresAt;
    if (!live || l.leaseId === undefined) return undefined;
    if (!l.unlimited && l.balance < estimate) return undefined;
    if (!l.unlimited) {
      l.balance -= estimate;
      l.inflightTokens += estimate;
    }
    l.reservedSinceRefresh += estimate;
    // Renew early when the balance runs low, and on time even if the timer is late (a stalled event loop).
    if (l.inflight === undefined && (now >= l.refreshAt || (!l.unlimited && l.balance < this.lowWater(l)))) void this.refresh(l, 0, this.bgTimeoutMs);
    return { priority: l.priority, estimate, epoch: l.epoch, startedAtMs: this.opts.clock.now(), unlimited: l.unlimited };
  }

  private async slow(l: ClassLease, estimate: number): Promise<Reservation> {
    // The one bounded wait on the request path, at most acquireTimeoutMs in all: a renewal asking for
    // this request's need (after the one already under way, which may have asked for less).
    const deadline = this.opts.clock.monotonic() + this.opts.config.acquireTimeoutMs;
    let answered = false;
    // Just refused: what the class holds may be what makes the difference.
    let exact = l.quotaRefusal !== undefined;
    for (let attempt = 0; attempt < 16; attempt++) {
      const asked = this.opts.clock.monotonic();
      const left = deadline - asked;
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      answered = await Promise.race([
        this.refresh(l, estimate, left, { exact }).then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), left))),
      ]);
      clearTimeout(timer);
      if (!answered) break;
      const now = this.opts.clock.monotonic();
      const r = this.take(l, estimate, now, false);
      if (r !== undefined) return r;
      if (now < l.refusedUntil) throw this.refused(l, now);
      if (now < l.unreachableUntil) return this.degraded(l, estimate, now);
      // Refused what the class lacks for this request (not only a larger ask): that is the answer. Refused
      // the whole estimate though the class holds part of it: ask for just what it lacks, whose answer says
      // best when it can be had. Else what was granted went to other requests meanwhile: ask again.
      const q = l.quotaRefusal;
      if (q !== undefined && q.at >= asked) {
        const need = this.needFor(l, estimate, now);
        if ((exact || need >= estimate) && need > q.maxNeed) throw this.refusalError(l, q, estimate, now);
        exact = true;
      }
    }
    if (answered) {
      throw new GatewayError('llmgw_quota_exhausted', 429, `other requests of this pod took the tokens granted for this one's estimated ${estimate} within quota.acquireTimeoutMs; retry in 1 s`, {
        retryAfterSeconds: 1,
      });
    }
    // The service did not answer in time: this request is served as if it were out of reach.
    return this.degraded(l, estimate, this.opts.clock.monotonic());
  }

  private degraded(l: ClassLease, estimate: number, now: number): Reservation {
    // Out of reach: first what the lease still holds, then the configured policy.
    const r = this.take(l, estimate, now, true);
    if (r !== undefined) return r;
    const retryAfterSeconds = retrySeconds(l.unreachableUntil - now);
    if (this.opts.config.failMode === 'failClosed') {
      throw new GatewayError('llmgw_quota_unavailable', 503, 'the quota service is out of reach and this pod has no tokens left to spend', { retryAfterSeconds });
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
    return { priority: l.priority, estimate, epoch: -1, startedAtMs: this.opts.clock.now(), unlimited: true };
  }

  private refused(l: ClassLease, now: number): GatewayError {
    return new GatewayError('llmgw_quota_unavailable', 503, `the quota service refused this pod's credentials: ${l.refusal}`, {
      retryAfterSeconds: Math.ceil(Math.max(1, l.refusedUntil - now) / 1000),
    });
  }

  /** The tokens a request of `estimate` needs granted on top of what the class holds (its debt first). */
  private needFor(l: ClassLease, estimate: number, now: number): number {
    if (l.balance < 0) return estimate - l.balance;
    const held = l.leaseId !== undefined && !l.unlimited && now < l.expiresAt ? l.balance : 0;
    return Math.max(0, estimate - held);
  }

  /** The error for a request the remembered refusal covers, if it does (else the service is asked). */
  private heldRefusal(l: ClassLease, estimate: number, now: number): GatewayError | undefined {
    const q = l.quotaRefusal;
    if (q === undefined || now >= q.at + REFUSAL_HELD_MS || this.needFor(l, estimate, now) <= q.maxNeed) return undefined;
    if (q.info?.reason === 'REFUSAL_EXCEEDS_BUDGET') return estimate > q.info.classLimitTokens ? this.refusalError(l, q, estimate, now) : undefined;
    return now < q.until ? this.refusalError(l, q, estimate, now) : undefined;
  }

  private refusalError(l: ClassLease, q: QuotaRefusal, estimate: number, now: number): GatewayError {
    const r = q.info;
    if (r === null) return unnamedRefusal(l.priority, estimate, q.until - now);
    if (estimate > r.classLimitTokens) return exceedsBudget(r, estimate);
    // Only with what this pod's running requests reserved is it too large: they end with the window.
    if (r.reason === 'REFUSAL_EXCEEDS_BUDGET') return windowSpent(r, estimate, r.windowEndMs - this.opts.clock.now());
    return r.reason === 'REFUSAL_HELD_BY_LEASES' ? heldByLeases(r, estimate, q.until - now) : windowSpent(r, estimate, q.until - now);
  }

  private lowWater(l: ClassLease): number {
    return Math.max(l.lastGrant * 0.3, l.demand);
  }

  private lease(priority: Priority): ClassLease {
    let l = this.leases.get(priority);
    if (l === undefined) {
      const now = this.opts.clock.monotonic();
      l = {
        priority,
        leaseId: undefined,
        balance: 0,
        epoch: 0,
        inflightTokens: 0,
        windowStartMs: -1,
        unlimited: false,
        expiresAt: 0,
        refreshAt: 0,
        periodMs: 0,
        remaining: 0,
        spentSinceAnswer: 0,
        quotaRefusal: undefined,
        giveBack: false,
        unreachableUntil: 0,
        refusedUntil: 0,
        refusal: '',
        inflight: undefined,
        reservedSinceRefresh: 0,
        lastRefresh: now,
        demand: 0,
        lastGrant: 0,
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
  private refresh(l: ClassLease, estimate: number, timeoutMs: number, opts: { exact?: boolean; givingBack?: boolean } = {}): Promise<void> {
    if (l.inflight !== undefined) return l.inflight;
    l.inflight = this.doRefresh(l, estimate, timeoutMs, opts.exact === true).finally(() => {
      l.inflight = undefined;
      // Asked to give back: at once, not at the next renewal, once the request waiting has taken its share.
      if (l.giveBack && opts.givingBack !== true && !l.unlimited && l.balance >= 1 && !this.closed) {
        setImmediate(() => {
          if (l.inflight === undefined) void this.refresh(l, 0, this.bgTimeoutMs, { givingBack: true });
        });
      }
    });
    return l.inflight;
  }

  private async doRefresh(l: ClassLease, estimate: number, timeoutMs: number, exact: boolean): Promise<void> {
    if (this.closed) return;
    const sentAt = this.opts.clock.monotonic();
    // The whole estimate (a debt first) leaves what the class holds for the requests after this one; near
    // the end of a budget, just what it lacks.
    const need = estimate === 0 ? 0 : exact ? this.needFor(l, estimate, sentAt) : l.balance < 0 ? estimate - l.balance : estimate;
    const seconds = Math.max(1, (sentAt - l.lastRefresh) / 1000);
    l.demand = l.demand === 0 ? l.reservedSinceRefresh / seconds : 0.5 * l.demand + (0.5 * l.reservedSinceRefresh) / seconds;
    const demand = Math.max(l.demand, need / 5);
    try {
      let res: LeaseResponse;
      if (l.leaseId !== undefined) {
        const reports = this.opts.outbox.pending(l.priority, REPORT_BATCH);
        try {
          // Tokens beyond one renewal period of demand go back, so an idle pod holds nothing for long; all of
          // them when another lease waits for them; none while a request waits.
          const keep = l.giveBack ? 0 : (demand * l.periodMs) / 1000;
          const unused = l.unlimited || estimate > 0 ? 0 : Math.floor(Math.max(0, l.balance - keep));
          l.balance -= unused;
          res = await this.opts.rpc.renew({ leaseId: l.leaseId, needTokens: need, demandTokensPerSecond: demand, reports, unusedTokens: unused }, timeoutMs);
        } catch (err) {
          // The lease lapsed on the service's side, or belongs to an identity this pod no longer has (the
          // service started verifying tokens): start a new one.
          if (!(err instanceof QuotaRpcError) || (err.code !== grpcStatus.NOT_FOUND && err.code !== grpcStatus.PERMISSION_DENIED)) throw err;
          l.leaseId = undefined;
          res = await this.acquire(l, estimate, demand, timeoutMs);
        }
      } else {
        res = await this.acquire(l, estimate, demand, timeoutMs);
      }
      this.apply(l, res, estimate, sentAt);
    } catch (err) {
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
      this.opts.logger.warn({ err: String(err), priority: l.priority, unreachable }, 'quota lease renewal failed');
    }
  }

  /**
   * The service cannot continue this class's numbering (OUT_OF_RANGE: it forgot the incarnation, its
   * database lost or a month of silence) or holds the incarnation for another identity (this pod's
   * namespace or service account changed): the class starts a new incarnation, and what waits in the
   * outbox goes under it. Returns whether it did.
   */
  private restartIfUnknown(priority: Priority, err: unknown): boolean {
    if (!(err instanceof QuotaRpcError)) return false;
    const taken = err.code === grpcStatus.PERMISSION_DENIED && /incarnation \S+ belongs to another identity/.test(err.message);
    if (err.code !== grpcStatus.OUT_OF_RANGE && !taken) return false;
    const incarnation = this.opts.outbox.restart(priority);
    this.opts.logger.warn({ err: err.message, priority, incarnation }, 'the quota service cannot take this class\'s usage numbering; starting a new incarnation');
    return true;
  }

  private async acquire(l: ClassLease, estimate: number, demand: number, timeoutMs: number): Promise<LeaseResponse> {
    // The old lease's tokens went back to the service, those of requests still running included: the
    // new lease must cover them again (its tokens are the only ones this pod holds from now on).
    const res = await this.opts.rpc.acquire(
      {
        identity: this.opts.identity(),
        priority: PRIORITY_NAMES[l.priority],
        incarnation: this.opts.outbox.incarnation(l.priority),
        needTokens: estimate + l.inflightTokens,
        demandTokensPerSecond: demand,
      },
      timeoutMs,
    );
    if (!res.unlimited) l.balance = -l.inflightTokens;
    return res;
  }

  private apply(l: ClassLease, res: LeaseResponse, estimate: number, sentAt: number): void {
    const now = this.opts.clock.monotonic();
    // What the lease held of an earlier window is void (the service starts the new one at zero too), and
    // so are that window's running requests: they are charged to their own window.
    if (res.windowStartMs !== l.windowStartMs) {
      l.balance = 0;
      l.inflightTokens = 0;
      l.epoch++;
      l.windowStartMs = res.windowStartMs;
    }
    l.leaseId = res.leaseId;
    l.unlimited = res.unlimited;
    l.balance += res.grantedTokens;
    if (res.grantedTokens > 0) l.lastGrant = res.grantedTokens;
    l.expiresAt = sentAt + res.ttlMs;
    l.refreshAt = sentAt + res.refreshAfterMs;
    l.periodMs = res.refreshAfterMs;
    l.remaining = res.remainingTokens;
    l.spentSinceAnswer = 0;
    l.unreachableUntil = 0;
    l.refusedUntil = 0;
    l.refusal = '';
    l.giveBack = res.giveBack === true;
    // A refusal describes itself; a service that predates that refused when it granted nothing for a need.
    const refused = (res.refusal ?? null) !== null || (estimate > 0 && res.grantedTokens === 0 && !res.unlimited && res.retryAfterMs > 0);
    l.quotaRefusal = refused
      ? { at: now, until: now + (res.retryAfterMs > 0 ? res.retryAfterMs : REFUSAL_HELD_MS), maxNeed: res.refusal?.availableTokens ?? 0, info: res.refusal ?? null }
      : undefined;
    l.reservedSinceRefresh = 0;
    l.lastRefresh = sentAt;
    this.opts.outbox.ack(l.priority, res.ackedSequence);
    this.opts.onAnswer?.(res);
  }

  /** Delivers outbox records: with a renewal for classes holding a lease, else as plain reports. */
  private async flush(): Promise<void> {
    if (this.closed) return;
    for (const [priority, n] of this.opts.outbox.counts()) {
      if (n === 0) continue;
      const l = this.lease(priority);
      if (l.inflight !== undefined) continue;
      if (l.leaseId !== undefined && this.opts.clock.monotonic() >= l.unreachableUntil) void this.refresh(l, 0, this.bgTimeoutMs);
      else if (l.leaseId === undefined) await this.report(priority);
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
