// What a verified Kubernetes service-account token tells the quota service, the ways a token is refused,
// and the interface the JWKS and TokenReview verifiers share.
import { isNamespaceName, isServiceAccountName } from '../scopes.js';

/** The identity a verifier vouches for; the quota service trusts nothing else a sidecar says about itself. */
export interface VerifiedIdentity {
  /** claims['kubernetes.io'].namespace (TokenReview: from username system:serviceaccount:<ns>:<sa>). */
  namespace: string;
  /** claims['kubernetes.io'].serviceaccount.name. */
  serviceAccount: string;
  /** claims['kubernetes.io'].pod.name; '' when the token is not bound to a pod. */
  pod: string;
  /** `<namespace>/<serviceAccount>`: what --admin-subjects / --viewer-subjects list. */
  subject: string;
  /** Epoch ms when the token expires (from exp). */
  expiresAtMs: number;
}

/**
 * Why a token was refused. 'unavailable' means the verifier could not reach its authority (API server,
 * JWKS URL) and says nothing about the token: gRPC UNAVAILABLE; every other kind is UNAUTHENTICATED.
 */
export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'bad-signature'
  | 'not-a-service-account'
  | 'rejected'
  | 'unavailable';

/** A refusal with its kind and a plain message; the message never contains the token or a part of it. */
export class TokenRejected extends Error {
  constructor(
    readonly reason: AuthFailure,
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejected';
  }
}

export interface TokenVerifier {
  /** Resolves with the token's identity or rejects with a TokenRejected. */
  verify(token: string): Promise<VerifiedIdentity>;
  /** Stops timers and closes connections; verify() must not be called afterwards. */
  close(): void;
}


/** Builds the identity, refusing ('not-a-service-account') names Kubernetes would never issue: whatever an issuer signs, no '/' (the scope separator) gets into a scope or subject. */
export function serviceAccountIdentity(namespace: unknown, serviceAccount: unknown, pod: unknown, expiresAtMs: number): VerifiedIdentity {
  if (typeof namespace !== 'string' || typeof serviceAccount !== 'string' || namespace === '' || serviceAccount === '') {
    throw new TokenRejected('not-a-service-account', 'the token names no service account (kubernetes.io namespace and serviceaccount.name are required)');
  }
  if (!isNamespaceName(namespace)) {
    throw new TokenRejected('not-a-service-account', `the token's namespace ${quoted(namespace)} is not a Kubernetes namespace name`);
  }
  if (!isServiceAccountName(serviceAccount)) {
    throw new TokenRejected('not-a-service-account', `the token's service account ${quoted(serviceAccount)} is not a Kubernetes service account name`);
  }
  if (pod !== undefined && pod !== '' && (typeof pod !== 'string' || !isServiceAccountName(pod))) {
    throw new TokenRejected('not-a-service-account', `the token's pod ${quoted(pod)} is not a Kubernetes pod name`);
  }
  return { namespace, serviceAccount, pod: typeof pod === 'string' ? pod : '', subject: `${namespace}/${serviceAccount}`, expiresAtMs };
}

/** Longest token accepted, in bytes: projected tokens are 1–2 KB; a cap bounds the work a caller can ask for. */
export const MAX_TOKEN_BYTES = 16_384;

/** Refuses the empty token ('missing') and one too long or not shaped like a compact JWS ('malformed'). */
export function checkTokenShape(token: string): void {
  if (token === '') throw new TokenRejected('missing', 'no service-account token was sent (authorization: Bearer <token>)');
  if (token.length > MAX_TOKEN_BYTES) throw new TokenRejected('malformed', `the token is longer than ${MAX_TOKEN_BYTES} bytes`);
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
    throw new TokenRejected('malformed', 'the token is not a JWT (three base64url parts separated by dots)');
  }
}

/** A claim value for a message: JSON (so control characters are escaped), cut to `max` characters. */
export function quoted(value: unknown, max = 120): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** An epoch-seconds claim as an ISO time without milliseconds ("2026-12-04T10:00:00Z"). */
export function isoSeconds(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000);
  return Number.isNaN(date.getTime()) ? String(epochSeconds) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** An object's fields, or none when the value is not an object (claims and API answers are untrusted JSON). */
export function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

/** An error's message with its cause's (undici and fetch say "fetch failed"; the cause says ECONNREFUSED). */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
}
