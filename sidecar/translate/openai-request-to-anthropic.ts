// An OpenAI Chat Completions request → an Anthropic Messages request (pure; throws on what cannot be
// expressed for Anthropic rather than silently changing the request's meaning).
import { invalidRequest } from '../../common/errors.js';
import { isObject, type Json } from '../../common/json.js';
import { parseBase64DataUrl } from './data-url.js';
import { asArray, asObject, asString } from './json-object.js';
import { parseThinkingBlocks } from './thinking-blocks.js';
import { anthropicThinking, refuseWithThinking } from './thinking-budget.js';

export interface OpenAIToAnthropicOptions {
  /** Upstream model name. */
  model: string;
  /**
   * `max_tokens` when the app sent neither `max_tokens` nor `max_completion_tokens` (plus the thinking
   * budget when `reasoning_effort` turns thinking on: thinking-budget.ts).
   */
  defaultMaxTokens: number;
}

/** Parameters with no Anthropic equivalent that do not change what a correct answer is; dropped. */
const INERT = new Set([
  'seed', 'store', 'metadata', 'service_tier', 'prompt_cache_key', 'safety_identifier', 'stream_options',
  'frequency_penalty', 'presence_penalty', 'logit_bias', 'verbosity', 'top_logprobs',
]);

export function openaiRequestToAnthropic(body: Json, opts: OpenAIToAnthropicOptions): Json {
  const out: Json = { model: opts.model };
  const thinking = anthropicThinking(body, opts.defaultMaxTokens);
  // Earlier turns' thinking goes back only while thinking is on: without it Anthropic has no use for it.
  const { system, messages } = convertMessages(asArray(body.messages, 'messages'), thinking.on !== undefined);
  if (system.length > 0) out.system = system.length === 1 ? system[0]!.text : system;
  out.messages = messages;
  out.max_tokens = thinking.maxTokens;
  if (thinking.thinking !== undefined) out.thinking = thinking.thinking;

  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    switch (key) {
      case 'model':
      case 'messages':
      case 'max_tokens':
      case 'max_completion_tokens':
      case 'tools':
      case 'tool_choice':
      case 'parallel_tool_calls':
      case 'reasoning_effort':
      case 'thinking':
        break;
      case 'temperature':
      case 'top_p':
      case 'top_k':
        out[key] = value;
        break;
      case 'stream':
        if (value === true) out.stream = true;
        break;
      case 'stop':
        out.stop_sequences = typeof value === 'string' ? [value] : asArray(value, 'stop');
        break;
      case 'user':
        out.metadata = { user_id: asString(value, 'user') };
        break;
      case 'n':
        if (value !== 1) throw unsupported('n', 'more than one choice (n > 1)');
        break;
      case 'logprobs':
        if (value === true) throw unsupported('logprobs', 'logprobs');
        break;
      case 'response_format':
        applyResponseFormat(asObject(value, 'response_format'), out);
        break;
      default:
        if (!INERT.has(key)) throw unsupported(key, `the parameter "${key}"`);
    }
  }
  applyTools(body, out);
  if (thinking.on !== undefined) refuseWithThinking(out, thinking.on);
  return out;
}

const unsupported = (param: string, what: string) =>
  invalidRequest(`${what} cannot be translated for an Anthropic model`, param);

interface TextBlock {
  type: 'text';
  text: string;
}

function convertMessages(input: unknown[], withThinking: boolean): { system: TextBlock[]; messages: { role: string; content: unknown }[] } {
  const system: TextBlock[] = [];
  const messages: { role: 'user' | 'assistant'; content: Json[] }[] = [];
  const append = (role: 'user' | 'assistant', blocks: Json[]): void => {
    const last = messages.at(-1);
    // Anthropic merges consecutive same-role turns anyway; merging here keeps tool results in one turn.
    if (last?.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };

  input.forEach((raw, i) => {
    const param = `messages[${i}]`;
    const m = asObject(raw, param);
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...textParts(m.content, `${param}.content`));
        break;
      case 'user':
        append('user', userContent(m.content, `${param}.content`));
        break;
      case 'assistant': {
        const blocks = assistantContent(m, param, withThinking);
        if (blocks.length > 0) append('assistant', blocks);
        break;
      }
      case 'tool':
        append('user', [
          {
            type: 'tool_result',
            tool_use_id: asString(m.tool_call_id, `${param}.tool_call_id`),
            content: toolResultContent(m.content, `${param}.content`),
          },
        ]);
        break;
      default:
        throw invalidRequest(`${param}.role "${String(m.role)}" cannot be translated for an Anthropic model`, `${param}.role`);
    }
  });
  // A lone text block reads better (and is stored smaller) as a plain string.
  const compact = messages.map(({ role, content }) => ({
    role,
    content: content.length === 1 && content[0]!.type === 'text' ? content[0]!.text : content,
  }));
  return { system, messages: compact };
}

function textParts(content: unknown, param: string): TextBlock[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return asArray(content, param).map((p, j) => {
    const part = asObject(p, `${param}[${j}]`);
    if (part.type !== 'text') throw invalidRequest(`${param}[${j}] must be a text part`, `${param}[${j}].type`);
    return { type: 'text', text: asString(part.text, `${param}[${j}].text`) };
  });
}

function userContent(content: unknown, param: string): Json[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return asArray(content, param).map((p, j) => contentPart(asObject(p, `${param}[${j}]`), `${param}[${j}]`));
}

