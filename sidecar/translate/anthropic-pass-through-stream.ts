// Anthropic stream → Anthropic app: forwards events as they are and reads usage from them.
import { isObject } from '../../common/json.js';
import { mergeAnthropicDeltaUsage, usageFromAnthropic } from '../formats/anthropic.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { parseEventData, streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

export class AnthropicPassThroughStream implements StreamTranslator {
  usage: Usage | undefined;
  private done = false;

  constructor(private readonly providerId: string) {}

  event(ev: SseEvent): string {
    switch (ev.event) {
      case 'message_start': {
        const data = parseEventData(ev.data);
        if (isObject(data) && isObject(data.message)) this.usage = usageFromAnthropic(data.message.usage);
        break;
      }
      case 'message_delta': {
        const data = parseEventData(ev.data);
        if (isObject(data)) this.usage = mergeAnthropicDeltaUsage(this.usage, data.usage);
        break;
      }
      case 'message_stop':
        this.done = true;
        break;
      case 'error':
        throw streamErrorEvent(this.providerId, 'anthropic', ev.data);
    }
    return ev.event === undefined ? `data: ${ev.data}\n\n` : `event: ${ev.event}\ndata: ${ev.data}\n\n`;
  }

  end(): string {
    if (this.done) return '';
    throw truncatedStream();
  }
}
