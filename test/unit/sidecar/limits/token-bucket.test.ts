import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../../sidecar/limits/token-bucket.js';
import { fakeClock } from '../../../helpers/fake-clock.js';

describe('token bucket', () => {
  it('never says to wait 0 when it refuses, and holds what was refused once the wait is over', () => {
    const clock = fakeClock();
    // Capacities and asks that leave fractional levels behind.
    for (const capacity of [7, 60, 333, 1000]) {
      const bucket = new TokenBucket(capacity, clock);
      let refusals = 0;
      for (let i = 0; i < 200; i++) {
        const n = 1 + ((i * 37) % capacity);
        const r = bucket.take(n);
        if (r.ok) {
          clock.advance((i * 13) % 700);
          continue;
        }
        refusals++;
        expect(r.retryAfterMs).toBeGreaterThanOrEqual(1);
        expect(r.retryAfterMs).toBeLessThanOrEqual(60_000);
        clock.advance(r.retryAfterMs);
        expect(bucket.take(n).ok).toBe(true);
      }
      expect(refusals).toBeGreaterThan(10);
    }
  });

  it('says never (Infinity) for more than its capacity, even when full', () => {
    const bucket = new TokenBucket(500, fakeClock());
    expect(bucket.waitMs(501)).toBe(Infinity);
    expect(bucket.take(501)).toEqual({ ok: false, retryAfterMs: Infinity });
    expect(bucket.take(500)).toEqual({ ok: true });
  });

  it('pays back a debt before it holds anything again', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(600, clock); // 10 a second
    bucket.adjust(-700); // a request used 700 more than it reserved
    expect(bucket.waitMs(50)).toBe(15_000); // 100 of debt, then 50
    clock.advance(15_000);
    expect(bucket.take(50).ok).toBe(true);
  });
});
