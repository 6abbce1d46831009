// `llmgw injector`'s transport: HTTPS on /mutate with the certificate re-read when its files change
// (cert-manager and the chart rotate them), a body limit, 415 for anything but JSON, 400 for a malformed
// review, and a plain-HTTP status listener for probes and metrics.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { GatewayError } from '../common/errors.js';
import { closeServer, listen, type HostPort } from '../common/http/listen.js';
import { bodyLeftUnread, ClientGoneError, readJsonBody } from '../common/http/read-json-body.js';
import { createStatusServer } from '../common/http/status-server.js';
import { Counter, Histogram, Registry } from '../common/metrics/registry.js';
import { MalformedReview, review } from './admission.js';
import type { InjectorConfig } from './config.js';
import type { NamespaceSource } from './namespaces.js';
import { UNCHECKED, type SidecarConfigState } from './sidecar-config-check.js';

export interface InjectorOptions {
  config: InjectorConfig;
  listen: HostPort;
  statusListen: HostPort;
  certFile: string;
  keyFile: string;
  namespaces: NamespaceSource;
  logger: Logger;
  /** How often the certificate files are checked for changes (default 5 s). */
  certPollMs?: number;
  maxBodyBytes?: number;
}

export interface Injector {
  readonly address: HostPort;
  readonly statusAddress: HostPort;
  stop(): Promise<void>;
}

function readPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const pair = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  createSecureContext(pair); // throws on a bad or mismatched pair
  return pair;
}

export async function startInjector(opts: InjectorOptions): Promise<Injector> {
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const registry = new Registry();
  const reviews = registry.register(new Counter('llmgw_injector_reviews_total', 'Admission reviews answered, by result and reason.', ['result', 'reason'] as const));
  const latency = registry.register(new Histogram('llmgw_injector_review_duration_seconds', 'Time to answer a review.', [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5]));
  const reloads = registry.register(new Counter('llmgw_injector_certificate_reloads_total', 'Certificate reloads, by result.', ['result'] as const));

  const server: Server = createServer(readPair(opts.certFile, opts.keyFile), (req, res) => {
    handle(req, res).catch((err: unknown) => {
      opts.logger.error({ err }, 'admission failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error in the injector' });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  const reload = (): void => {
    try {
      server.setSecureContext(readPair(opts.certFile, opts.keyFile));
      reloads.inc({ result: 'ok' });
      opts.logger.info({ cert: opts.certFile }, 'certificate reloaded');
    } catch (err) {
      // A half-written pair (the key updated, the certificate not yet): keep serving the old one.
      reloads.inc({ result: 'failed' });
      opts.logger.warn({ err: String(err) }, 'certificate files changed but do not load yet; keeping the current certificate');
    }
  };
  const poll = { interval: opts.certPollMs ?? 5000, persistent: false };
  watchFile(opts.certFile, poll, reload);
  watchFile(opts.keyFile, poll, reload);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/mutate') return send(res, 404, { error: `unknown path ${path}; the webhook is POST /mutate` });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, { error: 'POST an AdmissionReview to /mutate' });
    }
    // The sidecar's reader: 415 unless JSON, 413 past the limit, 400 unless a bounded JSON object.
    let body: unknown;
    try {
      body = (await readJsonBody(req, maxBody)).body;
    } catch (err) {
      if (err instanceof ClientGoneError) return void res.destroy();
      if (!(err instanceof GatewayError)) throw err;
      // A body left unread (too large, or refused midway with no declared length) is not drained: the
      // connection closes after the answer.
      if (bodyLeftUnread(err)) res.setHeader('connection', 'close');
      return send(res, err.status, { error: err.message });
    }
    try {
      const namespace = namespaceOf(body);
      const [ns, sidecarConfig] = namespace === undefined ? [{ annotations: {} }, UNCHECKED] : await lookUp(namespace);
      const { answer, outcome } = review(body, opts.config, ns.annotations, ns.warning ? [ns.warning] : [], sidecarConfig);
      reviews.inc({ result: outcome.result, reason: outcome.reason ?? '' });
      latency.observe((performance.now() - started) / 1000);
      const unchecked = sidecarConfig.status === 'unchecked' && sidecarConfig.reason !== undefined ? { sidecarConfig: `not checked: ${sidecarConfig.reason}` } : {};
      opts.logger.info({ uid: answer.response.uid, namespace, ...outcome, ...unchecked }, 'admission review');
      if (outcome.reason === 'invalid-sidecar-config' || outcome.reason === 'missing-sidecar-config') {
        const problems = sidecarConfig.status === 'invalid' ? sidecarConfig.problems : ['no such ConfigMap'];
        opts.logger.warn({ uid: answer.response.uid, namespace, configMap: opts.config.configMapName, problems, ...outcome }, `a sidecar would not start with this namespace's sidecar config: pod ${outcome.result}`);
      }
      send(res, 200, answer);
    } catch (err) {
      if (!(err instanceof MalformedReview)) throw err;
      reviews.inc({ result: 'malformed', reason: '' });
      send(res, 400, { error: `malformed AdmissionReview: ${err.message}` });
    }
  }

  /** The namespace's defaults and its sidecar config's state, looked up together. */
  function lookUp(namespace: string): Promise<[{ annotations: Record<string, string>; warning?: string }, SidecarConfigState]> {
    const check = opts.namespaces.sidecarConfig?.(namespace, opts.config.configMapName) ?? Promise.resolve(UNCHECKED);
    return Promise.all([opts.namespaces.annotations(namespace), check]);
  }

  const statusServer = createStatusServer({ registry, ready: () => ready });
  let ready = false;
  const address = await listen(server, opts.listen, '--listen');
  const statusAddress = await listen(statusServer, opts.statusListen, '--status-listen');
  ready = true;
  opts.logger.info({ listen: address, statusListen: statusAddress }, 'injector started');
  return {
    address,
    statusAddress,
    async stop() {
      ready = false;
      unwatchFile(opts.certFile);
      unwatchFile(opts.keyFile);
      server.closeIdleConnections();
      await closeServer(server);
      statusServer.closeAllConnections();
      await closeServer(statusServer);
      await opts.namespaces.close();
    },
  };
}

/** The namespace whose defaults a review needs: only pod creations have any. */
function namespaceOf(body: unknown): string | undefined {
  const r = (body as { request?: { namespace?: unknown; operation?: unknown; kind?: { kind?: unknown }; object?: { metadata?: { namespace?: unknown } } } } | null)?.request;
  if (r?.operation !== 'CREATE' || r.kind?.kind !== 'Pod') return undefined;
  const ns = r?.namespace ?? r?.object?.metadata?.namespace;
  return typeof ns === 'string' && ns !== '' ? ns : undefined;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
