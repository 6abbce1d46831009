// A service-account token issuer of its own, for `llmgw dev`: one signing key made at start, its public
// JWKS for the embedded quota service's verifier, and tokens shaped like the kubelet's projected ones, so
// the embedded sidecar authenticates exactly as in a cluster with nothing to configure.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, type JSONWebKeySet, type JWK } from 'jose';

export interface LocalIssuer {
  readonly issuer: string;
  readonly jwks: JSONWebKeySet;
  /** A token for `namespace/serviceAccount` bound to `pod`, valid `expiresInSeconds`. */
  mint(claims: { namespace: string; serviceAccount: string; pod: string; audience: string; expiresInSeconds: number }): Promise<string>;
}

export function createLocalIssuer(issuer = 'https://llmgw-dev.local'): LocalIssuer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  const jwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256', use: 'sig' };
  return {
    issuer,
    jwks: { keys: [jwk] },
    mint: (c) =>
      new SignJWT({
        'kubernetes.io': { namespace: c.namespace, serviceaccount: { name: c.serviceAccount, uid: randomUUID() }, pod: { name: c.pod, uid: randomUUID() } },
      })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(issuer)
        .setSubject(`system:serviceaccount:${c.namespace}:${c.serviceAccount}`)
        .setAudience([c.audience])
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime(`${c.expiresInSeconds}s`)
        .sign(privateKey),
  };
}
