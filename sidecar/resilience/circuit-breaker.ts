// A circuit breaker per (provider, upstream model), on an injected clock. Closed: requests flow and
// failures are counted; it opens after `consecutiveFailures` failures in a row, or when at least
// `minRequests` calls in the last `windowMs` failed at `failureRate` or more. Open: the target is skipped
// until `coolDownMs` has passed; then half-open: at most `halfOpenProbes` calls at a time go through, a
// success closes it, a failure opens it again for another cool-down.
import type { CircuitBreakerConfig } from '../config/schema.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

const BUCKET_MS = 1000;

export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private openedAt = 0;
  private consecutive = 0;
  private probes = 0;
  /** Per-second buckets of [calls, failures] over the window, oldest first. */
  private buckets: { at: number; calls: number; failures: number }[] = [];

  /**
   * `cfg` is read at each decision, so a reloaded config applies to breakers already running.
   * `onTransition` hears each change of state (a cool-down that passed is heard when its first probe goes).
   */
  constructor(
    private readonly cfg: () => CircuitBreakerConfig,
    private readonly onTransition?: (to: BreakerState) => void,
  ) {}

  /** The state now (an open breaker whose cool-down has passed reads as half-open). */
  stateAt(now: number): BreakerState {
    if (this.state === 'open' && now >= this.openedAt + this.cfg().coolDownMs) return 'half-open';
    return this.state;
  }

  /** Whether a call may go through now; a half-open breaker counts it as one of its probes. */
  tryAcquire(now: number): boolean {
    const state = this.stateAt(now);
    if (state === 'closed') return true;
    if (state === 'open') return false;
    if (this.state === 'open') {
      this.state = 'half-open';
      this.probes = 0;
      this.onTransition?.('half-open');
    }
    if (this.probes >= this.cfg().halfOpenProbes) return false;
    this.probes++;
    return true;
  }

  /** When the breaker lets a probe through (only meaningful while open). */
  retryAt(): number {
    return this.openedAt + this.cfg().coolDownMs;
  }

  onSuccess(now: number): void {
    this.record(now, false);
    this.consecutive = 0;
    if (this.state === 'half-open') {
      this.state = 'closed';
      this.buckets = [];
      this.onTransition?.('closed');
    }
    this.probes = Math.max(0, this.probes - 1);
  }

  onFailure(now: number): void {
    this.record(now, true);
    this.consecutive++;
    if (this.state === 'half-open' || this.shouldOpen(now)) this.open(now);
  }

  /** A call that says nothing about the target's health (a bad request, the app leaving): frees its probe. */
  release(): void {
    this.probes = Math.max(0, this.probes - 1);
  }

  private open(now: number): void {
    this.state = 'open';
    this.openedAt = now;
    this.probes = 0;
    this.consecutive = 0;
    this.buckets = [];
    this.onTransition?.('open');
  }

  private shouldOpen(now: number): boolean {
    if (this.state !== 'closed') return false;
    if (this.consecutive >= this.cfg().consecutiveFailures) return true;
    let calls = 0;
    let failures = 0;
    for (const b of this.buckets) {
      if (b.at > now - this.cfg().windowMs) {
        calls += b.calls;
        failures += b.failures;
      }
    }
    return calls >= this.cfg().minRequests && failures / calls >= this.cfg().failureRate;
  }

  private record(now: number, failed: boolean): void {
    const at = now - (now % BUCKET_MS);
    let last = this.buckets[this.buckets.length - 1];
    if (last === undefined || last.at !== at) {
      last = { at, calls: 0, failures: 0 };
      this.buckets.push(last);
      while (this.buckets.length > 0 && this.buckets[0]!.at <= now - this.cfg().windowMs) this.buckets.shift();
    }
    last.calls++;
    if (failed) last.failures++;
  }
}
