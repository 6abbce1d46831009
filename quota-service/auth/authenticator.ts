// Who is calling the quota service: a sidecar whose service-account token a verifier vouched for, or an
// operator holding an admin token or an operator service account. The gRPC handlers ask here first, and
// trust nothing a caller says about itself.
import type { Metadata } from '@grpc/grpc-js';
import { QuotaError, permissionDenied, unauthenticated, unavailable } from '../errors.js';
import type { AdminTokens } from './admin-tokens.js';
import { TokenRejected, type TokenVerifier, type VerifiedIdentity } from './token-verifier.js';

export type AuthMode = 'kubernetes' | 'jwks' | 'none';

export interface AuthenticatorOptions {
  mode: AuthMode;
  /** Required unless mode is `none`. */
  verifier?: TokenVerifier;
  adminTokens?: AdminTokens;
  /** `namespace/serviceaccount` subjects allowed every admin call / the read-only ones. */
  adminSubjects?: readonly string[];
  viewerSubjects?: readonly string[];
}

export type Access = 'read' | 'write';

const CREDENTIAL_HINT = 'pass --token, --token-file or set LLMGW_ADMIN_TOKEN';

/** The bearer token of a call ('' when none was sent). */
export function bearerOf(metadata: Metadata): string {
  const values = metadata.get('authorization');
  if (values.length === 0) return '';
  if (values.length > 1) throw unauthenticated('more than one authorization header was sent');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(String(values[0]));
  if (m === null) throw unauthenticated('the authorization header is not "Bearer <token>"');
  return m[1]!;
}

export class Authenticator {
  private readonly adminSubjects: ReadonlySet<string>;
  private readonly viewerSubjects: ReadonlySet<string>;

  constructor(private readonly opts: AuthenticatorOptions) {
    if (opts.mode !== 'none' && opts.verifier === undefined) throw new Error(`--auth ${opts.mode} needs a token verifier`);
    this.adminSubjects = new Set(opts.adminSubjects ?? []);
    this.viewerSubjects = new Set(opts.viewerSubjects ?? []);
    if (opts.verifier === undefined && this.adminSubjects.size + this.viewerSubjects.size > 0) {
      throw new Error('--admin-subjects and --viewer-subjects need --auth kubernetes or jwks to verify them');
    }
  }

  get mode(): AuthMode {
    return this.opts.mode;
  }

  /** Whether the admin API takes calls without any credential (only with --auth none and no operator credential). */
  get adminOpen(): boolean {
    return this.opts.mode === 'none' && this.opts.adminTokens === undefined && this.adminSubjects.size === 0;
  }

  /** Whether any credential at all can pass the admin API. */
  get adminReachable(): boolean {
    return this.adminOpen || this.opts.adminTokens !== undefined || this.adminSubjects.size + this.viewerSubjects.size > 0;
  }

  /** The verified identity of a sidecar's call; undefined with --auth none (nothing is verified). */
  async workload(metadata: Metadata): Promise<VerifiedIdentity | undefined> {
    if (this.opts.verifier === undefined) return undefined;
    return this.verify(bearerOf(metadata));
  }

  /** Lets an operator's call through, or throws UNAUTHENTICATED / PERMISSION_DENIED; returns who called, for logs. */
  async operator(metadata: Metadata, access: Access): Promise<string> {
    if (this.adminOpen) return 'anyone (admin API open: --auth none)';
    const token = bearerOf(metadata);
    if (token === '') throw unauthenticated(`the admin API needs an operator credential: ${CREDENTIAL_HINT}`);
    if (this.opts.adminTokens?.matches(token)) return 'admin token';
    if (this.opts.verifier === undefined || !token.includes('.')) {
      throw unauthenticated(`the token is not an operator token (--admin-token-file of the quota service): ${CREDENTIAL_HINT}`);
    }
    const id = await this.verify(token);
    if (this.adminSubjects.has(id.subject)) return id.subject;
    if (this.viewerSubjects.has(id.subject)) {
      if (access === 'read') return id.subject;
      throw permissionDenied(`${id.subject} is a viewer (--viewer-subjects): it may read budgets, usage and teams, not change them`);
    }
    throw permissionDenied(`service account ${id.subject} is not an operator (--admin-subjects) or a viewer (--viewer-subjects)`);
  }

  close(): void {
    this.opts.verifier?.close();
    this.opts.adminTokens?.close();
  }

  private async verify(token: string): Promise<VerifiedIdentity> {
    try {
      return await this.opts.verifier!.verify(token);
    } catch (err) {
      if (err instanceof TokenRejected) {
        throw err.reason === 'unavailable' ? unavailable(`cannot verify the token now: ${err.message}`) : unauthenticated(`${err.reason}: ${err.message}`);
      }
      if (err instanceof QuotaError) throw err;
      throw unavailable('cannot verify the token now');
    }
  }
}
