// Typed errors of the product's components. They are thrown inside and turned into wire bodies in one
// place per component (the sidecar's http/error-response.ts, the injector's server); nothing else decides an
// error's status or shape.

export type ErrorSource = 'gateway' | 'provider';

/** Stable codes of the gateway's own refusals; apps match on them (DESIGN §4). */
export type GatewayErrorCode =
  | 'llmgw_invalid_request'
  | 'llmgw_unknown_model'
  | 'llmgw_not_found'
  | 'llmgw_method_not_allowed'
  | 'llmgw_unsupported_media_type'
  | 'llmgw_body_too_large'
  | 'llmgw_request_timeout'
  | 'llmgw_quota_exhausted'
  | 'llmgw_quota_unavailable'
  | 'llmgw_rate_limited'
  | 'llmgw_request_exceeds_budget'
  | 'llmgw_request_exceeds_rate_limit'
  | 'llmgw_upstream_unavailable'
  | 'llmgw_upstream_error'
  | 'llmgw_upstream_timeout'
  | 'llmgw_upstream_too_large'
  | 'llmgw_shutting_down'
  | 'llmgw_internal_error';

export abstract class LlmgwError extends Error {
  abstract readonly source: ErrorSource;
  abstract readonly status: number;
  /** Whether trying again (the same or another target) may succeed. */
  abstract readonly retryable: boolean;
}

/** A refusal or failure decided by the gateway itself. */
export class GatewayError extends LlmgwError {
  readonly source = 'gateway' as const;
  readonly code: GatewayErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly param: string | null;
  /** Seconds the app should wait before retrying (sent as `Retry-After`). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: GatewayErrorCode,
    status: number,
    message: string,
    opts: { param?: string; retryable?: boolean; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = status;
    this.param = opts.param ?? null;
    this.retryable = opts.retryable ?? false;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

export const invalidRequest = (message: string, param?: string): GatewayError =>
  new GatewayError('llmgw_invalid_request', 400, message, param === undefined ? {} : { param });

/** Anything unexpected becomes a 500 without leaking internals to the app. */
export function asLlmgwError(err: unknown): LlmgwError {
  if (err instanceof LlmgwError) return err;
  return new GatewayError('llmgw_internal_error', 500, 'internal error in the gateway', { cause: err });
}

/** How logs, metrics and spans name a failure: the gateway's code, or `provider_<status>` for a provider's error. */
export function errorCode(e: LlmgwError): string {
  return e instanceof GatewayError ? e.code : `provider_${e.status}`;
}
