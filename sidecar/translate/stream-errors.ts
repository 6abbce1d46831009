// Errors found inside upstream streams, as typed errors.
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

/** Parses an upstream event's JSON; malformed data is the provider's fault, not an internal error. */
export function parseEventData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new GatewayError('llmgw_upstream_error', 502, 'the provider sent a stream event that is not valid JSON', {
      retryable: true,
    });
  }
}
