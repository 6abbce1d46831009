// Picks the translation for one (app format, provider format) pair: how the request body is written for
// the upstream, how its answer and its stream come back. Same format on both sides is a pass-through
// that only swaps the model name (and asks for stream usage).
import { invalidRequest } from '../../common/errors.js';
import { stringifyInSlices } from '../../common/json-in-slices.js';
import { isObject, type Json } from '../../common/json.js';
import { usageFromAnthropic } from '../formats/anthropic.js';
import { checkAnswer, checkAnswerBytes, malformedAnswer, parseAnswer, type AnswerKind } from '../formats/answer-shape.js';
import { usageFromOpenAI } from '../formats/openai.js';
import { usageFromResponses } from '../formats/openai-responses.js';
import type { ProviderApi } from '../providers/provider.js';
import type { Usage } from '../formats/usage.js';
import type { GatewayRequest } from '../pipeline/types.js';
import { promptTokens } from '../quota/estimate.js';
import type { Target } from '../routing/router.js';
import { AnthropicPassThroughStream } from './anthropic-pass-through-stream.js';
import { anthropicRequestToOpenAI } from './anthropic-request-to-openai.js';
import { anthropicResponseToOpenAI } from './anthropic-response-to-openai.js';
import { AnthropicToOpenAIStream } from './anthropic-stream-to-openai.js';
import { OpenAIPassThroughStream } from './openai-pass-through-stream.js';
import { openaiRequestToAnthropic } from './openai-request-to-anthropic.js';
import { openaiResponseToAnthropic } from './openai-response-to-anthropic.js';
import { OpenAIToAnthropicStream } from './openai-stream-to-anthropic.js';
import { ResponsesPassThroughStream } from './responses-pass-through-stream.js';
import { chatResponseToResponses, responsesEcho } from './chat-response-to-responses.js';
import { chained, ChatToResponsesStream } from './chat-stream-to-responses.js';
import { responsesRequestToChat } from './responses-request-to-chat.js';
import { addCacheBreakpoints } from './prompt-cache.js';
import { parseSkeleton, type JsonPath } from './big-strings.js';
import type { StreamTranslator } from './stream-translator.js';

/** From this size an app's body is written for the upstream in slices (stringifyInSlices). */
const LARGE_REQUEST_BYTES = 1 << 20;
/** From this size a translated answer's long texts are carried over from the upstream's bytes (big-strings.ts). */
const LARGE_ANSWER_BYTES = 1 << 20;

export interface Exchange {
  /** The upstream API the request goes to. */
  readonly api: ProviderApi;
  /** The body to send upstream: its JSON text, or for a large request that text made between turns of the event loop. */
  upstreamBody(): string | Promise<Buffer[]>;
  /** Headers that vary per request (the app's Anthropic version and betas on pass-through). */
  readonly upstreamHeaders: Record<string, string> | undefined;
  /**
   * The upstream's successful answer → the app's body and the usage it reports. Throws 502
   * llmgw_upstream_error (retryable) when the answer is not valid for its format (formats/answer-shape.ts).
   */
  response(raw: Buffer): { body: string | Buffer | readonly Buffer[]; usage: Usage | undefined };
  stream(): StreamTranslator;
}

export interface ExchangeOptions {
  /** `max_tokens` for Anthropic upstreams when the app and the model config set none. */
  defaultMaxTokens: number;
  /** Seconds since the epoch, for the `created` field Anthropic answers lack. */
  nowSeconds: () => number;
  /** Add prompt-cache breakpoints to requests translated for Anthropic (prompt-cache.ts). */
  promptCache?: boolean;
}

