// Anthropic's thinking blocks as they travel through the OpenAI formats: a Chat message's `thinking_blocks`
// (LiteLLM's convention), checked strictly when an app sends them back, and a Responses reasoning item's
// `encrypted_content`, which carries them to the app and back unread.
import { invalidRequest } from '../../common/errors.js';
import { isObject } from '../../common/json.js';

/** A thinking block exactly as Anthropic defines it, nothing else: what the sidecar sends back upstream. */
export type ThinkingBlock = { type: 'thinking'; thinking: string; signature: string } | { type: 'redacted_thinking'; data: string };

/**
 * The start of every `encrypted_content` the sidecar writes: then base64url of the blocks' JSON. Content
 * without it was written by another provider (OpenAI's own encrypted reasoning) and is not sent on.
 */
export const THINKING_CONTENT_PREFIX = 'llmgw.thinking.v1:';

/**
 * The block `b` is, reduced to Anthropic's fields; undefined when it is not a complete one (a thinking
 * block without its signature cannot be sent back: Anthropic would refuse it).
 */
export function thinkingBlockOf(b: unknown): ThinkingBlock | undefined {
  if (!isObject(b)) return undefined;
  if (b.type === 'thinking' && typeof b.thinking === 'string' && typeof b.signature === 'string' && b.signature !== '') {
    return { type: 'thinking', thinking: b.thinking, signature: b.signature };
  }
  if (b.type === 'redacted_thinking' && typeof b.data === 'string' && b.data !== '') return { type: 'redacted_thinking', data: b.data };
  return undefined;
}

/** The complete blocks of an answer's list (anything else in it is left out). */
export function thinkingBlocksOf(list: unknown): ThinkingBlock[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((b) => thinkingBlockOf(b) ?? []);
}

/**
 * An app's `thinking_blocks`: each must be a whole thinking block (with its signature) or redacted one, as
 * the answer carried it. Any other field is not sent on; Anthropic checks the signatures itself.
 */
export function parseThinkingBlocks(value: unknown, param: string): ThinkingBlock[] {
  if (!Array.isArray(value)) throw invalidRequest(`${param} must be an array`, param);
  return value.map((b, j) => {
    const block = thinkingBlockOf(b);
    if (block === undefined) {
      throw invalidRequest(
        `${param}[${j}] must be {"type":"thinking","thinking","signature"} or {"type":"redacted_thinking","data"}, as the answer carried it`,
        `${param}[${j}]`,
      );
    }
    return block;
  });
}

/** A Responses reasoning item's `encrypted_content` for these blocks. */
export function encodeThinking(blocks: readonly ThinkingBlock[]): string {
  return THINKING_CONTENT_PREFIX + Buffer.from(JSON.stringify(blocks), 'utf8').toString('base64url');
}

/**
 * The blocks an `encrypted_content` the sidecar wrote carries; undefined for anyone else's. Content with
 * the sidecar's prefix that does not decode to whole blocks was altered: refused with 400 naming `param`.
 */
export function decodeThinking(content: unknown, param: string): ThinkingBlock[] | undefined {
  if (typeof content !== 'string' || !content.startsWith(THINKING_CONTENT_PREFIX)) return undefined;
  const altered = () => invalidRequest(`${param} was altered: it is not the thinking the gateway wrote there`, param);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(content.slice(THINKING_CONTENT_PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw altered();
  }
  const blocks = thinkingBlocksOf(value);
  if (!Array.isArray(value) || blocks.length !== value.length || blocks.length === 0) throw altered();
  return blocks;
}
