// The app-facing listener: routes the endpoints, reads and checks the body, runs the pipeline,
// writes JSON or SSE back, and logs each request once. Every failure reaches the app in its format.
import { createServer, type IncomingMessage, type Server, type ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import { asLlmgwError, errorCode, GatewayError, invalidRequest, type LlmgwError } from '../../common/errors.js';
import { bodyLeftUnread, ClientGoneError, readJsonBody } from '../../common/http/read-json-body.js';
import type { Json } from '../../common/json.js';
import type { AccessLog, AccessLogEntry } from '../access-log.js';
import type { WireFormat } from '../formats/wire-format.js';
import { recordRequest } from '../metrics/request-metrics.js';
import type { SidecarMetrics } from '../metrics/sidecar-metrics.js';
import { CancelSignal, waitUnlessCancelled } from '../pipeline/cancel-signal.js';
import type { Endpoint, GatewayResponse, Handler, ResponseMeta, UpstreamTrace } from '../pipeline/types.js';
import type { Runtime } from '../runtime.js';
import { costHeader } from '../pricing/cost-interceptor.js';
import { parsePriority, parseTags } from './caller-headers.js';
import { storedResponse, type StoredResponsesOptions } from '../responses/stored-responses.js';
import { countInputTokens } from './count-tokens.js';
import { toErrorFrame, toWireError } from './error-response.js';
import type { Inflight } from './inflight.js';
import { entryLimitsOf } from './json-limits.js';
import { describeModel, listModels } from './models-list.js';
import { genAiProvider, operationAttributes, usageAttributes } from '../tracing/gen-ai-attributes.js';
import type { TraceSpan } from '../tracing/trace-span.js';
import type { Tracing } from '../tracing/tracing.js';

export interface DataServerOptions {
  handler: Handler;
  runtime: () => Runtime;
  clock: Clock;
  metrics: SidecarMetrics;
  inflight: Inflight;
  accessLog: AccessLog;
  /** For failures that are the gateway's own bugs (the access log records the rest). */
  logger: Logger;
  /** True once shutdown began: answers carry `Connection: close`. */
  draining: () => boolean;
  /** Seconds since the epoch the sidecar started (the `created` of listed models). */
  startedAtSeconds: number;
  /** Responses the sidecar stored, for GET and DELETE /v1/responses/{id}; absent: none are. */
  storedResponses?: StoredResponsesOptions;
  /** The tracer when tracing is on (config `tracing`); undefined: no spans, no cost. */
  tracing?: () => Tracing | undefined;
}

interface Route {
  method: 'GET' | 'POST';
  endpoint: Endpoint | 'models' | 'model' | 'count_tokens' | 'stored_response';
  format: WireFormat;
}

const ROUTES: Record<string, Route> = {
  '/v1/chat/completions': { method: 'POST', endpoint: 'chat', format: 'openai' },
  '/v1/messages': { method: 'POST', endpoint: 'messages', format: 'anthropic' },
  '/v1/messages/count_tokens': { method: 'POST', endpoint: 'count_tokens', format: 'anthropic' },
  '/v1/embeddings': { method: 'POST', endpoint: 'embeddings', format: 'openai' },
  '/v1/responses': { method: 'POST', endpoint: 'responses', format: 'openai' },
  '/v1/models': { method: 'GET', endpoint: 'models', format: 'openai' },
};

/** `/v1/models/{id}`: one model (its id may hold slashes, percent-encoded or not). */
const MODEL_PREFIX = '/v1/models/';
const MODEL_ROUTE: Route = { method: 'GET', endpoint: 'model', format: 'openai' };
/** `/v1/responses/{id}`: a stored response, read (GET) or deleted (DELETE). */
const STORED_PREFIX = '/v1/responses/';
const STORED_ROUTE: Route = { method: 'GET', endpoint: 'stored_response', format: 'openai' };

/** The route of a path: a fixed one, or one of the routes with an id in the path. */
function routeOf(path: string): Route | undefined {
  const fixed = ROUTES[path];
  if (fixed !== undefined) return fixed;
  if (path.startsWith(MODEL_PREFIX) && path.length > MODEL_PREFIX.length) return MODEL_ROUTE;
  if (path.startsWith(STORED_PREFIX) && path.length > STORED_PREFIX.length) return STORED_ROUTE;
  return undefined;
}

const requestIdPattern = /^[\w.:-]{1,128}$/;

export function createDataServer(opts: DataServerOptions): Server {
  const { server: limits } = opts.runtime().config;
  const server = createServer(
    {
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // How often slow-client timeouts are checked; the default 30 s would let them overrun by that much.
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      handle(req, res, opts).catch(() => res.destroy());
    },
  );
  return server;
}

/** Applies the server keys of a reloaded config to a running listener. */
export function applyServerLimits(server: Server, runtime: Runtime): void {
  const limits = runtime.config.server;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: DataServerOptions): Promise<void> {
  const started = opts.clock.monotonic();
  const incomingId = req.headers['x-request-id'];
  const id = typeof incomingId === 'string' && requestIdPattern.test(incomingId) ? incomingId : randomUUID();
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const route = routeOf(path);
  // Unknown paths and the model routes (both SDKs call them) answer in the shape of whichever SDK seems to be asking.
  const format: WireFormat =
    route !== undefined && route.endpoint !== 'models' && route.endpoint !== 'model'
      ? route.format
      : req.headers['anthropic-version'] === undefined
        ? 'openai'
        : 'anthropic';
  const entry: AccessLogEntry = { reqId: id, method: req.method ?? '', path, status: 0, latencyMs: 0, stream: false };
  const tracing = opts.tracing?.();
  // The server span of the request (HTTP semconv: named by method and route), a child of the app's trace.
  const span = tracing === undefined ? undefined : startRequestSpan(tracing, req, id, path, route);
  const aborter = new CancelSignal();
  res.once('close', () => {
    if (!res.writableFinished) aborter.abort();
  });
  opts.metrics.inflight.inc();
  opts.inflight.inc();
  let meta: ResponseMeta | undefined;
  /** Set for requests that go through the pipeline. */
  let trace: UpstreamTrace | undefined;
  let endpoint: Endpoint | undefined;

  try {
    if (route === undefined) throw new GatewayError('llmgw_not_found', 404, `no route for ${path}`);
    const deleting = route === STORED_ROUTE && req.method === 'DELETE';
    if (req.method !== route.method && !deleting) {
      const allowed = route === STORED_ROUTE ? 'GET, DELETE' : route.method;
      res.setHeader('allow', allowed);
      throw new GatewayError('llmgw_method_not_allowed', 405, `${path} accepts ${allowed} only`);
    }
    if (route.endpoint === 'stored_response') {
      const stored = opts.storedResponses;
      const responseId = idOf(path, STORED_PREFIX);
      if (stored === undefined || responseId === undefined) throw new GatewayError('llmgw_not_found', 404, `no stored response at ${path}`);
      writeJson(res, 200, await storedResponse(deleting ? 'DELETE' : 'GET', responseId, stored), id, opts);
      entry.status = 200;
      return;
    }
    if (route.endpoint === 'models') {
      writeJson(res, 200, JSON.stringify(listModels(opts.runtime().router.modelNames, req, opts.startedAtSeconds)), id, opts);
      entry.status = 200;
      return;
    }
    if (route.endpoint === 'model') {
      const names = opts.runtime().router.modelNames;
      const name = idOf(path, MODEL_PREFIX);
      const model = name === undefined ? undefined : describeModel(names, name, req, opts.startedAtSeconds);
      if (model === undefined) {
        throw new GatewayError('llmgw_unknown_model', 404, `model "${name ?? path.slice(MODEL_PREFIX.length)}" is not routed by this gateway; known models: ${names.join(', ')}`, { param: 'model' });
      }
      writeJson(res, 200, JSON.stringify(model), id, opts);
      entry.status = 200;
      entry.model = name;
      return;
    }
    const runtime = opts.runtime();
    // A token count's body is a Messages request, bounded and checked as one.
    const bodyKind = route.endpoint === 'count_tokens' ? 'messages' : route.endpoint;
    const { body, bytes } = await readJsonBody(req, runtime.config.server.maxBodyBytes, entryLimitsOf(bodyKind));
    const model = checkBody(bodyKind, body);
    entry.model = model;
    entry.stream = route.endpoint !== 'count_tokens' && body.stream === true;
    const priority = parsePriority(req.headers['x-llmgw-priority'], runtime.config.quota?.defaultPriority ?? 'interactive');
    const tags = parseTags(req.headers['x-llmgw-tags']);
    entry.priority = priority;
    if (tags !== undefined) entry.tags = tags;
    const gatewayRequest = {
      id,
      endpoint: bodyKind,
      format: route.format,
      model,
      body,
      bodyBytes: bytes,
      stream: entry.stream,
      headers: req.headers,
      priority,
      tags,
      signal: aborter,
      estimates: {},
      trace: { target: undefined },
      span,
    };
    if (route.endpoint === 'count_tokens') {
      // Spends no tokens: not through the pipeline, so no quota, rate limit or cache.
      const count = await countInputTokens(gatewayRequest, { runtime, clock: opts.clock });
      entry.status = count.status;
      entry.provider = count.provider;
      entry.upstreamModel = count.upstreamModel;
      if (count.upstreamMs !== undefined) entry.upstreamMs = round(count.upstreamMs);
      const headers = { 'x-llmgw-token-count': count.method, 'x-llmgw-provider': count.provider, 'x-llmgw-model': count.upstreamModel };
      writeJson(res, count.status, count.body, id, opts, headers);
      return;
    }
    trace = gatewayRequest.trace;
    endpoint = bodyKind;
    const response = await opts.handler(gatewayRequest);
    meta = response.meta;
    entry.status = response.kind === 'json' ? response.status : 200;
    await writeResponse(res, response, id, started, format, aborter, opts, entry);
  } catch (err) {
    if (err instanceof ClientGoneError || aborter.aborted) {
      entry.clientAborted = true;
      entry.status = entry.status || 499;
      res.destroy();
      return;
    }
    const e = recordError(err, entry, opts);
    entry.status = e.status;
    writeError(res, e, format, id, opts);
  } finally {
    opts.metrics.inflight.dec();
    opts.inflight.dec();
    finishEntry(entry, meta, started, opts, trace, endpoint);
    if (span !== undefined) endRequestSpan(span, entry, meta, endpoint, opts);
  }
}

function startRequestSpan(tracing: Tracing, req: IncomingMessage, id: string, path: string, route: Route | undefined): TraceSpan {
  const method = req.method ?? 'GET';
  const template = route === undefined ? undefined : route === MODEL_ROUTE ? `${MODEL_PREFIX}{id}` : route === STORED_ROUTE ? `${STORED_PREFIX}{id}` : path;
  return tracing.start(template === undefined ? method : `${method} ${template}`, req.headers, {
    'http.request.method': method,
    'url.path': path,
    'http.route': template,
    'llmgw.request_id': id,
  });
}

/** What the access log learned about the request, on its span (GenAI names where semconv has them). */
function endRequestSpan(span: TraceSpan, entry: AccessLogEntry, meta: ResponseMeta | undefined, endpoint: Endpoint | undefined, opts: DataServerOptions): void {
  const provider = entry.provider === undefined ? undefined : opts.runtime().config.providers[entry.provider];
  span.set({
    ...(endpoint === undefined || entry.model === undefined ? {} : operationAttributes(endpoint, entry.model)),
    'gen_ai.provider.name': genAiProvider(provider?.type),
    'gen_ai.response.model': entry.upstreamModel,
    ...usageAttributes(meta?.usage),
    'http.response.status_code': entry.status,
    'llmgw.provider': entry.provider,
    'llmgw.stream': entry.stream,
    'llmgw.priority': entry.priority,
    'llmgw.cache': entry.cache,
    'llmgw.attempts': entry.attempts,
    'llmgw.cost_usd': entry.costUsd,
    'llmgw.overhead_ms': meta?.overheadMs,
    'llmgw.client_aborted': entry.clientAborted,
  });
  if (entry.tags !== undefined) for (const [k, v] of Object.entries(entry.tags)) span.set({ [`llmgw.tag.${k}`]: v });
  // A server span fails on 5xx only (HTTP semconv); a refusal still names its code.
  if (entry.error !== undefined) {
    if (entry.status >= 500) span.fail(entry.error);
    else span.set({ 'error.type': entry.error });
  }
  span.end();
}

/** The id after `prefix` in a path, percent-decoded; undefined when the encoding is broken. */
function idOf(path: string, prefix: string): string | undefined {
  try {
    return decodeURIComponent(path.slice(prefix.length));
  } catch {
    return undefined;
  }
}

function checkBody(endpoint: Endpoint, body: Json): string {
  const model = body.model;
  if (typeof model !== 'string' || model === '') throw invalidRequest('"model" must be a non-empty string', 'model');
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
    throw invalidRequest('"stream" must be a boolean', 'stream');
  }
  if (endpoint === 'embeddings') {
    if (body.input === undefined || body.input === null) throw invalidRequest('"input" is required', 'input');
    if (body.stream === true) throw invalidRequest('embeddings cannot be streamed', 'stream');
  } else if (endpoint === 'responses') {
    // A follow-up of a stored response may send no input of its own.
    const input = body.input;
    if (input === undefined || input === null) {
      if (typeof body.previous_response_id !== 'string') throw invalidRequest('"input" is required', 'input');
    } else if (typeof input !== 'string' && !Array.isArray(input)) {
      throw invalidRequest('"input" must be a string or an array of input items', 'input');
    }
  } else if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw invalidRequest('"messages" must be a non-empty array', 'messages');
  }
  return model;
}

