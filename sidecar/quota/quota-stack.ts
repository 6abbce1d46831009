// Builds the sidecar's side of global budgets from config: the outbox in the sidecar's SQLite file, the
// gRPC client and the lease manager. Loaded only when `quota` is configured (gRPC costs start-up time).
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { QuotaConfig } from '../config/schema.js';
import { identityFromEnv } from '../identity.js';
import type { SidecarDatabase } from '../storage/database.js';
import { LeaseManager } from './lease-manager.js';
import { createQuotaClient } from './quota-client.js';
import { UsageOutbox } from './usage-outbox.js';

export interface QuotaStack {
  manager: LeaseManager;
  close(): Promise<void>;
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
