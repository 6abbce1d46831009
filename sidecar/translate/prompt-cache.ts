// Prompt-cache breakpoints for a request translated for Anthropic (`models.<name>.promptCache: auto`):
// OpenAI-format apps cannot set `cache_control`, and without it Anthropic caches nothing. Three of the four
// breakpoints Anthropic allows are placed where a long agent session repeats itself: the end of the system
// prompt, the end of the tool definitions, and the end of the conversation so far (its last block), so the
// next turn reads every earlier one from the cache and writes only what it adds. Anthropic ignores a
// breakpoint before its minimum cacheable length, so short prompts cost nothing. Blocks that cannot carry
// one (thinking) are skipped.
import { isObject, type Json } from '../../common/json.js';

const EPHEMERAL = { type: 'ephemeral' } as const;
const UNMARKABLE = new Set(['thinking', 'redacted_thinking']);

/** Adds the breakpoints to an Anthropic Messages request body, in place. */
export function addCacheBreakpoints(body: Json): void {
  if (typeof body.system === 'string' && body.system !== '') body.system = [{ type: 'text', text: body.system, cache_control: EPHEMERAL }];
  else if (Array.isArray(body.system)) markLast(body.system);
  if (Array.isArray(body.tools)) markLast(body.tools);
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const last = messages.at(-1);
  if (!isObject(last)) return;
  if (typeof last.content === 'string') {
    if (last.content !== '') last.content = [{ type: 'text', text: last.content, cache_control: EPHEMERAL }];
  } else if (Array.isArray(last.content)) {
    markLast(last.content);
  }
}

function markLast(blocks: unknown[]): void {
  for (let i = blocks.length - 1; i >= 0; i--) {
    const b = blocks[i];
    if (isObject(b) && !UNMARKABLE.has(String(b.type))) {
      b.cache_control = EPHEMERAL;
      return;
    }
  }
}
