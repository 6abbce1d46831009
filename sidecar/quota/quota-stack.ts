// Builds the sidecar's side of global budgets from config: the service-account token it authenticates
// with, the outbox in the sidecar's SQLite file, the gRPC client (TLS when configured), and the lease
// manager, whose answers tell the sidecar's provider keys when to fetch again. Loaded only when `quota` is configured (gRPC costs
// start-up time).
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import { logReload } from '../../common/reload-log.js';
import type { QuotaConfig } from '../config/schema.js';
import { quotaIdentity } from '../identity.js';
import type { LeaseMetrics } from '../metrics/sidecar-metrics.js';
import type { SidecarDatabase } from '../storage/database.js';
import { LeaseManager } from './lease-manager.js';
import type { ProviderKeyRing } from './provider-keys.js';
import type { QuotaRpc } from './quota-rpc.js';
import { createQuotaClient } from './worker-quota-client.js';
import { ServiceAccountToken } from './service-account-token.js';
import { UsageOutbox } from './usage-outbox.js';

export interface QuotaStack {
  manager: LeaseManager;
  /** Unsent usage and the in-flight journal, in the sidecar's SQLite file. */
  outbox: UsageOutbox;
  rpc: QuotaRpc;
  close(): Promise<void>;
}

export interface QuotaStackOptions {
  config: QuotaConfig;
  db: SidecarDatabase;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: Logger;
  /** The sidecar's provider keys held by the quota service: this stack keeps them current. */
  keys: ProviderKeyRing;
  /** The sidecar's lease metrics (SidecarMetrics.quota). */
  metrics?: LeaseMetrics;
}

export function createQuotaStack(opts: QuotaStackOptions): QuotaStack {
  const { config, logger } = opts;
  const token = new ServiceAccountToken(config.tokenFile, () => opts.clock.monotonic(), (err) =>
    logger.warn(
      { tokenFile: config.tokenFile, err: (err as NodeJS.ErrnoException).code ?? String(err) },
      'cannot read the service-account token (quota.tokenFile); quota calls go without one, which only a quota service run with --auth none accepts',
    ),
  );
  const rpc = createQuotaClient(config.address, {
    token: () => token.current(),
    ...(config.tls ? { tls: config.tls } : {}),
    onTlsReload: logReload(logger, 'quota.tls'),
  });
  const keys = opts.keys;
  const outbox = new UsageOutbox(opts.db);
  const { recovered } = outbox;
  if (recovered.requests > 0) {
    logger.warn(
      { requests: recovered.requests, tokens: recovered.tokens },
      `settled ${recovered.requests} request(s) that were in flight when the sidecar last stopped, at their prompt plus the output checkpointed; the usage goes to the quota service`,
    );
  }
  if (recovered.settledTokens > 0) {
    logger.info({ tokens: recovered.settledTokens }, 'recorded the usage of requests that had settled just before the sidecar last stopped');
  }
  const manager = new LeaseManager({
    rpc,
    outbox,
    identity: () => quotaIdentity(token.claims(), opts.env),
    onAnswer: (res) => keys.observe(res.providerKeysVersion),
    onRefused: () => token.invalidate(),
    config,
    clock: opts.clock,
    logger,
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
  });
  manager.warmUp(config.defaultPriority);
  return {
    manager,
    outbox,
    rpc,
    async close() {
      // Running streams' usage so far is on disk before the leases go back, in case the drain ends them.
      outbox.checkpointNow();
      await manager.close();
      outbox.close();
      rpc.close();
    },
  };
}
