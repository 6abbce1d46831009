// The quota service's gRPC client itself (grpc-js): the pod's service-account token as bearer metadata,
// a deadline per call, TLS when configured. The sidecar runs it in a worker thread
// (worker-quota-client.ts); the quota service's own tests call it directly.
import { Metadata, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials } from '../../common/tls/grpc-credentials.js';
import { loadQuotaProto } from '../../proto/load.js';
import { QuotaRpcError, type QuotaClientOptions, type QuotaRpc } from './quota-rpc.js';

export function createGrpcQuotaClient(address: string, opts: QuotaClientOptions): QuotaRpc {
  const { QuotaService } = loadQuotaProto();
  const channel = channelCredentials(opts.tls === undefined ? undefined : { ...opts.tls, ...(opts.onTlsReload ? { onReload: opts.onTlsReload } : {}) });
  const client = new QuotaService(address, channel.credentials, {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 5000,
    ...channel.channelOptions,
  }) as Client & Record<string, Function>;
  const call = <Res>(method: string, req: object, timeoutMs: number): Promise<Res> =>
    new Promise((resolve, reject) => {
      const metadata = new Metadata();
      const token = opts.token();
      if (token !== '') metadata.set('authorization', `Bearer ${token}`);
      client[method]!(req, metadata, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: Res) => {
        if (err === null) resolve(res);
        else reject(new QuotaRpcError(err.code, `${method}: ${grpcStatus[err.code]}: ${err.details}`));
      });
    });
  return {
    acquire: (req, t) => call('AcquireLease', req, t),
    renew: (req, t) => call('RenewLease', req, t),
    release: (req, t) => call('ReleaseLease', req, t),
    report: (req, t) => call('ReportUsage', req, t),
    providerKeys: (names, t) => call('GetProviderKeys', { names }, t),
    close: () => {
      client.close();
      channel.close();
    },
  };
}
