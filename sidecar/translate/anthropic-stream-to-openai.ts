// Anthropic stream events → OpenAI chat.completion.chunk frames, one upstream event at a time. Thinking in
// LiteLLM's fields: its text as `delta.reasoning_content` as it comes, then at the block's end the whole
// block, signed, as one `delta.thinking_blocks: [block]` (a redacted block only that).
import { isObject, type Json } from '../../common/json.js';
import { mergeAnthropicDeltaUsage, usageFromAnthropic } from '../formats/anthropic.js';
import { parseAnthropicEvent } from '../formats/answer-shape.js';
import { OPENAI_DONE_FRAME, openaiFrame, usageToOpenAI, type OpenAIChunk } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { anthropicStopToOpenAIFinish } from './map-stop-reason.js';
import { streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';
import { thinkingBlockOf } from './thinking-blocks.js';

/** A thinking or redacted thinking block still streaming: what its content_block_stop hands on. */
type OpenThinking = { type: 'thinking'; thinking: string; signature: string } | { type: 'redacted_thinking'; data: unknown };

export interface AnthropicToOpenAIStreamOptions {
  providerId: string;
  /** The app asked for `stream_options.include_usage`. */
  includeUsage: boolean;
  /** `created` of every chunk (seconds since the epoch). */
  created: number;
}

export class AnthropicToOpenAIStream implements StreamTranslator {
  usage: Usage | undefined;
  private id = '';
  private model = '';
  /** Anthropic content block index → OpenAI tool_calls index. */
  private readonly toolIndex = new Map<number, number>();
  /** Anthropic content block index → the thinking block being assembled there. */
  private readonly thinking = new Map<number, OpenThinking>();
  private finishReason: string | undefined;
  private done = false;

  constructor(private readonly opts: AnthropicToOpenAIStreamOptions) {}

  event(ev: SseEvent): string {
    // Unnamed events are not Anthropic's: its SDKs skip them, and so does this.
    if (ev.event === undefined) return '';
    // A comment keeps idle-timeouts on the app side quiet; OpenAI SDKs skip comments.
    if (ev.event === 'ping') return ': ping\n\n';
    if (ev.event === 'error') throw streamErrorEvent(this.opts.providerId, 'anthropic', ev.data);
    const data = parseAnthropicEvent(ev.data, this.opts.providerId);
    switch (ev.event) {
      case 'message_start': {
        const message = isObject(data.message) ? data.message : {};
        this.id = String(message.id ?? '');
        this.model = String(message.model ?? '');
        this.usage = usageFromAnthropic(message.usage);
        return this.chunk({ role: 'assistant', content: '' }, null);
      }
      case 'content_block_start': {
        const block = isObject(data.content_block) ? data.content_block : {};
        if (block.type === 'tool_use') {
          const index = this.toolIndex.size;
          this.toolIndex.set(Number(data.index), index);
          const call = { index, id: block.id, type: 'function', function: { name: block.name, arguments: '' } };
          return this.chunk({ tool_calls: [call] }, null);
        }
        if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
          return this.chunk({ content: block.text }, null);
        }
        if (block.type === 'redacted_thinking') this.thinking.set(Number(data.index), { type: 'redacted_thinking', data: block.data });
        if (block.type === 'thinking') {
          const text = typeof block.thinking === 'string' ? block.thinking : '';
          const signature = typeof block.signature === 'string' ? block.signature : '';
          this.thinking.set(Number(data.index), { type: 'thinking', thinking: text, signature });
          if (text !== '') return this.chunk({ reasoning_content: text }, null);
        }
        return '';
      }
      case 'content_block_delta': {
        const delta = isObject(data.delta) ? data.delta : {};
        if (delta.type === 'text_delta') return this.chunk({ content: delta.text }, null);
        if (delta.type === 'input_json_delta') {
          const index = this.toolIndex.get(Number(data.index));
          if (index === undefined || delta.partial_json === '') return '';
          return this.chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] }, null);
        }
        const open = this.thinking.get(Number(data.index));
        if (open?.type === 'thinking' && delta.type === 'thinking_delta' && typeof delta.thinking === 'string') {
          open.thinking += delta.thinking;
          return delta.thinking === '' ? '' : this.chunk({ reasoning_content: delta.thinking }, null);
        }
        if (open?.type === 'thinking' && delta.type === 'signature_delta' && typeof delta.signature === 'string') {
          open.signature += delta.signature;
        }
        // Citation deltas have no Chat Completions counterpart.
        return '';
      }
      case 'content_block_stop': {
        const index = Number(data.index);
        const block = thinkingBlockOf(this.thinking.get(index));
        this.thinking.delete(index);
        return block === undefined ? '' : this.chunk({ thinking_blocks: [block] }, null);
      }
      case 'message_delta': {
        this.usage = mergeAnthropicDeltaUsage(this.usage, data.usage);
        const delta = isObject(data.delta) ? data.delta : {};
        this.finishReason = anthropicStopToOpenAIFinish(delta.stop_reason);
        return this.chunk({}, this.finishReason);
      }
      case 'message_stop':
        return this.close();
      default:
        return '';
    }
  }

  end(): string {
    if (this.done) return '';
    // The final event is missing but the message had finished: complete it for the app.
    if (this.finishReason !== undefined) return this.close();
    throw truncatedStream();
  }

  private close(): string {
    this.done = true;
    let out = '';
    if (this.opts.includeUsage && this.usage !== undefined) {
      const last: OpenAIChunk = { ...this.base(), choices: [], usage: usageToOpenAI(this.usage) };
      out += openaiFrame(last);
    }
    return out + OPENAI_DONE_FRAME;
  }

  private base(): Omit<OpenAIChunk, 'choices'> {
    return { id: this.id, object: 'chat.completion.chunk', created: this.opts.created, model: this.model };
  }

  private chunk(delta: Json, finishReason: string | null): string {
    const chunk: OpenAIChunk = { ...this.base(), choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] };
    if (this.opts.includeUsage) chunk.usage = null;
    return openaiFrame(chunk);
  }
}
