// An OpenAI Responses request → an OpenAI Chat Completions request (pure), for providers that speak Chat
// Completions only, and (through the Chat → Messages translation) for Anthropic. What Chat Completions
// cannot express is refused with 400 naming the Responses parameter, never silently dropped; the few
// exceptions are listed in INERT and in the README's table.
import { invalidRequest } from '../../common/errors.js';
import { isObject, type Json } from '../../common/json.js';
import { asArray, asObject, asString } from './json-object.js';
import { decodeThinking, type ThinkingBlock } from './thinking-blocks.js';
import { effortBudget } from './thinking-budget.js';

export interface ResponsesToChatOptions {
  /** Upstream model name. */
  model: string;
  /** The field the provider takes the output cap in (`max_completion_tokens` for OpenAI, `max_tokens` otherwise). */
  maxTokensField: 'max_tokens' | 'max_completion_tokens';
  /** Ask a streaming upstream for its usage (`stream_options.include_usage`). */
  streamUsage: boolean;
  /** What the translation is for, in refusals ("an Anthropic model", "a Chat Completions provider"). */
  target: string;
  /**
   * The Chat request goes on to Anthropic (openai-request-to-anthropic.ts): what Messages cannot take is
   * refused here already, so the refusal names the Responses parameter, not an intermediate Chat one.
   */
  anthropic: boolean;
}

/**
 * Parameters that do not change what a correct answer is, or that only concern OpenAI's own storage and
 * presentation: not sent. `store`: nothing is stored by the provider (a follow-up by previous_response_id
 * is refused instead). `include`: extra output (logprobs) a translated answer cannot carry; the encrypted
 * reasoning of Anthropic's thinking is written whether asked or not (chat-response-to-responses.ts
 * `reasoningItem`). `truncation: disabled` is the behaviour anyway.
 */
const INERT = new Set(['store', 'include', 'metadata', 'service_tier', 'safety_identifier', 'prompt_cache_key', 'prompt_cache_retention', 'stream_options', 'top_logprobs', 'max_tool_calls']);

export function responsesRequestToChat(body: Json, opts: ResponsesToChatOptions): Json {
  const unsupported = (param: string, what: string) => invalidRequest(`${what} cannot be translated for ${opts.target}`, param);
  const out: Json = { model: opts.model };
  const messages: Json[] = [];
  if (body.instructions !== undefined && body.instructions !== null) {
    messages.push({ role: 'system', content: asString(body.instructions, 'instructions') });
  }
  const input = body.input;
  if (typeof input === 'string') messages.push({ role: 'user', content: input });
  else if (input !== undefined && input !== null) convertItems(asArray(input, 'input'), messages, unsupported, opts.anthropic);
  out.messages = messages;

  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    switch (key) {
      case 'model':
      case 'input':
      case 'instructions':
      case 'tools':
      case 'tool_choice':
        break;
      case 'temperature':
      case 'top_p':
      case 'parallel_tool_calls':
      case 'user':
        out[key] = value;
        break;
      case 'max_output_tokens':
        out[opts.maxTokensField] = value;
        break;
      case 'stream':
        if (value === true) {
          out.stream = true;
          if (opts.streamUsage) out.stream_options = { include_usage: true };
        }
        break;
      case 'text':
        applyTextFormat(asObject(value, 'text'), out, unsupported, opts.anthropic);
        break;
      case 'reasoning': {
        const r = asObject(value, 'reasoning');
        // A summary is asked for by the answer's shape only (the reasoning text is given as the summary).
        if (r.summary !== undefined && r.summary !== null && !['auto', 'concise', 'detailed'].includes(r.summary as string)) {
          throw invalidRequest('reasoning.summary must be auto, concise or detailed', 'reasoning.summary');
        }
        if (r.effort === undefined || r.effort === null) break;
        // Checked here too, so a refusal names the Responses parameters (thinking-budget.ts has the table).
        if (opts.anthropic) effortBudget(r.effort, body.max_output_tokens, { effort: 'reasoning.effort', cap: 'max_output_tokens' });
        if (typeof r.effort === 'string') out.reasoning_effort = r.effort;
        break;
      }
      case 'truncation':
        if (value !== 'disabled') throw unsupported('truncation', `truncation "${String(value)}"`);
        break;
      case 'previous_response_id':
        throw unsupported('previous_response_id', 'a follow-up of a response stored by the provider (previous_response_id; send the conversation as input)');
      case 'background':
        if (value === true) throw unsupported('background', 'background responses');
        break;
      default:
        if (!INERT.has(key)) throw unsupported(key, `the parameter "${key}"`);
    }
  }
  applyTools(body, out, unsupported);
  return out;
}

