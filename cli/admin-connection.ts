// What `llmgw budget` and `llmgw team` share: where the quota service is, the operator credential and TLS
// from flags or the environment, one admin call with errors made plain, and table output.
import { readFileSync } from 'node:fs';
import { status as grpcStatus } from '@grpc/grpc-js';
import { AdminCallError, QuotaAdminClient, type AdminClientOptions } from '../quota-service/admin-client.js';
import { UsageError } from './args.js';

export interface AdminFlags {
  quotaAddr?: string;
  token?: string;
  tokenFile?: string;
  tlsCa?: string;
  tlsServerName?: string;
  tlsCert?: string;
  tlsKey?: string;
  output: string;
}

export function checkOutput(flags: AdminFlags): 'table' | 'json' {
  if (flags.output !== 'table' && flags.output !== 'json') throw new UsageError(`--output: expected table or json, got "${flags.output}"`);
  return flags.output;
}

/** The operator token: --token, else --token-file, else $LLMGW_ADMIN_TOKEN (none: the call goes without). */
function tokenOf(flags: AdminFlags, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw new UsageError('--token and --token-file: give one of them');
  if (flags.token !== undefined) return flags.token.trim();
  if (flags.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.tokenFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--token-file: cannot read ${flags.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const token = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
    if (token === undefined) throw new UsageError(`--token-file: ${flags.tokenFile} holds no token`);
    return token;
  }
  const fromEnv = env.LLMGW_ADMIN_TOKEN?.trim();
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

export function adminClientOptions(flags: AdminFlags, env: NodeJS.ProcessEnv = process.env): AdminClientOptions {
  const token = tokenOf(flags, env);
  const caFile = flags.tlsCa ?? (env.LLMGW_QUOTA_CA || undefined);
  if (caFile === undefined && (flags.tlsServerName ?? flags.tlsCert ?? flags.tlsKey) !== undefined) {
    throw new UsageError('--tls-server-name, --tls-cert and --tls-key need --tls-ca (or $LLMGW_QUOTA_CA)');
  }
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const tls =
    caFile === undefined
      ? undefined
      : {
          caFile,
          ...(flags.tlsServerName ? { serverName: flags.tlsServerName } : {}),
          ...(flags.tlsCert !== undefined && flags.tlsKey !== undefined ? { certFile: flags.tlsCert, keyFile: flags.tlsKey } : {}),
        };
  return { ...(token === undefined ? {} : { token }), ...(tls === undefined ? {} : { tls }) };
}

/** Runs one admin call; server-side argument errors become usage errors (exit 2), the rest exit 1. */
export async function withAdminClient<T>(flags: AdminFlags, fn: (c: QuotaAdminClient) => Promise<T>): Promise<T> {
  const address = flags.quotaAddr ?? process.env.LLMGW_QUOTA_ADDR ?? '127.0.0.1:50051';
  let client: QuotaAdminClient;
  try {
    client = new QuotaAdminClient(address, adminClientOptions(flags));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--tls-ca/--tls-cert/--tls-key: ${(err as Error).message}`);
  }
  try {
    return await fn(client);
  } catch (err) {
    if (err instanceof AdminCallError && err.code === grpcStatus.INVALID_ARGUMENT) throw new UsageError(err.message);
    if (err instanceof AdminCallError && (err.code === grpcStatus.UNAUTHENTICATED || err.code === grpcStatus.PERMISSION_DENIED)) {
      throw new Error(`the quota service refused the call (${grpcStatus[err.code]}): ${err.message}`);
    }
    throw err;
  } finally {
    client.close();
  }
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return `${rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')}\n`;
}
