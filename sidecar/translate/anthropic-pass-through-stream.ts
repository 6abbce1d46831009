// Anthropic stream → Anthropic app: checks events and forwards them as they came, reading usage from them.
import { isObject } from '../../common/json.js';
import { mergeAnthropicDeltaUsage, usageFromAnthropic } from '../formats/anthropic.js';
import { parseAnthropicEvent } from '../formats/answer-shape.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

export class AnthropicPassThroughStream implements StreamTranslator {
  usage: Usage | undefined;
  private done = false;

  constructor(private readonly providerId: string) {}

  event(ev: SseEvent): string {
    if (ev.event === 'error') throw streamErrorEvent(this.providerId, 'anthropic', ev.data);
    // The events SDKs parse (named, other than ping) are checked; the app still gets the provider's text.
    if (ev.event !== undefined && ev.event !== 'ping') {
      const data = parseAnthropicEvent(ev.data, this.providerId);
      if (ev.event === 'message_start' && isObject(data.message)) this.usage = usageFromAnthropic(data.message.usage);
      else if (ev.event === 'message_delta') this.usage = mergeAnthropicDeltaUsage(this.usage, data.usage);
      else if (ev.event === 'message_stop') this.done = true;
    }
    return ev.event === undefined ? `data: ${ev.data}\n\n` : `event: ${ev.event}\ndata: ${ev.data}\n\n`;
  }

  end(): string {
    if (this.done) return '';
    throw truncatedStream();
  }
}
