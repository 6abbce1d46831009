// An Anthropic message → the Messages stream that delivers it: message_start, each content block as
// start / deltas / stop (text, tool and server-tool input as JSON, thinking with its signature,
// citations; other blocks whole in their start event), message_delta with the stop reason and usage,
// message_stop. Used to answer a streaming request from a stored answer.
import { isObject, type Json } from '../../common/json.js';
import { anthropicFrame } from '../formats/anthropic.js';

export function anthropicResponseToStream(msg: Json): string[] {
  const usage = isObject(msg.usage) ? msg.usage : {};
  const frames = [anthropicFrame('message_start', { type: 'message_start', message: { ...msg, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 0 } } })];
  const content = Array.isArray(msg.content) ? msg.content.filter(isObject) : [];
  content.forEach((block, index) => {
    const delta = (d: Json): void => void frames.push(anthropicFrame('content_block_delta', { type: 'content_block_delta', index, delta: d }));
    const start = (b: Json): void => void frames.push(anthropicFrame('content_block_start', { type: 'content_block_start', index, content_block: b }));
    if (block.type === 'text') {
      const { text, citations, ...rest } = block;
      start({ ...rest, text: '', ...(Array.isArray(citations) ? { citations: [] } : {}) });
      if (Array.isArray(citations)) for (const citation of citations) delta({ type: 'citations_delta', citation });
      if (typeof text === 'string' && text !== '') delta({ type: 'text_delta', text });
    } else if (block.type === 'thinking') {
      start({ ...block, thinking: '', signature: '' });
      if (typeof block.thinking === 'string' && block.thinking !== '') delta({ type: 'thinking_delta', thinking: block.thinking });
      if (typeof block.signature === 'string') delta({ type: 'signature_delta', signature: block.signature });
    } else if ('input' in block) {
      // tool_use, server_tool_use, mcp_tool_use: the input arrives as JSON text.
      start({ ...block, input: {} });
      delta({ type: 'input_json_delta', partial_json: JSON.stringify(block.input ?? {}) });
    } else {
      start(block);
    }
    frames.push(anthropicFrame('content_block_stop', { type: 'content_block_stop', index }));
  });
  frames.push(anthropicFrame('message_delta', { type: 'message_delta', delta: { stop_reason: msg.stop_reason ?? 'end_turn', stop_sequence: msg.stop_sequence ?? null }, usage }));
  frames.push(anthropicFrame('message_stop', { type: 'message_stop' }));
  return frames;
}
