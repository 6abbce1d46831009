// Promise-returning calls of llmgw.quota.v1.QuotaService with a deadline each, the pod's service-account
// token as bearer metadata, and TLS when configured; the lease manager talks to the service only through
// this interface, so tests can stand in for it.
import { Metadata, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials } from '../../common/tls/grpc-credentials.js';
import { loadQuotaProto } from '../../proto/load.js';
import type { AcquireLeaseRequest, LeaseResponse, ProviderKeysResponse, ReleaseLeaseRequest, RenewLeaseRequest, ReportUsageRequest } from '../../proto/messages.js';
import type { QuotaConfig } from '../config/schema.js';

export class QuotaRpcError extends Error {
  constructor(
    readonly code: grpcStatus,
    message: string,
  ) {
    super(message);
    this.name = 'QuotaRpcError';
  }

  /** The service could not be reached or did not answer in time (as opposed to refusing). */
  get unreachable(): boolean {
    return this.code === grpcStatus.UNAVAILABLE || this.code === grpcStatus.DEADLINE_EXCEEDED || this.code === grpcStatus.CANCELLED;
  }

  /** The service refused this pod's credentials (its token, or what it claimed to be). */
  get refused(): boolean {
    return this.code === grpcStatus.UNAUTHENTICATED || this.code === grpcStatus.PERMISSION_DENIED;
  }
}

export interface QuotaRpc {
  acquire(req: AcquireLeaseRequest, timeoutMs: number): Promise<LeaseResponse>;
  renew(req: RenewLeaseRequest, timeoutMs: number): Promise<LeaseResponse>;
  release(req: ReleaseLeaseRequest, timeoutMs: number): Promise<{ ackedSequence: number }>;
  report(req: ReportUsageRequest, timeoutMs: number): Promise<{ ackedSequence: number }>;
  providerKeys(names: string[], timeoutMs: number): Promise<ProviderKeysResponse>;
  close(): void;
}

export interface QuotaClientOptions {
  /** The bearer token for a call ('' for none). */
  token: () => string;
  tls?: QuotaConfig['tls'];
  onTlsReload?: (result: 'ok' | 'failed', detail: string) => void;
}

export function createQuotaClient(address: string, opts: QuotaClientOptions): QuotaRpc {
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
