// The fake provider's OpenAI Responses side (`POST /v1/responses`): request checks as strict as OpenAI's
// for what clients send, and the Response object, its SSE events and its error events in OpenAI's shapes.
import { openaiError } from './openai-api.js';
import { argsFromSchema, argumentPieces, countTokens, isObj, planReply, type Ask, type Counts, type Json, type Plan } from './reply.js';

/** A Responses request reduced to what the answer depends on, and the settings the Response echoes. */
export interface ResponsesAsk {
  model: string;
  ask: Ask;
  /** The schema of a `text.format` json_schema answer. */
  jsonSchema: Json | undefined;
  reasoning: { tokens: number; summary: boolean; encrypted: boolean } | undefined;
  echo: Json;
}

/** What the fake answers: the shared plan, its counts, and the reasoning spent before it. */
export interface ResponsesAnswer {
  plan: Plan;
  counts: Counts;
  reasoningTokens: number;
  summary: string | undefined;
}

export interface ResponsesIds {
  id: string;
  message: string;
  call: string;
  callId: string;
  reasoning: string;
  created: number;
}

export const responsesIds = (n: number, created: number): ResponsesIds => ({
  id: `resp_fake${n}`,
  message: `msg_fake${n}`,
  call: `fc_fake${n}`,
  callId: `call_fake${n}`,
  reasoning: `rs_fake${n}`,
  created,
});

/** Reasoning tokens per effort: deterministic, and part of output_tokens and of the max_output_tokens budget. */
const REASONING_TOKENS: Record<string, number> = { minimal: 8, low: 16, medium: 32, high: 64, xhigh: 128 };
const PART_TYPES = "'input_text', 'input_image', 'output_text', 'refusal', 'input_file', 'computer_screenshot', and 'summary_text'";

