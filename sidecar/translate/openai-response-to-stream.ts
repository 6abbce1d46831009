// An OpenAI chat.completion answer → the chat.completion.chunk stream that delivers it: per choice a
// role chunk, its content (with its logprobs), refusal, annotations, tool calls (or the legacy function
// call) and audio, a finishing chunk; then the usage chunk when the app asked for it, and [DONE]. Used to
// answer a streaming request from a stored answer.
import { isObject, type Json } from '../../common/json.js';
import { OPENAI_DONE_FRAME, openaiFrame } from '../formats/openai.js';

/** Message fields this writer knows; an answer with any other is not turned into a stream (undefined). */
const KNOWN_MESSAGE = new Set(['role', 'content', 'refusal', 'reasoning_content', 'annotations', 'tool_calls', 'function_call', 'audio']);

export function openaiResponseToStream(resp: Json, includeUsage: boolean): string[] | undefined {
  const base: Json = { id: resp.id, object: 'chat.completion.chunk', created: resp.created, model: resp.model };
  if (resp.service_tier !== undefined) base.service_tier = resp.service_tier;
  if (resp.system_fingerprint !== undefined) base.system_fingerprint = resp.system_fingerprint;
  const frame = (index: number, delta: Json, finish: unknown = null, logprobs: unknown = null): string => {
    const chunk: Json = { ...base, choices: [{ index, delta, logprobs, finish_reason: finish }] };
    if (includeUsage) chunk.usage = null;
    return openaiFrame(chunk);
  };
  const frames: string[] = [];
  const choices = Array.isArray(resp.choices) ? resp.choices.filter(isObject) : [];
  for (const c of choices) {
    const index = typeof c.index === 'number' ? c.index : 0;
    const m = isObject(c.message) ? c.message : {};
    for (const [k, v] of Object.entries(m)) if (v !== null && v !== undefined && !KNOWN_MESSAGE.has(k)) return undefined;
    frames.push(frame(index, { role: 'assistant', content: '', refusal: null }));
    if (typeof m.reasoning_content === 'string' && m.reasoning_content !== '') frames.push(frame(index, { reasoning_content: m.reasoning_content }));
    const logprobs = isObject(c.logprobs) ? c.logprobs : null;
    if (typeof m.content === 'string' && m.content !== '') frames.push(frame(index, { content: m.content }, null, logprobs === null ? null : { content: logprobs.content ?? null, refusal: null }));
    if (typeof m.refusal === 'string' && m.refusal !== '') frames.push(frame(index, { refusal: m.refusal }, null, logprobs === null ? null : { content: null, refusal: logprobs.refusal ?? null }));
    if (Array.isArray(m.annotations)) frames.push(frame(index, { annotations: m.annotations }));
    if (isObject(m.function_call)) frames.push(frame(index, { function_call: m.function_call }));
    if (isObject(m.audio)) frames.push(frame(index, { audio: m.audio }));
    if (Array.isArray(m.tool_calls)) {
      m.tool_calls.filter(isObject).forEach((call, i) => frames.push(frame(index, { tool_calls: [{ index: i, ...call }] })));
    }
    frames.push(frame(index, {}, c.finish_reason ?? 'stop'));
  }
  if (includeUsage && resp.usage !== undefined) frames.push(openaiFrame({ ...base, choices: [], usage: resp.usage }));
  frames.push(OPENAI_DONE_FRAME);
  return frames;
}
