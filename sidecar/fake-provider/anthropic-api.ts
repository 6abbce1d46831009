// The fake provider's Anthropic side: request checks as strict as the Messages API's for what the
// gateway sends, and answers, stream events and error bodies in Anthropic's exact shapes.
import { FakeHttpError } from './openai-api.js';
import { argumentPieces, countTokens, isObj, planReply, REDACTED_THINKING_DATA, thinkingSignature, type Ask, type Counts, type Json, type Plan } from './reply.js';

export function anthropicError(status: number, type: string, message: string): FakeHttpError {
  return new FakeHttpError(status, { type: 'error', error: { type, message }, request_id: 'req_fake' });
}

const invalid = (message: string): FakeHttpError => anthropicError(400, 'invalid_request_error', message);
const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];

/** API versions whose Messages requests may carry `role: "system"` turns. */
const SYSTEM_ROLE_VERSIONS = new Set(['2026-10-21']);

function blocksOf(content: unknown, at: string): Json[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw invalid(`${at}.content: Input should be a valid list`);
  return content.map((b, j) => {
    if (!isObj(b) || typeof b.type !== 'string') throw invalid(`${at}.content.${j}: Input should be an object with a type`);
    return b;
  });
}

function checkBlock(b: Json, at: string): void {
  if (b.type === 'text' && (typeof b.text !== 'string' || b.text === '')) throw invalid(`${at}: text content blocks must be non-empty`);
  if (b.type === 'image') {
    const s = b.source;
    const ok = isObj(s) && ((s.type === 'base64' && IMAGE_TYPES.includes(String(s.media_type)) && typeof s.data === 'string') || (s.type === 'url' && typeof s.url === 'string'));
    if (!ok) throw invalid(`${at}.source: invalid image source`);
  }
}

const THINKING_DOCS = 'Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking';

/** Whether the request turns thinking on, checked with the parameters Anthropic refuses beside it. */
function thinkingOn(body: Json): boolean {
  const t = body.thinking;
  if (t === undefined || (isObj(t) && t.type === 'disabled')) return false;
  if (!isObj(t) || (t.type !== 'enabled' && t.type !== 'adaptive')) throw invalid("thinking: Input tag does not match the expected tags: 'enabled', 'disabled', 'adaptive'");
  if (t.type === 'enabled') {
    const budget = t.budget_tokens;
    if (typeof budget !== 'number' || !Number.isInteger(budget) || budget < 1024) throw invalid('thinking.enabled.budget_tokens: Input should be greater than or equal to 1024');
    if (budget >= Number(body.max_tokens)) throw invalid(`\`max_tokens\` must be greater than \`thinking.budget_tokens\`. ${THINKING_DOCS}#max-tokens-and-context-window-size`);
  }
  if (body.temperature !== undefined && body.temperature !== 1) throw invalid(`\`temperature\` may only be set to 1 when thinking is enabled. ${THINKING_DOCS}#feature-compatibility`);
  if (body.top_k !== undefined) throw invalid(`\`top_k\` must be unset when thinking is enabled. ${THINKING_DOCS}#feature-compatibility`);
  if (typeof body.top_p === 'number' && body.top_p < 0.95) throw invalid(`\`top_p\` must be greater than or equal to 0.95 or unset when thinking is enabled. ${THINKING_DOCS}#feature-compatibility`);
  const tc = body.tool_choice;
  if (isObj(tc) && (tc.type === 'any' || tc.type === 'tool')) throw invalid('Thinking may not be enabled when tool_choice forces tool use.');
  return true;
}

/** A thinking block that comes back must be the fake's own, unchanged (Anthropic checks its signature). */
function checkThinkingBlock(b: Json, at: string, role: unknown): void {
  if (role !== 'assistant') throw invalid(`${at}: thinking blocks are only allowed in assistant messages`);
  if (b.type === 'thinking' && (typeof b.thinking !== 'string' || b.signature !== thinkingSignature(b.thinking))) {
    throw invalid(`${at}: Invalid \`signature\` in \`thinking\` block`);
  }
  if (b.type === 'redacted_thinking' && b.data !== REDACTED_THINKING_DATA) throw invalid(`${at}: Invalid \`data\` in \`redacted_thinking\` block`);
}

/**
 * With thinking on, the assistant turn that opened the current tool loop (the first after the last user
 * turn that is not only tool results) must start with its thinking block, as Anthropic requires.
 */
