// `POST /v1/messages/count_tokens`: the input tokens a Messages request would take on the model it names.
// An Anthropic target is asked (its own count); an OpenAI model is tokenized here with its encoding;
// anything else gets the quota estimate's ~4 characters a token. It spends no tokens: never metered or cached.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { COMPLETION_REQUEST_TOKEN_OVERHEAD, countMessageTokens, FUNCTION_DEFINITION_TOKEN_OVERHEAD } from 'gpt-tokenizer/functionCalling';
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import { stringifyInSlices } from '../../common/json-in-slices.js';
import { isObject, type Json } from '../../common/json.js';
import { ProviderError } from '../errors.js';
import { CancelSignal } from '../pipeline/cancel-signal.js';
import type { GatewayRequest } from '../pipeline/types.js';
import { providerSecrets } from '../providers/provider-secrets.js';
import { promptTokens } from '../quota/estimate.js';
import type { ModelRoute, Target } from '../routing/router.js';
import type { Runtime } from '../runtime.js';
import { scrubProviderError } from '../security/scrub-provider-error.js';
import { readBody } from '../upstream/read-body.js';
import { upstreamFailure } from '../upstream/upstream-errors.js';

export type Encoding = 'o200k_base' | 'cl100k_base';

/** How the count was made, sent as `x-llmgw-token-count`. */
export type CountMethod = 'provider' | `tokenizer-${Encoding}` | 'estimate';

export interface TokenCount {
  status: number;
  /** JSON text: the provider's own answer, or `{"input_tokens":N}`. */
  body: string | Buffer;
  method: CountMethod;
  provider: string;
  upstreamModel: string;
  /** Time spent waiting for the provider (ms), when it was asked. */
  upstreamMs?: number;
}

/** Tokens of an image block: a 1024×1024 image at high detail on GPT-4o (85 + 4 tiles × 170); the pixels are not decoded. */
export const IMAGE_TOKENS = 765;
/** Tokens of a PDF or other non-text document block: roughly one page and a half; the file is not read. */
export const DOCUMENT_TOKENS = 1_500;
/** A count is a few bytes: a larger answer (or error body) is not read. */
const MAX_ANSWER_BYTES = 1 << 20;
/** From this size the body is written for the provider in slices (as exchange.ts does). */
const LARGE_REQUEST_BYTES = 1 << 20;
/** Tokenizing yields to other requests this often (ms), and cuts texts into slices of at most this many characters. */
const YIELD_EVERY_MS = 5;
const SLICE_CHARS = 32_768;

/** Upstream model → encoding (tiktoken's prefixes; `ft:` fine-tunes count as their base). Unknown: undefined. */
export function encodingOf(upstreamModel: string): Encoding | undefined {
  const name = upstreamModel.replace(/^ft:/, '');
  if (/^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)(?:$|[-.:])/.test(name)) return 'o200k_base';
  if (/^(?:gpt-4|gpt-3\.5)(?:$|[-:])/.test(name)) return 'cl100k_base';
  return undefined;
}

export interface CountOptions {
  runtime: Runtime;
  clock: Clock;
}

/** Counts `req`'s input tokens on the first target (of weight > 0) of its model; unknown model: the router's 404. */
export async function countInputTokens(req: GatewayRequest, opts: CountOptions): Promise<TokenCount> {
  const route = opts.runtime.router.resolve(req.model);
  // The schema guarantees a target of weight > 0.
  const target = route.targets.find((t) => t.weight > 0)!;
  const about = { provider: target.provider.id, upstreamModel: target.model };
  if (target.provider.type === 'anthropic') return askProvider(req, route, target, opts);
  const encoding = target.provider.type === 'openai' ? encodingOf(target.model) : undefined;
  if (encoding === undefined) return { status: 200, body: answer(promptTokens(req)), method: 'estimate', ...about };
  const n = await tokenize(req.body, await counterFor(encoding), opts.clock, req.signal);
  return { status: 200, body: answer(n), method: `tokenizer-${encoding}`, ...about };
}

const answer = (n: number): string => JSON.stringify({ input_tokens: n });

