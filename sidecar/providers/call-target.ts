// One attempt against one target: translate the request, send it, and turn the answer (JSON or a stream
// primed to its first frames) into a GatewayResponse, or the failure into a typed error.
import type { Readable } from 'node:stream';
import type { Clock } from '../../common/clock.js';
import { GatewayError, LlmgwError } from '../../common/errors.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../config/schema.js';
import { ProviderError } from '../errors.js';
import type { WireFormat } from '../formats/wire-format.js';
import { SseParser, type SseEvent } from '../http/sse-parser.js';
import { CancelSignal } from '../pipeline/cancel-signal.js';
import type { GatewayRequest, GatewayResponse, ResponseMeta } from '../pipeline/types.js';
import type { Target } from '../routing/router.js';
import { scrubCredentials } from '../security/scrub-credentials.js';
import { scrubProviderError } from '../security/scrub-provider-error.js';
import { createExchange } from '../translate/exchange.js';
import type { StreamTranslator } from '../translate/stream-translator.js';
import { discardBody, readBody } from '../upstream/read-body.js';
import { isAbortError, upstreamFailure } from '../upstream/upstream-errors.js';
import { providerSecrets } from './provider-secrets.js';

/** The most of a provider's error body read (its message); the rest is discarded. */
const ERROR_BODY_BYTES = 1 << 20;

export interface CallOptions {
  clock: Clock;
  defaultMaxTokens: number;
  /** Prompt-cache breakpoints added when translating for Anthropic (absent: off). */
  promptCache?: 'auto' | 'off';
  /** To response headers and between body chunks (undici's own timers), and for the whole attempt. */
  timeouts: { firstByteMs: number; idleMs: number; totalMs: number | undefined };
  /** The attempt's W3C `traceparent`, sent upstream (tracing with `propagateUpstream` only). */
  traceparent?: string;
}

