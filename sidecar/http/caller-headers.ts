// The optional caller headers of DESIGN §4: `x-llmgw-priority` (quota class) and `x-llmgw-tags`
// (attribution labels for usage records and logs). Bad values are refused, not guessed at.
import { invalidRequest } from '../../common/errors.js';
import { MAX_TAG_VALUE, MAX_TAGS, TAG_KEY } from '../../proto/tags.js';

export const priorities = ['interactive', 'background', 'batch'] as const;
export type Priority = (typeof priorities)[number];

export function parsePriority(value: string | string[] | undefined, fallback: Priority): Priority {
  if (value === undefined) return fallback;
  const v = Array.isArray(value) ? value[0] : value;
  if ((priorities as readonly (string | undefined)[]).includes(v)) return v as Priority;
  throw invalidRequest(`x-llmgw-priority must be one of ${priorities.join(', ')} (got "${String(v)}")`, 'x-llmgw-priority');
}

/** `key=value,key=value` → a map; undefined when the header is absent. */
export function parseTags(value: string | string[] | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  const tags: Record<string, string> = {};
  let count = 0;
  for (const pair of text.split(',')) {
    const trimmed = pair.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    const key = eq === -1 ? '' : trimmed.slice(0, eq).trim();
    const val = eq === -1 ? '' : trimmed.slice(eq + 1).trim();
    if (!TAG_KEY.test(key) || val.length > MAX_TAG_VALUE) {
      throw invalidRequest(`x-llmgw-tags must be key=value pairs (keys of letters, digits, _.-/ up to 64, values up to 128 characters); bad pair "${trimmed}"`, 'x-llmgw-tags');
    }
    if (++count > MAX_TAGS) throw invalidRequest(`x-llmgw-tags carries more than ${MAX_TAGS} tags`, 'x-llmgw-tags');
    tags[key] = val;
  }
  return tags;
}