/** The app's body with the upstream model, to the provider's count_tokens; its answer or its error (scrubbed). */
async function askProvider(req: GatewayRequest, route: ModelRoute, target: Target, opts: CountOptions): Promise<TokenCount> {
  const { provider } = target;
  const m = route.timeouts ?? {};
  const p = provider.config.timeouts ?? {};
  const u = opts.runtime.config.upstream;
  // The model's timeouts, else the provider's, else `upstream.*` (as for every other call).
  const timeouts = { firstByteMs: m.firstByteMs ?? p.firstByteMs ?? u.headersTimeoutMs, idleMs: m.idleMs ?? p.idleMs ?? u.bodyTimeoutMs };
  const totalMs = m.totalMs ?? p.totalMs ?? u.totalTimeoutMs;
  const attempt = new CancelSignal();
  const unfollow = req.signal.follow(attempt);
  // Our own timers, as in call-target.ts (undici's fire up to a second late and are a backstop).
  let fired: string | undefined;
  const cut = (why: string) => (): void => {
    fired ??= why;
    attempt.abort();
  };
  let phase = setTimeout(cut(`sent no response headers within ${timeouts.firstByteMs} ms`), timeouts.firstByteMs);
  const total = totalMs === undefined ? undefined : setTimeout(cut(`took longer than ${totalMs} ms`), totalMs);
  const headers: Record<string, string> = {};
  for (const name of ['anthropic-version', 'anthropic-beta']) {
    const v = req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  const upstreamBody: Json = { ...req.body, model: target.model };
  const started = opts.clock.monotonic();
  try {
    const body = (req.bodyBytes ?? 0) >= LARGE_REQUEST_BYTES ? await stringifyInSlices(upstreamBody) : JSON.stringify(upstreamBody);
    const res = await provider.send('count_tokens', body, attempt, headers, timeouts);
    clearTimeout(phase);
    // A count is a few bytes, so its whole body is one gap between chunks.
    phase = setTimeout(cut(`went silent for ${timeouts.idleMs} ms`), timeouts.idleMs);
    const read = await readBody(res.body, MAX_ANSWER_BYTES, res.headers['content-length']);
    const raw = read.status === 'complete' ? read.body : undefined;
    if (res.status < 200 || res.status >= 300) {
      const retryAfter = res.headers['retry-after'];
      throw new ProviderError({
        status: res.status,
        providerId: provider.id,
        format: provider.format,
        body: raw === undefined ? `(an error body of more than ${MAX_ANSWER_BYTES} bytes, not read)` : parseMaybeJson(raw),
        retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
      });
    }
    if (raw === undefined) throw new GatewayError('llmgw_upstream_too_large', 502, `provider ${provider.id} answered a token count of more than ${MAX_ANSWER_BYTES} bytes`);
    const parsed = parseMaybeJson(raw);
    if (!isObject(parsed) || typeof parsed.input_tokens !== 'number') {
      throw new GatewayError('llmgw_upstream_error', 502, `provider ${provider.id} answered a token count without a numeric "input_tokens"`);
    }
    return { status: res.status, body: raw, method: 'provider', provider: provider.id, upstreamModel: target.model, upstreamMs: opts.clock.monotonic() - started };
  } catch (err) {
    if (req.signal.aborted) throw err;
    if (fired !== undefined) throw new GatewayError('llmgw_upstream_timeout', 504, `provider ${provider.id} ${fired}`, { retryable: true });
    // The provider's words reach the app: without its credentials (see call-target.ts).
    if (err instanceof ProviderError) throw scrubProviderError(err, providerSecrets(provider));
    throw upstreamFailure(provider.id, err);
  } finally {
    clearTimeout(phase);
    clearTimeout(total);
    unfollow();
  }
}

function parseMaybeJson(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

type Counter = (text: string) => number;
const counters = new Map<Encoding, Promise<Counter>>();
/** Text that looks like a special token (`<|endoftext|>`) is counted as the text it is, never refused. */
const PLAIN = { disallowedSpecial: new Set<string>() };

/** The encoding's counter, loaded the first time it is needed (its tables take a while and some memory). */
function counterFor(encoding: Encoding): Promise<Counter> {
  let counter = counters.get(encoding);
  if (counter === undefined) {
    const mod = encoding === 'o200k_base' ? import('gpt-tokenizer/encoding/o200k_base') : import('gpt-tokenizer/encoding/cl100k_base');
    counter = mod.then(
      (m): Counter => (text) => (text === '' ? 0 : m.countTokens(text, PLAIN)),
      (err: unknown) => {
        counters.delete(encoding);
        throw err;
      },
    );
    counters.set(encoding, counter);
  }
  return counter;
}

/** What a block adds: text to tokenize, or tokens already estimated (an image, a document). */
type Piece = string | number;

/**
 * OpenAI's chat counting (gpt-tokenizer's helpers, after OpenAI's cookbook): per message 3 tokens plus its
 * role, 3 to prime the reply, and 9 once for the tool definitions; the system prompt is one more message.
 */
export async function tokenize(body: Json, count: Counter, clock: Clock, signal?: CancelSignal): Promise<number> {
  const messages: { role: string; pieces: Iterable<Piece> }[] = [];
  const system = body.system;
  if ((typeof system === 'string' || Array.isArray(system)) && system.length > 0) messages.push({ role: 'system', pieces: piecesOf(system) });
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) if (isObject(m)) messages.push({ role: typeof m.role === 'string' ? m.role : 'user', pieces: piecesOf(m.content) });
  }
  let total = COMPLETION_REQUEST_TOKEN_OVERHEAD;
  let since = clock.monotonic();
  const add = async (piece: Piece): Promise<void> => {
    if (typeof piece === 'number') return void (total += piece);
    for (const slice of slices(piece)) {
      total += count(slice);
      if (clock.monotonic() - since < YIELD_EVERY_MS) continue;
      await nextTurn();
      // The app left meanwhile: no one wants the count.
      if (signal?.aborted === true) throw signal.reason;
      since = clock.monotonic();
    }
  };
  for (const m of messages) {
    total += countMessageTokens({ role: m.role, content: '' }, count);
    for (const piece of m.pieces) await add(piece);
  }
  const tools = Array.isArray(body.tools) ? body.tools.filter(isObject) : [];
  if (tools.length > 0) total += FUNCTION_DEFINITION_TOKEN_OVERHEAD;
  for (const t of tools) {
    for (const v of [t.name, t.description]) if (typeof v === 'string') await add(v);
    if (t.input_schema !== undefined) await add(JSON.stringify(t.input_schema));
  }
  return total;
}

