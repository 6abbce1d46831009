// What a failed attempt means for the next one: retry the same target (connect errors, resets, timeouts,
// 408, 409, 429, 5xx, Anthropic 529), move to the next target without retrying (401, 403: this target's
// credentials; 404: this target's model or URL), or stop (400, 422, …: the request itself is wrong, every
// target would refuse it).
// And how long to wait: full-jitter exponential backoff, or the provider's Retry-After / retry-after-ms.
import { GatewayError } from '../../common/errors.js';
import type { RetryConfig } from '../config/schema.js';
import { ProviderError } from '../errors.js';

export type FailureAction = 'retry' | 'next-target' | 'stop';

export function classify(err: unknown): FailureAction {
  if (err instanceof ProviderError) {
    if (err.retryable) return 'retry';
    if (err.status === 401 || err.status === 403 || err.status === 404) return 'next-target';
    return 'stop';
  }
  if (err instanceof GatewayError && err.retryable) return 'retry';
  return 'stop';
}

/** The provider's requested wait in ms (`retry-after-ms`, else `Retry-After` seconds or HTTP date), if any. */
export function requestedWaitMs(err: unknown, nowMs: number): number | undefined {
  if (!(err instanceof ProviderError)) return undefined;
  if (err.retryAfterMs !== undefined) {
    const ms = Number(err.retryAfterMs);
    if (Number.isFinite(ms) && ms >= 0) return ms;
  }
  if (err.retryAfter === undefined) return undefined;
  const seconds = Number(err.retryAfter);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(err.retryAfter);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/** Full jitter: uniform in [0, min(maxDelayMs, baseDelayMs × 2^retry)). `retry` counts from 0. */
export function backoffMs(retry: number, cfg: RetryConfig, random: () => number): number {
  return random() * Math.min(cfg.maxDelayMs, cfg.baseDelayMs * 2 ** retry);
}
