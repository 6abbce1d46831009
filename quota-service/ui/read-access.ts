// Who may read the usage page's data: exactly who may call the admin API's read RPCs (ListBudgets,
// GetUsage). The HTTP Authorization header goes through the same Authenticator check as gRPC metadata.
import type { IncomingMessage } from 'node:http';
import { Metadata, status as grpcStatus } from '@grpc/grpc-js';
import type { Authenticator } from '../auth/authenticator.js';
import { QuotaError } from '../errors.js';

export type ReadAccess = { ok: true; who: string } | { ok: false; status: 401 | 403 | 503 | 500; message: string };

/** An admin-API read check: the operator check of quota-service/auth with access `read`. */
export type ReadChecker = Pick<Authenticator, 'operator'>;

export async function readAccess(auth: ReadChecker, req: IncomingMessage): Promise<ReadAccess> {
  const md = new Metadata();
  const header = req.headers.authorization;
  if (header !== undefined) md.set('authorization', header);
  try {
    return { ok: true, who: await auth.operator(md, 'read') };
  } catch (err) {
    if (!(err instanceof QuotaError)) return { ok: false, status: 500, message: 'cannot check the credential' };
    switch (err.code) {
      case grpcStatus.UNAUTHENTICATED:
        return { ok: false, status: 401, message: err.message };
      case grpcStatus.PERMISSION_DENIED:
        return { ok: false, status: 403, message: err.message };
      case grpcStatus.UNAVAILABLE:
        return { ok: false, status: 503, message: err.message };
      default:
        return { ok: false, status: 500, message: 'cannot check the credential' };
    }
  }
}
