// The documented bounds on a request's JSON (README, "The HTTP surface") that are the sidecar's own: the
// counts of messages, tools, content parts and embedding inputs, per endpoint. The body reader enforces
// them on the raw bytes as they arrive (common/http/json-scanner.ts), with the depth and per-container
// bounds of every body (common/http/read-json-body.ts); past any of them the app gets 400
// `llmgw_invalid_request` naming the limit, before the body is parsed or even read to its end.
import type { EntryLimits } from '../../common/http/json-scanner.js';
import type { Endpoint } from '../pipeline/types.js';

/** Most entries of `messages` (chat and Anthropic messages). */
export const MAX_MESSAGES = 10_000;
/** Most entries of `tools` (OpenAI's own cap is 128; ours is generous but bounded). */
export const MAX_TOOLS = 1_000;
/** Most content parts of one message's `content`, or of Anthropic's `system`. */
export const MAX_CONTENT_PARTS = 10_000;
/** Most entries of an embeddings `input` array (OpenAI's own limit: 2,048 inputs). */
export const MAX_EMBEDDING_INPUTS = 2_048;

const contentParts: EntryLimits = { max: MAX_CONTENT_PARTS, noun: 'content parts' };

const CONVERSATION: EntryLimits = {
  keys: {
    messages: { max: MAX_MESSAGES, items: { keys: { content: contentParts } } },
    tools: { max: MAX_TOOLS },
    system: contentParts,
  },
};

/** A Responses request: its `input` items count as messages. */
const RESPONSES: EntryLimits = {
  keys: {
    input: { max: MAX_MESSAGES, noun: 'input items', items: { keys: { content: contentParts } } },
    tools: { max: MAX_TOOLS },
  },
};

const LIMITS: Record<Endpoint, EntryLimits> = {
  chat: CONVERSATION,
  messages: CONVERSATION,
  responses: RESPONSES,
  embeddings: { keys: { input: { max: MAX_EMBEDDING_INPUTS } } },
};

/** The named entry limits of an endpoint's request body, for readJsonBody. */
export const entryLimitsOf = (endpoint: Endpoint): EntryLimits => LIMITS[endpoint];
