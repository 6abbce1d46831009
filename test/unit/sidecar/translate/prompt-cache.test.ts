// Where the prompt-cache breakpoints go in a translated Anthropic request.
import { describe, expect, it } from 'vitest';
import { addCacheBreakpoints } from '../../../../sidecar/translate/prompt-cache.js';

const e = { type: 'ephemeral' };

describe('prompt-cache breakpoints', () => {
  it('marks the last system block, the last tool and the last block of the last message, skipping thinking', () => {
    const body = {
      system: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }],
      tools: [{ name: 't1' }, { name: 't2' }],
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: [{ type: 'text', text: 'x' }, { type: 'tool_use', id: 'c', name: 't1', input: {} }, { type: 'thinking', thinking: 'hm', signature: 's' }] },
      ],
    };
    addCacheBreakpoints(body);
    expect(body.system).toEqual([{ type: 'text', text: 'a' }, { type: 'text', text: 'b', cache_control: e }]);
    expect(body.tools).toEqual([{ name: 't1' }, { name: 't2', cache_control: e }]);
    expect(body.messages[0]).toEqual({ role: 'user', content: 'q' });
    expect(body.messages[1]!.content).toEqual([
      { type: 'text', text: 'x' },
      { type: 'tool_use', id: 'c', name: 't1', input: {}, cache_control: e },
      { type: 'thinking', thinking: 'hm', signature: 's' },
    ]);
  });

  it('leaves a request with no system, tools or text as it was', () => {
    const body = { messages: [{ role: 'user', content: '' }] };
    addCacheBreakpoints(body);
    expect(body).toEqual({ messages: [{ role: 'user', content: '' }] });
  });
});
