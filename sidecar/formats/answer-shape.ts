// What an upstream answer must be for the app's SDK to use it, per wire format: valid JSON, and the few
// members SDKs and the translations dereference (a chat completion's `choices`, a message's `type` and
// `content`, an embeddings list's `data`, each stream chunk's or event's own). Anything else is the
// provider's failure, `502 llmgw_upstream_error`, retried like a 502 it sent itself. Optional fields are
// not checked. Messages name what is missing, never quote the provider's text.
import { GatewayError } from '../../common/errors.js';
import { isObject, type Json } from '../../common/json.js';
import { scanJsonObject, type MemberValue } from './json-scan.js';

/** A non-streaming answer: a chat completion, an embeddings list, a Response (OpenAI), or a message (Anthropic). */
export type AnswerKind = 'chat' | 'embeddings' | 'response' | 'message';

interface Shape {
  /** What the answer should have been, for messages. */
  what: string;
  /** The member that must be an array of objects. */
  array: string;
  /** The value `type` must have, when the format has one. */
  type?: string;
}

const SHAPES: Record<AnswerKind, Shape> = {
  chat: { what: 'a chat completion', array: 'choices' },
  embeddings: { what: 'an embeddings list', array: 'data' },
  response: { what: 'a response', array: 'output' },
  message: { what: 'a message', array: 'content', type: 'message' },
};

const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');
/** Per kind, the top-level keys a scan looks for: the array, `usage`, and `type`. */
const SCAN_KEYS: Record<AnswerKind, Uint8Array[]> = {
  chat: [bytes('choices'), bytes('usage')],
  embeddings: [bytes('data'), bytes('usage')],
  response: [bytes('output'), bytes('usage')],
  message: [bytes('content'), bytes('usage'), bytes('type')],
};

/** The provider sent something its format does not allow: an upstream failure, tried again or elsewhere. */
export function malformedAnswer(providerId: string, what: string): GatewayError {
  return new GatewayError('llmgw_upstream_error', 502, `provider ${providerId} ${what}`, { retryable: true });
}

/**
 * Checks an answer the app gets byte for byte, and returns its `usage` value (undefined when absent). The
 * bytes are scanned, not decoded or parsed: only the small members read (`usage`, `type`) are.
 */
export function checkAnswerBytes(raw: Buffer, kind: AnswerKind, providerId: string): { usage: unknown } {
  const shape = SHAPES[kind];
  const scan = scanJsonObject(raw, SCAN_KEYS[kind]);
  if (scan.kind === 'escaped-key') {
    const value = parseAnswer(raw, kind, providerId);
    return { usage: value.usage };
  }
  if (scan.kind === 'invalid') throw notJson(providerId);
  const [array, usage, type] = scan.kind === 'object' ? scan.members : [];
  const member = (m: MemberValue | undefined): unknown => (m === undefined ? undefined : JSON.parse(raw.toString('utf8', m.start, m.end)));
  if (array?.arrayOfObjects !== true || (shape.type !== undefined && member(type) !== shape.type)) throw wrongShape(providerId, shape);
  return { usage: member(usage) };
}

/** Parses and checks an answer that is translated for the app. */
export function parseAnswer(raw: Buffer, kind: AnswerKind, providerId: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw notJson(providerId);
  }
  return checkAnswer(value, kind, providerId);
}

/** Checks an answer already parsed (however it was): the object itself when its shape is right. */
export function checkAnswer(value: unknown, kind: AnswerKind, providerId: string): Json {
  const shape = SHAPES[kind];
  if (!isObject(value) || !arrayOfObjects(value[shape.array]) || (shape.type !== undefined && value.type !== shape.type)) {
    throw wrongShape(providerId, shape);
  }
  return value;
}

/**
 * An OpenAI stream chunk: an object with a `choices` array of objects, or an error object (`{"error":
 * {…}}`, which the caller raises as the provider's error). `[DONE]` is the caller's to handle first.
 */
export function parseOpenAIChunk(data: string, providerId: string): Json {
  const chunk = parseEvent(data, providerId);
  if (!isObject(chunk) || (!arrayOfObjects(chunk.choices) && !isObject(chunk.error))) {
    throw malformedAnswer(providerId, 'sent a stream chunk that is not an object with a "choices" array of objects');
  }
  return chunk;
}

/** The object each event type must carry (what the SDKs' stream accumulators read). */
const EVENT_MEMBER = new Map([
  ['message_start', 'message'],
  ['content_block_start', 'content_block'],
  ['content_block_delta', 'delta'],
  ['message_delta', 'delta'],
]);

/**
 * An Anthropic stream event's data: an object with a string `type`, and for the types that have one, its
 * object (`message_start.message`, `content_block_start.content_block`, the deltas' `delta`). Called for the
 * events SDKs parse: named ones other than `ping` and `error`.
 */
export function parseAnthropicEvent(data: string, providerId: string): Json {
  return parseTypedEvent(data, providerId, EVENT_MEMBER);
}

/** The object each Responses event type must carry. */
const RESPONSES_EVENT_MEMBER = new Map([
  ['response.created', 'response'],
  ['response.in_progress', 'response'],
  ['response.completed', 'response'],
  ['response.incomplete', 'response'],
  ['response.failed', 'response'],
  ['response.output_item.added', 'item'],
  ['response.output_item.done', 'item'],
]);

/**
 * An OpenAI Responses stream event's data: an object with a string `type`, and for the types that have
 * one, its object (the lifecycle events' `response`, the output item events' `item`).
 */
export function parseResponsesEvent(data: string, providerId: string): Json {
  return parseTypedEvent(data, providerId, RESPONSES_EVENT_MEMBER);
}

/** An event object with a string `type`, and the object `members` says that type carries. */
function parseTypedEvent(data: string, providerId: string, members: ReadonlyMap<string, string>): Json {
  const event = parseEvent(data, providerId);
  if (!isObject(event) || typeof event.type !== 'string') {
    throw malformedAnswer(providerId, 'sent a stream event that is not an object with a "type"');
  }
  const member = members.get(event.type);
  if (member !== undefined && !isObject(event[member])) {
    throw malformedAnswer(providerId, `sent a ${event.type} event without its "${member}" object`);
  }
  return event;
}

function parseEvent(data: string, providerId: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw malformedAnswer(providerId, 'sent a stream event that is not valid JSON');
  }
}

const arrayOfObjects = (v: unknown): boolean => Array.isArray(v) && v.every(isObject);

const notJson = (providerId: string): GatewayError => malformedAnswer(providerId, 'answered with a body that is not valid JSON');

function wrongShape(providerId: string, shape: Shape): GatewayError {
  const type = shape.type === undefined ? '' : ` of type "${shape.type}"`;
  return malformedAnswer(providerId, `answered with a body that is not ${shape.what}: no object${type} with a "${shape.array}" array of objects`);
}
