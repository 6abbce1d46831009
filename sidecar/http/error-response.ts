// The one place typed errors become wire errors: the OpenAI or the Anthropic shape, as the app's path
// speaks, for whole responses and for errors inside a stream that already started.
import { GatewayError, type LlmgwError } from '../../common/errors.js';
import { isObject, type Json } from '../../common/json.js';
import { ProviderError } from '../errors.js';
import { anthropicErrorType, anthropicFrame } from '../formats/anthropic.js';
import { openaiFrame } from '../formats/openai.js';
import type { WireFormat } from '../formats/wire-format.js';

export interface WireError {
  status: number;
  body: Json;
  /** Extra response headers (`Retry-After`). */
  headers: Record<string, string>;
}

export function toWireError(err: LlmgwError, format: WireFormat): WireError {
  const headers: Record<string, string> = {};
  if (err instanceof GatewayError) {
    if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(0, Math.ceil(err.retryAfterSeconds)));
    return { status: err.status, body: gatewayBody(err, format), headers };
  }
  if (err instanceof ProviderError) {
    if (err.retryAfter !== undefined) headers['retry-after'] = err.retryAfter;
    return { status: err.status, body: providerBody(err, format), headers };
  }
  return toWireError(new GatewayError('llmgw_internal_error', 500, 'internal error in the gateway'), format);
}

/** The SSE frame that ends a stream with an error the app's SDK raises (OpenAI `data: {error}`, Anthropic `event: error`). */
export function toErrorFrame(err: LlmgwError, format: WireFormat): string {
  const { body } = toWireError(err, format);
  return format === 'anthropic' ? anthropicFrame('error', body) : openaiFrame(body);
}

function openaiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

function gatewayBody(err: GatewayError, format: WireFormat): Json {
  if (format === 'anthropic') {
    return { type: 'error', error: { type: anthropicErrorType(err.status), message: err.message, code: err.code } };
  }
  return { error: { message: err.message, type: openaiErrorType(err.status), param: err.param, code: err.code } };
}

function providerBody(err: ProviderError, format: WireFormat): Json {
  const body = err.body;
  const error = isObject(body) && isObject(body.error) ? body.error : undefined;
  // Same format: the provider's own body goes through untouched.
  if (error !== undefined && err.format === format) return body as Json;
  const message =
    typeof error?.message === 'string'
      ? error.message
      : typeof body === 'string' && body.trim() !== ''
        ? `provider ${err.providerId} answered ${err.status}: ${body.trim().slice(0, 500)}`
        : `provider ${err.providerId} answered ${err.status}`;
  if (format === 'anthropic') {
    return { type: 'error', error: { type: anthropicErrorType(err.status), message } };
  }
  const type = typeof error?.type === 'string' ? error.type : openaiErrorType(err.status);
  const code = typeof error?.code === 'string' ? error.code : null;
  const param = typeof error?.param === 'string' ? error.param : null;
  return { error: { message, type, param, code } };
}
