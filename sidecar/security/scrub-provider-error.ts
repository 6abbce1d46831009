// A provider's error as the rest of the gateway may see it: its body (parsed JSON or text) and the
// headers kept from it, with credentials removed (see scrub-credentials.ts).
import { ProviderError } from '../errors.js';
import { REDACTED, scrubCredentials } from './scrub-credentials.js';

/** Error bodies are a few levels deep; anything deeper is not walked but dropped. */
const MAX_DEPTH = 32;

/** JSON fields whose string value is a credential whatever it looks like. */
const CREDENTIAL_FIELD = /api[_\- ]?key|^(?:proxy-)?authorization$|secret|password/i;

/** `err` with its body and Retry-After values scrubbed; `err` itself when there was nothing to remove. */
export function scrubProviderError(err: ProviderError, secrets: readonly string[]): ProviderError {
  const body = scrubJson(err.body, secrets, 0);
  const retryAfter = err.retryAfter === undefined ? undefined : scrubCredentials(err.retryAfter, secrets);
  const retryAfterMs = err.retryAfterMs === undefined ? undefined : scrubCredentials(err.retryAfterMs, secrets);
  if (body === err.body && retryAfter === err.retryAfter && retryAfterMs === err.retryAfterMs) return err;
  return new ProviderError({ status: err.status, providerId: err.providerId, format: err.format, body, retryAfter, retryAfterMs });
}

/**
 * Every string of a parsed JSON value (keys included) scrubbed, copying only what changed. Working on the
 * parsed strings rather than the JSON text means no escape sequence can hide a key or be cut in two.
 */
export function scrubJson(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return scrubCredentials(value, secrets);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((item: unknown, i) => {
      const scrubbed = scrubJson(item, secrets, depth + 1);
      if (scrubbed !== item) (out ??= value.slice())[i] = scrubbed;
    });
    return out ?? value;
  }
  let changed = false;
  const entries = Object.entries(value).map(([key, item]): [string, unknown] => {
    const k = scrubCredentials(key, secrets);
    const v = typeof item === 'string' && item.length >= 8 && CREDENTIAL_FIELD.test(key) ? REDACTED : scrubJson(item, secrets, depth + 1);
    if (k !== key || v !== item) changed = true;
    return [k, v];
  });
  return changed ? Object.fromEntries(entries) : value;
}
