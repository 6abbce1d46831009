// The fake provider's OpenAI side: request checks as strict as OpenAI's for what the gateway sends,
// and answers, SSE chunks and error bodies in OpenAI's exact shapes.
import { argumentPieces, isObj, type Ask, type Counts, type Json, type Plan } from './reply.js';

export class FakeHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`fake provider error ${status}`);
  }
}

export function openaiError(status: number, message: string, param: string | null = null, code: string | null = null): FakeHttpError {
  const type = status === 429 ? 'rate_limit_exceeded' : status >= 500 ? 'server_error' : 'invalid_request_error';
  return new FakeHttpError(status, { error: { message, type, param, code } });
}


function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p) => (isObj(p) && typeof p.text === 'string' ? p.text : '')).join('');
}

/** Checks a chat request the way OpenAI does and reduces it to an Ask. Throws FakeHttpError. */
export function openaiAsk(body: Json): Ask {
  if (typeof body.model !== 'string') throw openaiError(400, "you must provide a model parameter", 'model');
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw openaiError(400, "'messages' must contain at least 1 item", 'messages', 'empty_array');
  }
  if (body.stream_options !== undefined && body.stream_options !== null && body.stream !== true) {
    throw openaiError(400, 'The stream_options parameter is only allowed when stream is enabled.', 'stream_options');
  }
  const tools = Array.isArray(body.tools) ? body.tools : [];
  if (body.tool_choice !== undefined && tools.length === 0) {
    throw openaiError(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice');
  }
  const callIds = new Set<string>();
  let promptText = '';
  let lastUserText = '';
  let toolResult: string | undefined;
  body.messages.forEach((m, i) => {
    if (!isObj(m)) throw openaiError(400, `Invalid type for 'messages[${i}]'`, `messages[${i}]`);
    const role = m.role;
    if (!['system', 'developer', 'user', 'assistant', 'tool'].includes(String(role))) {
      throw openaiError(400, `Invalid value: '${String(role)}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'developer'.`, `messages[${i}].role`);
    }
    if (role === 'user' && Array.isArray(m.content)) {
      m.content.forEach((p, j) => {
        if (!isObj(p) || !['text', 'image_url', 'input_audio', 'file'].includes(String(p.type))) {
          throw openaiError(400, `Invalid content part at messages[${i}].content[${j}]`, `messages[${i}].content[${j}].type`);
        }
        if (p.type === 'image_url' && !(isObj(p.image_url) && typeof p.image_url.url === 'string')) {
          throw openaiError(400, 'image_url.url is required', `messages[${i}].content[${j}].image_url`);
        }
      });
    }
    if (role === 'assistant' && Array.isArray(m.tool_calls)) {
      for (const c of m.tool_calls) {
        if (!isObj(c) || typeof c.id !== 'string' || !isObj(c.function) || typeof c.function.arguments !== 'string') {
          throw openaiError(400, `Invalid tool call in messages[${i}]`, `messages[${i}].tool_calls`);
        }
        callIds.add(c.id);
      }
    }
    if (role === 'tool') {
      if (typeof m.tool_call_id !== 'string' || !callIds.has(m.tool_call_id)) {
        throw openaiError(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", `messages[${i}].role`);
      }
    }
    const text = textOf(m.content);
    promptText += text;
    if (role === 'user') lastUserText = text;
    toolResult = role === 'tool' ? text : undefined;
  });
  const toolSpecs = tools.map((t, i) => {
    if (!isObj(t) || t.type !== 'function' || !isObj(t.function) || typeof t.function.name !== 'string') {
      throw openaiError(400, `Invalid tools[${i}]`, `tools[${i}]`);
    }
    return { name: t.function.name, schema: isObj(t.function.parameters) ? t.function.parameters : {} };
  });
  const choice = body.tool_choice;
  const toolMode: Ask['toolMode'] =
    choice === 'none' || choice === 'required'
      ? choice
      : isObj(choice) && isObj(choice.function) && typeof choice.function.name === 'string'
        ? { name: choice.function.name }
        : 'auto';
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  const stop = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop.map(String) : [];
  return { promptText, lastUserText, toolResult, tools: toolSpecs, toolMode, maxTokens: typeof maxTokens === 'number' ? maxTokens : undefined, stop };
}

export interface Ids {
  id: string;
  callId: string;
  created: number;
}

const finishReason = (plan: Plan): string => (plan.kind === 'tool' ? 'tool_calls' : plan.finish === 'length' ? 'length' : 'stop');

export function openaiUsage(c: Counts): Json {
  return {
    prompt_tokens: c.promptTokens,
    completion_tokens: c.completionTokens,
    total_tokens: c.promptTokens + c.completionTokens,
    prompt_tokens_details: { cached_tokens: c.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

export function openaiCompletion(model: string, plan: Plan, counts: Counts, ids: Ids): Json {
  const message: Json = { role: 'assistant', content: plan.kind === 'text' ? plan.words.join('') : null, refusal: null, annotations: [] };
  if (plan.kind === 'tool') {
    message.tool_calls = [{ id: ids.callId, type: 'function', function: { name: plan.name, arguments: JSON.stringify(plan.args) } }];
  }
  return {
    id: ids.id,
    object: 'chat.completion',
    created: ids.created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(plan) }],
    usage: openaiUsage(counts),
    service_tier: 'default',
    system_fingerprint: 'fp_fake',
  };
}

/** The SSE frames of a streamed answer, `[DONE]` included. */
export function openaiChunks(model: string, plan: Plan, counts: Counts, ids: Ids, includeUsage: boolean): string[] {
  const frame = (delta: Json, finish: string | null): string => {
    const chunk: Json = {
      id: ids.id,
      object: 'chat.completion.chunk',
      created: ids.created,
      model,
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
    if (includeUsage) chunk.usage = null;
    return `data: ${JSON.stringify(chunk)}\n\n`;
  };
  const frames = [frame({ role: 'assistant', content: '', refusal: null }, null)];
  if (plan.kind === 'text') {
    for (const w of plan.words) frames.push(frame({ content: w }, null));
  } else {
    frames.push(frame({ tool_calls: [{ index: 0, id: ids.callId, type: 'function', function: { name: plan.name, arguments: '' } }] }, null));
    for (const piece of argumentPieces(plan.args)) frames.push(frame({ tool_calls: [{ index: 0, function: { arguments: piece } }] }, null));
  }
  frames.push(frame({}, finishReason(plan)));
  if (includeUsage) {
    const last = { id: ids.id, object: 'chat.completion.chunk', created: ids.created, model, service_tier: 'default', system_fingerprint: 'fp_fake', choices: [], usage: openaiUsage(counts) };
    frames.push(`data: ${JSON.stringify(last)}\n\n`);
  }
  frames.push('data: [DONE]\n\n');
  return frames;
}

/** Deterministic unit vectors: the same text always embeds the same way. */
export function openaiEmbeddings(body: Json): Json {
  if (typeof body.model !== 'string') throw openaiError(400, 'you must provide a model parameter', 'model');
  const inputs = typeof body.input === 'string' ? [body.input] : Array.isArray(body.input) ? body.input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : undefined;
  if (inputs === undefined || inputs.length === 0) throw openaiError(400, "'input' must be a non-empty string or array", 'input');
  const dims = typeof body.dimensions === 'number' ? body.dimensions : 256;
  const base64 = body.encoding_format === 'base64';
  let tokens = 0;
  const data = inputs.map((text, index) => {
    tokens += Math.max(1, Math.ceil(text.length / 4));
    const vector = embed(text, dims);
    const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
    return { object: 'embedding', index, embedding };
  });
  return { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

/**
 * A bag-of-words embedding: each word (lowercased, letters and digits) adds ±1 to a dimension picked by
 * its hash, so texts sharing most words point the same way (cosine = their word overlap) and unrelated
 * texts do not; deterministic, like everything the fake answers.
 */
function embed(text: string, dims: number): number[] {
  const v = new Array<number>(dims).fill(0);
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    let h = 2166136261;
    for (let j = 0; j < word.length; j++) h = Math.imul(h ^ word.charCodeAt(j), 16777619);
    h >>>= 0;
    const i = h % dims;
    v[i] = v[i]! + (h & 0x80000000 ? -1 : 1);
  }
  const norm = Math.hypot(...v);
  // A text without words still gets a unit vector.
  if (norm === 0) v[0] = 1;
  return v.map((x) => x / (norm || 1));
}
