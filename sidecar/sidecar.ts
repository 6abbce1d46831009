// The sidecar's composition root: builds the runtime from config, the pipeline, both listeners, hot
// reload, and the drain on shutdown. The order of the request pipeline is written down here, once.
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../common/clock.js';
import { ConfigError } from '../common/config/config-error.js';
import { closeServer, listen, type HostPort } from '../common/http/listen.js';
import { createStatusServer } from '../common/http/status-server.js';
import { flushLogger, throttledWarn, type LogLevel } from '../common/logger.js';
import { AccessLog } from './access-log.js';
import { cacheInterceptor } from './cache/cache-interceptor.js';
import type { CacheStore } from './cache/cache-store.js';
import { type LoadOptions } from './config/load-config.js';
import type { Config } from './config/schema.js';
import { watchConfig, type ConfigWatcher } from './config/watch-config.js';
import { applyServerLimits, createDataServer } from './http/data-server.js';
import { Inflight } from './http/inflight.js';
import { identityFromEnv } from './identity.js';
import { rateLimitInterceptor } from './limits/rate-limit-interceptor.js';
import { SidecarMetrics } from './metrics/sidecar-metrics.js';
import { providerHandler } from './pipeline/provider-handler.js';
import { compose, type Interceptor } from './pipeline/types.js';
import { costInterceptor } from './pricing/cost-interceptor.js';
import { PriceBook } from './pricing/price-book.js';
import { ProviderKeyRing } from './quota/provider-keys.js';
import { quotaInterceptor } from './quota/quota-interceptor.js';
import type { QuotaStack } from './quota/quota-stack.js';
import type { ResponseStore } from './responses/response-store.js';
import { responsesStateInterceptor } from './responses/state-interceptor.js';
import { TargetStates } from './resilience/target-state.js';
import { buildRuntime, type Runtime } from './runtime.js';
import type { Tracing } from './tracing/tracing.js';
import type { SidecarDatabase } from './storage/database.js';
import { PoolRegistry } from './upstream/pool-registry.js';

/** The key names of the providers configured with `apiKeyFrom: quota`. */
export function quotaKeyNames(config: Config): string[] {
  return Object.entries(config.providers)
    .filter(([, p]) => p.apiKeyFrom === 'quota')
    .map(([id, p]) => p.apiKeyName ?? id);
}

export interface SidecarOptions {
  config: Config;
  /** Watched for changes when given. */
  configPath?: string;
  listen: HostPort;
  statusListen: HostPort;
  /** The command-line flags that set the listeners, named when an address cannot be had (default --listen, --status-listen). */
  listenFlags?: { listen?: string; statusListen?: string };
  logger: Logger;
  /** A `--log-level` flag wins over `logging.level` in the config, across reloads too. */
  logLevelOverride?: LogLevel;
  clock?: Clock;
  random?: () => number;
  /** Environment and secret readers used on reload. */
  loadOptions?: LoadOptions;
  /** Where POD_NAMESPACE, LLMGW_SERVICE and POD_NAME are read (the cache scope; quota identity without a token); default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface Sidecar {
  readonly address: HostPort;
  readonly statusAddress: HostPort;
  readonly metrics: SidecarMetrics;
  /** The config in force. */
  config(): Config;
  /** Applies a new, already validated config. */
  reload(config: Config): void;
  /** Stops accepting, lets requests and streams finish within `server.drainTimeoutMs`, closes everything. */
  stop(): Promise<void>;
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger;
  const pools = new PoolRegistry();
  const metrics = new SidecarMetrics();
  const inflight = new Inflight();
  let quota: QuotaStack | undefined;
  // Request costs are shown by the shipped prices until the quota service sends its table.
  const prices = new PriceBook(logger);
  // Keys held by the quota service (apiKeyFrom: quota), looked up per request (they rotate); the ring
  // outlives changes of the quota settings.
  let runtime: Runtime;
  const keys = new ProviderKeyRing(() => quotaKeyNames(runtime.config), () => quota?.rpc, logger);
  const quotaKey = (name: string): string | undefined => keys.get(name);
  runtime = buildRuntime(opts.config, pools, quotaKey);
  const accessLog = new AccessLog(logger, opts.config.logging.accessLog, clock);
  logger.level = opts.logLevelOverride ?? opts.config.logging.level;
  let draining = false;
  let ready = false;

