// The usage page, mounted on the quota service's status listener under /ui: the static shell and its files
// (no data in them, open to anyone who reaches the listener) and the JSON API under /ui/api/ (behind the
// admin API's read credential). Every answer carries a strict Content-Security-Policy: the page's script
// renders tenant input (tag values, model names) as text only, and runs no inline code.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import type { StatusMount } from '../../common/http/status-server.js';
import { AnswerCache } from './answer-cache.js';
import { readAccess, type ReadChecker } from './read-access.js';
import { asset } from './static-assets.js';
import { BadQuery, parseSeriesQuery, seriesAnswer, summary } from './usage-api.js';
import type { UsageView } from './usage-view.js';

export interface UsagePageOptions {
  view: UsageView;
  /** The quota service's Authenticator: the API admits what its admin read RPCs admit. */
  auth: ReadChecker;
  clock: Clock;
  /** Refused credentials are logged at warn, as the admin API logs them. */
  logger?: Logger;
  /** How long an answer is reused for every reader, in ms (default ANSWER_TTL_MS, 4 s; 0: never). */
  answerTtlMs?: number;
}

export const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

function send(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string>, body: string | Buffer): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...COMMON_HEADERS, ...headers, 'content-length': String(bytes.length) });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

/** `value`, or JSON text already made of it. */
function json(req: IncomingMessage, res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
  const body = typeof value === 'string' ? value : JSON.stringify(value);
  send(req, res, status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', pragma: 'no-cache', 'content-security-policy': API_CSP, ...extra }, body);
}

function text(req: IncomingMessage, res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
  send(req, res, status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': API_CSP, ...extra }, `${message}\n`);
}

function serveAsset(req: IncomingMessage, res: ServerResponse, name: string): void {
  const a = asset(name);
  if (a === undefined) {
    text(req, res, 404, 'not found');
    return;
  }
  const headers = { 'content-type': a.type, 'cache-control': 'no-cache', etag: a.etag, 'content-security-policy': PAGE_CSP };
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, { ...COMMON_HEADERS, ...headers });
    res.end();
    return;
  }
  send(req, res, 200, headers, a.body);
}

/** The `/ui` paths, for createStatusServer's `mount`: takes `/ui` and everything under `/ui/`, nothing else. */
export function usagePageMount(opts: UsagePageOptions): StatusMount {
  const cache = new AnswerCache(opts.answerTtlMs);
  const api = async (req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams): Promise<void> => {
    const access = await readAccess(opts.auth, req);
    if (!access.ok) {
      if (access.status === 401 || access.status === 403) opts.logger?.warn({ path: `/ui/api/${name}`, status: access.status, reason: access.message }, 'usage page API call refused');
      json(req, res, access.status, { error: access.message }, access.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      return;
    }
    const now = opts.clock.now();
    switch (name) {
      case 'summary':
        json(req, res, 200, await cache.get('summary', now, () => summary(opts.view, now)));
        return;
      case 'series':
        try {
          const q = parseSeriesQuery({ group: query.get('group'), range: query.get('range'), tag: query.get('tag') });
          json(req, res, 200, await cache.get(JSON.stringify(['series', q.group, q.range, q.tag ?? '']), now, () => seriesAnswer(opts.view, q, now)));
        } catch (err) {
          if (!(err instanceof BadQuery)) throw err;
          json(req, res, 400, { error: err.message });
        }
        return;
      default:
        json(req, res, 404, { error: `no API /ui/api/${name}` });
    }
  };
  const handle = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(req, res, 405, 'method not allowed', { allow: 'GET, HEAD' });
    // Relative links (ui/static/…, ui/api/…) keep working behind a proxy that adds a path prefix.
    if (path === '/ui') return serveAsset(req, res, 'index.html');
    if (path === '/ui/') return text(req, res, 308, 'see ../ui', { location: '../ui' });
    if (path.startsWith('/ui/static/')) return serveAsset(req, res, path.slice('/ui/static/'.length));
    if (path.startsWith('/ui/api/')) return api(req, res, path.slice('/ui/api/'.length), new URL(req.url ?? '/', 'http://status').searchParams);
    text(req, res, 404, 'not found');
  };
  return (req, res, path) => {
    if (path !== '/ui' && !path.startsWith('/ui/')) return false;
    const failed = (err: unknown): void => {
      opts.logger?.error({ err, path }, 'usage page failed');
      if (res.headersSent) res.destroy();
      else text(req, res, 500, 'internal error');
    };
    handle(req, res, path).catch(failed);
    return true;
  };
}
