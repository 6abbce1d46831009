// OpenTelemetry tracing of the sidecar's requests, exported over OTLP/HTTP (DESIGN §… / README
// "Tracing"). Loaded on demand: the sidecar imports this file only when its config has a `tracing`
// section, so with tracing off no OpenTelemetry code is even read. Spans are batched and exported in the
// background; a slow or absent collector never holds a request, and what cannot be queued is dropped
// (maxQueueSize), never kept without bound. The provider is the process's own, not registered globally:
// a config reload builds a new one and flushes the old.
import { context, diag, DiagLogLevel, SpanKind, SpanStatusCode, trace, ROOT_CONTEXT, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { setGlobalErrorHandler, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { systemClock } from '../../common/clock.js';
import { throttledWarn } from '../../common/logger.js';
import type { Config } from '../config/schema.js';
import type { PodIdentity } from '../identity.js';
import type { SpanAttributes, TraceSpan } from './trace-span.js';

export type TracingConfig = NonNullable<Config['tracing']>;

export interface Tracing {
  /** The root span of one app request: a child of the app's trace when it sent a `traceparent`. */
  start(name: string, headers: IncomingHttpHeaders, attributes: SpanAttributes): TraceSpan;
  /** Exports what is queued (at most `exportTimeoutMs`) and stops. */
  shutdown(): Promise<void>;
}

/** The longest attribute value kept (a tag value, an error message): spans stay small. */
const MAX_ATTRIBUTE_CHARS = 512;

export function createTracing(cfg: TracingConfig, identity: PodIdentity, logger: Logger): Tracing {
  const exporter = otlpExporter(cfg);
  const warn = throttledWarn(logger, systemClock, 'could not export spans');
  // The SDK's own troubles (an export that failed, spans dropped on a full queue) reach the log, throttled.
  setGlobalErrorHandler((err) => warn({ endpoint: cfg.endpoint, err }));
  diag.setLogger({ error: (m) => warn({ endpoint: cfg.endpoint, detail: m }), warn: (m) => warn({ endpoint: cfg.endpoint, detail: m }), info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': cfg.serviceName ?? (identity.service || 'llm-gateway-sidecar'),
      'service.namespace': identity.namespace,
      'k8s.namespace.name': identity.namespace,
      'k8s.pod.name': identity.pod,
      'telemetry.sdk.language': 'nodejs',
    }),
    // The app's sampling decision wins for its own traces; new traces are kept at sampleRatio.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRatio) }),
    spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE_CHARS, attributeCountLimit: 64, eventCountLimit: 16 },
    spanProcessors: [new BatchSpanProcessor({ exporter, maxQueueSize: cfg.maxQueueSize, maxExportBatchSize: Math.min(512, cfg.maxQueueSize), scheduledDelayMillis: cfg.exportIntervalMs, exportTimeoutMillis: cfg.exportTimeoutMs })],
  });
  const tracer = provider.getTracer('llm-gateway');
  const propagator = new W3CTraceContextPropagator();
  const propagate = cfg.propagateUpstream;
  return {
    start(name, headers, attributes) {
      const parent = propagator.extract(ROOT_CONTEXT, headers, headerGetter);
      return spanOf(tracer, tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: defined(attributes) }, parent), propagate);
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, cfg.exportTimeoutMs);
      });
      await Promise.race([provider.shutdown().catch((err: unknown) => warn({ endpoint: cfg.endpoint, err })), late]);
      clearTimeout(timer);
    },
  };
}

function otlpExporter(cfg: TracingConfig): SpanExporter {
  const options = { url: cfg.endpoint, headers: cfg.headers, timeoutMillis: cfg.exportTimeoutMs };
  return cfg.protocol === 'http/json' ? new JsonExporter(options) : new ProtobufExporter(options);
}

const headerGetter = {
  get: (carrier: IncomingHttpHeaders, key: string): string | string[] | undefined => carrier[key],
  keys: (carrier: IncomingHttpHeaders): string[] => Object.keys(carrier),
};

/** A span not sampled: children, attributes and propagation all skipped (no work for the 1 - sampleRatio). */
const UNSAMPLED: TraceSpan = {
  child: () => UNSAMPLED,
  set: () => {},
  fail: () => {},
  end: () => {},
  traceparent: undefined,
};

function spanOf(tracer: Tracer, span: Span, propagate: boolean): TraceSpan {
  if (!span.isRecording()) {
    span.end();
    return UNSAMPLED;
  }
  return new OtelSpan(tracer, span, propagate);
}

class OtelSpan implements TraceSpan {
  private ctx: Context | undefined;

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    private readonly propagate: boolean,
  ) {}

  child(name: string, kind: 'internal' | 'client', attributes?: SpanAttributes): TraceSpan {
    this.ctx ??= trace.setSpan(context.active(), this.span);
    const span = this.tracer.startSpan(name, { kind: kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes: attributes === undefined ? {} : defined(attributes) }, this.ctx);
    return spanOf(this.tracer, span, this.propagate);
  }

  set(attributes: SpanAttributes): void {
    this.span.setAttributes(defined(attributes));
  }

  fail(errorType: string, message?: string): void {
    this.span.setAttribute('error.type', errorType);
    this.span.setStatus(message === undefined ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.ERROR, message });
  }

  end(): void {
    this.span.end();
  }

  get traceparent(): string | undefined {
    if (!this.propagate) return undefined;
    const c = this.span.spanContext();
    return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 1).toString(16).padStart(2, '0')}`;
  }
}

function defined(attributes: SpanAttributes): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(attributes)) if (v !== undefined) out[k] = v;
  return out;
}
