import { describe, expect, it } from 'vitest';
import { readUsage } from '../../../../sidecar/formats/read-usage.js';

describe('readUsage', () => {
  it('reads the usage object of an answer', () => {
    const text = JSON.stringify({ id: 'x', choices: [{ message: { content: 'a "usage": {"x":1} in text' } }], usage: { prompt_tokens: 3, completion_tokens: 4, d: { e: '}' } } });
    expect(readUsage(text)).toEqual({ prompt_tokens: 3, completion_tokens: 4, d: { e: '}' } });
  });

  it('handles whitespace, null and absent usage', () => {
    expect(readUsage('{\n  "usage" :\n  { "input_tokens": 5 }\n}')).toEqual({ input_tokens: 5 });
    expect(readUsage('{"usage":null}')).toBeNull();
    expect(readUsage('{"id":"x"}')).toBeUndefined();
  });

  it('falls back to a full parse when "usage" also appears as a nested key', () => {
    const text = JSON.stringify({ content: [{ type: 'tool_use', input: { usage: { n: 9 } } }], usage: { input_tokens: 1, output_tokens: 2 } });
    expect(readUsage(text)).toEqual({ input_tokens: 1, output_tokens: 2 });
  });
});
