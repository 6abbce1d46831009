// An Anthropic Messages request → an OpenAI Chat Completions request (pure; throws on what cannot be
// expressed for an OpenAI-style model rather than silently changing the request's meaning).
import { invalidRequest } from '../../common/errors.js';
import { isObject, type Json } from '../../common/json.js';
import { toDataUrl } from './data-url.js';
import { asArray, asObject, asString } from './json-object.js';

export interface AnthropicToOpenAIOptions {
  /** Upstream model name. */
  model: string;
  /** OpenAI itself wants `max_completion_tokens`; most compatible servers (vLLM, Ollama) read `max_tokens`. */
  maxTokensField: 'max_tokens' | 'max_completion_tokens';
  /** Ask for a usage chunk at the end of streams. */
  streamUsage: boolean;
  /** Compatible servers take `top_k`; OpenAI rejects it. */
  allowTopK: boolean;
}

/**
 * Anthropic parameters with no OpenAI equivalent that do not change what a correct answer is; dropped.
 * `thinking` among them: mapping its budget to reasoning_effort would make OpenAI refuse apps (Claude Code)
 * that send it by default to a model without reasoning (gpt-4o); `output_config.effort`, an explicit ask,
 * is mapped (README, "Reasoning and thinking").
 */
const INERT = new Set(['thinking', 'service_tier', 'cache_control', 'inference_geo', 'speed', 'diagnostics']);

export function anthropicRequestToOpenAI(body: Json, opts: AnthropicToOpenAIOptions): Json {
  const messages: Json[] = [];
  if (body.system !== undefined && body.system !== null) messages.push({ role: 'system', content: joinText(body.system, 'system') });
  asArray(body.messages, 'messages').forEach((m, i) => convertMessage(asObject(m, `messages[${i}]`), `messages[${i}]`, messages));

  const out: Json = { model: opts.model, messages };
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    switch (key) {
      case 'model':
      case 'messages':
      case 'system':
      case 'tools':
      case 'tool_choice':
        break;
      case 'max_tokens':
        out[opts.maxTokensField] = value;
        break;
      case 'temperature':
      case 'top_p':
        out[key] = value;
        break;
      case 'top_k':
        if (opts.allowTopK) out.top_k = value;
        break;
      case 'stop_sequences':
        out.stop = asArray(value, 'stop_sequences');
        break;
      case 'stream':
        if (value === true) {
          out.stream = true;
          if (opts.streamUsage) out.stream_options = { include_usage: true };
        }
        break;
      case 'metadata': {
        const userId = asObject(value, 'metadata').user_id;
        if (typeof userId === 'string') out.user = userId;
        break;
      }
      case 'output_config':
        applyOutputConfig(asObject(value, 'output_config'), out);
        break;
      default:
        if (!INERT.has(key)) {
          throw invalidRequest(`the parameter "${key}" cannot be translated for an OpenAI-style model`, key);
        }
    }
  }
  applyTools(body, out);
  return out;
}

function joinText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  return asArray(content, param)
    .map((b, j) => {
      const block = asObject(b, `${param}[${j}]`);
      if (block.type !== 'text') throw invalidRequest(`${param}[${j}] must be a text block`, `${param}[${j}].type`);
      return asString(block.text, `${param}[${j}].text`);
    })
    .join('\n\n');
}

function convertMessage(m: Json, param: string, out: Json[]): void {
  const content = m.content;
  switch (m.role) {
    case 'system':
      out.push({ role: 'system', content: joinText(content, `${param}.content`) });
      return;
    case 'user': {
      if (typeof content === 'string') {
        out.push({ role: 'user', content });
        return;
      }
      const parts: Json[] = [];
      asArray(content, `${param}.content`).forEach((b, j) => {
        const p = `${param}.content[${j}]`;
        const block = asObject(b, p);
        // OpenAI wants each tool result as its own `tool` message right after the assistant turn.
        if (block.type === 'tool_result') out.push(toolMessage(block, p, parts));
        else parts.push(userPart(block, p));
      });
      if (parts.length > 0) out.push({ role: 'user', content: parts });
      return;
    }
    case 'assistant':
      out.push(assistantMessage(content, `${param}.content`));
      return;
    default:
      throw invalidRequest(`${param}.role "${String(m.role)}" is not a valid role`, `${param}.role`);
  }
}

function toolMessage(block: Json, param: string, userParts: Json[]): Json {
  const id = asString(block.tool_use_id, `${param}.tool_use_id`);
  let text: string;
  if (block.content === undefined || block.content === null) text = '';
  else if (typeof block.content === 'string') text = block.content;
  else {
    const texts: string[] = [];
    asArray(block.content, `${param}.content`).forEach((c, k) => {
      const inner = asObject(c, `${param}.content[${k}]`);
      // Tool messages carry only text; images a tool returned follow in the user turn.
      if (inner.type === 'text') texts.push(asString(inner.text, `${param}.content[${k}].text`));
      else userParts.push(userPart(inner, `${param}.content[${k}]`));
    });
    text = texts.join('\n\n');
  }
  return { role: 'tool', tool_call_id: id, content: text };
}

