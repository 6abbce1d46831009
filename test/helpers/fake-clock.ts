// A clock tests move by hand; wall and monotonic time move together.
import type { Clock } from '../../common/clock.js';

export interface FakeClock extends Clock {
  advance(ms: number): number;
  set(ms: number): number;
}

export function fakeClock(start = Date.UTC(2026, 10, 23, 10, 0, 0)): FakeClock {
  let t = start;
  return { now: () => t, monotonic: () => t, advance: (ms) => (t += ms), set: (ms) => (t = ms) };
}
