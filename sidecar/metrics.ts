// The sidecar's Prometheus metrics. Labels are bounded: model names come from config, never from apps.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'llmgw_requests_total',
    help: 'Requests answered, by endpoint, model and HTTP status.',
    labelNames: ['endpoint', 'model', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'llmgw_request_duration_seconds',
    help: 'Time from request received to response complete (streams: to the last byte).',
    labelNames: ['endpoint'] as const,
    buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'llmgw_tokens_total',
    help: 'Tokens reported by providers, by model and direction (input | output).',
    labelNames: ['model', 'direction'] as const,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'llmgw_inflight_requests',
    help: 'Requests being served now.',
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'llmgw_config_reloads_total',
    help: 'Config file changes, by result (applied | rejected).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'llmgw_' });
  }
}
