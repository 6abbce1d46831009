// Worker-thread side of worker-quota-client.ts: holds the grpc-js client and answers the calls the main
// thread posts, each with the bearer token of the moment.
import { parentPort, workerData } from 'node:worker_threads';
import { createGrpcQuotaClient } from './quota-client.js';
import { QuotaRpcError, RpcStatus } from './quota-rpc.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-quota-client.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);
let token = '';
const client = createGrpcQuotaClient(init.address, {
  token: () => token,
  ...(init.tls === undefined ? {} : { tls: init.tls }),
  onTlsReload: (result, detail) => post({ tls: result, detail }),
});

port.on('message', (m: ToWorker) => {
  if (m.close === true) {
    client.close();
    port.close();
    return;
  }
  token = m.token;
  // The argument is the request as posted (a structured clone): QuotaRpc's calls take it as it is.
  (client[m.method] as (arg: unknown, timeoutMs: number) => Promise<unknown>)(m.arg, m.timeoutMs).then(
    (value) => post({ id: m.id, value }),
    (err: unknown) =>
      post(err instanceof QuotaRpcError ? { id: m.id, code: err.code, message: err.message } : { id: m.id, code: RpcStatus.INTERNAL, message: `${m.method}: ${String(err)}` }),
  );
});