type Refuse = (param: string, what: string) => Error;

/**
 * Input items → chat messages: consecutive function calls become one assistant turn with tool_calls. A
 * reasoning item the sidecar wrote for Anthropic (its encrypted_content) gives the next assistant turn its
 * `thinking_blocks`, which openai-request-to-anthropic.ts sends back first in that turn.
 */
function convertItems(items: unknown[], messages: Json[], unsupported: Refuse, anthropic: boolean): void {
  let thinking: ThinkingBlock[] = [];
  /** The assistant message an item just went into takes the thinking that preceded it. */
  const takeThinking = (m: Json): void => {
    if (thinking.length === 0) return;
    m.thinking_blocks = [...((m.thinking_blocks as ThinkingBlock[] | undefined) ?? []), ...thinking];
    thinking = [];
  };
  items.forEach((raw, i) => {
    const param = `input[${i}]`;
    const item = asObject(raw, param);
    const type = item.type ?? 'message';
    // Thinking belongs to the assistant turn right after it; anything else in between ends that turn.
    if (type !== 'reasoning' && type !== 'function_call' && !(type === 'message' && item.role === 'assistant')) thinking = [];
    switch (type) {
      case 'message': {
        const role = item.role;
        if (role === 'assistant') {
          const m: Json = { role: 'assistant', content: assistantText(item.content, `${param}.content`) };
          takeThinking(m);
          messages.push(m);
        } else if (role === 'system' || role === 'developer') {
          // `system`: what every Chat Completions server knows (developer is OpenAI's newer name for it).
          messages.push({ role: 'system', content: systemContent(item.content, `${param}.content`) });
        } else if (role === 'user') {
          messages.push({ role, content: userContent(item.content, `${param}.content`, unsupported, anthropic) });
        } else {
          throw invalidRequest(`${param}.role must be user, assistant, system or developer`, `${param}.role`);
        }
        break;
      }
      case 'function_call': {
        const args = asString(item.arguments, `${param}.arguments`);
        if (anthropic && !encodesObject(args)) throw invalidRequest(`${param}.arguments must be a JSON object for an Anthropic model`, `${param}.arguments`);
        const call = { id: asString(item.call_id, `${param}.call_id`), type: 'function', function: { name: asString(item.name, `${param}.name`), arguments: args } };
        // A text reply and the calls that follow it in the same turn are one assistant message.
        const last = messages.at(-1);
        if (last?.role === 'assistant') {
          last.tool_calls = [...((last.tool_calls as Json[] | undefined) ?? []), call];
          if (last.content === '') last.content = null;
          takeThinking(last);
        } else {
          const m: Json = { role: 'assistant', content: null, tool_calls: [call] };
          takeThinking(m);
          messages.push(m);
        }
        break;
      }
      case 'function_call_output':
        messages.push({ role: 'tool', tool_call_id: asString(item.call_id, `${param}.call_id`), content: toolOutput(item.output, `${param}.output`) });
        break;
      case 'reasoning': {
        // The model's own earlier reasoning. Anthropic's thinking blocks, which the sidecar wrote into
        // encrypted_content, go back to it; anything else (OpenAI's encrypted reasoning, plain text) no
        // other provider can read: not sent.
        const blocks = anthropic ? decodeThinking(item.encrypted_content, `${param}.encrypted_content`) : undefined;
        if (blocks !== undefined) thinking.push(...blocks);
        break;
      }
      case 'item_reference':
        throw unsupported(`${param}.type`, 'an item reference (items stored by the provider)');
      default:
        throw unsupported(`${param}.type`, `input item type "${String(type)}"`);
    }
  });
}

function assistantText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  return asArray(content, param)
    .map((p, j) => {
      const part = asObject(p, `${param}[${j}]`);
      if (part.type === 'output_text' || part.type === 'input_text') return asString(part.text, `${param}[${j}].text`);
      if (part.type === 'refusal') return asString(part.refusal, `${param}[${j}].refusal`);
      throw invalidRequest(`${param}[${j}] must be an output_text or refusal part`, `${param}[${j}].type`);
    })
    .join('');
}

/** A system or developer message: text only (Chat Completions takes nothing else there). */
function systemContent(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  return asArray(content, param)
    .map((p, j) => {
      const part = asObject(p, `${param}[${j}]`);
      if (part.type !== 'input_text') throw invalidRequest(`${param}[${j}]: a system or developer message can hold text only`, `${param}[${j}].type`);
      return asString(part.text, `${param}[${j}].text`);
    })
    .join('\n');
}