  // The SQLite file, the cache and the quota stack exist only when config asks for them (SQLite and gRPC
  // are loaded on demand: they cost start-up time and memory).
  let db: SidecarDatabase | undefined;
  const database = async (config: Config): Promise<SidecarDatabase> => {
    if (db === undefined) {
      const { openDatabase } = await import('./storage/database.js');
      db = openDatabase(config.storage.path, logger);
    }
    return db;
  };
  let quotaSettings = JSON.stringify(undefined);
  const syncQuota = async (config: Config): Promise<void> => {
    const settings = JSON.stringify(config.quota);
    if (settings === quotaSettings) return;
    quotaSettings = settings;
    // The old stack goes first (its leases and usage go back); the keys it fetched stay in the ring.
    const old = quota;
    quota = undefined;
    if (old !== undefined) await old.close();
    if (config.quota === undefined) return;
    const { createQuotaStack } = await import('./quota/quota-stack.js');
    quota = createQuotaStack({ config: config.quota, db: await database(config), env: opts.env ?? process.env, clock, logger, keys, metrics: metrics.quota });
    quota.manager.usePrices(prices);
    void keys.refresh();
  };
  await syncQuota(opts.config);
  let cache: CacheStore | undefined;
  const warnCacheFailed = throttledWarn(logger, clock, 'the response cache failed; the request went on without it');
  const onCacheError = (err: unknown): void => {
    metrics.cacheErrors.inc();
    warnCacheFailed({ err });
  };
  const syncCache = async (config: Config): Promise<void> => {
    if (config.cache === undefined || cache !== undefined) return;
    const { CacheStore } = await import('./cache/cache-store.js');
    try {
      cache = new CacheStore(await database(config), onCacheError);
    } catch (err) {
      // A locked or read-only file: serve without a cache (tried again on the next config change).
      metrics.cacheErrors.inc();
      logger.warn({ err, path: config.storage.path }, 'could not open the response cache; serving without it');
    }
  };
  await syncCache(opts.config);
  metrics.registry.onCollect(() => {
    if (cache === undefined) return;
    metrics.cacheEntries.set(cache.size.entries);
    metrics.cacheBytes.set(cache.size.bytes);
  });
  // Responses kept for previous_response_id and GET /v1/responses/{id}: the file is opened on first use.
  let responseStore: Promise<ResponseStore | undefined> | undefined;
  const warnStoreFailed = throttledWarn(logger, clock, 'the Responses store failed; the request went on without it');
  const responses = (): Promise<ResponseStore | undefined> =>
    (responseStore ??= (async () => {
      const { ResponseStore } = await import('./responses/response-store.js');
      try {
        return new ResponseStore(await database(runtime.config), (err) => warnStoreFailed({ err }));
      } catch (err) {
        logger.warn({ err, path: runtime.config.storage.path }, 'could not open the Responses store; follow-ups by previous_response_id go to the provider');
        return undefined;
      }
    })());
  // Expired entries go in the background, never on the request path.
  const sweeper = setInterval(() => {
    cache?.sweep(clock.now());
    if (responseStore !== undefined) void responseStore.then((s) => s?.sweep(clock.now()));
  }, 60_000);
  sweeper.unref();
  const identity = identityFromEnv(opts.env ?? process.env);
  // Tracing is loaded only when the config turns it on; a change of its settings replaces the tracer (the
  // old one exports what it holds in the background).
  let tracing: Tracing | undefined;
  let tracingSettings = JSON.stringify(undefined);
  const syncTracing = async (config: Config): Promise<void> => {
    const settings = JSON.stringify(config.tracing);
    if (settings === tracingSettings) return;
    tracingSettings = settings;
    const old = tracing;
    tracing = undefined;
    if (old !== undefined) void old.shutdown();
    if (config.tracing === undefined) return;
    const { createTracing } = await import('./tracing/tracing.js');
    tracing = createTracing(config.tracing, identity, logger);
  };
  await syncTracing(opts.config);
  const responsesScope = `${identity.namespace}/${identity.service}`;

  // Outermost first: a follow-up is expanded to its conversation before anything else looks at it; a cache
  // hit spends neither rate limit nor quota (and costs nothing).
  const interceptors: Interceptor[] = [
    responsesStateInterceptor({ store: responses, scope: responsesScope, clock, config: () => runtime.config }),
    costInterceptor({ book: prices, config: () => runtime.config }),
    cacheInterceptor({
      store: () => (runtime.config.cache === undefined ? undefined : cache),
      runtime: () => runtime,
      scope: `${identity.namespace}/${identity.service}`,
      clock,
      onSemantic: (result) => metrics.cacheSemantic.inc({ result }),
    }),
    rateLimitInterceptor({ config: () => runtime.config, clock }),
    quotaInterceptor({ stack: () => quota, config: () => runtime.config }),
  ];
  // Breakers and balancing state outlive config reloads (keyed by provider and upstream model).
  const targets = new TargetStates(() => runtime.config.circuitBreaker, metrics.resilience.transition);
  metrics.resilience.watchCircuits(targets, () => runtime, () => clock.monotonic());
  const handler = compose(
    interceptors,
    providerHandler({ runtime: () => runtime, clock, targets, logger, observer: metrics.resilience, ...(opts.random ? { random: opts.random } : {}) }),
  );

