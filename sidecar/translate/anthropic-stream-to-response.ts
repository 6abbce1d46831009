// A complete Anthropic Messages stream → the message it adds up to: message_start's skeleton, each
// content block from its start event and deltas (text, tool input JSON, thinking and its signature,
// citations), message_delta's stop reason and usage. Used to answer a non-streaming request from a
// stored stream.
import { isObject, type Json } from '../../common/json.js';
import type { SseEvent } from '../http/sse-parser.js';

/** Undefined when the stream is not a complete message (no message_start or no message_stop), or holds an event or delta of a kind not known here. */
export function anthropicStreamToResponse(events: readonly SseEvent[]): Json | undefined {
  let message: Json | undefined;
  const blocks: Json[] = [];
  const partialJson = new Map<number, string>();
  let stopped = false;
  for (const ev of events) {
    const data: unknown = JSON.parse(ev.data);
    if (!isObject(data)) continue;
    switch (data.type) {
      case 'message_start':
        if (isObject(data.message)) message = { ...data.message, content: [] };
        break;
      case 'content_block_start':
        if (typeof data.index === 'number' && isObject(data.content_block)) blocks[data.index] = { ...data.content_block };
        break;
      case 'content_block_delta': {
        const block = typeof data.index === 'number' ? blocks[data.index] : undefined;
        if (block === undefined || !isObject(data.delta) || !addDelta(block, data.index as number, data.delta, partialJson)) return undefined;
        break;
      }
      case 'content_block_stop': {
        const index = data.index as number;
        const json = partialJson.get(index);
        if (json !== undefined && json !== '' && blocks[index] !== undefined) blocks[index].input = JSON.parse(json);
        break;
      }
      case 'message_delta':
        if (message === undefined) break;
        if (isObject(data.delta)) Object.assign(message, data.delta);
        // The delta's counters are totals for the whole message (output_tokens always, the rest when present).
        if (isObject(data.usage)) {
          const usage = isObject(message.usage) ? { ...message.usage } : {};
          for (const [k, v] of Object.entries(data.usage)) if (v !== null && v !== undefined) usage[k] = v;
          message.usage = usage;
        }
        break;
      case 'message_stop':
        stopped = true;
        break;
      case 'ping':
        break;
      default:
        // An event this assembler does not know may carry part of the answer.
        return undefined;
    }
  }
  if (message === undefined || !stopped) return undefined;
  message.content = blocks.filter((b) => b !== undefined);
  return message;
}

function addDelta(block: Json, index: number, delta: Json, partialJson: Map<number, string>): boolean {
  switch (delta.type) {
    case 'text_delta':
      block.text = String(block.text ?? '') + String(delta.text ?? '');
      break;
    case 'input_json_delta':
      partialJson.set(index, (partialJson.get(index) ?? '') + String(delta.partial_json ?? ''));
      break;
    case 'thinking_delta':
      block.thinking = String(block.thinking ?? '') + String(delta.thinking ?? '');
      break;
    case 'signature_delta':
      block.signature = delta.signature;
      break;
    case 'citations_delta':
      block.citations = [...(Array.isArray(block.citations) ? block.citations : []), delta.citation];
      break;
    default:
      return false;
  }
  return true;
}
