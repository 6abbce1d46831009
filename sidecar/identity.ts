// The pod's identity, from the environment the injector sets: whom budgets charge and whose cache it is.
import { hostname } from 'node:os';

export interface PodIdentity {
  namespace: string;
  service: string;
  team: string;
  pod: string;
}

export function identityFromEnv(env: NodeJS.ProcessEnv): PodIdentity {
  return {
    namespace: env.POD_NAMESPACE || 'default',
    service: env.LLMGW_SERVICE ?? '',
    team: env.LLMGW_TEAM ?? '',
    pod: env.POD_NAME || hostname(),
  };
}
