// The RPC bench's floor (`npm run bench:quota`): a gRPC server with the quota service's protocol and server
// options that answers every lease call at once, storing nothing. Under the same load, what it measures is
// what the load generator, gRPC and this machine cost without any quota service work: the least latency a
// replica's figures can show.
//
//   node dist/bench/noop-quota-server.js --listen HOST:PORT --status-listen HOST:PORT
import { createServer } from 'node:http';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { parseHostPort } from '../cli/args.js';
import { listen } from '../common/http/listen.js';
import { loadQuotaProto } from '../proto/load.js';
import type { LeaseResponse, RenewLeaseRequest } from '../proto/messages.js';
import { QUOTA_GRPC_SERVER_OPTIONS } from '../quota-service/quota-service.js';

/** `--listen HOST:PORT` and `--status-listen HOST:PORT`, read as the commands read them. */
const hostPort = (flag: string) => {
  const at = process.argv.indexOf(flag);
  return parseHostPort(flag, at >= 0 ? (process.argv[at + 1] ?? '') : '');
};
const grpcAt = hostPort('--listen');
const statusAt = hostPort('--status-listen');

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
server.bindAsync(`${grpcAt.host.includes(":") ? `[${grpcAt.host}]` : grpcAt.host}:${grpcAt.port}`, ServerCredentials.createInsecure(), (err) => {
  if (err !== null) throw err;
  void listen(createServer((_req, res) => res.end('ok')), statusAt, '--status-listen');
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
