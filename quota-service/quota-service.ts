// `llmgw quota-service`'s composition root: the SQLite store, the allocator, the gRPC server (quota,
// admin, health), the status listener, and the timers that expire leases and prune old consumption.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadQuotaProto } from '../proto/load.js';
import { systemClock, type Clock } from '../sidecar/clock.js';
import { closeServer, listen, type HostPort } from '../sidecar/http/listen.js';
import { createStatusServer } from '../sidecar/http/status-server.js';
import { Allocator } from './allocator.js';
import { quotaAdminHandlers, quotaServiceHandlers } from './grpc-handlers.js';
import { HealthService } from './health.js';
import { QuotaMetrics } from './quota-metrics.js';
import { SqliteQuotaStore } from './store.js';
import { pruneExpired } from './retention.js';

export interface QuotaServiceOptions {
  listen: HostPort;
  statusListen: HostPort;
  dbPath: string;
  logger: Logger;
  clock?: Clock;
  leaseTtlMs?: number;
}

export interface QuotaService {
  readonly address: HostPort;
  readonly statusAddress: HostPort;
  readonly allocator: Allocator;
  stop(): Promise<void>;
}

export async function startQuotaService(opts: QuotaServiceOptions): Promise<QuotaService> {
  const clock = opts.clock ?? systemClock;
  const store = new SqliteQuotaStore(opts.dbPath);
  const allocator = new Allocator(store, { clock, ...(opts.leaseTtlMs === undefined ? {} : { leaseTtlMs: opts.leaseTtlMs }) });
  const metrics = new QuotaMetrics();
  metrics.leases.set(allocator.activeLeases);
  const proto = loadQuotaProto();
  const health = new HealthService(['llmgw.quota.v1.QuotaService', 'llmgw.quota.v1.QuotaAdmin']);
  const server = new Server();
  server.addService(proto.QuotaService.service, quotaServiceHandlers(allocator, metrics, opts.logger));
  server.addService(proto.QuotaAdmin.service, quotaAdminHandlers(allocator, metrics, opts.logger));
  server.addService(proto.Health.service, health.implementation());
  let ready = false;
  const statusServer = createStatusServer({ registry: metrics.registry, ready: () => ready });

  const port = await new Promise<number>((resolve, reject) => {
    const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
    server.bindAsync(`${host}:${opts.listen.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const statusAddress = await listen(statusServer, opts.statusListen);

  const sweep = setInterval(() => {
    allocator.sweep();
    metrics.leases.set(allocator.activeLeases);
  }, 1000);
  sweep.unref();
  let pruning: Promise<void> | undefined;
  let stopped = false;
  const prune = (): void => {
    if (pruning !== undefined) return; // the last run is still going
    pruning = pruneExpired(store, clock.now(), () => stopped)
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
  opts.logger.info({ listen: address, statusListen: statusAddress, db: opts.dbPath, leases: allocator.activeLeases }, 'quota service started');

  let stopping: Promise<void> | undefined;
  return {
    address,
    statusAddress,
    allocator,
    stop: () =>
      (stopping ??= (async () => {
        ready = false;
        health.setAll('NOT_SERVING');
        clearInterval(sweep);
        clearInterval(pruner);
        stopped = true;
        await pruning;
        health.close();
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        statusServer.closeAllConnections();
        await closeServer(statusServer);
        store.close();
        opts.logger.info('quota service stopped');
      })()),
  };
}
