// OpenAI Responses stream → Responses app: checks events and forwards them as they came, reading usage from
// the terminal event's response. The stream is complete once `response.completed`, `response.incomplete`
// or `response.failed` went by; an `error` event is the provider's error.
import { isObject } from '../../common/json.js';
import { ProviderError } from '../errors.js';
import { parseResponsesEvent } from '../formats/answer-shape.js';
import { usageFromResponses } from '../formats/openai-responses.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

export class ResponsesPassThroughStream implements StreamTranslator {
  usage: Usage | undefined;
  private done = false;

  constructor(private readonly providerId: string) {}

  event(ev: SseEvent): string {
    const data = parseResponsesEvent(ev.data, this.providerId);
    if (data.type === 'error') throw this.error(data);
    if (TERMINAL.has(data.type as string)) {
      this.done = true;
      if (isObject(data.response)) this.usage = usageFromResponses(data.response.usage);
    }
    return ev.event === undefined ? `data: ${ev.data}\n\n` : `event: ${ev.event}\ndata: ${ev.data}\n\n`;
  }

  end(): string {
    if (this.done) return '';
    throw truncatedStream();
  }

  /** The error event, nested (`error: {…}`) or flat (`code`, `message`, `param`), as an OpenAI error body. */
  private error(data: Record<string, unknown>): ProviderError {
    const e = isObject(data.error) ? data.error : data;
    const code = typeof e.code === 'string' ? e.code : null;
    const error = {
      message: typeof e.message === 'string' ? e.message : 'the provider reported an error in the stream',
      type: typeof e.type === 'string' && e.type !== 'error' ? e.type : (code ?? 'server_error'),
      param: typeof e.param === 'string' ? e.param : null,
      code,
    };
    return new ProviderError({ status: 500, providerId: this.providerId, format: 'openai', body: { error } });
  }
}
