// Anthropic Messages wire shapes the sidecar reads or writes, and their SSE framing.
import { num, type Usage } from './usage.js';

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export function usageFromAnthropic(u: unknown): Usage | undefined {
  if (u === null || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  const cacheRead = num(o.cache_read_input_tokens);
  const cacheWrite = num(o.cache_creation_input_tokens);
  return {
    // Anthropic's input_tokens leaves out cache reads and writes; ours counts every prompt token.
    inputTokens: num(o.input_tokens) + cacheRead + cacheWrite,
    outputTokens: num(o.output_tokens),
    cachedInputTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
  };
}

export function usageToAnthropic(u: Usage): AnthropicUsage {
  return {
    input_tokens: Math.max(0, u.inputTokens - u.cachedInputTokens - u.cacheWriteTokens),
    output_tokens: u.outputTokens,
    cache_creation_input_tokens: u.cacheWriteTokens,
    cache_read_input_tokens: u.cachedInputTokens,
  };
}

/** Anthropic's error `type` for an HTTP status, as its API uses them. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
    case 405:
    case 415:
    case 422:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 408:
    case 504:
      return 'timeout_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 529:
    case 503:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** One SSE frame of an Anthropic stream: the event name repeats the data's `type`. */
export const anthropicFrame = (type: string, data: unknown): string =>
  `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

/** The HTTP status Anthropic pairs with an error `type` (for errors that arrive inside a stream). */
export function anthropicStatusForType(type: unknown): number {
  switch (type) {
    case 'invalid_request_error':
      return 400;
    case 'authentication_error':
      return 401;
    case 'billing_error':
      return 402;
    case 'permission_error':
      return 403;
    case 'not_found_error':
      return 404;
    case 'request_too_large':
      return 413;
    case 'rate_limit_error':
      return 429;
    case 'timeout_error':
      return 504;
    case 'overloaded_error':
      return 529;
    default:
      return 500;
  }
}

/**
 * Applies a `message_delta` usage to what `message_start` reported: output_tokens is the running total,
 * and the other counters, when present, are whole-message totals that replace the earlier values.
 */
export function mergeAnthropicDeltaUsage(current: Usage | undefined, delta: unknown): Usage | undefined {
  if (delta === null || typeof delta !== 'object') return current;
  const d = delta as Record<string, unknown>;
  const base = current ?? { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 };
  const uncached = base.inputTokens - base.cachedInputTokens - base.cacheWriteTokens;
  const cacheRead = typeof d.cache_read_input_tokens === 'number' ? d.cache_read_input_tokens : base.cachedInputTokens;
  const cacheWrite = typeof d.cache_creation_input_tokens === 'number' ? d.cache_creation_input_tokens : base.cacheWriteTokens;
  const input = typeof d.input_tokens === 'number' ? d.input_tokens : uncached;
  return {
    inputTokens: input + cacheRead + cacheWrite,
    outputTokens: typeof d.output_tokens === 'number' ? d.output_tokens : base.outputTokens,
    cachedInputTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
  };
}
