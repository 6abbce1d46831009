// A token bucket on an injected clock: `capacity` tokens, refilled continuously at capacity per minute.
// Taking may leave a debt (a request that used more than it reserved); refills pay it back first.
import type { Clock } from '../../common/clock.js';

/** Refill arithmetic is floating point: a wait this close to a whole millisecond is that millisecond… */
const EPSILON_MS = 1e-6;

export class TokenBucket {
  private level: number;
  private last: number;

  constructor(
    readonly capacity: number,
    private readonly clock: Clock,
  ) {
    this.level = capacity;
    this.last = clock.monotonic();
  }

  private refill(): void {
    const now = this.clock.monotonic();
    this.level = Math.min(this.capacity, this.level + ((now - this.last) * this.capacity) / 60_000);
    this.last = now;
  }

  /** What the bucket holds now (negative: a debt). */
  get available(): number {
    this.refill();
    return this.level;
  }

  /**
   * Milliseconds until the bucket holds `n`, rounded up: 0 when it does now, Infinity when it never will
   * (`n` is more than its capacity).
   */
  waitMs(n: number): number {
    if (n > this.capacity) return Infinity;
    this.refill();
    // …and a level this close to what is asked holds it.
    if (this.level >= n - (1e-6 + this.capacity * 1e-9)) return 0;
    return Math.max(1, Math.ceil(((n - this.level) * 60_000) / this.capacity - EPSILON_MS));
  }

  /** Takes `n` if available; otherwise returns the milliseconds until it would be (Infinity: never). */
  take(n: number): { ok: true } | { ok: false; retryAfterMs: number } {
    const wait = this.waitMs(n);
    if (wait > 0) return { ok: false, retryAfterMs: wait };
    this.level -= n;
    return { ok: true };
  }

  /** Adjusts after the fact: positive gives back, negative charges (possibly into debt). */
  adjust(n: number): void {
    this.refill();
    this.level = Math.min(this.capacity, this.level + n);
  }
}
