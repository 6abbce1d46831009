// The request pipeline's shapes: a Handler answers a GatewayRequest; Interceptors wrap handlers.
import type { IncomingHttpHeaders } from 'node:http';
import type { Json } from '../../common/json.js';
import type { Usage } from '../formats/usage.js';
import type { WireFormat } from '../formats/wire-format.js';
import type { Priority } from '../http/caller-headers.js';
import type { Target } from '../routing/router.js';
import type { TraceSpan } from '../tracing/trace-span.js';
import type { CancelSignal } from './cancel-signal.js';

/** The app-facing API a request came in on (`responses`: OpenAI's Responses API). */
export type Endpoint = 'chat' | 'messages' | 'embeddings' | 'responses';

export interface GatewayRequest {
  readonly id: string;
  readonly endpoint: Endpoint;
  /** The app's wire format (its path's). */
  readonly format: WireFormat;
  /** The model name the app asked for. */
  readonly model: string;
  readonly body: Json;
  /** Size of the app's body as it arrived (absent: small, e.g. made in a test). */
  readonly bodyBytes?: number;
  readonly stream: boolean;
  readonly headers: IncomingHttpHeaders;
  /** Quota class from `x-llmgw-priority`. */
  readonly priority: Priority;
  /** Attribution labels from `x-llmgw-tags`. */
  readonly tags: Readonly<Record<string, string>> | undefined;
  /** Aborts when the app disconnects; every upstream call listens to it. */
  readonly signal: CancelSignal;
  /** Token estimates, filled the first time they are asked for (quota/estimate.ts); absent: not kept. */
  readonly estimates?: { prompt?: number; total?: number };
  /** Filled by the provider handler for metrics (copies of the request share it); absent: not kept. */
  readonly trace?: UpstreamTrace;
  /** The request's span when tracing is on (undefined: off, and nothing is traced). */
  readonly span?: TraceSpan | undefined;
}

/** What the provider handler did with a request, as far as metrics need it. */
export interface UpstreamTrace {
  /** The target that answered, else the last one tried (or, when every circuit was open, the model's first). */
  target: Target | undefined;
}

/** What the access log, metrics and response headers learn about how a request was served. */
export interface ResponseMeta {
  provider?: string;
  upstreamModel?: string;
  attempts: number;
  /** Time spent waiting for the upstream (ms): to the full body, or to the first frame of a stream. */
  upstreamMs?: number;
  /** Filled when the answer (or the stream) ends. */
  usage?: Usage;
  cache: 'HIT' | 'MISS' | 'BYPASS';
  /** On a hit: what the stored answer cost when it was made (reported as saved, never as spent). */
  savedUsage?: Usage;
  /** On a semantic hit: the cosine similarity of the two prompts. */
  similarity?: number;
  /** Semantic mode's embeddings call for this request: its tokens are spent whether it hit or missed. */
  embedding?: { model: string; usage: Usage };
  /** Tokens left in the global budget, for `x-ratelimit-remaining-tokens` (budgeted requests only). */
  remainingTokens?: number | undefined;
  /** USD cost of the request from the price table the sidecar holds (set once usage is known). */
  costUsd?: number;
  /**
   * A stream's cost, priced when called (once its usage is final, at its end); set instead of `costUsd`
   * so that no wrapper sits between the stream's frames and the app.
   */
  costAtEnd?: () => number | undefined;
  /** Time the gateway itself took before the answer's headers went out (ms): elapsed minus `upstreamMs`. */
  overheadMs?: number;
}

export type GatewayResponse =
  /** A large translated answer is several buffers (its texts straight from the upstream's): written in order. */
  | { kind: 'json'; status: number; body: string | Buffer | readonly Buffer[]; meta: ResponseMeta }
  | {
      kind: 'stream';
      /** The first frames, already produced: the upstream accepted the request and began answering. */
      head: string;
      /** The remaining frames, forwarded as they arrive; throws on an upstream failure mid-stream. */
      rest: AsyncIterable<string>;
      meta: ResponseMeta;
    };

export type Handler = (req: GatewayRequest) => Promise<GatewayResponse>;
export type Interceptor = (next: Handler) => Handler;

/** Builds one handler from interceptors listed outermost first. */
export function compose(interceptors: readonly Interceptor[], terminal: Handler): Handler {
  return interceptors.reduceRight<Handler>((next, interceptor) => interceptor(next), terminal);
}
