// The credentials a provider sends upstream, as the one list its errors are scrubbed of. Every source of
// a provider key (config, key file, the quota service) adds to this function, nowhere else.
import type { Provider } from './provider.js';

/** Configured header names whose values authenticate (`Authorization`, `x-api-key`, `*-token`, …). */
const CREDENTIAL_HEADER = /authorization|key|token|secret|password|cookie/i;

/**
 * The provider's secrets: its API key (`apiKey`, `apiKeyFile` as read at config load, or the one the quota
 * service handed over) and the values
 * of its configured credential headers, plus the bare token of an `Authorization: <scheme> <token>` one.
 * Called on error paths only, never per successful request.
 */
export function providerSecrets(provider: Provider): string[] {
  const { headers } = provider.config;
  const apiKey = provider.key();
  const secrets: string[] = [];
  if (apiKey !== undefined) secrets.push(apiKey);
  for (const [name, value] of Object.entries(headers)) {
    if (!CREDENTIAL_HEADER.test(name)) continue;
    secrets.push(value);
    const token = /^\s*[A-Za-z][\w-]*\s+(\S+)\s*$/.exec(value)?.[1];
    if (token !== undefined) secrets.push(token);
  }
  return secrets;
}
