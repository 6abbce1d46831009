// grpc.health.v1.Health: Check and Watch over a status per service name ('' is the whole server).
import { status as grpcStatus, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; call: ServerWritableStream<{ service: string }, { status: string }> }>();

  constructor(services: string[]) {
    for (const s of ['', ...services]) this.statuses.set(s, 'SERVING');
  }

  setAll(status: ServingStatus): void {
    for (const s of this.statuses.keys()) this.statuses.set(s, status);
    for (const w of this.watchers) w.call.write({ status });
  }

  /** Ends open Watch streams (on shutdown). */
  close(): void {
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  implementation(): UntypedServiceImplementation {
    return {
      Check: (call: ServerUnaryCall<{ service: string }, unknown>, cb: sendUnaryData<{ status: string }>) => {
        const s = this.statuses.get(call.request.service);
        if (s === undefined) cb({ code: grpcStatus.NOT_FOUND, details: `unknown service ${call.request.service}` });
        else cb(null, { status: s });
      },
      Watch: (call: ServerWritableStream<{ service: string }, { status: string }>) => {
        const entry = { service: call.request.service, call };
        this.watchers.add(entry);
        call.write({ status: this.statuses.get(call.request.service) ?? 'SERVICE_UNKNOWN' });
        call.on('cancelled', () => this.watchers.delete(entry));
      },
    };
  }
}
