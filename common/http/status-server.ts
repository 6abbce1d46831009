// The status listener for kubelet probes and Prometheus: /healthz/live, /healthz/ready, /metrics, and what
// a component mounts beside them (the quota service's usage page under /ui; the sidecar mounts nothing, so
// its bundle carries no more than the one call below).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Registry } from '../metrics/registry.js';

/**
 * Takes a request (answers it, and returns true) or leaves it to the built-in paths (returns false).
 * `path` is the URL path without the query. A mount must not take /healthz/* or /metrics, and must not throw.
 */
export type StatusMount = (req: IncomingMessage, res: ServerResponse, path: string) => boolean;

export interface StatusServerOptions {
  registry: Registry;
  /** Ready to take traffic: listening with a valid config and not draining. Never calls a provider. */
  ready: () => boolean;
  /** Extra paths, asked first (default none). */
  mount?: StatusMount;
  /** Awaited before /metrics renders (figures read from elsewhere, e.g. a database); a failure renders what is held. */
  beforeMetrics?: () => Promise<void>;
}

export function createStatusServer(opts: StatusServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (opts.mount?.(req, res, path) === true) return;
    const text = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      text(405, 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz/live':
        text(200, 'ok\n');
        return;
      case '/healthz/ready':
        if (opts.ready()) text(200, 'ready\n');
        else text(503, 'not ready\n');
        return;
      case '/metrics':
        if (opts.beforeMetrics === undefined) text(200, opts.registry.render(), Registry.contentType);
        else void opts.beforeMetrics().catch(() => undefined).then(() => text(200, opts.registry.render(), Registry.contentType));
        return;
      default:
        text(404, 'not found\n');
    }
  });
}