function baseHeaders(id: string, opts: DataServerOptions): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { 'x-request-id': id };
  if (opts.draining()) h.connection = 'close';
  return h;
}

function metaHeaders(h: OutgoingHttpHeaders, meta: ResponseMeta, started: number, opts: DataServerOptions): OutgoingHttpHeaders {
  if (meta.provider !== undefined) h['x-llmgw-provider'] = meta.provider;
  if (meta.upstreamModel !== undefined) h['x-llmgw-model'] = meta.upstreamModel;
  h['x-llmgw-attempts'] = String(meta.attempts);
  h['x-llmgw-cache'] = meta.cache;
  if (meta.similarity !== undefined) h['x-llmgw-cache-similarity'] = meta.similarity.toFixed(4);
  if (meta.remainingTokens !== undefined) h['x-ratelimit-remaining-tokens'] = String(meta.remainingTokens);
  // Known here for JSON answers only; a stream's cost is known at its end (the access log carries it).
  if (meta.costUsd !== undefined) h['x-llmgw-cost-usd'] = costHeader(meta.costUsd);
  const overhead = Math.max(0, opts.clock.monotonic() - started - (meta.upstreamMs ?? 0));
  meta.overheadMs = overhead;
  h['x-llmgw-overhead-ms'] = overhead.toFixed(3);
  return h;
}

