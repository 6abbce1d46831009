// The sidecar's provider failure: an upstream answered with an error status. The gateway's own refusals
// (GatewayError) are shared with the other components and live in common/errors.ts.

import { LlmgwError } from '../common/errors.js';
import type { WireFormat } from './formats/wire-format.js';

/** The provider answered with an error status; its body is kept to be passed on in the app's format. */
export class ProviderError extends LlmgwError {
  readonly source = 'provider' as const;
  readonly status: number;
  readonly retryable: boolean;
  readonly providerId: string;
  /** Wire format of `body`: the provider's own. */
  readonly format: WireFormat;
  /**
   * The provider's error body, parsed when it was JSON, else its text. Scrubbed of credentials before it
   * leaves the attempt that received it (providers/call-target.ts): retries, logs and apps never see the raw text.
   */
  readonly body: unknown;
  readonly retryAfter: string | undefined;
  /** OpenAI's `retry-after-ms`, when sent. */
  readonly retryAfterMs: string | undefined;

  constructor(opts: {
    status: number;
    providerId: string;
    format: WireFormat;
    body: unknown;
    retryAfter?: string | undefined;
    retryAfterMs?: string | undefined;
  }) {
    super(`provider ${opts.providerId} answered ${opts.status}`);
    this.name = 'ProviderError';
    this.status = opts.status;
    this.providerId = opts.providerId;
    this.format = opts.format;
    this.body = opts.body;
    this.retryAfter = opts.retryAfter;
    this.retryAfterMs = opts.retryAfterMs;
    this.retryable = isRetryableStatus(opts.status);
  }
}

/** 408, 409 (OpenAI lock conflicts), 429, 5xx and Anthropic's 529 may succeed when tried again. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}
