// What the request path sees of tracing: a span it may start children of, set attributes on and end.
// Types only: the pipeline never loads OpenTelemetry itself (tracing.ts is imported only when the config
// turns tracing on), and a request without a span (tracing off) pays one property check per site.

export type SpanAttributes = Record<string, string | number | boolean | undefined>;

export interface TraceSpan {
  /** A child of this span, ended by the caller. `client`: a call out of the process (an upstream attempt). */
  child(name: string, kind: 'internal' | 'client', attributes?: SpanAttributes): TraceSpan;
  /** Undefined values are skipped. */
  set(attributes: SpanAttributes): void;
  /** Marks the span failed: `error.type` and an error status (with the message, when given). */
  fail(errorType: string, message?: string): void;
  end(): void;
  /** The W3C `traceparent` naming this span, for an upstream request (undefined: not to be propagated). */
  readonly traceparent: string | undefined;
}
