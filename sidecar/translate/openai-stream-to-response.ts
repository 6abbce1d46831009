// A complete OpenAI chat.completion.chunk stream → the chat.completion answer it adds up to: text and
// refusals joined, tool calls assembled by index, logprobs concatenated, finish reasons and usage kept.
// Used to answer a non-streaming request from a stored stream.
import { isObject, type Json } from '../../common/json.js';
import { usageToOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import type { SseEvent } from '../http/sse-parser.js';

interface ToolCallAcc {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

interface ChoiceAcc {
  index: number;
  content: string | undefined;
  refusal: string | undefined;
  reasoning: string | undefined;
  annotations: unknown[] | undefined;
  toolCalls: ToolCallAcc[];
  /** The legacy functions API's one call. */
  functionCall: { name: string; arguments: string } | undefined;
  audio: Json | undefined;
  logprobs: { content: unknown[] | null; refusal: unknown[] | null } | undefined;
  finishReason: unknown;
}

/** Top-level fields a chunk shares with the answer, copied from the first chunk that has them. */
const SHARED = ['id', 'created', 'model', 'service_tier', 'system_fingerprint'] as const;

/**
 * Undefined when the stream holds no usage and none is given (an OpenAI answer always reports usage), or
 * when it is not a complete stream (no finish reason).
 */
export function openaiStreamToResponse(events: readonly SseEvent[], knownUsage: Usage | undefined): Json | undefined {
  const top: Json = {};
  const choices = new Map<number, ChoiceAcc>();
  let usage: unknown;
  for (const ev of events) {
    if (ev.data === '[DONE]') continue;
    const chunk: unknown = JSON.parse(ev.data);
    if (!isObject(chunk)) continue;
    for (const k of SHARED) if (top[k] === undefined && chunk[k] !== undefined && chunk[k] !== null) top[k] = chunk[k];
    if (isObject(chunk.usage)) usage = chunk.usage;
    if (!Array.isArray(chunk.choices)) continue;
    for (const c of chunk.choices) {
      if (!isObject(c)) continue;
      const index = typeof c.index === 'number' ? c.index : 0;
      let acc = choices.get(index);
      if (acc === undefined) {
        acc = { index, content: undefined, refusal: undefined, reasoning: undefined, annotations: undefined, toolCalls: [], functionCall: undefined, audio: undefined, logprobs: undefined, finishReason: null };
        choices.set(index, acc);
      }
      if (!addDelta(acc, isObject(c.delta) ? c.delta : {})) return undefined;
      if (isObject(c.logprobs)) {
        acc.logprobs ??= { content: null, refusal: null };
        if (Array.isArray(c.logprobs.content)) acc.logprobs.content = [...(acc.logprobs.content ?? []), ...c.logprobs.content];
        if (Array.isArray(c.logprobs.refusal)) acc.logprobs.refusal = [...(acc.logprobs.refusal ?? []), ...c.logprobs.refusal];
      }
      if (c.finish_reason !== undefined && c.finish_reason !== null) acc.finishReason = c.finish_reason;
    }
  }
  if (usage === undefined && knownUsage !== undefined) usage = usageToOpenAI(knownUsage);
  const list = [...choices.values()].sort((a, b) => a.index - b.index);
  if (usage === undefined || list.length === 0 || list.some((c) => c.finishReason === null)) return undefined;
  const out: Json = { id: top.id, object: 'chat.completion', created: top.created, model: top.model, choices: list.map(toChoice), usage };
  if (top.service_tier !== undefined) out.service_tier = top.service_tier;
  if (top.system_fingerprint !== undefined) out.system_fingerprint = top.system_fingerprint;
  return out;
}

/** Delta fields this assembler knows; a stream with any other cannot be added up faithfully. */
const KNOWN_DELTA = new Set(['role', 'content', 'refusal', 'reasoning_content', 'annotations', 'tool_calls', 'function_call', 'audio']);

function addDelta(acc: ChoiceAcc, delta: Json): boolean {
  for (const [k, v] of Object.entries(delta)) if (v !== null && v !== undefined && !KNOWN_DELTA.has(k)) return false;
  if (typeof delta.content === 'string') acc.content = (acc.content ?? '') + delta.content;
  if (typeof delta.refusal === 'string') acc.refusal = (acc.refusal ?? '') + delta.refusal;
  // Compatible servers (vLLM, DeepSeek) stream their reasoning beside the content.
  if (typeof delta.reasoning_content === 'string') acc.reasoning = (acc.reasoning ?? '') + delta.reasoning_content;
  if (Array.isArray(delta.annotations)) acc.annotations = [...(acc.annotations ?? []), ...delta.annotations];
  if (isObject(delta.function_call)) {
    const f = (acc.functionCall ??= { name: '', arguments: '' });
    if (typeof delta.function_call.name === 'string') f.name += delta.function_call.name;
    if (typeof delta.function_call.arguments === 'string') f.arguments += delta.function_call.arguments;
  }
  if (isObject(delta.audio)) {
    const a = (acc.audio ??= {});
    for (const k of ['id', 'expires_at'] as const) if (delta.audio[k] !== undefined && delta.audio[k] !== null) a[k] = delta.audio[k];
    for (const k of ['data', 'transcript'] as const) if (typeof delta.audio[k] === 'string') a[k] = String(a[k] ?? '') + delta.audio[k];
  }
  if (!Array.isArray(delta.tool_calls)) return true;
  for (const call of delta.tool_calls) {
    if (!isObject(call)) continue;
    const i = typeof call.index === 'number' ? call.index : acc.toolCalls.length;
    const t = (acc.toolCalls[i] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
    if (typeof call.id === 'string') t.id = call.id;
    if (typeof call.type === 'string') t.type = call.type;
    const fn = isObject(call.function) ? call.function : {};
    if (typeof fn.name === 'string') t.function.name += fn.name;
    if (typeof fn.arguments === 'string') t.function.arguments += fn.arguments;
  }
  return true;
}

function toChoice(acc: ChoiceAcc): Json {
  const calls = acc.toolCalls.filter((t) => t !== undefined);
  // As the official SDK adds it up: a stream that only opened with an empty string has no content (a
  // tool call, a refusal).
  const content = acc.content === undefined || acc.content === '' ? null : acc.content;
  const message: Json = { role: 'assistant', content, refusal: acc.refusal ?? null };
  if (acc.annotations !== undefined) message.annotations = acc.annotations;
  if (acc.reasoning !== undefined) message.reasoning_content = acc.reasoning;
  if (calls.length > 0) message.tool_calls = calls;
  if (acc.functionCall !== undefined) message.function_call = acc.functionCall;
  if (acc.audio !== undefined) message.audio = acc.audio;
  return { index: acc.index, message, logprobs: acc.logprobs ?? null, finish_reason: acc.finishReason };
}
