// Builds the sidecar's side of global budgets from config: the service-account token it authenticates
// with, the outbox in the sidecar's SQLite file, the gRPC client (TLS when configured), the lease manager,
// and the provider keys it fetches from the service. Loaded only when `quota` is configured (gRPC costs
// start-up time).
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { QuotaConfig } from '../config/schema.js';
import { quotaIdentity } from '../identity.js';
import type { SidecarDatabase } from '../storage/database.js';
import { LeaseManager } from './lease-manager.js';
import { ProviderKeyRing } from './provider-keys.js';
import { createQuotaClient } from './quota-client.js';
import { ServiceAccountToken } from './service-account-token.js';
import { UsageOutbox } from './usage-outbox.js';

export interface QuotaStack {
  manager: LeaseManager;
  keys: ProviderKeyRing;
  close(): Promise<void>;
}

export interface QuotaStackOptions {
  config: QuotaConfig;
  db: SidecarDatabase;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: Logger;
  /** The key names of providers configured with `apiKeyFrom: quota`. */
  keyNames: () => readonly string[];
  /** The provider keys of the previous quota settings, which serve until new ones arrive. */
  previousKeys?: ProviderKeyRing;
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
    onTlsReload: (result, detail) =>
      result === 'ok' ? logger.info({ detail }, 'quota TLS files reloaded') : logger.error({ detail }, 'quota TLS files changed but cannot be used; keeping the last good ones'),
  });
  const keys = new ProviderKeyRing(opts.keyNames, rpc, logger);
  if (opts.previousKeys !== undefined) keys.adopt(opts.previousKeys);
  const manager = new LeaseManager({
    rpc,
    outbox: new UsageOutbox(opts.db),
    identity: () => quotaIdentity(token.claims(), opts.env),
    onAnswer: (res) => keys.observe(res.providerKeysVersion),
    onRefused: () => token.invalidate(),
    config,
    clock: opts.clock,
    logger,
  });
  manager.warmUp(config.defaultPriority);
  void keys.refresh();
  return {
    manager,
    keys,
    async close() {
      keys.close();
      await manager.close();
      rpc.close();
    },
  };
}