export async function callTarget(req: GatewayRequest, target: Target, opts: CallOptions): Promise<GatewayResponse> {
  const { provider } = target;
  const exchange = createExchange(req, target, {
    defaultMaxTokens: opts.defaultMaxTokens,
    promptCache: opts.promptCache === 'auto',
    nowSeconds: () => Math.floor(opts.clock.now() / 1000),
  });
  const meta: ResponseMeta = { provider: provider.id, upstreamModel: target.model, attempts: 1, cache: 'BYPASS' };
  // The attempt ends when the app leaves or when it has taken totalMs in all (streams included).
  const attempt = new CancelSignal();
  const unfollow = req.signal.follow(attempt);
  // Our own timers (undici's are a backstop): to the response headers, between body chunks, and in all.
  const timers = new AttemptTimers(() => attempt.abort());
  const { totalMs } = opts.timeouts;
  if (totalMs !== undefined) timers.total(totalMs, `took longer than ${totalMs} ms`);
  const done = (): void => {
    timers.clear();
    unfollow();
  };
  // Every failure leaves the attempt through here, so this is the one place a provider's own words (an
  // error body, an error event inside a stream) are scrubbed of credentials: retries, logs, translation
  // and the app only ever see the scrubbed error. Successful answers never come here.
  const fail = (err: unknown): unknown => {
    const e = err instanceof ProviderError ? scrubProviderError(err, providerSecrets(provider)) : err;
    if (timers.fired !== undefined) return new GatewayError('llmgw_upstream_timeout', 504, `provider ${provider.id} ${timers.fired}`, { retryable: true, cause: e });
    return e instanceof LlmgwError || isAbortError(e) ? e : upstreamFailure(provider.id, e);
  };
  const limit = target.maxResponse ?? { bytes: DEFAULT_MAX_RESPONSE_BYTES, key: 'upstream.maxResponseBytes' };
  // Not retryable: the same target asked again would most likely answer as much again, and every try of
  // it is paid for in tokens and memory. A fallback model might answer smaller, but the retry layer cannot
  // tell "another model only" from "again", and the remedy that actually works is the operator's: raise
  // the limit (per model where large answers are expected). Nor is it the target's fault: its breaker
  // does not count it.
  const tooLarge = (what: string): GatewayError =>
    new GatewayError('llmgw_upstream_too_large', 502, `provider ${provider.id} answered ${what}more than ${limit.bytes} bytes (${limit.key})`, { retryable: false });
  const started = opts.clock.monotonic();
  let res;
  timers.phase(opts.timeouts.firstByteMs, `sent no response headers within ${opts.timeouts.firstByteMs} ms`);
  try {
    const body = exchange.upstreamBody();
    const headers = opts.traceparent === undefined ? exchange.upstreamHeaders : { ...exchange.upstreamHeaders, traceparent: opts.traceparent };
    res = await provider.send(exchange.api, typeof body === 'string' ? body : await body, attempt, headers, opts.timeouts);
  } catch (err) {
    done();
    throw fail(err);
  }
  const idle = (): void => timers.phase(opts.timeouts.idleMs, `went silent for ${opts.timeouts.idleMs} ms`);
  idle();

  let streaming = false;
  try {
    if (res.status < 200 || res.status >= 300) {
      // An error's body matters only for its message: at most ERROR_BODY_BYTES of it are read, and a larger
      // one is reported without its text, so the failure keeps its status and is retried or falls back as
      // that status says (a 503 with a huge HTML page is still a 503).
      const read = await readBody(res.body, Math.min(limit.bytes, ERROR_BODY_BYTES), res.headers['content-length']);
      const raw = read.status === 'complete' ? read.body : Buffer.from(`(an error body of more than ${read.maxBytes} bytes, not read)`);
      const retryAfter = res.headers['retry-after'];
      const retryAfterMs = res.headers['retry-after-ms'];
      // Raw here, scrubbed by fail() below before anything outside this attempt sees it.
      throw new ProviderError({
        status: res.status,
        providerId: provider.id,
        format: provider.format,
        body: parseMaybeJson(raw),
        retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
        retryAfterMs: typeof retryAfterMs === 'string' ? retryAfterMs : undefined,
      });
    }
    const contentType = String(res.headers['content-type'] ?? '');
    if (!req.stream) {
      const read = await readBody(res.body, limit.bytes, res.headers['content-length']);
      if (read.status === 'too-large') throw tooLarge('');
      const raw = read.body;
      meta.upstreamMs = opts.clock.monotonic() - started;
      // An answer that is not valid for its format throws 502 llmgw_upstream_error here (retryable).
      const out = exchange.response(raw);
      meta.usage = out.usage;
      return { kind: 'json', status: res.status, body: out.body, meta };
    }
    if (!contentType.includes('text/event-stream')) {
      await discardBody(res.body, limit.bytes);
      // The provider's header goes into the app's error message: scrubbed like its bodies.
      const what = contentType === '' ? 'no content type' : scrubCredentials(contentType, providerSecrets(provider));
      throw new GatewayError('llmgw_upstream_error', 502, `provider ${provider.id} answered a stream request with ${what}`, { retryable: true });
    }
    const primed = await primeStream(res.body, exchange.stream(), provider.format, meta, () => {
      meta.upstreamMs ??= opts.clock.monotonic() - started;
    }, fail, done, idle, limit.bytes, () => tooLarge('a stream of '));
    streaming = true;
    return primed;
  } catch (err) {
    res.body.destroy();
    throw fail(err);
  } finally {
    // A stream's attempt ends with the stream (primeStream calls done); anything else ends here.
    if (!streaming) done();
  }
}

/** Responses stream events that carry no content yet (held back, like chat's role chunk, until content comes). */
const RESPONSES_LIFECYCLE = new Set(['response.created', 'response.in_progress', 'response.queued', 'response.content_part.added', 'response.reasoning_summary_part.added']);

