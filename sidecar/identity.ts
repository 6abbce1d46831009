// The pod's identity. For the quota service it comes from the projected service-account token, which the
// service verifies (the environment only fills in what no token says, for a service run with --auth none);
// the response cache keys its entries by the names the environment gives.
import { hostname } from 'node:os';
import type { IdentityMsg } from '../proto/messages.js';
import type { TokenClaims } from './quota/service-account-token.js';

export interface PodIdentity {
  namespace: string;
  service: string;
  pod: string;
}

export function identityFromEnv(env: NodeJS.ProcessEnv): PodIdentity {
  return {
    namespace: env.POD_NAMESPACE || 'default',
    service: env.LLMGW_SERVICE ?? '',
    pod: env.POD_NAME || hostname(),
  };
}

/**
 * The Identity message of quota calls: what the token says when there is one (the service checks every
 * field against it), else the environment's names. Teams are operator data and never sent.
 */
export function quotaIdentity(claims: TokenClaims | undefined, env: NodeJS.ProcessEnv): IdentityMsg {
  if (claims !== undefined) return { namespace: claims.namespace, service: claims.serviceAccount, team: '', pod: claims.pod };
  return { ...identityFromEnv(env), team: '' };
}
