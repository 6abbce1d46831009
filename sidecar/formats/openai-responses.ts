// OpenAI Responses API wire shapes the sidecar reads or writes: usage, and the error event of its streams.
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

/**
 * The frame that ends a Responses stream with an error: the API's `error` event (type, code, message,
 * param, sequence_number), which also carries the `error` object the official SDK raises as an APIError.
 */
export function responsesErrorFrame(body: Json, sequenceNumber: number): string {
  const error = (body.error ?? {}) as Json;
  const event = {
    type: 'error',
    code: typeof error.code === 'string' ? error.code : typeof error.type === 'string' ? error.type : 'server_error',
    message: typeof error.message === 'string' ? error.message : 'the stream failed',
    param: typeof error.param === 'string' ? error.param : null,
    sequence_number: sequenceNumber,
    error,
  };
  return `event: error\ndata: ${JSON.stringify(event)}\n\n`;
}
