// OpenAI Responses API wire shapes the sidecar reads: usage.
import type { Json } from '../../common/json.js';
import { num, type Usage } from './usage.js';

/** A Response's `usage` (input_tokens, output_tokens, input_tokens_details.cached_tokens, …) in the sidecar's shape. */
export function usageFromResponses(u: unknown): Usage | undefined {
  if (u === null || typeof u !== 'object') return undefined;
  const o = u as Json;
  const details = (o.input_tokens_details ?? {}) as Json;
  return {
    inputTokens: num(o.input_tokens),
    outputTokens: num(o.output_tokens),
    cachedInputTokens: num(details.cached_tokens),
    cacheWriteTokens: 0,
  };
}