  const dataServer: Server = createDataServer({
    handler,
    runtime: () => runtime,
    clock,
    metrics,
    inflight,
    accessLog,
    logger,
    draining: () => draining,
    startedAtSeconds: Math.floor(clock.now() / 1000),
    storedResponses: { store: responses, scope: responsesScope, clock },
    tracing: () => tracing,
  });
  // Providers whose key comes from the quota service cannot be called before it arrived: not ready until then.
  const keysReady = (): boolean => keys.ready;
  const statusServer = createStatusServer({ registry: metrics.registry, ready: () => ready && !draining && keysReady() });

  const reload = (config: Config): void => {
    runtime = buildRuntime(config, pools, quotaKey);
    applyServerLimits(dataServer, runtime);
    accessLog.setEnabled(config.logging.accessLog);
    logger.level = opts.logLevelOverride ?? config.logging.level;
    syncQuota(config).catch((err: unknown) => logger.error({ err }, 'could not apply the new quota settings'));
    syncCache(config).catch((err: unknown) => logger.error({ err }, 'could not open the response cache'));
    syncTracing(config).catch((err: unknown) => logger.error({ err }, 'could not apply the new tracing settings'));
  };

  let watcher: ConfigWatcher | undefined;
  if (opts.configPath !== undefined) {
    const path = opts.configPath;
    watcher = watchConfig({
      ...opts.loadOptions,
      path,
      onReload: (config) => {
        reload(config);
        metrics.configReloads.inc({ result: 'applied' });
        logger.info({ models: runtime.router.modelNames }, 'config reloaded');
      },
      onInvalid: (err) => {
        metrics.configReloads.inc({ result: 'rejected' });
        const problems = err instanceof ConfigError ? err.problems : [String(err)];
        logger.warn({ problems }, 'config change rejected; keeping the last good config');
      },
    });
  }

  let address: HostPort;
  let statusAddress: HostPort;
  try {
    address = await listen(dataServer, opts.listen, opts.listenFlags?.listen ?? '--listen');
    statusAddress = await listen(statusServer, opts.statusListen, opts.listenFlags?.statusListen ?? '--status-listen');
  } catch (err) {
    watcher?.close();
    await closeServer(dataServer);
    await pools.close();
    clearInterval(sweeper);
    await quota?.close();
    await tracing?.shutdown();
    keys.close();
    db?.close();
    throw err;
  }
  ready = true;
  logger.info({ listen: address, statusListen: statusAddress, models: runtime.router.modelNames }, 'sidecar started');

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    draining = true;
    watcher?.close();
    const closed = closeServer(dataServer);
    dataServer.closeIdleConnections();
    const drainMs = runtime.config.server.drainTimeoutMs;
    // Said at the start, every second while requests remain, and at the end: a drain is never silent.
    const drainStart = clock.monotonic();
    const waited = (): number => Math.round(clock.monotonic() - drainStart);
    const inflightAtStart = inflight.size;
    if (inflightAtStart > 0) logger.info({ inflight: inflightAtStart, drainMs }, `draining: waiting up to ${drainMs} ms for ${inflightAtStart} request(s) in flight (streams included)`);
    const progress = setInterval(() => logger.info({ inflight: inflight.size, waitedMs: waited(), drainMs }, `draining: ${inflight.size} request(s) still in flight`), 1000);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      inflight.idle().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), drainMs);
      }),
    ]);
    clearTimeout(timer);
    clearInterval(progress);
    if (timedOut) logger.warn({ inflight: inflight.size, drainMs }, 'drain window over; closing remaining connections');
    else if (inflightAtStart > 0) logger.info({ waitedMs: waited() }, 'drained: every request in flight finished');
    dataServer.closeAllConnections();
    await closed;
    statusServer.closeAllConnections();
    await closeServer(statusServer);
    await pools.close();
    // Leases go back with the last usage; what cannot be sent stays in the SQLite file for next time.
    clearInterval(sweeper);
    await quota?.close();
    keys.close();
    cache?.flushTouches();
    db?.close();
    // The last requests' spans go out (at most tracing.exportTimeoutMs).
    await tracing?.shutdown();
    logger.info('sidecar stopped');
    flushLogger(logger);
  };

  return {
    address,
    statusAddress,
    metrics,
    config: () => runtime.config,
    reload,
    stop: () => (stopping ??= stop()),
  };
}
