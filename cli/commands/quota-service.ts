// `llmgw quota-service`: the central quota service until SIGTERM. Flags are checked here (exit 2 naming the
// flag); the token verifier is built from --auth and its flags.
import { mkdirSync, readFileSync } from 'node:fs';
import { logReload } from '../../common/reload-log.js';
import { TlsConfigError } from '../../common/tls/reloading-certificate-provider.js';
import { dirname } from 'node:path';
import { AdminTokens } from '../../quota-service/auth/admin-tokens.js';
import type { AuthenticatorOptions, AuthMode } from '../../quota-service/auth/authenticator.js';
import type { TokenVerifier } from '../../quota-service/auth/token-verifier.js';
import type { Logger } from 'pino';
import { createCommandLogger, type LogFormat, type LogLevel } from '../../common/logger.js';
import { redactUrl, scrubUrl } from '../../quota-service/postgres/redact-url.js';
import { pricesFromText } from '../../quota-service/prices.js';
import { parseProviderKeys } from '../../quota-service/provider-keys.js';
import { startQuotaService } from '../../quota-service/quota-service.js';
import { isNamespaceName, isServiceAccountName } from '../../quota-service/scopes.js';
import { parseDuration, parseHostPort, UsageError } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export interface QuotaServiceFlags {
  listen: string;
  statusListen: string;
  db: string;
  leaseTtl: string;
  logLevel: string;
  logFormat?: LogFormat;
  auth: string;
  authJwks?: string;
  authIssuer?: string;
  authAudience: string;
  adminTokenFile?: string;
  adminSubjects?: string;
  viewerSubjects?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  providerKeys?: string;
  prices?: string;
  /** --store, else $LLMGW_QUOTA_STORE: a postgres:// URL (undefined: --db's SQLite file). */
  store?: string;
}


/** `ns/sa,ns/sa` → the subjects; a malformed one is a usage error naming the flag. */
export function parseSubjects(flag: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  const subjects = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of subjects) {
    const [ns = '', sa = '', ...rest] = s.split('/');
    if (!isNamespaceName(ns) || !isServiceAccountName(sa) || rest.length > 0) throw new UsageError(`${flag}: expected namespace/serviceaccount[,…], got "${s}"`);
  }
  return subjects;
}

async function verifierFor(mode: AuthMode, o: QuotaServiceFlags, logger: Logger): Promise<TokenVerifier | undefined> {
  if (mode === 'none') {
    if (o.authJwks !== undefined) throw new UsageError('--auth-jwks needs --auth jwks');
    return undefined;
  }
  if (mode === 'jwks') {
    if (o.authJwks === undefined) throw new UsageError('--auth jwks needs --auth-jwks FILE|URL (a JWKS document, e.g. the API server\'s /openid/v1/jwks)');
    // Without an issuer, tokens of any issuer whose keys the JWKS holds would pass.
    if (o.authIssuer === undefined) throw new UsageError('--auth jwks needs --auth-issuer (the iss of the cluster\'s service-account tokens, e.g. https://kubernetes.default.svc.cluster.local)');
    const { createJwksVerifier } = await import('../../quota-service/auth/jwks-verifier.js');
    try {
      return createJwksVerifier({
        jwks: o.authJwks,
        audience: o.authAudience,
        issuer: o.authIssuer,
        onReload: logReload(logger, '--auth-jwks'),
      });
    } catch (err) {
      throw new UsageError(`--auth-jwks: ${(err as Error).message}`);
    }
  }
  if (o.authJwks !== undefined || o.authIssuer !== undefined) throw new UsageError('--auth-jwks and --auth-issuer need --auth jwks');
  const { createTokenReviewVerifier, inClusterTokenReviewOptions } = await import('../../quota-service/auth/tokenreview-verifier.js');
  let cluster;
  try {
    cluster = inClusterTokenReviewOptions(process.env);
  } catch (err) {
    throw new UsageError(`--auth kubernetes: ${(err as Error).message}`);
  }
  try {
    return createTokenReviewVerifier({ ...cluster, audience: o.authAudience });
  } catch (err) {
    throw new UsageError(`--auth kubernetes: ${(err as Error).message}`);
  }
}

