// Promise-returning calls of llmgw.quota.v1.QuotaService with a deadline each; the lease manager talks
// to the service only through this interface, so tests can stand in for it.
import { credentials, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadQuotaProto } from '../../proto/load.js';
import type { AcquireLeaseRequest, LeaseResponse, ReleaseLeaseRequest, RenewLeaseRequest, ReportUsageRequest } from '../../proto/messages.js';

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
}

export interface QuotaRpc {
  acquire(req: AcquireLeaseRequest, timeoutMs: number): Promise<LeaseResponse>;
  renew(req: RenewLeaseRequest, timeoutMs: number): Promise<LeaseResponse>;
  release(req: ReleaseLeaseRequest, timeoutMs: number): Promise<{ ackedSequence: number }>;
  report(req: ReportUsageRequest, timeoutMs: number): Promise<{ ackedSequence: number }>;
  close(): void;
}

export function createQuotaClient(address: string): QuotaRpc {
  const { QuotaService } = loadQuotaProto();
  const client = new QuotaService(address, credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 5000,
  }) as Client & Record<string, Function>;
  const call = <Res>(method: string, req: object, timeoutMs: number): Promise<Res> =>
    new Promise((resolve, reject) => {
      client[method]!(req, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: Res) => {
        if (err === null) resolve(res);
        else reject(new QuotaRpcError(err.code, `${method}: ${grpcStatus[err.code]}: ${err.details}`));
      });
    });
  return {
    acquire: (req, t) => call('AcquireLease', req, t),
    renew: (req, t) => call('RenewLease', req, t),
    release: (req, t) => call('ReleaseLease', req, t),
    report: (req, t) => call('ReportUsage', req, t),
    close: () => client.close(),
  };
}
