// A stored answer served in the form the request asks for: a JSON body as it is or as the stream that
// delivers it; a recorded stream replayed event by event (verbatim when the app asks for the same usage
// chunk it was recorded with, else with the usage chunk added or taken out) or added up into the JSON
// answer. Undefined when the entry cannot serve the request faithfully (a stream recorded without usage
// for a request that needs it): the caller treats that as a miss.
import { isObject, type Json } from '../../common/json.js';
import { OPENAI_DONE_FRAME, openaiFrame, usageToOpenAI } from '../formats/openai.js';
import type { Usage } from '../formats/usage.js';
import { SseParser, type SseEvent } from '../http/sse-parser.js';
import type { GatewayRequest, GatewayResponse, ResponseMeta } from '../pipeline/types.js';
import { anthropicResponseToStream } from '../translate/anthropic-response-to-stream.js';
import { anthropicStreamToResponse } from '../translate/anthropic-stream-to-response.js';
import { appWantsStreamUsage } from '../translate/exchange.js';
import { openaiResponseToStream } from '../translate/openai-response-to-stream.js';
import { openaiStreamToResponse } from '../translate/openai-stream-to-response.js';
import type { CachedAnswer, EntryForm } from './cache-store.js';

/** The form a stream recorded for `req` is stored in. */
export function streamForm(req: GatewayRequest): EntryForm {
  return appWantsStreamUsage(req) ? 'sse+usage' : 'sse';
}

export function entryUsage(e: CachedAnswer): Usage | undefined {
  if (e.inputTokens === null || e.outputTokens === null) return undefined;
  return { inputTokens: e.inputTokens, outputTokens: e.outputTokens, cachedInputTokens: 0, cacheWriteTokens: 0 };
}

export function serveEntry(e: CachedAnswer, req: GatewayRequest, meta: ResponseMeta): GatewayResponse | undefined {
  if (!req.stream && e.form === 'json') return { kind: 'json', status: 200, body: e.body, meta };
  // A Responses answer is served in the form it was recorded in only (no conversion between its JSON and
  // its events is built): the other form is a miss.
  if (req.endpoint === 'responses') return req.stream && e.form !== 'json' ? stream(e.body.toString('utf8').split(/(?<=\n\n)/), meta) : undefined;
  const wantsUsage = appWantsStreamUsage(req);
  if (req.stream && e.form !== 'json' && (req.format === 'anthropic' || (e.form === 'sse+usage') === wantsUsage)) {
    return stream(e.body.toString('utf8').split(/(?<=\n\n)/), meta);
  }
  // Converting reads the stored bytes as JSON: bytes that do not parse (a non-JSON event a compatible
  // server sent, a damaged row) make the entry a miss, never a failed request.
  try {
    if (!req.stream) {
      const events = sseEvents(e.body);
      const answer = req.format === 'openai' ? openaiStreamToResponse(events, entryUsage(e)) : anthropicStreamToResponse(events);
      return answer === undefined ? undefined : { kind: 'json', status: 200, body: JSON.stringify(answer), meta };
    }
    if (e.form === 'json') {
      const answer: unknown = JSON.parse(e.body.toString('utf8'));
      const frames = !isObject(answer) ? undefined : req.format === 'openai' ? openaiResponseToStream(answer, wantsUsage) : anthropicResponseToStream(answer);
      return frames === undefined ? undefined : stream(frames, meta);
    }
    const frames = withUsageChunk(sseEvents(e.body), wantsUsage, entryUsage(e));
    return frames === undefined ? undefined : stream(frames, meta);
  } catch {
    return undefined;
  }
}

function sseEvents(body: Buffer): SseEvent[] {
  const parser = new SseParser();
  return [...parser.push(body), ...parser.end()];
}

function stream(frames: string[], meta: ResponseMeta): GatewayResponse {
  async function* rest(): AsyncGenerator<string> {
    for (let i = 1; i < frames.length; i++) yield frames[i]!;
  }
  return { kind: 'stream', head: frames[0] ?? '', rest: rest(), meta };
}

/**
 * An OpenAI stream with its usage made to match `stream_options.include_usage`: `usage: null` on every
 * chunk and a usage chunk before [DONE] when wanted, neither when not.
 */
function withUsageChunk(events: readonly SseEvent[], want: boolean, known: Usage | undefined): string[] | undefined {
  const frames: string[] = [];
  let last: Json | undefined;
  let sawUsage = false;
  for (const ev of events) {
    if (ev.data === '[DONE]') {
      if (want && !sawUsage) {
        if (known === undefined || last === undefined) return undefined;
        const { choices: _, usage: __, ...shared } = last;
        frames.push(openaiFrame({ ...shared, choices: [], usage: usageToOpenAI(known) }));
      }
      frames.push(OPENAI_DONE_FRAME);
      continue;
    }
    const chunk: unknown = JSON.parse(ev.data);
    if (!isObject(chunk)) continue;
    last = chunk;
    if (want) {
      if (isObject(chunk.usage)) sawUsage = true;
      else chunk.usage = null;
    } else {
      if (isObject(chunk.usage) && Array.isArray(chunk.choices) && chunk.choices.length === 0) continue;
      delete chunk.usage;
    }
    frames.push(openaiFrame(chunk));
  }
  return frames;
}