const missing = (param: string) => openaiError(400, `Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
const invalidValue = (value: unknown, supported: string, param: string) => openaiError(400, `Invalid value: '${String(value)}'. Supported values are: ${supported}.`, param, 'invalid_value');

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p) => (isObj(p) && typeof p.text === 'string' ? p.text : '')).join('');
}

function checkParts(content: unknown, role: string, at: string): void {
  if (typeof content === 'string') return;
  if (!Array.isArray(content)) throw missing(`${at}.content`);
  content.forEach((p, j) => {
    const type = isObj(p) ? p.type : undefined;
    const param = `${at}.content[${j}].type`;
    if (!['input_text', 'input_image', 'input_file', 'output_text', 'refusal'].includes(String(type))) throw invalidValue(type, PART_TYPES, param);
    if (role === 'assistant' && String(type).startsWith('input_')) throw invalidValue(type, "'output_text' and 'refusal'", param);
    if (role !== 'assistant' && !String(type).startsWith('input_')) throw invalidValue(type, "'input_text', 'input_image', and 'input_file'", param);
  });
}

/** Checks a Responses request the way OpenAI does and reduces it. Throws FakeHttpError. */
export function responsesAsk(body: Json): ResponsesAsk {
  if (typeof body.model !== 'string') throw missing('model');
  // The fake stores nothing, so every earlier response is one OpenAI would not find either.
  if (typeof body.previous_response_id === 'string') {
    throw openaiError(400, `Previous response with id '${body.previous_response_id}' not found.`, 'previous_response_id', 'previous_response_not_found');
  }
  const maxOut = body.max_output_tokens ?? undefined;
  if (maxOut !== undefined && (typeof maxOut !== 'number' || !Number.isInteger(maxOut) || maxOut < 16)) {
    throw openaiError(400, `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got ${String(maxOut)} instead.`, 'max_output_tokens', 'integer_below_min_value');
  }
  const input = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : body.input;
  if (!Array.isArray(input)) throw missing('input');
  const tools = Array.isArray(body.tools) ? body.tools : [];
  const echoTools = tools.map((t, i) => {
    if (!isObj(t) || typeof t.type !== 'string') throw missing(`tools[${i}].type`);
    if (t.type !== 'function') return t;
    if (typeof t.name !== 'string') throw missing(`tools[${i}].name`);
    return { type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? true };
  });
  const format = isObj(body.text) && isObj(body.text.format) ? body.text.format : { type: 'text' };
  if (format.type === 'json_schema') {
    if (typeof format.name !== 'string') throw missing('text.format.name');
    if (!isObj(format.schema)) throw missing('text.format.schema');
  }

  const calls = new Set<string>();
  const answered = new Set<string>();
  // A referenced item may be a call the fake cannot see, so its outputs are not checked then.
  const references = input.some((item) => isObj(item) && item.type === 'item_reference');
  let promptText = typeof body.instructions === 'string' ? body.instructions : '';
  let lastUserText = '';
  let toolResult: string | undefined;
  input.forEach((item, i) => {
    const at = `input[${i}]`;
    if (!isObj(item)) throw openaiError(400, `Invalid type for '${at}': expected an object, but got ${typeof item} instead.`, at, 'invalid_type');
    const type = item.type ?? 'message';
    if (type === 'message') {
      const role = String(item.role);
      if (!['user', 'assistant', 'system', 'developer'].includes(role)) throw invalidValue(item.role, "'assistant', 'system', 'developer', and 'user'", `${at}.role`);
      checkParts(item.content, role, at);
      const text = textOf(item.content);
      promptText += text;
      if (role === 'user') lastUserText = text;
      toolResult = undefined;
    } else if (type === 'function_call') {
      for (const key of ['call_id', 'name', 'arguments']) if (typeof item[key] !== 'string') throw missing(`${at}.${key}`);
      calls.add(String(item.call_id));
      toolResult = undefined;
    } else if (type === 'function_call_output') {
      if (typeof item.call_id !== 'string') throw missing(`${at}.call_id`);
      if (!calls.has(item.call_id) && !references) throw openaiError(400, `No tool call found for function call output with call_id ${item.call_id}.`, 'input');
      answered.add(item.call_id);
      toolResult = textOf(item.output);
      promptText += toolResult;
    }
    // Reasoning items, item references and hosted tool calls do not change what the fake answers.
  });
  const unanswered = [...calls].find((id) => !answered.has(id));
  if (unanswered !== undefined) throw openaiError(400, `No tool output found for function call ${unanswered}.`, 'input');

  const choice = body.tool_choice;
  const toolMode: Ask['toolMode'] =
    choice === 'none' || choice === 'required' ? choice : isObj(choice) && choice.type === 'function' && typeof choice.name === 'string' ? { name: choice.name } : 'auto';
  const toolSpecs = echoTools.filter((t) => t.type === 'function').map((t) => ({ name: String(t.name), schema: isObj(t.parameters) ? t.parameters : {} }));

  const r = isObj(body.reasoning) ? body.reasoning : undefined;
  const effort = r === undefined ? null : typeof r.effort === 'string' ? r.effort : 'medium';
  const summary = r === undefined || typeof r.summary !== 'string' ? null : r.summary;
  const reasoningTokens = effort === null ? 0 : (REASONING_TOKENS[effort] ?? 0);
  const include = Array.isArray(body.include) ? body.include : [];
  const reasoning = reasoningTokens > 0 ? { tokens: reasoningTokens, summary: summary !== null, encrypted: include.includes('reasoning.encrypted_content') } : undefined;
  // max_output_tokens covers reasoning and visible output alike.
  const maxTokens = maxOut === undefined ? undefined : Math.max(0, maxOut - reasoningTokens);
  const ask: Ask = { promptText, lastUserText, toolResult, tools: toolSpecs, toolMode, maxTokens, stop: [] };

  const echo: Json = {
    instructions: body.instructions ?? null,
    max_output_tokens: maxOut ?? null,
    max_tool_calls: body.max_tool_calls ?? null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: null,
    prompt_cache_key: body.prompt_cache_key ?? null,
    reasoning: { effort, summary },
    safety_identifier: body.safety_identifier ?? null,
    store: body.store ?? true,
    temperature: body.temperature ?? 1,
    text: { format, verbosity: isObj(body.text) && typeof body.text.verbosity === 'string' ? body.text.verbosity : 'medium' },
    tool_choice: choice ?? 'auto',
    tools: echoTools,
    top_logprobs: body.top_logprobs ?? 0,
    top_p: body.top_p ?? 1,
    truncation: body.truncation ?? 'disabled',
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
  return { model: body.model, ask, jsonSchema: format.type === 'json_schema' ? (format.schema as Json) : undefined, reasoning, echo };
}

export function answerResponses(req: ResponsesAsk): ResponsesAnswer {
  let plan = planReply(req.ask);
  if (plan.kind === 'text' && req.jsonSchema !== undefined) {
    // A structured answer is the JSON the schema asks for, one "token" per argument piece.
    const pieces = argumentPieces(argsFromSchema(req.jsonSchema));
    const max = req.ask.maxTokens;
    const cut = max !== undefined && pieces.length > max;
    plan = { kind: 'text', words: cut ? pieces.slice(0, max) : pieces, finish: cut ? 'length' : 'stop', stopSequence: null };
  }
  const summary = !req.reasoning?.summary
    ? undefined
    : plan.kind === 'tool'
      ? `**Choosing a tool**\n\nThe request calls for ${plan.name}, so the fake calls it.`
      : '**Answering the request**\n\nThe fake provider answers deterministically.';
  return { plan, counts: countTokens(req.ask, plan), reasoningTokens: req.reasoning?.tokens ?? 0, summary };
}

/** Tokens a real provider would bill for this answer. */
export const responsesBilled = (a: ResponsesAnswer): number => a.counts.promptTokens + a.counts.completionTokens + a.reasoningTokens;

const cutShort = (a: ResponsesAnswer): boolean => a.plan.kind === 'text' && a.plan.finish === 'length';
const textPart = (text: string): Json => ({ type: 'output_text', annotations: [], logprobs: [], text });

/** The output items of the finished answer, in order. */
function outputItems(req: ResponsesAsk, a: ResponsesAnswer, ids: ResponsesIds): Json[] {
  const items: Json[] = [];
  if (req.reasoning !== undefined) {
    const item: Json = { id: ids.reasoning, type: 'reasoning', summary: a.summary === undefined ? [] : [{ type: 'summary_text', text: a.summary }] };
    if (req.reasoning.encrypted) item.encrypted_content = Buffer.from(`fake-reasoning:${ids.reasoning}`).toString('base64');
    items.push(item);
  }
  if (a.plan.kind === 'tool') {
    items.push({ id: ids.call, type: 'function_call', status: 'completed', arguments: JSON.stringify(a.plan.args), call_id: ids.callId, name: a.plan.name });
  } else if (a.plan.words.length > 0 || !cutShort(a)) {
    // A budget spent on reasoning alone leaves no message, as with OpenAI.
    items.push({ id: ids.message, type: 'message', status: cutShort(a) ? 'incomplete' : 'completed', content: [textPart(a.plan.words.join(''))], role: 'assistant' });
  }
  return items;
}

type Phase = 'in_progress' | 'done' | 'failed';
const FAILURE = { code: 'server_error', message: 'The server had an error while processing your request.' };

/** The Response object: finished (`done`), as announced at the start of a stream, or failed midway. */
export function responseObject(req: ResponsesAsk, a: ResponsesAnswer, ids: ResponsesIds, phase: Phase = 'done'): Json {
  const done = phase === 'done';
  const output = done ? outputItems(req, a, ids) : [];
  const status = !done ? phase : cutShort(a) ? 'incomplete' : 'completed';
  const c = a.counts;
  const outputTokens = c.completionTokens + a.reasoningTokens;
  const usage = {
    input_tokens: c.promptTokens,
    input_tokens_details: { cached_tokens: c.cachedTokens },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: a.reasoningTokens },
    total_tokens: c.promptTokens + outputTokens,
  };
  return {
    id: ids.id,
    object: 'response',
    created_at: ids.created,
    status,
    background: false,
    completed_at: done ? ids.created : null,
    error: phase === 'failed' ? FAILURE : null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    model: req.model,
    output,
    service_tier: done ? 'default' : 'auto',
    ...req.echo,
    usage: done ? usage : null,
  };
}

/** The SSE events of a streamed answer, in the order OpenAI sends them; no `[DONE]`. */
export function responsesEvents(req: ResponsesAsk, a: ResponsesAnswer, ids: ResponsesIds): string[] {
  const frames: string[] = [];
  const emit = (type: string, data: Json): void => {
    frames.push(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: frames.length, ...data })}\n\n`);
  };
  const final = responseObject(req, a, ids);
  emit('response.created', { response: responseObject(req, a, ids, 'in_progress') });
  emit('response.in_progress', { response: responseObject(req, a, ids, 'in_progress') });
  (final.output as Json[]).forEach((item, output_index) => {
    const at = { item_id: item.id, output_index };
    if (item.type === 'reasoning') {
      emit('response.output_item.added', { output_index, item: { ...item, summary: [] } });
      (item.summary as Json[]).forEach((part, summary_index) => {
        const text = String(part.text);
        emit('response.reasoning_summary_part.added', { ...at, summary_index, part: { type: 'summary_text', text: '' } });
        for (const delta of text.match(/\S+\s*/g) ?? []) emit('response.reasoning_summary_text.delta', { ...at, summary_index, delta });
        emit('response.reasoning_summary_text.done', { ...at, summary_index, text });
        emit('response.reasoning_summary_part.done', { ...at, summary_index, part });
      });
    } else if (item.type === 'function_call') {
      emit('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', arguments: '' } });
      for (const delta of a.plan.kind === 'tool' ? argumentPieces(a.plan.args) : []) emit('response.function_call_arguments.delta', { ...at, delta });
      emit('response.function_call_arguments.done', { ...at, name: item.name, arguments: item.arguments });
    } else {
      const part = (item.content as Json[])[0]!;
      emit('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', content: [] } });
      emit('response.content_part.added', { ...at, content_index: 0, part: textPart('') });
      for (const delta of a.plan.kind === 'text' ? a.plan.words : []) emit('response.output_text.delta', { ...at, content_index: 0, delta, logprobs: [] });
      emit('response.output_text.done', { ...at, content_index: 0, text: part.text, logprobs: [] });
      emit('response.content_part.done', { ...at, content_index: 0, part });
    }
    emit('response.output_item.done', { output_index, item });
  });
  emit(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final });
  return frames;
}

/**
 * What a stream failing after `sent` events ends with: OpenAI's `error` event, then `response.failed`.
 * The error sits nested under `error` as OpenAI sends it (the official SDKs throw on that key) and flat
 * as its reference documents (`ResponseErrorEvent`), so clients reading either shape see the failure.
 */
export function responsesErrorFrames(req: ResponsesAsk, a: ResponsesAnswer, ids: ResponsesIds, sent: number): string {
  const error = { type: 'error', sequence_number: sent, error: { type: 'server_error', ...FAILURE, param: null }, ...FAILURE, param: null };
  const failed = { type: 'response.failed', sequence_number: sent + 1, response: responseObject(req, a, ids, 'failed') };
  return `event: error\ndata: ${JSON.stringify(error)}\n\nevent: response.failed\ndata: ${JSON.stringify(failed)}\n\n`;
}
