// OpenAI stream → OpenAI app: checks each chunk and forwards it as it came, reads usage, and strips the
// usage the gateway asked for when the app did not.
import { isObject } from '../../common/json.js';
import { parseOpenAIChunk } from '../formats/answer-shape.js';
import { OPENAI_DONE_FRAME, usageFromOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

const NULL_USAGE_TAIL = ',"usage":null}';

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
    const data = ev.data;
    if (data === '[DONE]') {
      this.done = true;
      return OPENAI_DONE_FRAME;
    }
    // Parsed to be checked (an SDK parses every chunk); the app still gets the provider's own text.
    const chunk = parseOpenAIChunk(data, this.providerId);
    if (isObject(chunk.error)) throw streamErrorEvent(this.providerId, 'openai', data);
    const choices = chunk.choices as Record<string, unknown>[];
    if (!this.finished) this.finished = choices.some((c) => typeof c.finish_reason === 'string');
    if (isObject(chunk.usage)) this.usage = usageFromOpenAI(chunk.usage);
    if (this.appWantsUsage || !('usage' in chunk)) return `data: ${data}\n\n`;
    // OpenAI writes `"usage":null` last on every chunk but the final one: cut it off without re-encoding.
    if (chunk.usage === null && data.endsWith(NULL_USAGE_TAIL)) return `data: ${data.slice(0, -NULL_USAGE_TAIL.length)}}\n\n`;
    if (choices.length === 0) return '';
    delete chunk.usage;
    return `data: ${JSON.stringify(chunk)}\n\n`;
  }

  end(): string {
    if (this.done) return '';
    // Some compatible servers close after the finishing chunk without `[DONE]`; the answer is complete.
    if (this.finished) return OPENAI_DONE_FRAME;
    throw truncatedStream();
  }
}