/**
 * The texts of a content (a string, or blocks): text, tool_use name and input JSON, tool_result content;
 * images and documents as estimated. Thinking blocks are not sent to OpenAI models (the translation drops them).
 */
function* piecesOf(content: unknown): Generator<Piece> {
  if (typeof content === 'string') return yield content;
  if (!Array.isArray(content)) return;
  for (const b of content) {
    if (!isObject(b)) continue;
    if (b.type === 'text' && typeof b.text === 'string') yield b.text;
    else if (b.type === 'tool_use') {
      if (typeof b.name === 'string') yield b.name;
      yield JSON.stringify(b.input ?? {});
    } else if (b.type === 'tool_result') yield* piecesOf(b.content);
    else if (b.type === 'image') yield IMAGE_TOKENS;
    else if (b.type === 'document') {
      const source = isObject(b.source) ? b.source : {};
      yield source.type === 'text' && typeof source.data === 'string' ? source.data : DOCUMENT_TOKENS;
    }
  }
}

/**
 * `text` in slices of at most SLICE_CHARS, each cut before a space that follows a non-space and precedes
 * one: a place where the tokenizer's own pre-split cuts too, so the sum of the slices' counts is the
 * count of the whole. A text with no such place in a window is cut at its end (off by a token or so),
 * never inside a surrogate pair.
 */
function* slices(text: string): Generator<string> {
  const space = (i: number): boolean => /\s/.test(text[i] ?? ' ');
  let start = 0;
  while (text.length - start > SLICE_CHARS) {
    // Looks back within the window only: a text without spaces costs one pass, not one per slice.
    let cut = start + SLICE_CHARS;
    while (cut > start && !(text[cut] === ' ' && !space(cut - 1) && !space(cut + 1))) cut--;
    if (cut <= start) {
      cut = start + SLICE_CHARS;
      const c = text.charCodeAt(cut);
      if (c >= 0xdc00 && c <= 0xdfff) cut -= 1;
    }
    yield text.slice(start, cut);
    start = cut;
  }
  yield text.slice(start);
}
