// An OpenAI Chat Completions response → an Anthropic Messages response (pure).
import { isObject, type Json } from '../../common/json.js';
import { usageToAnthropic } from '../formats/anthropic.js';
import { usageFromOpenAI } from '../formats/openai.js';
import { openaiFinishToAnthropicStop } from './map-stop-reason.js';

export function openaiResponseToAnthropic(resp: Json): Json {
  const choice = Array.isArray(resp.choices) && isObject(resp.choices[0]) ? resp.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : {};
  const content: Json[] = [];
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content });
  if (typeof message.refusal === 'string' && message.refusal !== '') content.push({ type: 'text', text: message.refusal });
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    if (!isObject(call) || !isObject(call.function)) continue;
    content.push({ type: 'tool_use', id: call.id, name: call.function.name, input: parseToolInput(call.function.arguments) });
  }
  const usage = usageFromOpenAI(resp.usage) ?? { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 };
  return {
    id: resp.id,
    type: 'message',
    role: 'assistant',
    model: resp.model,
    content,
    stop_reason: openaiFinishToAnthropicStop(choice.finish_reason),
    stop_sequence: null,
    usage: usageToAnthropic(usage),
  };
}

/** Tool arguments are model output; when a cut-off answer left them unparseable, keep the raw text. */
export function parseToolInput(args: unknown): Json {
  if (typeof args !== 'string' || args === '') return {};
  try {
    const value: unknown = JSON.parse(args);
    return isObject(value) ? value : { value };
  } catch {
    return { _raw_arguments: args };
  }
}
