// An Anthropic Messages response → an OpenAI Chat Completions response (pure). Thinking comes back in
// LiteLLM's fields: `reasoning_content` (its text) and `thinking_blocks` (the blocks, signed, to send back).
import { isObject, type Json } from '../../common/json.js';
import { usageFromAnthropic } from '../formats/anthropic.js';
import { usageToOpenAI } from '../formats/openai.js';
import { anthropicStopToOpenAIFinish } from './map-stop-reason.js';
import { thinkingBlockOf, type ThinkingBlock } from './thinking-blocks.js';

/** `created` (seconds since the epoch) is the caller's: Anthropic does not send one. */
export function anthropicResponseToOpenAI(msg: Json, created: number): Json {
  const texts: string[] = [];
  const toolCalls: Json[] = [];
  const thinking: ThinkingBlock[] = [];
  for (const block of Array.isArray(msg.content) ? msg.content : []) {
    if (!isObject(block)) continue;
    const thought = thinkingBlockOf(block);
    if (thought !== undefined) thinking.push(thought);
    else if (block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: block.id,
        type: 'function',
        function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  const message: Json = {
    role: 'assistant',
    content: texts.length > 0 ? texts.join('') : toolCalls.length > 0 ? null : '',
    refusal: null,
  };
  if (thinking.length > 0) {
    const thoughts = thinking.flatMap((b) => (b.type === 'thinking' ? [b.thinking] : []));
    if (thoughts.length > 0) message.reasoning_content = thoughts.join('');
    message.thinking_blocks = thinking;
  }
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const out: Json = {
    id: msg.id,
    object: 'chat.completion',
    created,
    model: msg.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: anthropicStopToOpenAIFinish(msg.stop_reason) }],
  };
  const usage = usageFromAnthropic(msg.usage);
  if (usage !== undefined) out.usage = usageToOpenAI(usage);
  return out;
}
