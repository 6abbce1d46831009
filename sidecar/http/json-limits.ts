// The documented bounds on a chat request's JSON (README, "The HTTP surface"): the counts of messages,
// tools and content parts, checked on the parsed body. Past any of them the app gets 400
// `llmgw_invalid_request` naming the limit. The nesting depth is the body reader's own bound
// (common/http/read-json-body.ts), checked on the raw bytes before parsing.
import { invalidRequest } from '../../common/errors.js';
import type { Json } from '../../common/json.js';

/** Most entries of `messages` (chat and Anthropic messages). */
export const MAX_MESSAGES = 10_000;
/** Most entries of `tools` (OpenAI's own cap is 128; ours is generous but bounded). */
export const MAX_TOOLS = 1_000;
/** Most content parts of one message's `content`, or of Anthropic's `system`. */
export const MAX_CONTENT_PARTS = 10_000;

/** Throws 400 when the body has more messages, tools or content parts than the limits allow. */
export function checkRequestCounts(body: Json): void {
  const { messages, tools, system } = body;
  if (Array.isArray(tools) && tools.length > MAX_TOOLS) {
    throw invalidRequest(`"tools" has ${tools.length} entries; the limit is ${MAX_TOOLS}`, 'tools');
  }
  if (Array.isArray(system)) checkParts(system, 'system');
  if (!Array.isArray(messages)) return;
  if (messages.length > MAX_MESSAGES) {
    throw invalidRequest(`"messages" has ${messages.length} entries; the limit is ${MAX_MESSAGES}`, 'messages');
  }
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (typeof m === 'object' && m !== null && !Array.isArray(m)) {
      const content = (m as Json).content;
      if (Array.isArray(content)) checkParts(content, `messages[${i}].content`);
    }
  }
}

function checkParts(parts: unknown[], param: string): void {
  if (parts.length > MAX_CONTENT_PARTS) {
    throw invalidRequest(`"${param}" has ${parts.length} content parts; the limit is ${MAX_CONTENT_PARTS}`, param);
  }
}