function encodesObject(text: string): boolean {
  if (text === '') return true;
  try {
    return isObject(JSON.parse(text));
  } catch {
    return false;
  }
}

function userContent(content: unknown, param: string, unsupported: Refuse, anthropic: boolean): string | Json[] {
  if (typeof content === 'string') return content;
  return asArray(content, param).map((p, j) => {
    const at = `${param}[${j}]`;
    const part = asObject(p, at);
    switch (part.type) {
      case 'input_text':
      case 'output_text':
        return { type: 'text', text: asString(part.text, `${at}.text`) };
      case 'input_image': {
        if (typeof part.image_url !== 'string') throw unsupported(`${at}.file_id`, 'an image by file_id (send image_url)');
        const image: Json = { url: part.image_url };
        if (typeof part.detail === 'string') image.detail = part.detail;
        return { type: 'image_url', image_url: image };
      }
      case 'input_file': {
        if (typeof part.file_data !== 'string') {
          const by = typeof part.file_url === 'string' ? 'file_url' : 'file_id';
          throw unsupported(`${at}.${by}`, `a file by ${by} (send file_data)`);
        }
        if (anthropic && !/^data:application\/pdf;base64,/i.test(part.file_data)) {
          throw unsupported(`${at}.file_data`, 'a file other than a PDF sent inline');
        }
        const file: Json = { file_data: part.file_data };
        if (typeof part.filename === 'string') file.filename = part.filename;
        return { type: 'file', file };
      }
      default:
        throw unsupported(`${at}.type`, `content part type "${String(part.type)}"`);
    }
  });
}

function toolOutput(output: unknown, param: string): string | Json[] {
  if (typeof output === 'string') return output;
  // Output parts: the text of each (Chat Completions tool messages carry text only).
  return asArray(output, param).map((p, j) => {
    const part = asObject(p, `${param}[${j}]`);
    if (part.type !== 'input_text' && part.type !== 'output_text') throw invalidRequest(`${param}[${j}]: only text tool output can be translated`, `${param}[${j}].type`);
    return { type: 'text', text: asString(part.text, `${param}[${j}].text`) };
  });
}

function applyTextFormat(text: Json, out: Json, unsupported: Refuse, anthropic: boolean): void {
  if (text.verbosity !== undefined && text.verbosity !== null) out.verbosity = text.verbosity;
  if (text.format === undefined || text.format === null) return;
  const format = asObject(text.format, 'text.format');
  switch (format.type) {
    case 'text':
      return;
    case 'json_object':
      if (anthropic) throw unsupported('text.format.type', 'text.format "json_object" (send json_schema)');
      out.response_format = { type: 'json_object' };
      return;
    case 'json_schema': {
      const spec: Json = { name: asString(format.name, 'text.format.name'), schema: asObject(format.schema, 'text.format.schema') };
      if (typeof format.description === 'string') spec.description = format.description;
      if (typeof format.strict === 'boolean') spec.strict = format.strict;
      out.response_format = { type: 'json_schema', json_schema: spec };
      return;
    }
    default:
      throw unsupported('text.format.type', `text.format "${String(format.type)}"`);
  }
}

function applyTools(body: Json, out: Json, unsupported: Refuse): void {
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    out.tools = body.tools.map((t, i) => {
      const tool = asObject(t, `tools[${i}]`);
      if (tool.type !== 'function') throw unsupported(`tools[${i}].type`, `the built-in tool "${String(tool.type)}"`);
      const fn: Json = { name: asString(tool.name, `tools[${i}].name`) };
      if (typeof tool.description === 'string') fn.description = tool.description;
      fn.parameters = isObject(tool.parameters) ? tool.parameters : { type: 'object', properties: {} };
      if (typeof tool.strict === 'boolean') fn.strict = tool.strict;
      return { type: 'function', function: fn };
    });
  }
  const choice = body.tool_choice;
  if (choice === undefined || choice === null) return;
  if (choice === 'auto' || choice === 'none' || choice === 'required') {
    out.tool_choice = choice;
    return;
  }
  const c = asObject(choice, 'tool_choice');
  if (c.type !== 'function') throw unsupported('tool_choice', `tool_choice "${String(c.type)}"`);
  out.tool_choice = { type: 'function', function: { name: asString(c.name, 'tool_choice.name') } };
}
