// The status listener for kubelet probes and Prometheus: /healthz/live, /healthz/ready, /metrics only.
import { createServer, type Server } from 'node:http';
import { Registry } from '../metrics/registry.js';

export interface StatusServerOptions {
  registry: Registry;
  /** Ready to take traffic: listening with a valid config and not draining. Never calls a provider. */
  ready: () => boolean;
}

export function createStatusServer(opts: StatusServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
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
        text(200, opts.registry.render(), Registry.contentType);
        return;
      default:
        text(404, 'not found\n');
    }
  });
}
