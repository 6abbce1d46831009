// `llmgw quota-service`'s composition root: the store (a SQLite file, or PostgreSQL shared by several
// replicas) and its allocator, who may call (token verification, operator credentials), the gRPC server
// (quota, admin, health; TLS when given), the status listener, and the timers that expire leases and prune
// old consumption.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../common/clock.js';
import { closeServer, listen, listenError, type HostPort } from '../common/http/listen.js';
import { createStatusServer } from '../common/http/status-server.js';
import { logReload } from '../common/reload-log.js';
import { serverTlsCredentials } from '../common/tls/grpc-credentials.js';
import { loadQuotaProto } from '../proto/load.js';
import type { AllocatorOptions } from './allocator.js';
import { Authenticator, type AuthenticatorOptions } from './auth/authenticator.js';
import { quotaAdminHandlers, quotaServiceHandlers } from './grpc-handlers.js';
import { HealthService } from './health.js';
import { ServicePrices } from './prices.js';
import { ProviderKeys } from './provider-keys.js';
import { QuotaMetrics } from './quota-metrics.js';
import { usagePageMount } from './ui/usage-page.js';
import { pruneExpired } from './retention.js';
import type { QuotaAllocator } from './quota-allocator.js';
import { sqliteBackend, type StoreBackend } from './store-backend.js';

export interface QuotaServiceOptions {
  listen: HostPort;
  statusListen: HostPort;
  /** The SQLite file (one replica)… */
  dbPath: string;
  /** …or a postgres:// (postgresql://) URL: the database several replicas share (dbPath is then not used). */
  storeUrl?: string;
  logger: Logger;
  clock?: Clock;
  leaseTtlMs?: number;
  /** Who may call: the token verifier (none only when asked for) and the operator credentials. */
  auth: AuthenticatorOptions;
  /** gRPC over TLS (files re-read when they change); with clientCaFile, client certificates are required. */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string; refreshMs?: number };
  /** The command-line flags that set the listeners, named when an address cannot be had (default --listen, --status-listen). */
  listenFlags?: { listen?: string; statusListen?: string };
  /** Provider keys held centrally (--provider-keys), re-read on change. */
  providerKeysFile?: string;
  /** The operator's prices over the shipped table (--prices), re-read on change. */
  pricesFile?: string;
}

/**
 * The gRPC server's options (the RPC bench's no-op server takes them too). Channelz, gRPC's own
 * introspection service, is not served: its per-call bookkeeping is pure cost here.
 */
export const QUOTA_GRPC_SERVER_OPTIONS = { 'grpc.enable_channelz': 0 } as const;

export interface QuotaService {
  readonly address: HostPort;
  readonly statusAddress: HostPort;
  readonly allocator: QuotaAllocator;
  /** The price table usage is charged by. */
  readonly prices: ServicePrices;
  stop(): Promise<void>;
}

