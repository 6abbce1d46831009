// OpenAI chat.completion.chunk frames → Anthropic stream events, one upstream chunk at a time.
import { anthropicFrame, usageToAnthropic } from '../formats/anthropic.js';
import { usageFromOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { isObject, type Json } from './json-object.js';
import { openaiFinishToAnthropicStop } from './map-stop-reason.js';
import { parseEventData, streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

type OpenBlock = { kind: 'text' } | { kind: 'tool'; openaiIndex: number };

export class OpenAIToAnthropicStream implements StreamTranslator {
  usage: Usage | undefined;
  private started = false;
  private blockIndex = -1;
  private open: OpenBlock | undefined;
  private stopReason: string | undefined;
  private done = false;

  constructor(private readonly providerId: string) {}

  event(ev: SseEvent): string {
    if (ev.data === '[DONE]') return this.done ? '' : this.finish();
    const chunk = parseEventData(ev.data);
    if (!isObject(chunk)) return '';
    if (isObject(chunk.error)) throw streamErrorEvent(this.providerId, 'openai', ev.data);
    let out = '';
    if (!this.started) out += this.start(chunk);
    if (isObject(chunk.usage)) this.usage = usageFromOpenAI(chunk.usage);
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (choice !== undefined) {
      const delta = isObject(choice.delta) ? choice.delta : {};
      const text = typeof delta.content === 'string' && delta.content !== '' ? delta.content : delta.refusal;
      if (typeof text === 'string' && text !== '') out += this.text(text);
      if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) if (isObject(call)) out += this.toolCall(call);
      if (typeof choice.finish_reason === 'string') {
        this.stopReason = openaiFinishToAnthropicStop(choice.finish_reason);
        out += this.closeBlock();
      }
    }
    // With usage requested, OpenAI sends it in a chunk of its own after the finishing one.
    if (this.stopReason !== undefined && this.usage !== undefined && !this.done) out += this.finish();
    return out;
  }

  end(): string {
    if (this.done) return '';
    if (this.stopReason !== undefined) return this.finish();
    throw truncatedStream();
  }

  private start(chunk: Json): string {
    this.started = true;
    const message = {
      id: chunk.id,
      type: 'message',
      role: 'assistant',
      model: chunk.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      // OpenAI reports usage only at the end; message_delta carries the real counts.
      usage: { input_tokens: 0, output_tokens: 0 },
    };
    return anthropicFrame('message_start', { type: 'message_start', message });
  }

  private text(text: string): string {
    let out = '';
    if (this.open?.kind !== 'text') {
      out += this.closeBlock();
      out += this.startBlock({ type: 'text', text: '' });
      this.open = { kind: 'text' };
    }
    return out + this.delta({ type: 'text_delta', text });
  }

  private toolCall(call: Json): string {
    let out = '';
    const index = typeof call.index === 'number' ? call.index : 0;
    const fn = isObject(call.function) ? call.function : {};
    if (this.open?.kind !== 'tool' || this.open.openaiIndex !== index) {
      out += this.closeBlock();
      out += this.startBlock({ type: 'tool_use', id: call.id, name: fn.name, input: {} });
      this.open = { kind: 'tool', openaiIndex: index };
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      out += this.delta({ type: 'input_json_delta', partial_json: fn.arguments });
    }
    return out;
  }

  private startBlock(block: Json): string {
    this.blockIndex += 1;
    return anthropicFrame('content_block_start', { type: 'content_block_start', index: this.blockIndex, content_block: block });
  }

  private delta(delta: Json): string {
    return anthropicFrame('content_block_delta', { type: 'content_block_delta', index: this.blockIndex, delta });
  }

  private closeBlock(): string {
    if (this.open === undefined) return '';
    this.open = undefined;
    return anthropicFrame('content_block_stop', { type: 'content_block_stop', index: this.blockIndex });
  }

  private finish(): string {
    this.done = true;
    const usage = usageToAnthropic(this.usage ?? { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 });
    const messageDelta = {
      type: 'message_delta',
      delta: { stop_reason: this.stopReason ?? 'end_turn', stop_sequence: null },
      usage,
    };
    return this.closeBlock() + anthropicFrame('message_delta', messageDelta) + anthropicFrame('message_stop', { type: 'message_stop' });
  }
}
