// A token bucket on an injected clock: `capacity` tokens, refilled continuously at capacity per minute.
// Taking may leave a debt (a request that used more than it reserved); refills pay it back first.
import type { Clock } from '../../common/clock.js';

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

  /** Takes `n` if available; otherwise returns the milliseconds until it would be. */
  take(n: number): { ok: true } | { ok: false; retryAfterMs: number } {
    this.refill();
    if (this.level >= n) {
      this.level -= n;
      return { ok: true };
    }
    const missing = Math.min(n, this.capacity) - this.level;
    return { ok: false, retryAfterMs: Math.ceil((missing * 60_000) / this.capacity) };
  }

  /** Adjusts after the fact: positive gives back, negative charges (possibly into debt). */
  adjust(n: number): void {
    this.refill();
    this.level = Math.min(this.capacity, this.level + n);
  }
}