export async function quotaServiceOptions(o: QuotaServiceFlags, logger: Logger): Promise<{ auth: AuthenticatorOptions; tls?: { certFile: string; keyFile: string; clientCaFile?: string } }> {
  if (o.auth !== 'kubernetes' && o.auth !== 'jwks' && o.auth !== 'none') throw new UsageError(`--auth: expected kubernetes, jwks or none, got "${o.auth}"`);
  const mode: AuthMode = o.auth;
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (o.tlsClientCa !== undefined && o.tlsCert === undefined) throw new UsageError('--tls-client-ca needs --tls-cert and --tls-key');
  const adminSubjects = parseSubjects('--admin-subjects', o.adminSubjects);
  const viewerSubjects = parseSubjects('--viewer-subjects', o.viewerSubjects);
  if (mode === 'none' && adminSubjects.length + viewerSubjects.length > 0) throw new UsageError('--admin-subjects and --viewer-subjects need --auth kubernetes or jwks to verify them');
  let adminTokens: AdminTokens | undefined;
  if (o.adminTokenFile !== undefined) {
    try {
      adminTokens = new AdminTokens({
        path: o.adminTokenFile,
        onReload: logReload(logger, '--admin-token-file'),
      });
    } catch (err) {
      throw new UsageError(`--admin-token-file: ${(err as Error).message}`);
    }
  }
  const verifier = await verifierFor(mode, o, logger);
  return {
    auth: { mode, adminSubjects, viewerSubjects, ...(verifier ? { verifier } : {}), ...(adminTokens ? { adminTokens } : {}) },
    ...(o.tlsCert !== undefined && o.tlsKey !== undefined ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey, ...(o.tlsClientCa ? { clientCaFile: o.tlsClientCa } : {}) } } : {}),
  };
}

/** A --prices file that cannot be used stops the start with every problem named (exit 2). */
function checkPrices(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--prices: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  // A ConfigError: one line per problem (cli/main.ts prints them and exits 2).
  pricesFromText(text, `--prices ${path}`);
}

export async function runQuotaService(o: QuotaServiceFlags): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const leaseTtlMs = parseDuration('--lease-ttl', o.leaseTtl);
  if (o.providerKeys !== undefined) {
    try {
      parseProviderKeys(readFileSync(o.providerKeys, 'utf8'));
    } catch (err) {
      throw new UsageError(`--provider-keys: ${o.providerKeys}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (o.prices !== undefined) checkPrices(o.prices);
  if (o.store !== undefined && !/^postgres(ql)?:\/\//.test(o.store)) {
    throw new UsageError(`--store (or $LLMGW_QUOTA_STORE): expected a postgres:// or postgresql:// URL, got "${redactUrl(o.store)}" (the SQLite file is --db)`);
  }
  const logger = await createCommandLogger(o.logLevel as LogLevel, { format: o.logFormat });
  const security = await quotaServiceOptions(o, logger);
  if (o.store === undefined) mkdirSync(dirname(o.db), { recursive: true });
  let service;
  try {
    service = await startQuotaService({
      listen,
      statusListen,
      dbPath: o.db,
      ...(o.store === undefined ? {} : { storeUrl: o.store }),
      logger,
      leaseTtlMs,
      ...security,
      ...(o.providerKeys === undefined ? {} : { providerKeysFile: o.providerKeys }),
      ...(o.prices === undefined ? {} : { pricesFile: o.prices }),
    });
  } catch (err) {
    if (err instanceof TlsConfigError) throw new UsageError(`--tls-cert/--tls-key/--tls-client-ca: ${err.message}`);
    // The database could not be reached or migrated: said without the connection string's secrets.
    if (o.store !== undefined) throw new Error(`could not open the PostgreSQL store ${redactUrl(o.store)}: ${scrubUrl((err as Error).message, o.store)}`);
    throw err;
  }
  runUntilSignal(logger, () => service.stop());
}