export function createExchange(req: GatewayRequest, target: Target, opts: ExchangeOptions): Exchange {
  const provider = target.provider;
  if (req.endpoint === 'embeddings') {
    if (provider.format !== 'openai') {
      throw invalidRequest(`model "${req.model}" is served by an Anthropic provider, which has no embeddings API`, 'model');
    }
    return sameFormat('embeddings', upstream(req, { ...req.body, model: target.model }), undefined, provider.id, 'embeddings', () => {
      throw new Error('embeddings do not stream');
    });
  }

  if (req.endpoint === 'responses') return responsesExchange(req, target, opts);

  const appWantsUsage = appWantsStreamUsage(req);

  if (req.format === 'openai' && provider.format === 'openai') {
    const body: Json = { ...req.body, model: target.model };
    if (req.stream && provider.config.streamUsage && !appWantsUsage) {
      body.stream_options = { ...(isObject(req.body.stream_options) ? req.body.stream_options : {}), include_usage: true };
    }
    return sameFormat('chat', upstream(req, body), undefined, provider.id, 'chat', () => new OpenAIPassThroughStream(provider.id, appWantsUsage));
  }

  if (req.format === 'anthropic' && provider.format === 'anthropic') {
    const headers: Record<string, string> = {};
    for (const name of ['anthropic-version', 'anthropic-beta']) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    return sameFormat('chat', upstream(req, { ...req.body, model: target.model }), headers, provider.id, 'message', () => new AnthropicPassThroughStream(provider.id));
  }

  if (req.format === 'openai') {
    // OpenAI app → Anthropic provider.
    return viaMessages(req, req.body, target, opts, (answer) => answer, (created) => new AnthropicToOpenAIStream({ providerId: provider.id, includeUsage: appWantsUsage, created }));
  }

  // Anthropic app → OpenAI-style provider.
  const body = anthropicRequestToOpenAI(req.body, {
    model: target.model,
    maxTokensField: provider.type === 'openai' ? 'max_completion_tokens' : 'max_tokens',
    streamUsage: provider.config.streamUsage,
    allowTopK: provider.type === 'openai-compatible',
  });
  return {
    api: 'chat',
    upstreamBody: upstream(req, body),
    upstreamHeaders: undefined,
    response: (raw) => translateAnswer(raw, 'chat', provider.id, openaiTexts, openaiResponseToAnthropic, usageFromOpenAI),
    stream: () => new OpenAIToAnthropicStream({ providerId: provider.id, promptTokensEstimate: promptTokens(req) }),
  };
}

/**
 * A Responses request: passed through to OpenAI itself; for a Chat Completions provider translated to Chat
 * Completions and back; for Anthropic translated to Chat Completions and on to Messages, and back the same
 * way (one translation of each kind to keep right, at the cost of what Chat Completions cannot carry).
 */
function responsesExchange(req: GatewayRequest, target: Target, opts: ExchangeOptions): Exchange {
  const provider = target.provider;
  if (provider.type === 'openai') {
    return sameFormat('responses', upstream(req, { ...req.body, model: target.model }), undefined, provider.id, 'response', () => new ResponsesPassThroughStream(provider.id));
  }
  const anthropic = provider.format === 'anthropic';
  const chat = responsesRequestToChat(req.body, {
    model: target.model,
    maxTokensField: 'max_tokens',
    streamUsage: anthropic || provider.config.streamUsage,
    target: anthropic ? 'an Anthropic model' : 'a Chat Completions provider',
    anthropic,
  });
  const echo = responsesEcho(req.body);
  if (!anthropic) {
    return {
      api: 'chat',
      upstreamBody: upstream(req, chat),
      upstreamHeaders: undefined,
      response: (raw) => translateAnswer(raw, 'chat', provider.id, openaiTexts, (answer) => chatResponseToResponses(answer, echo), usageFromOpenAI),
      stream: () => new ChatToResponsesStream({ providerId: provider.id, echo, created: opts.nowSeconds() }),
    };
  }
  return viaMessages(
    req,
    chat,
    target,
    opts,
    (answer) => chatResponseToResponses(answer, echo),
    (created) => chained(new AnthropicToOpenAIStream({ providerId: provider.id, includeUsage: true, created }), new ChatToResponsesStream({ providerId: provider.id, echo, created })),
  );
}

/**
 * A Chat Completions request (the app's own, or a Responses request made one) sent to an Anthropic target
 * as a Messages request, with its prompt-cache breakpoints; the answer comes back as a chat completion that
 * `toApp` turns into the app's, and the stream through the translator `stream` makes.
 */
