// The sidecar's quota client: the gRPC client (quota-client.ts) runs in a worker thread, and calls and
// answers cross as messages. Why: with grpc-js and its HTTP/2 session in the main thread, every request the
// sidecar served got slower (about 8 µs of 105 at c=32 in the bench, 3 instances each, side by side): Node's
// shared stream, socket and event code, once it has also served the HTTP/2 session, runs slower for the
// HTTP/1 traffic. The calls are few (about one per thousand requests), so the messages cost nothing worth
// measuring, and the main thread never loads grpc-js.
//
// The worker file is the bundle's (dist/llmgw/quota-rpc-worker.mjs): found beside the bundle's chunks, or
// from the compiled tree and from the sources (tests, which `npm test` builds first). Without it the client
// runs in this thread.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { checkTlsFiles } from '../../common/tls/reloading-certificate-provider.js';
import { QuotaRpcError, RpcStatus, type QuotaClientOptions, type QuotaRpc, type RpcMethod } from './quota-rpc.js';

/** What the worker starts with. */
export interface WorkerInit {
  address: string;
  tls: QuotaClientOptions['tls'];
}
export type ToWorker = { close?: undefined; id: number; method: RpcMethod; arg: unknown; timeoutMs: number; token: string } | { close: true };
export type FromWorker = { id: number; value: unknown } | { id: number; code: number; message: string } | { tls: 'ok' | 'failed'; detail: string; id?: undefined };

/** How long past a call's own deadline the main thread waits for the worker before it gives up on it. */
const GRACE_MS = 2000;

function workerFile(): string | undefined {
  for (const rel of ['../quota-rpc-worker.mjs', '../../llmgw/quota-rpc-worker.mjs', '../../dist/llmgw/quota-rpc-worker.mjs']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

interface Pending {
  resolve: (value: never) => void;
  reject: (err: QuotaRpcError) => void;
  timer: NodeJS.Timeout;
  method: RpcMethod;
}

export function createQuotaClient(address: string, opts: QuotaClientOptions): QuotaRpc {
  const file = workerFile();
  if (file === undefined) return inThisThread(address, opts);
  // Unusable files stop the start here, as they would with the client in this thread.
  if (opts.tls !== undefined) checkTlsFiles(opts.tls);
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let worker: Worker | undefined;
  let closed = false;

  const fail = (p: Pending, code: number, message: string): void => p.reject(new QuotaRpcError(code, message));
  const settle = (id: number): Pending | undefined => {
    const p = pending.get(id);
    if (p === undefined) return undefined;
    pending.delete(id);
    clearTimeout(p.timer);
    // The worker keeps the process alive only while calls wait for it (a release at shutdown).
    if (pending.size === 0) worker?.unref();
    return p;
  };
  const start = (): Worker => {
    // Not the process's own node options (some, such as --input-type, are refused in a worker; V8's are
    // the process's anyway).
    const w = new Worker(file, { workerData: { address, tls: opts.tls } satisfies WorkerInit, execArgv: [] });
    w.unref();
    w.on('message', (m: FromWorker) => {
      if (m.id === undefined) return void opts.onTlsReload?.(m.tls, m.detail);
      const p = settle(m.id);
      if (p === undefined) return;
      if ('value' in m) p.resolve(m.value as never);
      else p.reject(new QuotaRpcError(m.code, m.message));
    });
    // A worker that died (an exception it did not catch, a TLS file gone bad at its start) fails what
    // waited for it; the next call starts another.
    const gone = (why: string): void => {
      if (worker !== w) return;
      worker = undefined;
      for (const [id, p] of [...pending]) {
        if (settle(id) !== undefined) fail(p, RpcStatus.UNAVAILABLE, `${p.method}: UNAVAILABLE: the quota client's worker stopped (${why})`);
      }
    };
    w.on('error', (err) => gone(String(err)));
    w.on('exit', (code) => gone(`exit code ${code}`));
    return w;
  };

  const call = <T>(method: RpcMethod, arg: unknown, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (closed) return reject(new QuotaRpcError(RpcStatus.CANCELLED, `${method}: CANCELLED: the quota client is closed`));
      worker ??= start();
      const id = nextId++;
      const p: Pending = {
        resolve: resolve as (value: never) => void,
        reject,
        method,
        timer: setTimeout(() => {
          if (settle(id) !== undefined) fail(p, RpcStatus.DEADLINE_EXCEEDED, `${method}: DEADLINE_EXCEEDED: the quota client's worker did not answer`);
        }, timeoutMs + GRACE_MS),
      };
      p.timer.unref();
      pending.set(id, p);
      worker.ref();
      worker.postMessage({ id, method, arg, timeoutMs, token: opts.token() } satisfies ToWorker);
    });

  return {
    acquire: (req, t) => call('acquire', req, t),
    renew: (req, t) => call('renew', req, t),
    release: (req, t) => call('release', req, t),
    report: (req, t) => call('report', req, t),
    providerKeys: (names, t) => call('providerKeys', names, t),
    close: () => {
      closed = true;
      const w = worker;
      worker = undefined;
      for (const [id, p] of [...pending]) if (settle(id) !== undefined) fail(p, RpcStatus.CANCELLED, `${p.method}: CANCELLED: the quota client is closed`);
      // The worker closes its channel and ends on its own; nothing waits for it any more.
      w?.unref();
      w?.postMessage({ close: true } satisfies ToWorker);
    },
  };
}

/** The gRPC client in this thread, loaded on first use (no built worker file to run it in). */
function inThisThread(address: string, opts: QuotaClientOptions): QuotaRpc {
  const client = import('./quota-client.js').then((m) => m.createGrpcQuotaClient(address, opts));
  const call =
    <K extends RpcMethod>(method: K) =>
    async (...args: Parameters<QuotaRpc[K]>): Promise<Awaited<ReturnType<QuotaRpc[K]>>> =>
      ((await client)[method] as (...a: Parameters<QuotaRpc[K]>) => Promise<Awaited<ReturnType<QuotaRpc[K]>>>)(...args);
  return {
    acquire: call('acquire'),
    renew: call('renew'),
    release: call('release'),
    report: call('report'),
    providerKeys: call('providerKeys'),
    close: () => void client.then((c) => c.close()),
  };
}
