// Reads the `usage` object out of a JSON answer without parsing the whole answer: a pass-through
// response is forwarded as bytes and only its token counts are needed.

/**
 * The value of the `usage` key of a JSON object text. When `"usage"` occurs exactly once as raw bytes it
 * can only be a key (inside a JSON string the quotes would be escaped), so just that object is parsed;
 * otherwise, or if anything looks off, the whole text is. Returns undefined when there is no usage.
 */
export function readUsage(text: string): unknown {
  const at = text.indexOf('"usage"');
  if (at === -1) return undefined;
  if (text.indexOf('"usage"', at + 7) === -1) {
    const value = objectAfterKey(text, at + 7);
    if (value !== undefined) return value;
  }
  const whole: unknown = JSON.parse(text);
  return whole !== null && typeof whole === 'object' ? (whole as Record<string, unknown>).usage : undefined;
}

function objectAfterKey(text: string, from: number): unknown {
  let i = from;
  while (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 10 || text.charCodeAt(i) === 13 || text.charCodeAt(i) === 9) i++;
  if (text[i] !== ':') return undefined;
  i++;
  while (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 10 || text.charCodeAt(i) === 13 || text.charCodeAt(i) === 9) i++;
  if (text.startsWith('null', i)) return null;
  if (text[i] !== '{') return undefined;
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */) depth++;
    else if (c === 125 /* } */ && --depth === 0) {
      try {
        return JSON.parse(text.slice(start, i + 1)) as unknown;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
