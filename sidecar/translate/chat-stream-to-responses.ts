// An OpenAI Chat Completions stream → the OpenAI Responses event stream: `response.created` and
// `response.in_progress`, then per output item (reasoning text, the message, each function call) its
// added / delta / done events, then `response.completed` (or `response.incomplete`) carrying the whole
// Response with usage, every event numbered by `sequence_number`. Also fed an Anthropic stream through the
// Messages → Chat translation (see `chained`): its `thinking_blocks` deltas go into the reasoning item's
// `encrypted_content` (chat-response-to-responses.ts `reasoningItem`), on its output_item.done.
import { isObject, type Json } from '../../common/json.js';
import { parseOpenAIChunk } from '../formats/answer-shape.js';
import { usageFromOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import { SseParser, type SseEvent } from '../http/sse-parser.js';
import { outputText, reasoningItem, reasoningOf, wantsSummary, responseIds, responseObject, responseStatus, responsesUsage, type ResponseIds } from './chat-response-to-responses.js';
import { streamErrorEvent, truncatedStream } from './stream-errors.js';
import type { StreamTranslator } from './stream-translator.js';
import { thinkingBlocksOf, type ThinkingBlock } from './thinking-blocks.js';

export interface ChatToResponsesOptions {
  providerId: string;
  /** What the Response echoes of the request (responsesEcho). */
  echo: Json;
  /** Seconds since the epoch, for `created_at`. */
  created: number;
}

interface OpenItem {
  kind: 'reasoning' | 'message' | 'refusal' | 'function_call';
  index: number;
  id: string;
  text: string;
  /** function_call: its call id and name. */
  callId?: string;
  name?: string;
  /** reasoning: Anthropic's thinking blocks, for its encrypted_content. */
  blocks?: ThinkingBlock[];
}

export class ChatToResponsesStream implements StreamTranslator {
  usage: Usage | undefined;
  private seq = 0;
  private started = false;
  private ids: ResponseIds | undefined;
  private model: unknown;
  private readonly output: Json[] = [];
  /** The reasoning or message item text is being added to. */
  private current: OpenItem | undefined;
  /** Function calls by their chat index (closed at the finish). */
  private readonly calls = new Map<number, OpenItem>();
  /** Item ids handed out per base id. */
  private readonly used = new Map<string, number>();
  private finish: unknown;
  private chatUsage: unknown;
  private completed = false;

  /** The request asked for reasoning summaries: the reasoning text streams as one. */
  private readonly summary: boolean;

  constructor(private readonly opts: ChatToResponsesOptions) {
    this.summary = wantsSummary(opts.echo);
  }

  event(ev: SseEvent): string {
    if (ev.data === '[DONE]') return this.complete();
    const chunk = parseOpenAIChunk(ev.data, this.opts.providerId);
    if (isObject(chunk.error)) throw streamErrorEvent(this.opts.providerId, 'openai', ev.data);
    let out = this.start(chunk);
    if (isObject(chunk.usage)) {
      this.chatUsage = chunk.usage;
      this.usage = usageFromOpenAI(chunk.usage);
    }
    const choice = (chunk.choices as Json[])[0];
    if (choice === undefined) return out;
    const delta = isObject(choice.delta) ? choice.delta : {};
    const reasoning = reasoningOf(delta);
    if (typeof reasoning === 'string' && reasoning !== '') out += this.text('reasoning', reasoning);
    const blocks = thinkingBlocksOf(delta.thinking_blocks);
    if (blocks.length > 0) out += this.thinkingBlocks(blocks);
    if (typeof delta.content === 'string' && delta.content !== '') out += this.text('message', delta.content);
    if (typeof delta.refusal === 'string' && delta.refusal !== '') out += this.text('refusal', delta.refusal);
    if (Array.isArray(delta.tool_calls)) for (const c of delta.tool_calls) if (isObject(c)) out += this.toolCall(c);
    if (typeof choice.finish_reason === 'string') {
      this.finish = choice.finish_reason;
      out += this.closeCurrent();
      for (const call of this.calls.values()) out += this.closeCall(call);
      this.calls.clear();
    }
    return out;
  }

  end(): string {
    if (this.completed) return '';
    // Some compatible servers close after the finishing chunk without `[DONE]`; the answer is complete.
    if (this.finish !== undefined) return this.complete();
    throw truncatedStream();
  }

  private emit(type: string, data: Json): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...data })}\n\n`;
  }

  private response(output: Json[], usage: Json | null, finish: unknown): Json {
    return responseObject(this.ids!, this.opts.created, this.model, this.opts.echo, output, finish, usage);
  }

  private start(chunk: Json): string {
    if (this.started) return '';
    this.started = true;
    this.ids = responseIds(chunk.id);
    this.model = chunk.model;
    const response = { ...this.response([], null, undefined), status: 'in_progress' };
    return this.emit('response.created', { response }) + this.emit('response.in_progress', { response });
  }

  /** Opens a reasoning, message or refusal item (closing the one before) unless it is the one open. */
  private open(kind: 'reasoning' | 'message' | 'refusal'): string {
    if (this.current?.kind === kind) return '';
    let out = this.closeCurrent();
    const index = this.output.length;
    this.output.push({});
    const id = this.itemId(kind === 'reasoning' ? this.ids!.reasoning : this.ids!.message);
    this.current = { kind, index, id, text: '' };
    if (kind === 'reasoning') {
      out += this.emit('response.output_item.added', { output_index: index, item: { type: 'reasoning', id, summary: [], content: [] } });
      if (this.summary) out += this.emit('response.reasoning_summary_part.added', { item_id: id, output_index: index, summary_index: 0, part: { type: 'summary_text', text: '' } });
    } else {
      out += this.emit('response.output_item.added', { output_index: index, item: { type: 'message', id, status: 'in_progress', role: 'assistant', content: [] } });
      out += this.emit('response.content_part.added', { item_id: id, output_index: index, content_index: 0, part: kind === 'message' ? outputText('') : { type: 'refusal', refusal: '' } });
    }
    return out;
  }

  /** Whole thinking blocks (each sent once, at its end) join the reasoning item, opening one when needed. */
  private thinkingBlocks(blocks: ThinkingBlock[]): string {
    const out = this.open('reasoning');
    const item = this.current!;
    item.blocks = [...(item.blocks ?? []), ...blocks];
    return out;
  }

  /** Text of a reasoning, message or refusal item, opening it (and closing the one before) when needed. */
  private text(kind: 'reasoning' | 'message' | 'refusal', delta: string): string {
    const out = this.open(kind);
    const item = this.current!;
    item.text += delta;
    const at = { item_id: item.id, output_index: item.index, content_index: 0 };
    if (kind === 'message') return out + this.emit('response.output_text.delta', { ...at, delta, logprobs: [] });
    if (kind === 'refusal') return out + this.emit('response.refusal.delta', { ...at, delta });
    if (this.summary) return out + this.emit('response.reasoning_summary_text.delta', { item_id: item.id, output_index: item.index, summary_index: 0, delta });
    return out + this.emit('response.reasoning_text.delta', { ...at, delta });
  }

  /** An item id: the answer's own for the first item of its kind, numbered for the next ones. */
  private itemId(base: string): string {
    const n = this.used.get(base) ?? 0;
    this.used.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  }

  /** The status of an item closed now: incomplete when the answer was cut short while it was open. */
  private itemStatus(): 'completed' | 'incomplete' {
    return this.finish === undefined ? 'completed' : responseStatus(this.finish).status;
  }

  private closeCurrent(): string {
    const item = this.current;
    if (item === undefined) return '';
    this.current = undefined;
    const at = { item_id: item.id, output_index: item.index, content_index: 0 };
    if (item.kind === 'message' || item.kind === 'refusal') {
      const refusal = item.kind === 'refusal';
      const part = refusal ? { type: 'refusal', refusal: item.text } : outputText(item.text);
      const done: Json = { type: 'message', id: item.id, status: this.itemStatus(), role: 'assistant', content: [part] };
      this.output[item.index] = done;
      const textDone = refusal
        ? this.emit('response.refusal.done', { ...at, refusal: item.text })
        : this.emit('response.output_text.done', { ...at, text: item.text, logprobs: [] });
      return textDone + this.emit('response.content_part.done', { ...at, part }) + this.emit('response.output_item.done', { output_index: item.index, item: done });
    }
    const done = reasoningItem(item.id, item.text, item.blocks ?? [], this.summary);
    this.output[item.index] = done;
    let textDone = '';
    if (this.summary) {
      const summaryAt = { item_id: item.id, output_index: item.index, summary_index: 0 };
      textDone =
        this.emit('response.reasoning_summary_text.done', { ...summaryAt, text: item.text }) +
        this.emit('response.reasoning_summary_part.done', { ...summaryAt, part: { type: 'summary_text', text: item.text } });
    } else if (item.text !== '') {
      // A reasoning item of redacted thinking only has no text part to close.
      textDone = this.emit('response.reasoning_text.done', { ...at, text: item.text });
    }
    return textDone + this.emit('response.output_item.done', { output_index: item.index, item: done });
  }

  /** One tool-call delta: the call's item opens with its id and name, then takes argument pieces. */
  private toolCall(c: Json): string {
    const key = typeof c.index === 'number' ? c.index : this.calls.size;
    const fn = isObject(c.function) ? c.function : {};
    let out = '';
    let call = this.calls.get(key);
    if (call === undefined) {
      out += this.closeCurrent();
      const callId = typeof c.id === 'string' ? c.id : `call_${this.ids!.response}_${key}`;
      call = { kind: 'function_call', index: this.output.length, id: `fc_${callId}`, text: '', callId, name: typeof fn.name === 'string' ? fn.name : '' };
      this.output.push({});
      this.calls.set(key, call);
      out += this.emit('response.output_item.added', {
        output_index: call.index,
        item: { type: 'function_call', id: call.id, call_id: callId, name: call.name, arguments: '', status: 'in_progress' },
      });
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      call.text += fn.arguments;
      out += this.emit('response.function_call_arguments.delta', { item_id: call.id, output_index: call.index, delta: fn.arguments });
    }
    return out;
  }

  private closeCall(call: OpenItem): string {
    const done: Json = { type: 'function_call', id: call.id, call_id: call.callId, name: call.name, arguments: call.text, status: this.itemStatus() };
    this.output[call.index] = done;
    return (
      this.emit('response.function_call_arguments.done', { item_id: call.id, output_index: call.index, name: call.name, arguments: call.text }) +
      this.emit('response.output_item.done', { output_index: call.index, item: done })
    );
  }

  private complete(): string {
    if (this.completed) return '';
    if (this.finish === undefined) throw truncatedStream();
    this.completed = true;
    const response = this.response(this.output, responsesUsage(this.chatUsage), this.finish);
    return this.emit(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
  }
}

/** Two translations in a row: `first`'s frames are parsed again and fed to `second` (Anthropic → Chat → Responses). */
export function chained(first: StreamTranslator, second: StreamTranslator): StreamTranslator {
  const parser = new SseParser();
  const feed = (frames: string): string => {
    let out = '';
    if (frames !== '') for (const ev of parser.push(frames)) out += second.event(ev);
    return out;
  };
  return {
    event: (ev) => feed(first.event(ev)),
    end: () => {
      const out = feed(first.end());
      let tail = '';
      for (const ev of parser.end()) tail += second.event(ev);
      return out + tail + second.end();
    },
    get usage() {
      return second.usage ?? first.usage;
    },
  };
}