function viaMessages(
  req: GatewayRequest,
  chat: Json,
  target: Target,
  opts: ExchangeOptions,
  toApp: (answer: Json) => Json,
  stream: (created: number) => StreamTranslator,
): Exchange {
  const providerId = target.provider.id;
  const body = openaiRequestToAnthropic(chat, { model: target.model, defaultMaxTokens: opts.defaultMaxTokens });
  if (opts.promptCache === true) addCacheBreakpoints(body);
  return {
    api: 'chat',
    upstreamBody: upstream(req, body),
    upstreamHeaders: undefined,
    response(raw) {
      const created = opts.nowSeconds();
      return translateAnswer(raw, 'message', providerId, anthropicTexts, (msg) => toApp(anthropicResponseToOpenAI(msg, created)), usageFromAnthropic);
    },
    stream: () => stream(opts.nowSeconds()),
  };
}

/** The texts a translation only moves: an Anthropic message's text blocks. */
const anthropicTexts = (p: JsonPath): boolean => p.length === 3 && p[0] === 'content' && p[2] === 'text';
/** …and the first choice's content and refusal (the only choice translated). */
const openaiTexts = (p: JsonPath): boolean =>
  p.length === 4 && p[0] === 'choices' && p[1] === 0 && p[2] === 'message' && (p[3] === 'content' || p[3] === 'refusal');

/**
 * A translated answer. A large one is parsed without its long texts, which go to the app straight from
 * the upstream's bytes: memory stays near the answer's size instead of several times it. When the
 * translation did not carry a text over untouched, the answer is translated whole instead.
 */
function translateAnswer(
  raw: Buffer,
  kind: AnswerKind,
  providerId: string,
  texts: (p: JsonPath) => boolean,
  translate: (answer: Json) => Json,
  toUsage: (usage: unknown) => Usage | undefined,
): { body: string | readonly Buffer[]; usage: Usage | undefined } {
  if (raw.length >= LARGE_ANSWER_BYTES) {
    let skeleton;
    try {
      skeleton = parseSkeleton(raw, texts);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      throw malformedAnswer(providerId, 'answered with a body that is not valid JSON');
    }
    const answer = checkAnswer(skeleton.value, kind, providerId);
    const body = skeleton.restore(JSON.stringify(translate(answer)));
    if (body !== undefined) return { body, usage: toUsage(answer.usage) };
  }
  const answer = parseAnswer(raw, kind, providerId);
  return { body: JSON.stringify(translate(answer)), usage: toUsage(answer.usage) };
}

/** An OpenAI app that set `stream_options.include_usage: true`: its stream ends with a usage chunk. */
export function appWantsStreamUsage(req: GatewayRequest): boolean {
  return req.format === 'openai' && isObject(req.body.stream_options) && req.body.stream_options.include_usage === true;
}

/**
 * The upstream body's JSON text. A large request's is made a slice at a time between turns of the event
 * loop: one JSON.stringify of a 16 MB body holds every other request of the pod for tens of ms.
 */
function upstream(req: GatewayRequest, body: Json): () => string | Promise<Buffer[]> {
  if ((req.bodyBytes ?? 0) >= LARGE_REQUEST_BYTES) return () => stringifyInSlices(body);
  const text = JSON.stringify(body);
  return () => text;
}

function sameFormat(
  api: ProviderApi,
  upstreamBody: () => string | Promise<Buffer[]>,
  upstreamHeaders: Record<string, string> | undefined,
  providerId: string,
  kind: AnswerKind,
  stream: () => StreamTranslator,
): Exchange {
  const toUsage = kind === 'message' ? usageFromAnthropic : kind === 'response' ? usageFromResponses : usageFromOpenAI;
  return {
    api,
    upstreamBody,
    upstreamHeaders,
    // The provider's bytes go to the app untouched, once checked; only the usage is read out of them.
    response: (raw) => ({ body: raw, usage: toUsage(checkAnswerBytes(raw, kind, providerId).usage) }),
    stream,
  };
}
