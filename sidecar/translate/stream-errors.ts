// Errors found inside upstream streams, as typed errors (malformed events: formats/answer-shape.ts).
import { GatewayError } from '../../common/errors.js';
import { isObject } from '../../common/json.js';
import { ProviderError } from '../errors.js';
import { anthropicStatusForType } from '../formats/anthropic.js';
import type { WireFormat } from '../formats/wire-format.js';

/** The provider's event as it came: the attempt it ends (providers/call-target.ts) scrubs it of credentials. */
export function streamErrorEvent(providerId: string, format: WireFormat, data: string): ProviderError {
  let body: unknown = data;
  try {
    body = JSON.parse(data);
  } catch {
    // keep the text
  }
  const error = isObject(body) && isObject(body.error) ? body.error : {};
  const status = format === 'anthropic' ? anthropicStatusForType(error.type) : typeof error.code === 'number' ? error.code : 500;
  return new ProviderError({ status, providerId, format, body });
}

export const truncatedStream = (): GatewayError =>
  new GatewayError('llmgw_upstream_error', 502, 'the provider ended the stream before it completed', { retryable: true });
