// Builds the sidecar's side of global budgets from config: the outbox in the sidecar's SQLite file, the
// gRPC client and the lease manager. Loaded only when `quota` is configured (gRPC costs start-up time).
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { QuotaConfig } from '../config/schema.js';
import type { SidecarDatabase } from '../storage/database.js';
import { LeaseManager } from './lease-manager.js';
import { createQuotaClient } from './quota-client.js';
import { UsageOutbox } from './usage-outbox.js';

export interface QuotaStack {
  manager: LeaseManager;
  close(): Promise<void>;
}

/** The pod's identity, from the environment the injector sets. */
export function identityFromEnv(env: NodeJS.ProcessEnv): { namespace: string; service: string; team: string; pod: string } {
  return {
    namespace: env.POD_NAMESPACE || 'default',
    service: env.LLMGW_SERVICE ?? '',
    team: env.LLMGW_TEAM ?? '',
    pod: env.POD_NAME || hostname(),
  };
}

export function createQuotaStack(opts: { config: QuotaConfig; db: SidecarDatabase; env: NodeJS.ProcessEnv; clock: Clock; logger: Logger }): QuotaStack {
  const rpc = createQuotaClient(opts.config.address);
  const manager = new LeaseManager({
    rpc,
    outbox: new UsageOutbox(opts.db),
    identity: identityFromEnv(opts.env),
    config: opts.config,
    clock: opts.clock,
    logger: opts.logger,
  });
  manager.warmUp(opts.config.defaultPriority);
  return {
    manager,
    async close() {
      await manager.close();
      rpc.close();
    },
  };
}
