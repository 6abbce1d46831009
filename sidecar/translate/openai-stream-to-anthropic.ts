// OpenAI chat.completion.chunk frames → Anthropic stream events, one upstream chunk at a time. Usage goes
// where Anthropic readers look for it: the prompt count in message_start (exact when the upstream reported
// it before the first content, else the sidecar's estimate), the final counts in message_delta.
import { isObject, type Json } from '../../common/json.js';
import { anthropicFrame, usageToAnthropic } from '../formats/anthropic.js';
import { parseOpenAIChunk } from '../formats/answer-shape.js';
import { usageFromOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';
import { openaiFinishToAnthropicStop } from './map-stop-reason.js';
import { streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';

type OpenBlock = { kind: 'text' } | { kind: 'tool'; openaiIndex: number };

export interface OpenAIToAnthropicStreamOptions {
  providerId: string;
  /**
   * The sidecar's estimate of the prompt's tokens (quota/estimate.ts `promptTokens`), reported as
   * message_start's input_tokens when the upstream has not counted the prompt by then: OpenAI sends usage
   * last, but LangChain's ChatAnthropic and others read the input count from message_start only.
   */
  promptTokensEstimate: number;
}

export class OpenAIToAnthropicStream implements StreamTranslator {
  /** What the upstream reported; never the estimate, so accounting settles on real counts only. */
  usage: Usage | undefined;
  /** id and model of the first chunk, for message_start. */
  private head: Json | undefined;
  private started = false;
  private blockIndex = -1;
  private open: OpenBlock | undefined;
  private stopReason: string | undefined;
  private done = false;

  constructor(private readonly opts: OpenAIToAnthropicStreamOptions) {}

  event(ev: SseEvent): string {
    if (ev.data === '[DONE]') return this.done ? '' : this.finish();
    const chunk = parseOpenAIChunk(ev.data, this.opts.providerId);
    if (isObject(chunk.error)) throw streamErrorEvent(this.opts.providerId, 'openai', ev.data);
    let out = '';
    this.head ??= chunk;
    // Read before message_start is written: a server that counts as it goes (vLLM's continuous usage)
    // has the exact prompt count on its first chunks.
    const hasUsage = isObject(chunk.usage);
    if (hasUsage) this.usage = usageFromOpenAI(chunk.usage);
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (choice !== undefined) {
      const delta = isObject(choice.delta) ? choice.delta : {};
      // Anything past the role opener (reasoning too, which maps to nothing here) starts the message, as
      // the sidecar then sends what it held back.
      if (!this.started && !isOpener(delta, choice.finish_reason)) out += this.start();
      const text = typeof delta.content === 'string' && delta.content !== '' ? delta.content : delta.refusal;
      if (typeof text === 'string' && text !== '') out += this.text(text);
      if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) if (isObject(call)) out += this.toolCall(call);
      if (typeof choice.finish_reason === 'string') {
        this.stopReason = openaiFinishToAnthropicStop(choice.finish_reason);
        out += this.closeBlock();
      }
    }
    // With usage requested, OpenAI sends it in a chunk of its own after the finishing one; counts sent
    // before the finish (continuous usage) are not final yet.
    if (this.stopReason !== undefined && hasUsage && !this.done) out += this.finish();
    return out;
  }

  end(): string {
    if (this.done) return '';
    if (this.stopReason !== undefined) return this.finish();
    throw truncatedStream();
  }

  /**
   * message_start, written with the first content (or the end): the sidecar holds it back until then
   * anyway (stream fallback), and waiting lets usage sent on the chunks before it make the count exact.
   */
  private start(): string {
    if (this.started) return '';
    this.started = true;
    const message = {
      id: this.head?.id,
      type: 'message',
      role: 'assistant',
      model: this.head?.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      // output_tokens 0: it precedes all content, and LangChain adds it to message_delta's total.
      usage: this.usage !== undefined ? { ...usageToAnthropic(this.usage), output_tokens: 0 } : { input_tokens: this.opts.promptTokensEstimate, output_tokens: 0 },
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
    return this.start() + anthropicFrame('content_block_start', { type: 'content_block_start', index: this.blockIndex, content_block: block });
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
    // Whole-message totals, input and cache counts included as newer Anthropic API versions send them: the
    // official SDK overwrites message_start's input_tokens with them, and some readers look only here.
    // Without upstream usage the estimate stands, so neither place says 0 for a prompt that had tokens.
    const usage = this.usage !== undefined ? usageToAnthropic(this.usage) : { input_tokens: this.opts.promptTokensEstimate, output_tokens: 0 };
    const messageDelta = {
      type: 'message_delta',
      delta: { stop_reason: this.stopReason ?? 'end_turn', stop_sequence: null },
      usage,
    };
    return this.start() + this.closeBlock() + anthropicFrame('message_delta', messageDelta) + anthropicFrame('message_stop', { type: 'message_stop' });
  }
}

/** The first chunk OpenAI sends: the role and an empty content, nothing of the answer yet. */
function isOpener(delta: Json, finishReason: unknown): boolean {
  if (finishReason !== null && finishReason !== undefined) return false;
  return Object.entries(delta).every(([k, v]) => k === 'role' || v === null || v === '');
}
