// The OpenTelemetry GenAI client metrics (semantic conventions v1.41.0, docs/gen-ai/gen-ai-metrics.md) as
// Prometheus series, named by the OTel-to-Prometheus rules: dots become underscores, the unit `s` appends
// `_seconds`, an annotation unit (`{token}`) appends nothing. The sidecar is the GenAI client of its
// providers: one operation per request it sent upstream (a cache hit called no provider and is not one).
import { Histogram, type HistogramSeries, type Registry } from '../../common/metrics/registry.js';
import type { ProviderType } from '../config/schema.js';
import type { Usage } from '../formats/usage.js';
import type { Endpoint } from '../pipeline/types.js';
import type { Target } from '../routing/router.js';
import { SeriesBy1, SeriesBy2 } from './series-cache.js';

/** gen_ai.operation.name: Chat Completions, Messages and Responses are all `chat`. */
export type GenAiOperation = 'chat' | 'embeddings';

export function operationOf(endpoint: Endpoint): GenAiOperation {
  return endpoint === 'embeddings' ? 'embeddings' : 'chat';
}

/** The boundaries semconv advises for gen_ai.client.token.usage, in tokens. */
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] as const;
/** The boundaries semconv advises for gen_ai.client.operation.duration and time_to_first_chunk, in seconds. */
const SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] as const;

/**
 * gen_ai.provider.name by provider type: semconv's well-known values. The attribute names the telemetry
 * flavour of the API spoken, so an OpenAI-compatible server (vLLM, Ollama) is `openai`; its
 * gen_ai_response_model tells it apart, and the llmgw_* series carry the provider id.
 */
const GEN_AI_PROVIDER: Readonly<Record<ProviderType, string>> = { openai: 'openai', anthropic: 'anthropic', 'openai-compatible': 'openai' };

const BASE = ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model'] as const;
type Base = (typeof BASE)[number];

/** The series of one (operation, provider, request model, response model); each appears on its first update. */
class OperationSeries {
  readonly input: HistogramSeries;
  readonly output: HistogramSeries;
  readonly duration: HistogramSeries;
  readonly failed: SeriesBy1<HistogramSeries>;
  readonly firstChunk: HistogramSeries;

  constructor(m: GenAiMetrics, base: Readonly<Record<Base, string>>) {
    this.input = m.tokenUsage.labels({ ...base, gen_ai_token_type: 'input' });
    this.output = m.tokenUsage.labels({ ...base, gen_ai_token_type: 'output' });
    this.duration = m.duration.labels({ ...base, error_type: '' });
    this.failed = new SeriesBy1((errorType) => m.duration.labels({ ...base, error_type: errorType }));
    this.firstChunk = m.timeToFirstChunk.labels(base);
  }
}

export class GenAiMetrics {
  readonly tokenUsage;
  readonly duration;
  readonly timeToFirstChunk;
  /** Targets are rebuilt on a config reload: the old ones' entries go with them. */
  private readonly byTarget = new WeakMap<Target, SeriesBy2<OperationSeries>>();

  constructor(registry: Registry) {
    this.tokenUsage = registry.register(
      new Histogram('gen_ai_client_token_usage', 'Number of input and output tokens used, per request sent upstream (gen_ai.client.token.usage).', TOKEN_BUCKETS, [...BASE, 'gen_ai_token_type'] as const),
    );
    this.duration = registry.register(
      new Histogram(
        'gen_ai_client_operation_duration_seconds',
        'GenAI operation duration: from the request received to the answer complete (streams: to the last byte), retries and fallbacks included (gen_ai.client.operation.duration).',
        SECONDS_BUCKETS,
        [...BASE, 'error_type'] as const,
      ),
    );
    this.timeToFirstChunk = registry.register(
      new Histogram(
        'gen_ai_client_operation_time_to_first_chunk_seconds',
        'Streams only: time from the first upstream attempt to the first content chunk, failed attempts included (gen_ai.client.operation.time_to_first_chunk).',
        SECONDS_BUCKETS,
        BASE,
      ),
    );
  }

  /**
   * One operation: `target` answered (or was the last tried), `requestModel` is the configured name the
   * app asked for, `errorType` is set when it failed, `firstChunkSeconds` for a stream that began.
   */
  record(target: Target, requestModel: string, op: GenAiOperation, seconds: number, usage: Usage | undefined, firstChunkSeconds: number | undefined, errorType: string | undefined): void {
    const s = this.seriesOf(target, requestModel, op);
    if (errorType === undefined) s.duration.observe(seconds);
    else s.failed.get(errorType).observe(seconds);
    if (usage !== undefined) {
      s.input.observe(usage.inputTokens);
      if (op === 'chat') s.output.observe(usage.outputTokens);
    }
    if (firstChunkSeconds !== undefined) s.firstChunk.observe(firstChunkSeconds);
  }

  private seriesOf(target: Target, requestModel: string, op: GenAiOperation): OperationSeries {
    let byModel = this.byTarget.get(target);
    if (byModel === undefined) {
      const provider = GEN_AI_PROVIDER[target.provider.type];
      byModel = new SeriesBy2(
        (model, operation) => new OperationSeries(this, { gen_ai_operation_name: operation, gen_ai_provider_name: provider, gen_ai_request_model: model, gen_ai_response_model: target.model }),
      );
      this.byTarget.set(target, byModel);
    }
    return byModel.get(requestModel, op);
  }
}
