// `llmgw fake-provider`: a deterministic upstream speaking OpenAI (`/v1/chat/completions`, `/v1/responses`,
// `/v1/embeddings`, `/v1/models`) and Anthropic (`/v1/messages`, `/v1/messages/count_tokens`) faithfully,
// with fault injection and a record of what it received, controllable in-process or over HTTP under `/_fake/`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer, listen, type HostPort } from '../../common/http/listen.js';
import { anthropicAsk, anthropicCountTokens, anthropicError, anthropicEvents, anthropicMessage } from './anthropic-api.js';
import { FaultQueue, type Fault } from './faults.js';
import { FakeHttpError, openaiAsk, openaiChunks, openaiCompletion, openaiEmbeddings, openaiError } from './openai-api.js';
import { countTokens, isObj, planReply, type Json } from './reply.js';
import { answerResponses, responseObject, responsesAsk, responsesBilled, responsesErrorFrames, responsesEvents, responsesIds } from './responses-api.js';

export interface FakeProviderOptions {
  /** When set, requests must carry it (`Authorization: Bearer` or `x-api-key`). */
  apiKey?: string;
  /** Pause between stream chunks (the paced SSE mode); 0 sends them back to back. */
  chunkDelayMs?: number;
  /** Keep the last N requests for inspection. */
  recordLimit?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface FakeStats {
  requests: number;
  /** Requests whose client went away before the answer was complete. */
  aborted: number;
  active: number;
  /** Tokens (prompt + completion) of every answer that went out complete: what a real provider bills. */
  billedTokens: number;
}

export interface FakeProvider {
  readonly address: HostPort;
  /** `http://host:port` */
  readonly url: string;
  readonly faults: FaultQueue;
  readonly requests: RecordedRequest[];
  readonly stats: FakeStats;
  close(): Promise<void>;
}

const ANTHROPIC_PATHS = new Set(['/v1/messages', '/v1/messages/count_tokens']);
const MODELS = ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small', 'claude-haiku-4-5', 'claude-sonnet-4-5'];

export async function startFakeProvider(at: HostPort, opts: FakeProviderOptions = {}): Promise<FakeProvider> {
  const faults = new FaultQueue();
  const requests: RecordedRequest[] = [];
  const stats: FakeStats = { requests: 0, aborted: 0, active: 0, billedTokens: 0 };
  const recordLimit = opts.recordLimit ?? 200;
  let seq = 0;
  // What each answer bills once it is completely sent.
  const billed = new WeakMap<ServerResponse, number>();

  const server: Server = createServer((req, res) => {
    stats.requests += 1;
    stats.active += 1;
    res.once('close', () => {
      stats.active -= 1;
      if (!res.writableFinished) stats.aborted += 1;
      else stats.billedTokens += billed.get(res) ?? 0;
    });
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      // A body that is not JSON is refused before the request is recorded, outside handle's own catch.
      else if (err instanceof FakeHttpError) sendJson(res, err.status, err.body);
      else sendJson(res, 500, { error: { message: String(err), type: 'server_error', param: null, code: null } });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const raw = await readAll(req);
    if (path.startsWith('/_fake/')) return control(req.method ?? 'GET', path, raw, res);
    let body: Json = {};
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8')) as Json;
      } catch {
        throw ANTHROPIC_PATHS.has(path) ? anthropicError(400, 'invalid_request_error', 'invalid JSON body') : openaiError(400, 'We could not parse the JSON body of your request.');
      }
    }
    requests.push({ method: req.method ?? '', path, headers: req.headers, body });
    if (requests.length > recordLimit) requests.shift();
    const anthropic = ANTHROPIC_PATHS.has(path);
    let fault: Fault | undefined;
    try {
      checkAuth(req, anthropic);
      fault = faults.take(path, typeof body.model === 'string' ? body.model : undefined);
      if (fault?.delayMs) await sleep(fault.delayMs);
      if (fault?.hang) return await hang(res);
      if (fault?.status !== undefined) {
        throw new FakeHttpError(fault.status, fault.body ?? defaultErrorBody(fault.status, anthropic));
      }
      if (fault?.rawBody !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(fault.rawBody), ...fault.headers });
        return void res.end(fault.rawBody);
      }
      seq += 1;
      if (req.method === 'GET' && path === '/v1/models') return sendJson(res, 200, { object: 'list', data: MODELS.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'fake' })) });
      if (req.method !== 'POST') throw openaiError(405, `method ${req.method ?? ''} not allowed`);
      if (path === '/v1/embeddings') {
        const answer = openaiEmbeddings(body);
        billed.set(res, (answer.usage as { total_tokens: number }).total_tokens);
        return sendJson(res, 200, answer);
      }
      if (path === '/v1/chat/completions') return await chat(body, res, fault);
      if (path === '/v1/responses') return await responses(body, res, fault);
      if (path === '/v1/messages/count_tokens') return countMessageTokens(req, body, res);
      if (anthropic) return await messages(req, body, res, fault);
      throw openaiError(404, `Unknown request URL: POST ${path}.`, null, 'unknown_url');
    } catch (err) {
      if (!(err instanceof FakeHttpError)) throw err;
      sendJson(res, err.status, err.body, fault?.headers ?? {});
    }
  }

  function checkAuth(req: IncomingMessage, anthropic: boolean): void {
    if (opts.apiKey === undefined) return;
    if (anthropic) {
      if (req.headers['x-api-key'] !== opts.apiKey) throw anthropicError(401, 'authentication_error', 'invalid x-api-key');
      if (req.headers['anthropic-version'] === undefined) throw anthropicError(400, 'invalid_request_error', 'anthropic-version: header is required');
    } else if (req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      throw openaiError(401, 'Incorrect API key provided.', null, 'invalid_api_key');
    }
  }

  async function chat(body: Json, res: ServerResponse, fault: Fault | undefined): Promise<void> {
    const model = String(body.model);
    if (model.startsWith('missing-')) throw openaiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, null, 'model_not_found');
    const ask = openaiAsk(body);
    const plan = planReply(ask);
    const counts = countTokens(ask, plan);
    billed.set(res, counts.promptTokens + counts.completionTokens);
    const ids = { id: `chatcmpl-fake${seq}`, callId: `call_fake${seq}`, created: Math.floor(Date.now() / 1000) };
    if (body.stream !== true) return sendJson(res, 200, openaiCompletion(model, plan, counts, ids));
    const includeUsage = isObj(body.stream_options) && body.stream_options.include_usage === true;
    const error = `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`;
    await stream(res, openaiChunks(model, plan, counts, ids, includeUsage), fault, error, { 'x-request-id': `req_fake${seq}` });
  }

  async function responses(body: Json, res: ServerResponse, fault: Fault | undefined): Promise<void> {
    const model = String(body.model);
    if (model.startsWith('missing-')) throw openaiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, null, 'model_not_found');
    const ask = responsesAsk(body);
    const answer = answerResponses(ask);
    billed.set(res, responsesBilled(answer));
    const ids = responsesIds(seq, Math.floor(Date.now() / 1000));
    const headers = { 'x-request-id': `req_fake${seq}` };
    if (body.stream !== true) return sendJson(res, 200, responseObject(ask, answer, ids), headers);
    const error = responsesErrorFrames(ask, answer, ids, fault?.errorAfterChunks ?? 0);
    await stream(res, responsesEvents(ask, answer, ids), fault, error, headers);
  }

  function countMessageTokens(req: IncomingMessage, body: Json, res: ServerResponse): void {
    const model = String(body.model);
    if (model.startsWith('missing-')) throw anthropicError(404, 'not_found_error', `model: ${model}`);
    sendJson(res, 200, anthropicCountTokens(body, String(req.headers['anthropic-version'] ?? '')), { 'request-id': `req_fake${seq}` });
  }

  async function messages(req: IncomingMessage, body: Json, res: ServerResponse, fault: Fault | undefined): Promise<void> {
    const model = String(body.model);
    if (model.startsWith('missing-')) throw anthropicError(404, 'not_found_error', `model: ${model}`);
    const version = String(req.headers['anthropic-version'] ?? '');
    const ask = anthropicAsk(body, version);
    const plan = planReply(ask);
    const counts = countTokens(ask, plan);
    billed.set(res, counts.promptTokens + counts.completionTokens);
    const ids = { id: `msg_fake${seq}`, callId: `toolu_fake${seq}` };
    if (body.stream !== true) return sendJson(res, 200, anthropicMessage(model, plan, counts, ids), { 'request-id': `req_fake${seq}` });
    const error = `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}\n\n`;
    await stream(res, anthropicEvents(model, plan, counts, ids), fault, error, { 'request-id': `req_fake${seq}` });
  }

  async function stream(res: ServerResponse, frames: string[], fault: Fault | undefined, errorFrame: string, headers: Record<string, string>): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
    const delay = fault?.chunkDelayMs ?? opts.chunkDelayMs ?? 0;
    let flushed: Promise<void> = Promise.resolve();
    // The raw frame goes out in one write with the chunk before it, as an upstream's one TCP segment would.
    const raw = fault?.rawFrame ?? '';
    const rawAfter = fault?.rawFrame === undefined ? -1 : (fault.rawFrameAfterChunks ?? 0);
    if (rawAfter === 0) res.write(raw);
    for (let i = 0; i < frames.length; i++) {
      if (fault?.dropAfterChunks === i) {
        // Let what was sent reach the client first, so it sees a stream cut after i chunks.
        await flushed;
        res.destroy();
        return;
      }
      if (fault?.errorAfterChunks === i) {
        res.end(errorFrame);
        return;
      }
      if (res.destroyed) return;
      const text = rawAfter === i + 1 ? `${frames[i]}${raw}` : frames[i];
      flushed = new Promise((resolve) => res.write(text, () => resolve()));
      if (delay > 0 && i < frames.length - 1) await sleep(delay);
    }
    res.end();
  }

  function control(method: string, path: string, raw: Buffer, res: ServerResponse): void {
    const key = `${method} ${path}`;
    switch (key) {
      case 'POST /_fake/faults': {
        const parsed: unknown = JSON.parse(raw.toString('utf8') || '{}');
        for (const f of Array.isArray(parsed) ? parsed : [parsed]) faults.add(f as Fault);
        return sendJson(res, 200, { ok: true });
      }
      case 'DELETE /_fake/faults':
        faults.clear();
        return sendJson(res, 200, { ok: true });
      case 'GET /_fake/requests':
        return sendJson(res, 200, requests);
      case 'DELETE /_fake/requests':
        requests.length = 0;
        return sendJson(res, 200, { ok: true });
      case 'GET /_fake/stats':
        return sendJson(res, 200, stats);
      default:
        return sendJson(res, 404, { error: `unknown control ${key}` });
    }
  }

  const address = await listen(server, at, '--listen');
  return {
    address,
    url: `http://${address.host}:${address.port}`,
    faults,
    requests,
    stats,
    async close() {
      server.closeAllConnections();
      await closeServer(server);
    },
  };
}


function defaultErrorBody(status: number, anthropic: boolean): unknown {
  if (anthropic) {
    const type = status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : status >= 500 ? 'api_error' : status === 401 ? 'authentication_error' : 'invalid_request_error';
    return anthropicError(status, type, `injected ${status}`).body;
  }
  return openaiError(status, `injected ${status}`).body;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Holds the request open without answering until the client leaves. */
function hang(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => res.once('close', resolve));
}
