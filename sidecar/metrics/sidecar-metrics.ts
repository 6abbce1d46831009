// The sidecar's Prometheus metrics. Labels are bounded: model names come from config, never from apps.
import { Counter, Gauge, Histogram, Registry } from '../../common/metrics/registry.js';
import { GenAiMetrics } from './gen-ai-metrics.js';
import { ResilienceMetrics } from './resilience-metrics.js';
import { SeriesBy1, SeriesBy2, SeriesBy3 } from './series-cache.js';

/**
 * The global-budget leases' metrics (sidecar/quota/lease-manager.ts): what the leases hold, how often they
 * are renewed and why, and the requests that had to wait for the quota service, so operators can see that
 * the quota path stays off the request path.
 */
export class LeaseMetrics {
  readonly leaseTokens;
  readonly renewals;
  readonly waits;
  readonly waitSeconds;
  readonly failOpenTokens;
  readonly degraded;
  readonly degradedSeconds;

  constructor(private readonly registry: Registry) {
    this.leaseTokens = registry.register(
      new Gauge('llmgw_quota_lease_tokens', 'Unspent tokens the lease of each priority class holds (negative: a debt its next grant pays).', ['priority'] as const),
    );
    this.renewals = registry.register(
      new Counter(
        'llmgw_quota_lease_calls_total',
        'AcquireLease and RenewLease calls by priority class and reason: ahead (the lease ran below half its target), due (its renewal time), request (a request waits for it), window (a new budget window started), give_back, report (usage waiting to be delivered).',
        ['priority', 'reason'] as const,
      ),
    );
    this.waits = registry.register(
      new Counter('llmgw_quota_waits_total', 'Requests that waited for the quota service because their lease could not cover them, by priority class.', ['priority'] as const),
    );
    this.waitSeconds = registry.register(
      new Histogram('llmgw_quota_wait_seconds', 'How long those requests waited.', [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], ['priority'] as const),
    );
    this.failOpenTokens = registry.register(
      new Counter(
        'llmgw_quota_fail_open_tokens_total',
        'Tokens reserved beyond the lease while the quota service was out of reach (fail-open), by priority class.',
        ['priority'] as const,
      ),
    );
    this.degraded = registry.register(
      new Gauge('llmgw_quota_degraded', '1 while the quota service is out of reach (from a lease call that failed to the next one answered), else 0.'),
    );
    this.degradedSeconds = registry.register(
      new Counter('llmgw_quota_degraded_seconds_total', 'Seconds spent with the quota service out of reach (degraded mode: the lease, then the fail-open or fail-closed policy).'),
    );
  }

  /** `fn` refreshes the gauges when metrics are scraped. */
  onCollect(fn: () => void): void {
    this.registry.onCollect(fn);
  }
}

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly requests = this.registry.register(
    new Counter('llmgw_requests_total', 'Requests answered, by endpoint, model and HTTP status.', ['endpoint', 'model', 'status'] as const),
  );
  readonly duration = this.registry.register(
    new Histogram(
      'llmgw_request_duration_seconds',
      'Time from request received to response complete (streams: to the last byte).',
      [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      ['endpoint'] as const,
    ),
  );
  readonly tokens = this.registry.register(
    new Counter('llmgw_tokens_total', 'Tokens reported by providers, by model and direction (input | output).', ['model', 'direction'] as const),
  );
  readonly inflight = this.registry.register(new Gauge('llmgw_inflight_requests', 'Requests being served now.'));
  readonly cache = this.registry.register(new Counter('llmgw_cache_requests_total', 'Answers by cache outcome (HIT | MISS | BYPASS).', ['result'] as const));
  readonly cacheSavedTokens = this.registry.register(
    new Counter('llmgw_cache_saved_tokens_total', 'Tokens of answers served from the cache (what they cost when made), by model and direction.', ['model', 'direction'] as const),
  );
  readonly cacheSemantic = this.registry.register(
    new Counter('llmgw_cache_semantic_lookups_total', 'Semantic lookups by outcome (hit | miss | skipped: no text prompt or no-cache | failed: no embedding).', ['result'] as const),
  );
  readonly cacheEntries = this.registry.register(new Gauge('llmgw_cache_entries', 'Entries in the response cache.'));
  readonly cacheBytes = this.registry.register(new Gauge('llmgw_cache_bytes', 'Bytes the response cache holds.'));
  readonly cacheErrors = this.registry.register(new Counter('llmgw_cache_errors_total', 'Times the cache stepped aside because its database failed (locked, full, unreadable).'));
  readonly configReloads = this.registry.register(
    new Counter('llmgw_config_reloads_total', 'Config file changes, by result (applied | rejected).', ['result'] as const),
  );
  readonly quota = new LeaseMetrics(this.registry);
  /** Series kept for the request path's updates (no label key built per request). */
  readonly series;
  /** Registered after the series above so their exposition keeps its order. */
  readonly genAi: GenAiMetrics;
  readonly resilience: ResilienceMetrics;
  readonly overhead;
  readonly refusals;
  readonly cost;

  constructor() {
    const cpu = this.registry.register(new Gauge('llmgw_process_cpu_seconds_total', 'User and system CPU time of the process, in seconds.'));
    const rss = this.registry.register(new Gauge('llmgw_process_resident_memory_bytes', 'Resident memory of the process.'));
    const heap = this.registry.register(new Gauge('llmgw_process_heap_used_bytes', 'V8 heap in use.'));
    const start = this.registry.register(new Gauge('llmgw_process_start_time_seconds', 'Start time of the process since the epoch, in seconds.'));
    start.set(Math.round(Date.now() / 1000 - process.uptime()));
    this.registry.onCollect(() => {
      const u = process.cpuUsage();
      cpu.set((u.user + u.system) / 1e6);
      const m = process.memoryUsage();
      rss.set(m.rss);
      heap.set(m.heapUsed);
    });
    this.genAi = new GenAiMetrics(this.registry);
    this.resilience = new ResilienceMetrics(this.registry);
    this.overhead = this.registry.register(
      new Histogram(
        'llmgw_gateway_overhead_seconds',
        "The gateway's own time per answer: from the request received to the answer's headers sent, minus the time waiting for upstreams (failed attempts and retry pauses included); cache hits count whole. Answers only, not refusals.",
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        ['endpoint'] as const,
      ),
    );
    this.refusals = this.registry.register(
      new Counter(
        'llmgw_refusals_total',
        "Requests the gateway failed with its own llmgw_* code (refusals, and upstream failures it answered for: as an answer or a stream's error event), and providers' 429s passed on (code provider_429).",
        ['code'] as const,
      ),
    );
    this.cost = this.registry.register(
      new Counter('llmgw_cost_usd_total', 'USD cost of requests, priced from the table the sidecar holds, by the configured model asked for and the provider id that answered.', ['model', 'provider'] as const),
    );
    this.series = {
      requests: new SeriesBy3((endpoint, model, status) => this.requests.labels({ endpoint, model, status })),
      duration: new SeriesBy1((endpoint) => this.duration.labels({ endpoint })),
      overhead: new SeriesBy1((endpoint) => this.overhead.labels({ endpoint })),
      cache: new SeriesBy1((result) => this.cache.labels({ result })),
      tokens: new SeriesBy2((model, direction) => this.tokens.labels({ model, direction })),
      cacheSavedTokens: new SeriesBy2((model, direction) => this.cacheSavedTokens.labels({ model, direction })),
      cost: new SeriesBy2((model, provider) => this.cost.labels({ model, provider })),
      refusals: new SeriesBy1((code) => this.refusals.labels({ code })),
    };
  }
}
