// undici failures → typed gateway errors (connect failures and resets are retryable, like timeouts).
import { GatewayError } from '../../common/errors.js';

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export function isAbortError(err: unknown): boolean {
  const e = err as { name?: string; code?: string } | null;
  return e?.name === 'AbortError' || e?.code === 'UND_ERR_ABORTED' || e?.code === 'ABORT_ERR';
}

/** Network failures (errors carrying a system or undici `code`) become typed errors; anything else is a bug and stays as it is. */
export function upstreamFailure(providerId: string, err: unknown): unknown {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return err;
  if (TIMEOUT_CODES.has(code)) {
    return new GatewayError('llmgw_upstream_timeout', 504, `provider ${providerId} timed out (${code})`, { retryable: true, cause: err });
  }
  return new GatewayError('llmgw_upstream_error', 502, `provider ${providerId} could not be reached (${code})`, {
    retryable: true,
    cause: err,
  });
}
