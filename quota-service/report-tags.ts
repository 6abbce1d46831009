// Which of a usage report's tags (`x-llmgw-tags`) the service keeps for attribution.
import { MAX_TAG_VALUE, MAX_TAGS, TAG_KEY } from '../proto/tags.js';

/**
 * The report's tags that are kept: well-formed ones, at most 16. A report with others is still charged in
 * full (refusing it would leave the sidecar resending it forever); only their attribution is lost.
 */
export function attributionTags(tags: Record<string, string> | undefined): { key: string; value: string; pair: string }[] {
  if (tags === undefined) return [];
  const out: { key: string; value: string; pair: string }[] = [];
  for (const [key, value] of Object.entries(tags)) {
    if (out.length === MAX_TAGS) break;
    if (TAG_KEY.test(key) && typeof value === 'string' && value.length <= MAX_TAG_VALUE) out.push({ key, value, pair: `${key}=${value}` });
  }
  return out;
}
