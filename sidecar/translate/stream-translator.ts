// The contract every stream translation (pass-through or cross-format) follows.
import type { SseEvent } from '../http/sse-parser.js';
import type { Usage } from '../formats/usage.js';

export interface StreamTranslator {
  /**
   * App-format SSE frames for one upstream event ('' when it maps to nothing). Throws a ProviderError
   * when the upstream reports an error inside the stream.
   */
  event(ev: SseEvent): string;
  /**
   * Frames that close the stream after the upstream body ended. Throws a GatewayError when the upstream
   * stopped before completing, so a cut stream never looks complete to the app.
   */
  end(): string;
  /** Usage the upstream reported so far. */
  readonly usage: Usage | undefined;
}