export async function startQuotaService(opts: QuotaServiceOptions): Promise<QuotaService> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger;
  const metrics = new QuotaMetrics();
  const auth = new Authenticator(opts.auth);
  const providerKeys = opts.providerKeysFile === undefined ? undefined : new ProviderKeys(opts.providerKeysFile, logReload(logger, '--provider-keys'));
  const tls = opts.tls === undefined ? undefined : serverTlsCredentials({ ...opts.tls, onReload: logReload(logger, '--tls-cert/--tls-key/--tls-client-ca') });
  const reloaded = logReload(logger, '--prices');
  const prices = new ServicePrices(opts.pricesFile, (result, err) => {
    metrics.priceReloads.inc({ result: result === 'ok' ? 'applied' : 'rejected' });
    reloaded(result, err);
  });
  const allocatorOptions: AllocatorOptions = {
    clock,
    ...(opts.leaseTtlMs === undefined ? {} : { leaseTtlMs: opts.leaseTtlMs }),
    onOverReport: (f) => {
      metrics.overReports.inc();
      logger.warn(f, 'an incarnation reported well beyond what its leases covered (charged; fail-open spending, or a tampered sidecar)');
    },
    prices: () => prices.current.index,
    onUnpriced: (model, tokens) => metrics.unpricedTokens.inc({ model }, tokens),
    onCost: (scope, costNano) => metrics.costUsd.inc({ scope }, costNano / 1e9),
  };
  let backend: StoreBackend;
  try {
    backend = opts.storeUrl === undefined ? sqliteBackend(opts.dbPath, allocatorOptions, clock, logger) : await (await import('./postgres/postgres-backend.js')).postgresBackend(opts.storeUrl, allocatorOptions, logger);
  } catch (err) {
    prices.close();
    providerKeys?.close();
    tls?.close();
    auth.close();
    throw err;
  }
  const allocator = backend.allocator;
  metrics.leases.set(allocator.activeLeases);
  metrics.registry.onCollect(() => {
    metrics.budgetUsed.clear();
    metrics.budgetLimit.clear();
    // In the budget's unit: tokens, or USD (kept in nano-USD).
    for (const b of backend.budgets()) {
      const usd = b.unit === 'usd';
      const labels = { scope: b.scope, window: b.window, unit: b.unit };
      metrics.budgetUsed.set(usd ? b.used / 1e9 : b.used, labels);
      metrics.budgetLimit.set(usd ? b.tokens / 1e9 : b.tokens, labels);
    }
  });
  const proto = loadQuotaProto();
  const health = new HealthService(['llmgw.quota.v1.QuotaService', 'llmgw.quota.v1.QuotaAdmin']);
  // With client certificates, connections are renewed every half hour, so a client CA that was replaced
  // (a revoked client) stops being honoured on connections opened before the change too.
  const server = new Server({
    ...QUOTA_GRPC_SERVER_OPTIONS,
    ...(opts.tls?.clientCaFile === undefined ? {} : { 'grpc.max_connection_age_ms': 1_800_000, 'grpc.max_connection_age_grace_ms': 30_000 }),
  });
  server.addService(
    proto.QuotaService.service,
    quotaServiceHandlers({ alloc: allocator, auth, metrics, logger, tls: tls !== undefined, prices: () => prices.current, ...(providerKeys ? { providerKeys } : {}) }),
  );
  server.addService(proto.QuotaAdmin.service, quotaAdminHandlers(allocator, auth, metrics, logger));
  server.addService(proto.Health.service, health.implementation());
  let ready = false;
  const statusServer = createStatusServer({
    registry: metrics.registry,
    ready: () => ready && backend.ready(),
    ...(backend.refreshBudgets === undefined ? {} : { beforeMetrics: backend.refreshBudgets }),
    mount: usagePageMount({ view: backend.usageView({ metrics, prices: () => prices.current.index.table }), auth, clock, logger }),
  });

  const closeAll = async (): Promise<void> => {
    auth.close();
    providerKeys?.close();
    prices.close();
    tls?.close();
    return backend.close();
  };
  let port: number;
  let statusAddress: HostPort;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
      server.bindAsync(`${host}:${opts.listen.port}`, tls?.credentials ?? ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(listenError(err, opts.listen, opts.listenFlags?.listen ?? '--listen')) : resolve(p),
      );
    });
    statusAddress = await listen(statusServer, opts.statusListen, opts.listenFlags?.statusListen ?? '--status-listen');
  } catch (err) {
    server.forceShutdown();
    await closeAll();
    throw err;
  }

  let ticking: Promise<void> | undefined;
  const sweep = setInterval(() => {
    if (ticking !== undefined) return; // the last one is still going (a slow database)
    ticking = Promise.resolve(backend.tick())
      .then(
        () => metrics.leases.set(allocator.activeLeases),
        (err: unknown) => logger.error({ err }, 'could not sweep lapsed leases'),
      )
      .finally(() => {
        ticking = undefined;
      });
  }, 1000);
  sweep.unref();
  let pruning: Promise<void> | undefined;
  let stopped = false;
  const prune = (): void => {
    if (pruning !== undefined) return; // the last run is still going
    pruning = pruneExpired(backend.prunable, clock.now(), () => stopped)
      .then(
        (rows) => {
          if (rows > 0) opts.logger.info({ rows }, 'pruned old consumption and report sequences');
        },
        (err: unknown) => opts.logger.error({ err }, 'could not prune old consumption and report sequences'),
      )
      .finally(() => {
        pruning = undefined;
      });
  };
  prune();
  const pruner = setInterval(prune, 3_600_000);
  pruner.unref();
  ready = true;
  const address = { host: opts.listen.host, port };
  if (auth.mode === 'none') logger.warn('--auth none: sidecar identities are NOT verified; any caller can spend, report to and read any budget');
  if (auth.adminOpen) logger.warn('the admin API is open to every caller (--auth none and no --admin-token-file or --admin-subjects)');
  else if (!auth.adminReachable) logger.warn('the admin API accepts no credential: give --admin-token-file or --admin-subjects to change budgets');
  if (tls === undefined) logger.warn('gRPC without TLS: tokens and usage cross the network in the clear (give --tls-cert and --tls-key)');
  logger.info(
    { listen: address, statusListen: statusAddress, ...backend.where, leases: allocator.activeLeases, auth: auth.mode, tls: tls !== undefined, mtls: opts.tls?.clientCaFile !== undefined, providerKeys: providerKeys !== undefined, prices: prices.current.version },
    'quota service started',
  );

  let stopping: Promise<void> | undefined;
  return {
    address,
    statusAddress,
    allocator,
    prices,
    stop: () =>
      (stopping ??= (async () => {
        ready = false;
        health.setAll('NOT_SERVING');
        clearInterval(sweep);
        clearInterval(pruner);
        stopped = true;
        await pruning;
        await ticking;
        health.close();
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        statusServer.closeAllConnections();
        await closeServer(statusServer);
        await closeAll();
        opts.logger.info('quota service stopped');
      })()),
  };
}
