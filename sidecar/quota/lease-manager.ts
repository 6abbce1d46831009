// Spends global budgets locally (DESIGN §6). One lease per priority class; a request reserves its
// estimate from the lease's balance with no RPC while the balance covers it, and settles to the real
// usage when it ends (the record goes to the durable outbox, then to the service with the next renewal).
// Renewals run in the background when due (a 2 s tick) or early when the balance runs low; only a
// request the balance cannot cover waits, once and boundedly, for a renewal. When the service is out of
// reach, the remaining balance is spent, then the configured policy applies. When it refuses this pod's
// credentials, requests are refused (503) whatever the policy: that is a denial, not an outage.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import type { IdentityMsg, LeaseResponse, PriorityName } from '../../proto/messages.js';
import type { QuotaConfig } from '../config/schema.js';
import type { Priority } from '../http/caller-headers.js';
import { TokenBucket } from '../limits/token-bucket.js';
import { QuotaRpcError, type QuotaRpc } from './quota-client.js';
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
  /** Monotonic ms: the service said the budget is spent until then; requests are refused without asking. */
  exhaustedUntil: number;
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
    if (now < l.exhaustedUntil) throw this.exhausted(l.exhaustedUntil - now);
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
    // Renewals started by other requests may have asked for less: join them, then ask for ourselves.
    let answered = false;
    for (let attempt = 0; attempt < 16; attempt++) {
      const left = deadline - this.opts.clock.monotonic();
      if (left <= 0) break;
      const joined = l.inflight !== undefined;
      // A balance in debt (requests that used more than they reserved) is paid back first.
      const need = l.leaseId !== undefined && !l.unlimited && l.balance < 0 ? estimate - l.balance : estimate;
      let timer: NodeJS.Timeout | undefined;
      answered = await Promise.race([
        this.refresh(l, need, left).then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), left))),
      ]);
      clearTimeout(timer);
      if (!answered) break;
      const now = this.opts.clock.monotonic();
      const r = this.take(l, estimate, now, false);
      if (r !== undefined) return r;
      if (now < l.refusedUntil) throw this.refused(l, now);
      if (now < l.exhaustedUntil) throw this.exhausted(l.exhaustedUntil - now);
      if (now < l.unreachableUntil) return this.degraded(l, estimate, now);
      // Our own ask was answered without the tokens (other pods hold them for now).
      if (!joined) throw this.exhausted(1000);
    }
    if (answered) throw this.exhausted(1000);
    // The service did not answer in time: this request is served as if it were out of reach.
    return this.degraded(l, estimate, this.opts.clock.monotonic());
  }

  private degraded(l: ClassLease, estimate: number, now: number): Reservation {
    // Out of reach: first what the lease still holds, then the configured policy.
    const r = this.take(l, estimate, now, true);
    if (r !== undefined) return r;
    const retryAfterSeconds = Math.ceil(Math.max(1, l.unreachableUntil - now) / 1000);
    if (this.opts.config.failMode === 'failClosed') {
      throw new GatewayError('llmgw_quota_unavailable', 503, 'the quota service is out of reach and this pod has no tokens left to spend', { retryAfterSeconds });
    }
    const got = this.failOpen.take(estimate);
    if (!got.ok) {
      throw new GatewayError('llmgw_rate_limited', 429, 'the quota service is out of reach and this pod reached its fail-open rate', {
        retryAfterSeconds: Math.ceil(got.retryAfterMs / 1000),
      });
    }
    return { priority: l.priority, estimate, epoch: -1, startedAtMs: this.opts.clock.now(), unlimited: true };
  }

  private refused(l: ClassLease, now: number): GatewayError {
    return new GatewayError('llmgw_quota_unavailable', 503, `the quota service refused this pod's credentials: ${l.refusal}`, {
      retryAfterSeconds: Math.ceil(Math.max(1, l.refusedUntil - now) / 1000),
    });
  }

  private exhausted(retryAfterMs: number): GatewayError {
    const s = Math.max(1, Math.ceil(retryAfterMs / 1000));
    return new GatewayError('llmgw_quota_exhausted', 429, `the token budget is spent; retry in ${s} s`, { retryAfterSeconds: s });
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
        exhaustedUntil: 0,
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

  /** One renewal (or acquisition) at a time per class; callers arriving meanwhile share it. */
  private refresh(l: ClassLease, need: number, timeoutMs: number): Promise<void> {
    if (l.inflight !== undefined) return l.inflight;
    l.inflight = this.doRefresh(l, need, timeoutMs).finally(() => {
      l.inflight = undefined;
    });
    return l.inflight;
  }

  private async doRefresh(l: ClassLease, need: number, timeoutMs: number): Promise<void> {
    if (this.closed) return;
    const sentAt = this.opts.clock.monotonic();
    const seconds = Math.max(1, (sentAt - l.lastRefresh) / 1000);
    l.demand = l.demand === 0 ? l.reservedSinceRefresh / seconds : 0.5 * l.demand + (0.5 * l.reservedSinceRefresh) / seconds;
    const demand = Math.max(l.demand, need / 5);
    try {
      let res: LeaseResponse;
      if (l.leaseId !== undefined) {
        const reports = this.opts.outbox.pending(l.priority, REPORT_BATCH);
        try {
          // Tokens beyond one renewal period of demand go back, so an idle pod holds nothing for long.
          const keep = (demand * l.periodMs) / 1000;
          const unused = l.unlimited ? 0 : Math.floor(Math.max(0, l.balance - keep));
          l.balance -= unused;
          res = await this.opts.rpc.renew({ leaseId: l.leaseId, needTokens: need, demandTokensPerSecond: demand, reports, unusedTokens: unused }, timeoutMs);
        } catch (err) {
          // The lease lapsed on the service's side, or belongs to an identity this pod no longer has (the
          // service started verifying tokens): start a new one.
          if (!(err instanceof QuotaRpcError) || (err.code !== grpcStatus.NOT_FOUND && err.code !== grpcStatus.PERMISSION_DENIED)) throw err;
          l.leaseId = undefined;
          res = await this.acquire(l, need, demand, timeoutMs);
        }
      } else {
        res = await this.acquire(l, need, demand, timeoutMs);
      }
      this.apply(l, res, need, sentAt);
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

  private async acquire(l: ClassLease, need: number, demand: number, timeoutMs: number): Promise<LeaseResponse> {
    // The old lease's tokens went back to the service, those of requests still running included: the
    // new lease must cover them again (its tokens are the only ones this pod holds from now on).
    const res = await this.opts.rpc.acquire(
      {
        identity: this.opts.identity(),
        priority: PRIORITY_NAMES[l.priority],
        incarnation: this.opts.outbox.incarnation(l.priority),
        needTokens: need + l.inflightTokens,
        demandTokensPerSecond: demand,
      },
      timeoutMs,
    );
    if (!res.unlimited) l.balance = -l.inflightTokens;
    return res;
  }

  private apply(l: ClassLease, res: LeaseResponse, need: number, sentAt: number): void {
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
    l.exhaustedUntil = res.grantedTokens === 0 && need > 0 && res.retryAfterMs > 0 ? now + res.retryAfterMs : 0;
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