function writeJson(res: ServerResponse, status: number, body: string | Buffer | readonly Buffer[], id: string, opts: DataServerOptions, extra?: OutgoingHttpHeaders): void {
  const h = baseHeaders(id, opts);
  h['content-type'] = 'application/json';
  const whole = typeof body === 'string' || Buffer.isBuffer(body);
  // A large translated answer comes in pieces (its texts straight from the upstream's buffer): no copy.
  h['content-length'] = whole ? Buffer.byteLength(body) : body.reduce((n, b) => n + b.length, 0);
  res.writeHead(status, extra === undefined ? h : Object.assign(h, extra));
  if (whole) return void res.end(body);
  for (const b of body) res.write(b);
  res.end();
}

async function writeResponse(
  res: ServerResponse,
  response: GatewayResponse,
  id: string,
  started: number,
  format: WireFormat,
  signal: CancelSignal,
  opts: DataServerOptions,
  entry: AccessLogEntry,
): Promise<void> {
  if (response.kind === 'json') {
    writeJson(res, response.status, response.body, id, opts, metaHeaders({}, response.meta, started, opts));
    return;
  }
  const h = metaHeaders(baseHeaders(id, opts), response.meta, started, opts);
  h['content-type'] = 'text/event-stream; charset=utf-8';
  h['cache-control'] = 'no-cache';
  res.writeHead(200, h);
  res.write(response.head);
  try {
    for await (const frames of response.rest) {
      if (!res.write(frames)) await drained(res, signal);
    }
  } catch (err) {
    if (signal.aborted) throw err;
    // Content already reached the app: end with an error event its SDK raises, never a silent cut.
    res.write(toErrorFrame(recordError(err, entry, opts), format));
  }
  res.end();
}

