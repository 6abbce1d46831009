// The quota service's gRPC client itself (grpc-js): the pod's service-account token as bearer metadata,
// a deadline per call, TLS when configured. The sidecar runs it in a worker thread
// (worker-quota-client.ts); the quota service's own tests call it directly.
//
// Several replicas: an address that resolves to many (`dns:///<headless service>:<port>`, or
// `ipv4:10.0.0.1:7000,10.0.0.2:7000`) gets a connection to each, and calls go round robin over those
// that are up. A replica that dies costs no call that can safely be sent again: see retriesOnUnavailable.
import { Metadata, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials } from '../../common/tls/grpc-credentials.js';
import { loadQuotaProto } from '../../proto/load.js';
import type { RenewLeaseRequest } from '../../proto/messages.js';
import { QuotaRpcError, type QuotaClientOptions, type QuotaRpc } from './quota-rpc.js';

/**
 * The channel's options for `address`. Round robin over every address the target resolves to when it can
 * name several replicas (a `dns:` target, or a list); one host:port keeps grpc-js's pick_first, which
 * reconnects at the first call after the service restarted (round robin waits out its reconnect backoff,
 * failing calls meanwhile). Keepalive pings every 5 s, even between calls (a sidecar calls about every 10 s),
 * answered within 5 s or the connection is dropped: a replica whose node vanished without closing its TCP
 * connections leaves the rotation within about 10 s instead of taking calls until their deadlines. (The
 * grpc-js server enforces no minimum ping interval, so the quota service accepts these pings as it is.)
 * The service config comes from here only, never from DNS TXT records; names are looked up again at most
 * every 5 s when a connection fails (grpc-js's default is 30 s), so a replaced replica's new address is
 * found soon. Client-side health checking (`healthCheckConfig`) is not offered by grpc-js 1.14.
 */
export function quotaChannelOptions(address: string): Record<string, string | number> {
  const several = address.startsWith('dns:') || address.includes(',');
  return {
    ...(several ? { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) } : {}),
    ...CHANNEL_OPTIONS,
  };
}

const CHANNEL_OPTIONS = {
  'grpc.service_config_disable_resolution': 1,
  'grpc.dns_min_time_between_resolutions_ms': 5000,
  'grpc.keepalive_time_ms': 5000,
  'grpc.keepalive_timeout_ms': 5000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 5000,
} as const;

type Method = 'AcquireLease' | 'RenewLease' | 'ReleaseLease' | 'ReportUsage' | 'GetProviderKeys';

/**
 * Whether a call that failed with UNAVAILABLE is sent once more at once (round robin takes it to another
 * replica). grpc-js itself resends only what never reached a server; what is left is a call whose
 * connection broke after it was sent, which the replica may have carried out. Sending it again must then
 * change nothing: reports carry sequence numbers the service applies once; an acquire replaces the lease
 * the incarnation already holds (its tokens go back first); a release already done answers NOT_FOUND,
 * which the lease manager takes as released; provider keys are a read; a renewal carries its number, and
 * the service takes what it gives back (`unusedTokens`, `unusedNanoUsd`) once per number. Only a renewal
 * without a number that gives tokens back (a caller that predates numbers) is not sent again: done twice,
 * the service would take them off the lease twice.
 */
export function retriesOnUnavailable(method: Method, req: object): boolean {
  if (method !== 'RenewLease') return true;
  const r = req as Partial<RenewLeaseRequest>;
  // A numbered renewal's give-back is taken once however often it is sent.
  return Number(r.renewal ?? 0) > 0 || (Number(r.unusedTokens ?? 0) === 0 && Number(r.unusedNanoUsd ?? 0) === 0);
}

export function createGrpcQuotaClient(address: string, opts: QuotaClientOptions): QuotaRpc {
  const { QuotaService } = loadQuotaProto();
  const channel = channelCredentials(opts.tls === undefined ? undefined : { ...opts.tls, ...(opts.onTlsReload ? { onReload: opts.onTlsReload } : {}) });
  const client = new QuotaService(address, channel.credentials, { ...quotaChannelOptions(address), ...channel.channelOptions }) as Client & Record<string, Function>;
  const attempt = <Res>(method: Method, req: object, deadline: number): Promise<Res> =>
    new Promise((resolve, reject) => {
      const metadata = new Metadata();
      const token = opts.token();
      if (token !== '') metadata.set('authorization', `Bearer ${token}`);
      client[method]!(req, metadata, { deadline }, (err: ServiceError | null, res: Res) => {
        if (err === null) resolve(res);
        else reject(new QuotaRpcError(err.code, `${method}: ${grpcStatus[err.code]}: ${err.details}`));
      });
    });
  // One more attempt within the same deadline: the caller's timeout still bounds the whole call.
  const call = async <Res>(method: Method, req: object, timeoutMs: number): Promise<Res> => {
    const deadline = Date.now() + timeoutMs;
    try {
      return await attempt<Res>(method, req, deadline);
    } catch (err) {
      if (!(err instanceof QuotaRpcError) || err.code !== grpcStatus.UNAVAILABLE || !retriesOnUnavailable(method, req) || Date.now() >= deadline) throw err;
      return attempt<Res>(method, req, deadline);
    }
  };
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
