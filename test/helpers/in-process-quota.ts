// The quota service's real handlers and allocator behind the sidecar's QuotaRpc interface, without a
// network: unit tests of the lease manager count calls and switch the service "off" at will.
import { Metadata, status as grpcStatus, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { pino } from 'pino';
import type { Clock } from '../../common/clock.js';
import { Allocator } from '../../quota-service/allocator.js';
import { Authenticator } from '../../quota-service/auth/authenticator.js';
import { quotaServiceHandlers } from '../../quota-service/grpc-handlers.js';
import { QuotaMetrics } from '../../quota-service/quota-metrics.js';
import { SqliteQuotaStore } from '../../quota-service/store.js';
import { QuotaRpcError, type QuotaRpc } from '../../sidecar/quota/quota-rpc.js';

export interface InProcessQuota {
  rpc: QuotaRpc;
  allocator: Allocator;
  store: SqliteQuotaStore;
  /** The service's metrics, as its status port would serve them. */
  metrics: QuotaMetrics;
  /** Calls per method name. */
  calls: Record<string, number>;
  /** While true every call fails as an unreachable service would. */
  down: boolean;
}

type Handler = (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => void;

export function inProcessQuota(clock: Clock, opts: { leaseTtlMs?: number; dbPath?: string } = {}): InProcessQuota {
  const store = new SqliteQuotaStore(opts.dbPath ?? ':memory:');
  const allocator = new Allocator(store, { clock, ...(opts.leaseTtlMs === undefined ? {} : { leaseTtlMs: opts.leaseTtlMs }) });
  // Nothing verified here: the lease manager's behaviour is under test, not who may call (quota-auth.test.ts).
  const auth = new Authenticator({ mode: 'none' });
  const metrics = new QuotaMetrics();
  const handlers = quotaServiceHandlers({ alloc: allocator, auth, metrics, logger: pino({ level: 'silent' }), tls: false }) as Record<string, Handler>;
  const self: InProcessQuota = {
    allocator,
    store,
    metrics,
    calls: {},
    down: false,
    rpc: {
      acquire: (req) => invoke('AcquireLease', req),
      renew: (req) => invoke('RenewLease', req),
      release: (req) => invoke('ReleaseLease', req),
      report: (req) => invoke('ReportUsage', req),
      providerKeys: (names) => invoke('GetProviderKeys', { names }),
      close: () => undefined,
    },
  };
  function invoke<Res>(method: string, request: object): Promise<Res> {
    self.calls[method] = (self.calls[method] ?? 0) + 1;
    if (self.down) return Promise.reject(new QuotaRpcError(grpcStatus.UNAVAILABLE, `${method}: UNAVAILABLE: connection refused`));
    return new Promise((resolve, reject) => {
      handlers[method]!({ request, metadata: new Metadata() } as ServerUnaryCall<unknown, unknown>, (err, res) => {
        if (err) reject(new QuotaRpcError(err.code ?? grpcStatus.UNKNOWN, `${method}: ${err.details ?? ''}`));
        else resolve(res as Res);
      });
    });
  }
  return self;
}