function contentPart(part: Json, param: string): Json {
  switch (part.type) {
    case 'text':
      return { type: 'text', text: asString(part.text, `${param}.text`) };
    case 'image_url': {
      const url = asString(asObject(part.image_url, `${param}.image_url`).url, `${param}.image_url.url`);
      const data = parseBase64DataUrl(url);
      if (data !== undefined) return { type: 'image', source: { type: 'base64', media_type: data.mediaType, data: data.data } };
      if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
      throw invalidRequest(`${param}.image_url.url must be an https URL or a base64 data URL`, `${param}.image_url.url`);
    }
    case 'file': {
      const file = asObject(part.file, `${param}.file`);
      const data = typeof file.file_data === 'string' ? parseBase64DataUrl(file.file_data) : undefined;
      if (data?.mediaType === 'application/pdf') {
        return { type: 'document', source: { type: 'base64', media_type: data.mediaType, data: data.data } };
      }
      throw invalidRequest(`${param}: only PDF files sent inline as file_data can be translated for an Anthropic model`, `${param}.file`);
    }
    default:
      throw invalidRequest(`${param}: content part type "${String(part.type)}" cannot be translated for an Anthropic model`, `${param}.type`);
  }
}

/**
 * An assistant turn's blocks: its `thinking_blocks` first (LiteLLM's field for the thinking an Anthropic
 * answer carried, which Anthropic wants back before that turn's tool_use), then text, then tool calls.
 * Its `reasoning_content` is the same thinking as text, which Anthropic cannot take back; not sent.
 */
function assistantContent(m: Json, param: string, withThinking: boolean): Json[] {
  const blocks: Json[] = [];
  if (withThinking && m.thinking_blocks !== undefined && m.thinking_blocks !== null) {
    blocks.push(...parseThinkingBlocks(m.thinking_blocks, `${param}.thinking_blocks`));
  }
  if (typeof m.content === 'string') {
    if (m.content !== '') blocks.push({ type: 'text', text: m.content });
  } else if (Array.isArray(m.content)) {
    m.content.forEach((p, j) => {
      const part = asObject(p, `${param}.content[${j}]`);
      const text = part.type === 'refusal' ? part.refusal : part.text;
      if (part.type !== 'text' && part.type !== 'refusal') {
        throw invalidRequest(`${param}.content[${j}] must be a text or refusal part`, `${param}.content[${j}].type`);
      }
      const s = asString(text, `${param}.content[${j}]`);
      if (s !== '') blocks.push({ type: 'text', text: s });
    });
  } else if (typeof m.refusal === 'string' && m.refusal !== '') {
    blocks.push({ type: 'text', text: m.refusal });
  }
  if (Array.isArray(m.tool_calls)) {
    m.tool_calls.forEach((c, j) => {
      const p = `${param}.tool_calls[${j}]`;
      const call = asObject(c, p);
      const fn = asObject(call.function, `${p}.function`);
      blocks.push({
        type: 'tool_use',
        id: asString(call.id, `${p}.id`),
        name: asString(fn.name, `${p}.function.name`),
        input: parseArguments(fn.arguments, `${p}.function.arguments`),
      });
    });
  }
  return blocks;
}

function parseArguments(args: unknown, param: string): Json {
  if (args === undefined || args === null || args === '') return {};
  const text = asString(args, param);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidRequest(`${param} is not valid JSON; Anthropic needs tool input as a JSON object`, param);
  }
  if (!isObject(value)) throw invalidRequest(`${param} must encode a JSON object for an Anthropic model`, param);
  return value;
}

function toolResultContent(content: unknown, param: string): string | TextBlock[] {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return textParts(content, param);
}

function applyResponseFormat(format: Json, out: Json): void {
  switch (format.type) {
    case 'text':
      return;
    case 'json_schema': {
      const spec = asObject(format.json_schema, 'response_format.json_schema');
      out.output_config = { format: { type: 'json_schema', schema: asObject(spec.schema, 'response_format.json_schema.schema') } };
      return;
    }
    default:
      throw unsupported('response_format', `response_format "${String(format.type)}" (use json_schema)`);
  }
}

function applyTools(body: Json, out: Json): void {
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    out.tools = body.tools.map((t, i) => {
      const tool = asObject(t, `tools[${i}]`);
      if (tool.type !== 'function') throw unsupported(`tools[${i}].type`, `tool type "${String(tool.type)}"`);
      const fn = asObject(tool.function, `tools[${i}].function`);
      const converted: Json = { name: asString(fn.name, `tools[${i}].function.name`) };
      if (typeof fn.description === 'string') converted.description = fn.description;
      converted.input_schema = isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} };
      return converted;
    });
  }
  const choice = toolChoice(body.tool_choice);
  if (body.parallel_tool_calls === false && out.tools !== undefined) {
    out.tool_choice = { ...(choice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  } else if (choice !== undefined && (out.tools !== undefined || choice.type === 'none')) {
    out.tool_choice = choice;
  }
}

function toolChoice(choice: unknown): Json | undefined {
  if (choice === undefined || choice === null) return undefined;
  if (choice === 'auto') return { type: 'auto' };
  if (choice === 'none') return { type: 'none' };
  if (choice === 'required') return { type: 'any' };
  const c = asObject(choice, 'tool_choice');
  if (c.type === 'function') {
    const name = asString(asObject(c.function, 'tool_choice.function').name, 'tool_choice.function.name');
    return { type: 'tool', name };
  }
  throw unsupported('tool_choice', `tool_choice "${String(c.type)}"`);
}
