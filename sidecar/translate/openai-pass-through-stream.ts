// OpenAI stream → OpenAI app: forwards chunks as they are, reads usage, and strips the usage the gateway
// asked for when the app did not.
import { isObject } from '../../common/json.js';
import { OPENAI_DONE_FRAME, usageFromOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { parseEventData, streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

const NULL_USAGE_TAIL = ',"usage":null}';
const finishReason = /"finish_reason":\s*"/;

export class OpenAIPassThroughStream implements StreamTranslator {
  usage: Usage | undefined;
  private done = false;
  private finished = false;

  constructor(
    private readonly providerId: string,
    /** The app sent `stream_options.include_usage: true` itself. */
    private readonly appWantsUsage: boolean,
  ) {}

  event(ev: SseEvent): string {
    let data = ev.data;
    if (data === '[DONE]') {
      this.done = true;
      return OPENAI_DONE_FRAME;
    }
    if (!this.finished && finishReason.test(data)) this.finished = true;
    if (data.endsWith(NULL_USAGE_TAIL)) {
      // The fast path for the usual chunk: OpenAI writes `"usage":null` last on every chunk but the final one.
      return this.appWantsUsage ? `data: ${data}\n\n` : `data: ${data.slice(0, -NULL_USAGE_TAIL.length)}}\n\n`;
    }
    if (data.includes('"usage"') || data.includes('"error"')) {
      const chunk = parseEventData(data);
      if (isObject(chunk)) {
        if (isObject(chunk.error)) throw streamErrorEvent(this.providerId, 'openai', data);
        if (isObject(chunk.usage)) this.usage = usageFromOpenAI(chunk.usage);
        if (!this.appWantsUsage && 'usage' in chunk) {
          if (Array.isArray(chunk.choices) && chunk.choices.length === 0) return '';
          delete chunk.usage;
          data = JSON.stringify(chunk);
        }
      }
    }
    return `data: ${data}\n\n`;
  }

  end(): string {
    if (this.done) return '';
    // Some compatible servers close after the finishing chunk without `[DONE]`; the answer is complete.
    if (this.finished) return OPENAI_DONE_FRAME;
    throw truncatedStream();
  }
}
