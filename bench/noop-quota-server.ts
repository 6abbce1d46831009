// The RPC bench's floor (`npm run bench:quota`): a gRPC server with the quota service's protocol and server
// options that answers every lease call at once, storing nothing. Under the same load, what it measures is
// what the load generator, gRPC and this machine cost without any quota service work: the least latency a
// replica's figures can show.
//
//   node dist/bench/noop-quota-server.js --listen HOST:PORT --status-listen HOST:PORT
import { createServer } from 'node:http';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadQuotaProto } from '../proto/load.js';
import type { LeaseResponse, RenewLeaseRequest } from '../proto/messages.js';
import { QUOTA_GRPC_SERVER_OPTIONS } from '../quota-service/quota-service.js';

const arg = (name: string): string => {
  const at = process.argv.indexOf(name);
  const v = at >= 0 ? process.argv[at + 1] : undefined;
  if (v === undefined) throw new Error(`${name} HOST:PORT is required`);
  return v;
};

/** A lease answer as a renewal with nothing to grant gets it. */
function answer(leaseId: string, acked: number): LeaseResponse {
  return { leaseId, grantedTokens: 0, leaseTokens: 1000, unlimited: false, ttlMs: 30_000, refreshAfterMs: 10_000, remainingTokens: -1, retryAfterMs: 0, ackedSequence: acked, windowStartMs: 0, providerKeysVersion: '' };
}

let leases = 0;
const lease = (_call: ServerUnaryCall<unknown, LeaseResponse>, cb: sendUnaryData<LeaseResponse>): void => cb(null, answer(`noop-${++leases}`, 0));
const renew = (call: ServerUnaryCall<RenewLeaseRequest, LeaseResponse>, cb: sendUnaryData<LeaseResponse>): void => {
  const last = call.request.reports.at(-1);
  cb(null, answer(call.request.leaseId, last === undefined ? 0 : Number(last.sequence)));
};

const server = new Server(QUOTA_GRPC_SERVER_OPTIONS);
server.addService(loadQuotaProto().QuotaService.service, { AcquireLease: lease, RenewLease: renew } as UntypedServiceImplementation);
server.bindAsync(arg('--listen'), ServerCredentials.createInsecure(), (err) => {
  if (err !== null) throw err;
  const [host, port] = arg('--status-listen').split(':');
  createServer((_req, res) => res.end('ok')).listen(Number(port), host);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
