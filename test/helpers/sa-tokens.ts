// A stand-in for a cluster's service-account token issuer: a signing key, its public JWKS, and tokens
// shaped exactly like the kubelet's projected service-account tokens.
import { createHash, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { SignJWT, type JSONWebKeySet, type JWK } from 'jose';
import { TokenRejected, type AuthFailure, type TokenVerifier } from '../../quota-service/auth/token-verifier.js';

export interface MintClaims {
  namespace: string;
  serviceAccount: string;
  /** The pod the token is bound to; without it the token is bound to nothing (kubectl create token). */
  pod?: string;
  /** The aud claim; default ['llm-gateway']. A string is still written as a one-element array, as Kubernetes does. */
  audience?: string | string[];
  /** exp − iat, in seconds; default 3600. */
  expiresInSeconds?: number;
  /** The iss claim; default the issuer's. */
  issuer?: string;
  /** nbf − iat, in seconds; default 0 (Kubernetes sets nbf = iat). */
  notBeforeInSeconds?: number;
  /** Claims set after the Kubernetes ones; a value of undefined removes the claim. */
  overrides?: Record<string, unknown>;
}

export interface TokenIssuer {
  /** The iss claim of minted tokens. */
  readonly issuer: string;
  readonly alg: 'ES256' | 'RS256';
  /** The kid of the current signing key. */
  readonly kid: string;
  /** The public keys, as the API server serves them at /openid/v1/jwks. */
  readonly jwks: JSONWebKeySet;
  /** Writes the JWKS atomically (temporary file, then rename), as a ConfigMap update lands. */
  writeJwks(path: string): void;
  mint(claims: MintClaims): Promise<string>;
  /** A new signing key; the old public key leaves the JWKS unless keepPrevious. */
  rotateKey(opts?: { keepPrevious?: boolean }): Promise<void>;
}

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicJwk: JWK;
}

function newKey(alg: 'ES256' | 'RS256'): SigningKey {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  // Kubernetes' kid: base64url(SHA-256(DER of the public key)).
  const kid = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url');
  return { kid, privateKey, publicJwk: { use: 'sig', ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg } };
}

/** A token issuer with a fresh key; `clock` (epoch ms, default Date.now) sets iat, nbf and exp. */
export function createTokenIssuer(opts: { issuer?: string; alg?: 'ES256' | 'RS256'; clock?: { now(): number } } = {}): TokenIssuer {
  const alg = opts.alg ?? 'ES256';
  const issuer = opts.issuer ?? 'https://kubernetes.default.svc.cluster.local';
  const now = (): number => opts.clock?.now() ?? Date.now();
  let current = newKey(alg);
  let published: JWK[] = [current.publicJwk];
  const uids = new Map<string, string>();
  const uidOf = (name: string): string => uids.get(name) ?? (uids.set(name, randomUUID()), uids.get(name)!);

  return {
    issuer,
    alg,
    get kid() {
      return current.kid;
    },
    get jwks() {
      return { keys: published.map((k) => ({ ...k })) };
    },
    writeJwks(path) {
      writeFileSync(`${path}.tmp`, JSON.stringify(this.jwks));
      renameSync(`${path}.tmp`, path);
    },
    async mint(claims) {
      const iat = Math.floor(now() / 1000);
      const k8s: Record<string, unknown> = {
        namespace: claims.namespace,
        serviceaccount: { name: claims.serviceAccount, uid: uidOf(`sa/${claims.namespace}/${claims.serviceAccount}`) },
      };
      if (claims.pod !== undefined) {
        k8s.node = { name: 'node-1', uid: uidOf('node/node-1') };
        k8s.pod = { name: claims.pod, uid: uidOf(`pod/${claims.namespace}/${claims.pod}`) };
      }
      const payload: Record<string, unknown> = {
        aud: typeof claims.audience === 'string' ? [claims.audience] : (claims.audience ?? ['llm-gateway']),
        exp: iat + (claims.expiresInSeconds ?? 3600),
        iat,
        iss: claims.issuer ?? issuer,
        jti: randomUUID(),
        'kubernetes.io': k8s,
        nbf: iat + (claims.notBeforeInSeconds ?? 0),
        sub: `system:serviceaccount:${claims.namespace}:${claims.serviceAccount}`,
      };
      for (const [name, value] of Object.entries(claims.overrides ?? {})) {
        if (value === undefined) delete payload[name];
        else payload[name] = value;
      }
      return new SignJWT(payload).setProtectedHeader({ alg, kid: current.kid }).sign(current.privateKey);
    },
    async rotateKey(rotation = {}) {
      current = newKey(alg);
      published = rotation.keepPrevious ? [...published, current.publicJwk] : [current.publicJwk];
    },
  };
}

/**
 * The refusal a verification ends in, failing the test if it resolves or throws something else; whatever
 * the reason, its message must carry no piece of the token.
 */
export async function tokenRefusal(verifier: TokenVerifier, token: string): Promise<{ reason: AuthFailure; message: string }> {
  const err = await verifier.verify(token).then(
    (identity) => new Error(`expected a refusal, got ${JSON.stringify(identity)}`),
    (e: unknown) => e,
  );
  if (!(err instanceof TokenRejected)) throw err;
  for (const part of token.split('.')) if (part.length >= 8 && err.message.includes(part)) throw new Error(`the refusal quotes the token: ${err.message}`);
  return { reason: err.reason, message: err.message };
}
