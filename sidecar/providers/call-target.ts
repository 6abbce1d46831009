// One attempt against one target: translate the request, send it, and turn the answer (JSON or a stream
// primed to its first frames) into a GatewayResponse, or the failure into a typed error.
import type { Readable } from 'node:stream';
import type { Clock } from '../clock.js';
import { GatewayError, ProviderError, LlmgwError } from '../errors.js';
import type { WireFormat } from '../formats/wire-format.js';
import { SseParser, type SseEvent } from '../http/sse-parser.js';
import type { GatewayRequest, GatewayResponse, ResponseMeta } from '../pipeline/types.js';
import type { Target } from '../routing/router.js';
import { createExchange } from '../translate/exchange.js';
import type { StreamTranslator } from '../translate/stream-translator.js';
import { readBody } from '../upstream/read-body.js';
import { isAbortError, upstreamFailure } from '../upstream/upstream-errors.js';

export interface CallOptions {
  clock: Clock;
  defaultMaxTokens: number;
}

export async function callTarget(req: GatewayRequest, target: Target, opts: CallOptions): Promise<GatewayResponse> {
  const { provider } = target;
  const exchange = createExchange(req, target, {
    defaultMaxTokens: opts.defaultMaxTokens,
    nowSeconds: () => Math.floor(opts.clock.now() / 1000),
  });
  const meta: ResponseMeta = { provider: provider.id, upstreamModel: target.model, attempts: 1, cache: 'BYPASS' };
  const fail = (err: unknown): unknown => (err instanceof LlmgwError || isAbortError(err) ? err : upstreamFailure(provider.id, err));
  const started = opts.clock.monotonic();
  const res = await provider.send(req.endpoint === 'embeddings' ? 'embeddings' : 'chat', exchange.upstreamBody, req.signal, exchange.upstreamHeaders);

  try {
    if (res.status < 200 || res.status >= 300) {
      const raw = await readBody(res.body);
      const retryAfter = res.headers['retry-after'];
      const retryAfterMs = res.headers['retry-after-ms'];
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
      const raw = await readBody(res.body);
      meta.upstreamMs = opts.clock.monotonic() - started;
      let out;
      try {
        out = exchange.response(raw);
      } catch {
        throw new GatewayError('llmgw_upstream_error', 502, `provider ${provider.id} answered with a body that is not a JSON object`, { retryable: true });
      }
      meta.usage = out.usage;
      return { kind: 'json', status: res.status, body: out.body, meta };
    }
    if (!contentType.includes('text/event-stream')) {
      await readBody(res.body);
      throw new GatewayError('llmgw_upstream_error', 502, `provider ${provider.id} answered a stream request with ${contentType || 'no content type'}`, { retryable: true });
    }
    return await primeStream(res.body, exchange.stream(), provider.format, meta, () => {
      meta.upstreamMs ??= opts.clock.monotonic() - started;
    }, fail);
  } catch (err) {
    res.body.destroy();
    throw fail(err);
  }
}

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
): Promise<GatewayResponse> {
  const parser = new SseParser();
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let ended = false;
  let content = false;
  const pump = (chunk: Buffer): string => {
    let out = '';
    for (const ev of parser.push(chunk)) {
      if (!content && carriesContent(ev, upstreamFormat)) content = true;
      out += translator.event(ev);
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
    const r = await chunks.next();
    return r.done ? finish() : pump(r.value);
  };

  let head = '';
  while (!content && !ended) head += await next();
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
    }
  }
  return { kind: 'stream', head, rest: rest(), meta };
}