function checkThinkingKept(messages: Json[]): void {
  const lastAsk = messages.findLastIndex((m) => m.role === 'user' && blocksOf(m.content, 'messages').some((b) => b.type !== 'tool_result'));
  const opener = messages[lastAsk + 1];
  if (opener?.role !== 'assistant') return;
  const loop = messages.slice(lastAsk + 1).some((m) => m.role === 'assistant' && blocksOf(m.content, 'messages').some((b) => b.type === 'tool_use'));
  const first = blocksOf(opener.content, 'messages')[0];
  if (!loop || first?.type === 'thinking' || first?.type === 'redacted_thinking') return;
  throw invalid(
    `messages.${lastAsk + 1}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${String(first?.type)}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`. ${THINKING_DOCS}`,
  );
}

/** Checks a Messages request the way Anthropic does and reduces it to an Ask. Throws FakeHttpError. */
export function anthropicAsk(body: Json, version: string): Ask {
  if (typeof body.model !== 'string') throw invalid('model: Field required');
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) {
    throw invalid('max_tokens: Field required');
  }
  const thinking = thinkingOn(body);
  if (typeof body.temperature === 'number' && (body.temperature < 0 || body.temperature > 1)) {
    throw invalid('temperature: range: 0 <= temperature <= 1');
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw invalid('messages: at least one message is required');
  let promptText = '';
  if (body.system !== undefined) {
    const sys = blocksOf(body.system, 'system');
    sys.forEach((b, j) => {
      if (b.type !== 'text') throw invalid(`system.${j}: Input tag '${String(b.type)}' found using 'type' does not match the expected tags: 'text'`);
      checkBlock(b, `system.${j}`);
      promptText += String(b.text);
    });
  }
  let pendingToolUse: string[] = [];
  let lastUserText = '';
  let toolResult: string | undefined;
  body.messages.forEach((m, i) => {
    const at = `messages.${i}`;
    if (!isObj(m)) throw invalid(`${at}: Input should be an object`);
    const allowed = SYSTEM_ROLE_VERSIONS.has(version) ? ['user', 'assistant', 'system'] : ['user', 'assistant'];
    if (!allowed.includes(String(m.role))) throw invalid(`${at}.role: Input should be ${allowed.map((r) => `'${r}'`).join(' or ')}`);
    const blocks = blocksOf(m.content, at);
    if (blocks.length === 0) throw invalid(`${at}: all messages must have non-empty content except for the optional final assistant message`);
    const results = new Set<string>();
    let text = '';
    blocks.forEach((b, j) => {
      checkBlock(b, `${at}.content.${j}`);
      if (b.type === 'thinking' || b.type === 'redacted_thinking') checkThinkingBlock(b, `${at}.content.${j}`, m.role);
      if (b.type === 'text') text += String(b.text);
      if (b.type === 'tool_result') {
        if (m.role !== 'user') throw invalid(`${at}.content.${j}: tool_result blocks are only allowed in user messages`);
        if (!pendingToolUse.includes(String(b.tool_use_id))) {
          throw invalid(`${at}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(b.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
        }
        results.add(String(b.tool_use_id));
        const c = b.content;
        toolResult = typeof c === 'string' ? c : Array.isArray(c) ? c.map((x) => (isObj(x) && typeof x.text === 'string' ? x.text : '')).join('') : '';
        text += toolResult;
      }
    });
    if (pendingToolUse.length > 0) {
      const missing = pendingToolUse.filter((id) => !results.has(id));
      if (missing.length > 0) {
        throw invalid(`${at}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
      }
    }
    pendingToolUse = m.role === 'assistant' ? blocks.filter((b) => b.type === 'tool_use').map((b) => String(b.id)) : [];
    promptText += text;
    if (m.role === 'user') {
      if (results.size === 0) toolResult = undefined;
      lastUserText = blocks.filter((b) => b.type === 'text').map((b) => String(b.text)).join('');
    } else if (m.role === 'assistant') {
      toolResult = undefined;
    }
  });
  if (thinking) checkThinkingKept(body.messages as Json[]);
  const tools = Array.isArray(body.tools) ? body.tools : [];
  if (body.tool_choice !== undefined && tools.length === 0 && !(isObj(body.tool_choice) && body.tool_choice.type === 'none')) {
    throw invalid('tool_choice: tool_choice may only be specified while providing tools.');
  }
  const toolSpecs = tools.map((t, i) => {
    if (!isObj(t) || typeof t.name !== 'string' || !isObj(t.input_schema)) throw invalid(`tools.${i}: name and input_schema are required`);
    if (t.input_schema.type !== 'object') throw invalid(`tools.${i}.input_schema.type: Input should be 'object'`);
    return { name: t.name, schema: t.input_schema };
  });
  const tc = isObj(body.tool_choice) ? body.tool_choice : {};
  const toolMode: Ask['toolMode'] = tc.type === 'none' ? 'none' : tc.type === 'any' ? 'required' : tc.type === 'tool' ? { name: String(tc.name) } : 'auto';
  const stop = Array.isArray(body.stop_sequences) ? body.stop_sequences.map(String) : [];
  return { promptText, lastUserText, toolResult, tools: toolSpecs, toolMode, maxTokens: body.max_tokens, stop, ...(thinking ? { thinking } : {}) };
}

/**
 * `POST /v1/messages/count_tokens`: the prompt tokens of the Messages request this body describes, checked
 * the same way. Like Anthropic's, the count ignores prompt caching: it is `input_tokens` plus
 * `cache_read_input_tokens` of the matching answer.
 */
export function anthropicCountTokens(body: Json, version: string): Json {
  // The count takes no max_tokens, which the Messages checks require (above any thinking budget) and the
  // prompt does not depend on.
  const ask = anthropicAsk({ ...body, max_tokens: Number.MAX_SAFE_INTEGER }, version);
  return { input_tokens: countTokens(ask, planReply(ask)).promptTokens };
}

export interface AnthropicIds {
  id: string;
  callId: string;
}

const stopReason = (plan: Plan): string => (plan.kind === 'tool' ? 'tool_use' : plan.finish === 'length' ? 'max_tokens' : plan.finish === 'stop_sequence' ? 'stop_sequence' : 'end_turn');

function usage(c: Counts, outputTokens: number): Json {
  return {
    input_tokens: c.promptTokens - c.cachedTokens - c.cacheWriteTokens,
    cache_creation_input_tokens: c.cacheWriteTokens,
    cache_read_input_tokens: c.cachedTokens,
    output_tokens: outputTokens,
  };
}

/** The thinking blocks an answer starts with (none without thinking). */
function thinkingBlocks(plan: Plan): Json[] {
  const t = plan.thinking;
  if (t === undefined) return [];
  const blocks: Json[] = t.redacted === undefined ? [] : [{ type: 'redacted_thinking', data: t.redacted }];
  return [...blocks, { type: 'thinking', thinking: t.text, signature: t.signature }];
}

export function anthropicMessage(model: string, plan: Plan, counts: Counts, ids: AnthropicIds): Json {
  const answer = plan.kind === 'text' ? { type: 'text', text: plan.words.join('') } : { type: 'tool_use', id: ids.callId, name: plan.name, input: plan.args };
  const content = [...thinkingBlocks(plan), answer];
  return {
    id: ids.id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReason(plan),
    stop_sequence: plan.kind === 'text' ? plan.stopSequence : null,
    usage: usage(counts, counts.completionTokens),
  };
}

const frame = (type: string, data: Json): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** The SSE events of a streamed answer, in the order the Messages API sends them. */
export function anthropicEvents(model: string, plan: Plan, counts: Counts, ids: AnthropicIds): string[] {
  const message = { id: ids.id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: usage(counts, 1) };
  const frames = [frame('message_start', { message })];
  let index = 0;
  for (const block of thinkingBlocks(plan)) {
    if (block.type === 'redacted_thinking') {
      frames.push(frame('content_block_start', { index, content_block: block }));
    } else {
      frames.push(frame('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
      for (const w of String(block.thinking).match(/\S+\s*/g) ?? []) frames.push(frame('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: w } }));
      frames.push(frame('content_block_delta', { index, delta: { type: 'signature_delta', signature: block.signature } }));
    }
    frames.push(frame('content_block_stop', { index }));
    index += 1;
  }
  if (plan.kind === 'text') {
    frames.push(frame('content_block_start', { index, content_block: { type: 'text', text: '' } }));
    frames.push(frame('ping', {}));
    for (const w of plan.words) frames.push(frame('content_block_delta', { index, delta: { type: 'text_delta', text: w } }));
  } else {
    frames.push(frame('content_block_start', { index, content_block: { type: 'tool_use', id: ids.callId, name: plan.name, input: {} } }));
    frames.push(frame('ping', {}));
    for (const piece of argumentPieces(plan.args)) frames.push(frame('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } }));
  }
  frames.push(frame('content_block_stop', { index }));
  const stopSequence = plan.kind === 'text' ? plan.stopSequence : null;
  frames.push(frame('message_delta', { delta: { stop_reason: stopReason(plan), stop_sequence: stopSequence }, usage: { output_tokens: counts.completionTokens } }));
  frames.push(frame('message_stop', {}));
  return frames;
}