function parseMaybeJson(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Whether an upstream event carries the answer itself (text, a tool call, its end), not only its lifecycle. */
export function carriesContent(ev: SseEvent, format: WireFormat): boolean {
  if (format === 'anthropic') return ev.event === 'content_block_delta' || ev.event === 'message_delta' || ev.event === 'message_stop';
  // A Responses stream names its events: everything but the lifecycle and the empty item or part openers.
  if (ev.event?.startsWith('response.') === true) return !RESPONSES_LIFECYCLE.has(ev.event);
  if (ev.data === '[DONE]') return true;
  try {
    const chunk = JSON.parse(ev.data) as { choices?: { delta?: Record<string, unknown>; finish_reason?: unknown }[] };
    return (chunk.choices ?? []).some((c) => {
      const d = c.delta ?? {};
      return (typeof d.content === 'string' && d.content !== '') || d.tool_calls !== undefined || d.refusal != null || d.reasoning_content != null || c.finish_reason != null;
    });
  } catch {
    return false;
  }
}

/**
 * Reads the stream until the answer's first content (text, a tool call, or its end) has arrived, holding
 * back the lifecycle frames before it (OpenAI's role chunk, Anthropic's message_start): an upstream that
 * fails before any content can still be retried or fall back, invisibly to the app. Then hands the rest
 * over as an iterable that forwards each chunk as it arrives.
 */
async function primeStream(
  body: Readable,
  translator: StreamTranslator,
  upstreamFormat: WireFormat,
  meta: ResponseMeta,
  onFirstFrame: () => void,
  fail: (err: unknown) => unknown,
  onEnd: () => void,
  onChunk: () => void,
  maxBytes: number,
  tooLarge: () => GatewayError,
): Promise<GatewayResponse> {
  const parser = new SseParser();
  // Bytes received from upstream: a stream is forwarded chunk by chunk, never held whole, but its total
  // is capped like any answer (before the first content it fails the attempt, after it ends the stream with
  // an error event; either way the finally below or the caller destroys the body, aborting the upstream).
  let received = 0;
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let ended = false;
  let content = false;
  let primed = false;
  /** A failure (an error event, a malformed one) that followed frames of the same read: thrown after them. */
  let failed: unknown;
  const pump = (chunk: Buffer): string => {
    let out = '';
    for (const ev of parser.push(chunk)) {
      if (!content && carriesContent(ev, upstreamFormat)) content = true;
      try {
        out += translator.event(ev);
      } catch (err) {
        // Before the first frames went out the attempt fails whole (and is retried); after, the app gets
        // what preceded the failure, then the error event.
        if (!primed || out === '') throw err;
        failed = err;
        return out;
      }
    }
    return out;
  };
  const finish = (): string => {
    ended = true;
    let out = '';
    for (const ev of parser.end()) out += translator.event(ev);
    return out + translator.end();
  };
  const next = async (): Promise<string> => {
    if (failed !== undefined) throw failed;
    const r = await chunks.next();
    onChunk();
    if (r.done) return finish();
    received += r.value.length;
    if (received > maxBytes) throw tooLarge();
    return pump(r.value);
  };

  let head = '';
  while (!content && !ended) head += await next();
  primed = true;
  onFirstFrame();
  meta.usage = translator.usage;

  async function* rest(): AsyncGenerator<string> {
    try {
      while (!ended) {
        const out = await next();
        meta.usage = translator.usage;
        if (out !== '') yield out;
      }
    } catch (err) {
      throw fail(err);
    } finally {
      meta.usage = translator.usage;
      // Ended early (the app left, or an error): stop reading and release the upstream connection.
      if (!ended) body.destroy();
      onEnd();
    }
  }
  return { kind: 'stream', head, rest: rest(), meta };
}

/** The attempt's timers: one for the current phase (headers, then each gap between chunks), one in all. */
class AttemptTimers {
  /** Why the attempt was cut, once a timer fired. */
  fired: string | undefined;
  private phaseTimer: NodeJS.Timeout | undefined;
  private phaseWhy: string | undefined;
  private totalTimer: NodeJS.Timeout | undefined;

  constructor(private readonly abort: () => void) {}

  phase(ms: number, why: string): void {
    // The same phase again (the next chunk of a stream): restart the running timer, allocate nothing.
    if (this.phaseTimer !== undefined && why === this.phaseWhy) {
      this.phaseTimer.refresh();
      return;
    }
    clearTimeout(this.phaseTimer);
    this.phaseWhy = why;
    this.phaseTimer = setTimeout(() => this.fire(why), ms);
  }

  total(ms: number, why: string): void {
    this.totalTimer = setTimeout(() => this.fire(why), ms);
  }

  clear(): void {
    clearTimeout(this.phaseTimer);
    clearTimeout(this.totalTimer);
    this.phaseTimer = undefined;
  }

  private fire(why: string): void {
    this.fired ??= why;
    this.clear();
    this.abort();
  }
}
