import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { ProviderError } from '../../../../sidecar/errors.js';
import { backoffMs, classify, requestedWaitMs } from '../../../../sidecar/resilience/retry-policy.js';

const provider = (status: number, extra: { retryAfter?: string; retryAfterMs?: string } = {}) =>
  new ProviderError({ status, providerId: 'p', format: 'openai', body: {}, ...extra });
const RETRY = { attempts: 2, budgetMs: 30_000, baseDelayMs: 200, maxDelayMs: 5_000, maxRetryAfterMs: 30_000 };

describe('retry policy', () => {
  it('retries what may succeed again, moves on from credential and model errors, stops on bad requests', () => {
    for (const s of [408, 409, 429, 500, 502, 503, 504, 529]) expect(classify(provider(s)), String(s)).toBe('retry');
    for (const s of [401, 403, 404]) expect(classify(provider(s)), String(s)).toBe('next-target');
    for (const s of [400, 413, 422]) expect(classify(provider(s)), String(s)).toBe('stop');
    expect(classify(new GatewayError('llmgw_upstream_error', 502, 'reset', { retryable: true }))).toBe('retry');
    expect(classify(new GatewayError('llmgw_upstream_timeout', 504, 'slow', { retryable: true }))).toBe('retry');
    expect(classify(new GatewayError('llmgw_quota_exhausted', 429, 'spent'))).toBe('stop');
    expect(classify(new Error('a bug'))).toBe('stop');
  });

  it("reads the provider's wait from retry-after-ms, Retry-After seconds or an HTTP date", () => {
    const now = Date.UTC(2026, 10, 29, 12, 0, 0);
    expect(requestedWaitMs(provider(429, { retryAfterMs: '1500', retryAfter: '9' }), now)).toBe(1500);
    expect(requestedWaitMs(provider(429, { retryAfter: '2' }), now)).toBe(2000);
    expect(requestedWaitMs(provider(503, { retryAfter: new Date(now + 7000).toUTCString() }), now)).toBe(7000);
    expect(requestedWaitMs(provider(503, { retryAfter: 'soon' }), now)).toBeUndefined();
    expect(requestedWaitMs(provider(503), now)).toBeUndefined();
  });

  it('backs off with full jitter under an exponential cap', () => {
    expect(backoffMs(0, RETRY, () => 0)).toBe(0);
    expect(backoffMs(0, RETRY, () => 0.999)).toBeCloseTo(199.8);
    expect(backoffMs(3, RETRY, () => 0.5)).toBe(800);
    expect(backoffMs(10, RETRY, () => 0.5)).toBe(2500); // capped at maxDelayMs
  });
});