/** Resolves when the response can take more, rejects with the reason when the app has left. */
function drained(res: ServerResponse, signal: CancelSignal): Promise<void> {
  return waitUnlessCancelled(signal, (done) => {
    res.once('drain', done);
    return () => res.off('drain', done);
  });
}

function writeError(res: ServerResponse, err: LlmgwError, format: WireFormat, id: string, opts: DataServerOptions): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const wire = toWireError(err, format);
  const extra: OutgoingHttpHeaders = { ...wire.headers };
  // A body refused before its end (too large, too deep, too many entries) cannot be skipped on a
  // keep-alive connection: close it.
  if (bodyLeftUnread(err)) extra.connection = 'close';
  writeJson(res, wire.status, JSON.stringify(wire.body), id, opts, extra);
}

/** Types the failure, notes it in the access log entry, and logs it in full when it is our own bug. */
function recordError(err: unknown, entry: AccessLogEntry, opts: DataServerOptions): LlmgwError {
  const e = asLlmgwError(err);
  entry.error = errorCode(e);
  if (e instanceof GatewayError && e.code === 'llmgw_internal_error') opts.logger.error({ reqId: entry.reqId, err }, 'internal error');
  return e;
}

function finishEntry(
  entry: AccessLogEntry,
  meta: ResponseMeta | undefined,
  started: number,
  opts: DataServerOptions,
  trace: UpstreamTrace | undefined,
  endpoint: Endpoint | undefined,
): void {
  entry.latencyMs = round(opts.clock.monotonic() - started);
  if (meta !== undefined) {
    entry.provider = meta.provider;
    entry.upstreamModel = meta.upstreamModel;
    entry.attempts = meta.attempts;
    entry.cache = meta.cache;
    if (meta.upstreamMs !== undefined) entry.upstreamMs = round(meta.upstreamMs);
    if (meta.similarity !== undefined) entry.similarity = meta.similarity;
    if (meta.savedUsage !== undefined) {
      entry.savedTokensIn = meta.savedUsage.inputTokens;
      entry.savedTokensOut = meta.savedUsage.outputTokens;
    }
    if (meta.usage !== undefined) {
      entry.tokensIn = meta.usage.inputTokens;
      entry.tokensOut = meta.usage.outputTokens;
      if (meta.usage.cachedInputTokens > 0) entry.cachedTokensIn = meta.usage.cachedInputTokens;
      if (meta.usage.cacheWriteTokens > 0) entry.cacheWriteTokensIn = meta.usage.cacheWriteTokens;
    }
    if (meta.costUsd === undefined && meta.costAtEnd !== undefined) meta.costUsd = meta.costAtEnd();
    if (meta.costUsd !== undefined) entry.costUsd = meta.costUsd;
    if (meta.embedding !== undefined) {
      entry.embeddingModel = meta.embedding.model;
      entry.embeddingTokens = meta.embedding.usage.inputTokens;
    }
  }
  const endpointLabel =
    entry.path in ROUTES ? entry.path : entry.path.startsWith(MODEL_PREFIX) ? `${MODEL_PREFIX}{id}` : entry.path.startsWith(STORED_PREFIX) ? `${STORED_PREFIX}{id}` : 'other';
  // Only configured names become label values, so apps cannot blow up the series count.
  const model = entry.model !== undefined && opts.runtime().router.has(entry.model) ? entry.model : '';
  recordRequest(opts.metrics, entry, meta, endpointLabel, model, trace?.target, endpoint);
  opts.accessLog.write(entry);
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;
