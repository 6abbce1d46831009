// What the lease manager and the provider-key ring need from the quota service: promise-returning calls
// with a deadline each, and the error they fail with. Nothing here loads grpc-js: the sidecar's main thread
// never does (see worker-quota-client.ts), and tests stand in for the service through this interface.
import type { AcquireLeaseRequest, LeaseResponse, ProviderKeysResponse, ReleaseLeaseRequest, RenewLeaseRequest, ReportUsageRequest } from '../../proto/messages.js';
import type { QuotaConfig } from '../config/schema.js';

/** gRPC status codes (grpc/status.proto), numbered as on the wire. */
export const RpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The name of a status code, as grpc-js prints it. */
export function rpcStatusName(code: number): string {
  return Object.entries(RpcStatus).find(([, c]) => c === code)?.[0] ?? String(code);
}

export class QuotaRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'QuotaRpcError';
  }

  /** The service could not be reached or did not answer in time (as opposed to refusing). */
  get unreachable(): boolean {
    return this.code === RpcStatus.UNAVAILABLE || this.code === RpcStatus.DEADLINE_EXCEEDED || this.code === RpcStatus.CANCELLED;
  }

  /** The service refused this pod's credentials (its token, or what it claimed to be). */
  get refused(): boolean {
    return this.code === RpcStatus.UNAUTHENTICATED || this.code === RpcStatus.PERMISSION_DENIED;
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

/** The calls of QuotaRpc, by name. */
export type RpcMethod = Exclude<keyof QuotaRpc, 'close'>;

export interface QuotaClientOptions {
  /** The bearer token for a call ('' for none). */
  token: () => string;
  tls?: QuotaConfig['tls'];
  onTlsReload?: (result: 'ok' | 'failed', detail: string) => void;
}