function userPart(block: Json, param: string): Json {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: asString(block.text, `${param}.text`) };
    case 'image': {
      const source = asObject(block.source, `${param}.source`);
      if (source.type === 'base64') {
        const url = toDataUrl({
          mediaType: asString(source.media_type, `${param}.source.media_type`),
          data: asString(source.data, `${param}.source.data`),
        });
        return { type: 'image_url', image_url: { url } };
      }
      if (source.type === 'url') return { type: 'image_url', image_url: { url: asString(source.url, `${param}.source.url`) } };
      throw invalidRequest(`${param}.source.type "${String(source.type)}" cannot be translated for an OpenAI-style model`, `${param}.source.type`);
    }
    case 'document': {
      const source = asObject(block.source, `${param}.source`);
      if (source.type === 'base64' && source.media_type === 'application/pdf') {
        const fileData = toDataUrl({ mediaType: 'application/pdf', data: asString(source.data, `${param}.source.data`) });
        return { type: 'file', file: { filename: typeof block.title === 'string' ? block.title : 'document.pdf', file_data: fileData } };
      }
      if (source.type === 'text') return { type: 'text', text: asString(source.data, `${param}.source.data`) };
      throw invalidRequest(`${param}: only base64 PDF and text documents can be translated for an OpenAI-style model`, `${param}.source`);
    }
    default:
      throw invalidRequest(`${param}: block type "${String(block.type)}" cannot be translated for an OpenAI-style model`, `${param}.type`);
  }
}

function assistantMessage(content: unknown, param: string): Json {
  if (typeof content === 'string') return { role: 'assistant', content };
  const texts: string[] = [];
  const toolCalls: Json[] = [];
  asArray(content, param).forEach((b, j) => {
    const p = `${param}[${j}]`;
    const block = asObject(b, p);
    switch (block.type) {
      case 'text':
        texts.push(asString(block.text, `${p}.text`));
        break;
      case 'tool_use':
        toolCalls.push({
          id: asString(block.id, `${p}.id`),
          type: 'function',
          function: { name: asString(block.name, `${p}.name`), arguments: JSON.stringify(block.input ?? {}) },
        });
        break;
      case 'thinking':
      case 'redacted_thinking':
        // Reasoning of an earlier turn; OpenAI-style models neither accept nor need it back.
        break;
      default:
        throw invalidRequest(`${p}: block type "${String(block.type)}" cannot be translated for an OpenAI-style model`, `${p}.type`);
    }
  });
  const msg: Json = { role: 'assistant', content: texts.length > 0 ? texts.join('') : null };
  if (toolCalls.length > 0) msg.tool_calls = toolCalls;
  return msg;
}

function applyOutputConfig(config: Json, out: Json): void {
  if (isObject(config.format)) {
    const format = config.format;
    if (format.type !== 'json_schema') {
      throw invalidRequest(`output_config.format.type "${String(format.type)}" is not supported`, 'output_config.format.type');
    }
    out.response_format = {
      type: 'json_schema',
      json_schema: { name: 'response', strict: true, schema: asObject(format.schema, 'output_config.format.schema') },
    };
  }
  if (typeof config.effort === 'string') {
    // The same names as OpenAI's up to high (thinking-budget.ts has the other way); past it, high is the
    // most every OpenAI reasoning model takes.
    out.reasoning_effort = config.effort === 'xhigh' || config.effort === 'max' ? 'high' : config.effort;
  }
}

function applyTools(body: Json, out: Json): void {
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    out.tools = body.tools.map((t, i) => {
      const tool = asObject(t, `tools[${i}]`);
      if (tool.type !== undefined && tool.type !== 'custom') {
        throw invalidRequest(`tools[${i}]: server tool "${String(tool.type)}" cannot be translated for an OpenAI-style model`, `tools[${i}].type`);
      }
      const fn: Json = { name: asString(tool.name, `tools[${i}].name`) };
      if (typeof tool.description === 'string') fn.description = tool.description;
      fn.parameters = isObject(tool.input_schema) ? tool.input_schema : { type: 'object', properties: {} };
      return { type: 'function', function: fn };
    });
  }
  // OpenAI refuses tool_choice without tools.
  if (body.tool_choice === undefined || body.tool_choice === null || out.tools === undefined) return;
  const choice = asObject(body.tool_choice, 'tool_choice');
  switch (choice.type) {
    case 'auto':
      out.tool_choice = 'auto';
      break;
    case 'any':
      out.tool_choice = 'required';
      break;
    case 'none':
      out.tool_choice = 'none';
      break;
    case 'tool':
      out.tool_choice = { type: 'function', function: { name: asString(choice.name, 'tool_choice.name') } };
      break;
    default:
      throw invalidRequest(`tool_choice.type "${String(choice.type)}" is not valid`, 'tool_choice.type');
  }
  if (choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
}
