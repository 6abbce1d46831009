// An OpenAI chat completion → an OpenAI Response (pure): the answer of a Chat Completions provider (or an
// Anthropic one, through the Messages → Chat translation) in the shape a Responses app reads. The pieces
// are shared with the stream translation (chat-stream-to-responses.ts), which builds the same Response.
import { isObject, type Json } from '../../common/json.js';
import { num } from '../formats/usage.js';
import { encodeThinking, thinkingBlocksOf, type ThinkingBlock } from './thinking-blocks.js';

/** What a Response echoes of the request that made it (as OpenAI's does), taken once per request. */
export function responsesEcho(body: Json): Json {
  const reasoning = isObject(body.reasoning) ? body.reasoning : {};
  const text = isObject(body.text) ? body.text : {};
  return {
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: reasoning.effort ?? null, summary: reasoning.summary ?? null },
    // Nothing was stored by the provider: a follow-up by previous_response_id would not find it.
    store: false,
    temperature: body.temperature ?? 1,
    text: { format: text.format ?? { type: 'text' }, ...(text.verbosity === undefined ? {} : { verbosity: text.verbosity }) },
    tool_choice: body.tool_choice ?? 'auto',
    tools: Array.isArray(body.tools) ? body.tools : [],
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    user: body.user ?? null,
    metadata: isObject(body.metadata) ? body.metadata : {},
  };
}

/** The ids of a Response and its items, from the upstream's answer id. */
export interface ResponseIds {
  response: string;
  message: string;
  reasoning: string;
}

export function responseIds(upstreamId: unknown): ResponseIds {
  const base = typeof upstreamId === 'string' && upstreamId !== '' ? upstreamId.replace(/^(chatcmpl-|msg_)/, '') : Math.random().toString(36).slice(2);
  return { response: `resp_${base}`, message: `msg_${base}`, reasoning: `rs_${base}` };
}

/** A Response's status and why it is incomplete, from a chat finish_reason. */
export function responseStatus(finish: unknown): { status: 'completed' | 'incomplete'; incomplete_details: Json | null } {
  if (finish === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (finish === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

/** Chat usage → a Response's usage (cached input and reasoning output counts included). */
export function responsesUsage(u: unknown): Json | null {
  if (!isObject(u)) return null;
  const input = num(u.prompt_tokens);
  const output = num(u.completion_tokens);
  const prompt = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const completion = isObject(u.completion_tokens_details) ? u.completion_tokens_details : {};
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: num(prompt.cached_tokens) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: num(completion.reasoning_tokens) },
    total_tokens: input + output,
  };
}

export const outputText = (text: string): Json => ({ type: 'output_text', text, annotations: [], logprobs: [] });

/** The Response object around its output items. */
export function responseObject(ids: ResponseIds, createdAt: number, model: unknown, echo: Json, output: Json[], finish: unknown, usage: Json | null): Json {
  const { status, incomplete_details } = responseStatus(finish);
  return {
    id: ids.response,
    object: 'response',
    created_at: createdAt,
    status,
    background: false,
    error: null,
    incomplete_details,
    model: typeof model === 'string' ? model : '',
    output,
    ...echo,
    usage,
  };
}

/** Reasoning text some Chat Completions servers return beside the answer (DeepSeek, vLLM: reasoning_content; others: reasoning). */
export const reasoningOf = (m: Json): unknown => m.reasoning_content ?? m.reasoning;

/** Whether the request asked for reasoning summaries (`reasoning.summary`): the reasoning text is given as one. */
export const wantsSummary = (echo: Json): boolean => isObject(echo.reasoning) && typeof echo.reasoning.summary === 'string';

/**
 * A reasoning item: its text as `reasoning_text` content, or as its summary when the request asked for one
 * (what a Chat Completions server or Anthropic returns of its reasoning is all there is to summarize it by;
 * Claude's thinking is itself a summary), and Anthropic's thinking blocks (a Chat answer's
 * `thinking_blocks`) in `encrypted_content`, which the app sends back with the item as it would OpenAI's.
 * Written whether or not the request `include`s it: a Responses app cannot otherwise hand them back, and
 * Anthropic refuses a tool loop with thinking without them.
 */
export function reasoningItem(id: string, text: string, blocks: readonly ThinkingBlock[], summary = false): Json {
  const parts = text === '' ? [] : [{ type: summary ? 'summary_text' : 'reasoning_text', text }];
  const item: Json = { type: 'reasoning', id, summary: summary ? parts : [], content: summary ? [] : parts };
  if (blocks.length > 0) item.encrypted_content = encodeThinking(blocks);
  return item;
}

export function chatResponseToResponses(chat: Json, echo: Json): Json {
  const ids = responseIds(chat.id);
  const choice = (Array.isArray(chat.choices) ? chat.choices[0] : undefined) as Json | undefined;
  const message = isObject(choice?.message) ? choice.message : {};
  const output: Json[] = [];
  const reasoning = reasoningOf(message);
  const text = typeof reasoning === 'string' ? reasoning : '';
  const blocks = thinkingBlocksOf(message.thinking_blocks);
  if (text !== '' || blocks.length > 0) output.push(reasoningItem(ids.reasoning, text, blocks, wantsSummary(echo)));
  const content: Json[] = [];
  if (typeof message.content === 'string' && message.content !== '') content.push(outputText(message.content));
  if (typeof message.refusal === 'string' && message.refusal !== '') content.push({ type: 'refusal', refusal: message.refusal });
  // A message cut short (max tokens, a content filter) is an incomplete item, as OpenAI marks it.
  const itemStatus = responseStatus(choice?.finish_reason).status;
  if (content.length > 0) output.push({ type: 'message', id: ids.message, status: itemStatus, role: 'assistant', content });
  if (Array.isArray(message.tool_calls)) {
    for (const c of message.tool_calls) {
      if (!isObject(c) || !isObject(c.function)) continue;
      const callId = String(c.id ?? '');
      output.push({ type: 'function_call', id: `fc_${callId}`, call_id: callId, name: String(c.function.name ?? ''), arguments: String(c.function.arguments ?? ''), status: itemStatus });
    }
  }
  const created = typeof chat.created === 'number' ? chat.created : Math.floor(Date.now() / 1000);
  return responseObject(ids, created, chat.model, echo, output, choice?.finish_reason, responsesUsage(chat.usage));
}
