// Verifies projected service-account tokens locally against the cluster issuer's public keys (a JWKS file,
// re-read when it changes, or a JWKS URL), and turns each of jose's refusals into an AuthFailure.
import { watchedFile } from '../../common/watched-file.js';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { asRecord, checkTokenShape, describeError, isoSeconds, quoted, serviceAccountIdentity, TokenRejected, type TokenVerifier, type VerifiedIdentity } from './token-verifier.js';

export interface JwksVerifierOptions {
  /** A JWKS file path, or an http(s) URL serving one. */
  jwks: string;
  /** When set, a token's iss must equal it. */
  issuer?: string;
  /** The audience a token's aud must contain (the caller's default is 'llm-gateway'). */
  audience: string;
  /** Wall clock in epoch ms; default Date.now. */
  clock?: { now(): number };
  /** Leeway for exp and nbf, in seconds; default 30. */
  clockToleranceSeconds?: number;
  /** How often a JWKS file is checked for a change, in ms; default 2000. */
  pollIntervalMs?: number;
  /** How long a key set fetched from a URL is used before it is fetched again, in ms; default 600_000. */
  urlCacheMaxAgeMs?: number;
  /** Told of every change of a JWKS file: 'failed' keeps the last good key set. */
  onReload?(result: 'ok' | 'failed', err?: Error): void;
}

/** Asymmetric signatures only: an HMAC "key" would have to be the public JWKS itself, and 'none' is no signature. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

interface KeySource {
  resolve: JWTVerifyGetKey;
  close(): void;
}

/** A TokenVerifier over the issuer's keys; throws at once when a JWKS file cannot be read or parsed. */
export function createJwksVerifier(opts: JwksVerifierOptions): TokenVerifier {
  const clock = opts.clock ?? { now: () => Date.now() };
  const keys = /^https?:\/\//i.test(opts.jwks) ? urlKeySource(opts.jwks, opts.urlCacheMaxAgeMs ?? 600_000) : fileKeySource(opts.jwks, opts.pollIntervalMs ?? 2000, opts.onReload);
  const verifyOptions = (): JWTVerifyOptions => ({
    algorithms: ALGORITHMS,
    audience: opts.audience,
    ...(opts.issuer === undefined ? {} : { issuer: opts.issuer }),
    requiredClaims: ['exp'],
    clockTolerance: opts.clockToleranceSeconds ?? 30,
    currentDate: new Date(clock.now()),
  });

  async function verifyJwt(token: string): Promise<JWTPayload> {
    try {
      return (await jwtVerify(token, keys.resolve, verifyOptions())).payload;
    } catch (err) {
      // Several keys fit a token without a kid: the one whose signature verifies wins.
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
      for await (const key of err) {
        try {
          return (await jwtVerify(token, key, verifyOptions())).payload;
        } catch (e) {
          if (!(e instanceof errors.JWSSignatureVerificationFailed)) throw e;
        }
      }
      throw new errors.JWSSignatureVerificationFailed();
    }
  }

  return {
    async verify(token: string): Promise<VerifiedIdentity> {
      checkTokenShape(token);
      let payload: JWTPayload;
      try {
        payload = await verifyJwt(token);
      } catch (err) {
        throw rejection(err, token, opts);
      }
      const k8s = asRecord(payload['kubernetes.io']);
      return serviceAccountIdentity(k8s.namespace, asRecord(k8s.serviceaccount).name, asRecord(k8s.pod).name, (payload.exp ?? 0) * 1000);
    },
    close: () => keys.close(),
  };
}

/** jose's error → TokenRejected. Claim values come from a token whose signature verified; header values are quoted and cut short. */
function rejection(err: unknown, token: string, opts: JwksVerifierOptions): TokenRejected {
  if (err instanceof TokenRejected) return err;
  if (err instanceof errors.JWTExpired) return new TokenRejected('expired', `the token expired at ${isoSeconds(Number(err.payload.exp))}`);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason, payload } = err;
    if (claim === 'aud') {
      return new TokenRejected('wrong-audience', reason === 'missing' ? `the token has no audience, it needs ${quoted(opts.audience)}` : `the token's audience is ${quoted(payload.aud)}, not ${quoted(opts.audience)}`);
    }
    if (claim === 'iss') {
      return new TokenRejected('wrong-issuer', reason === 'missing' ? `the token has no issuer, it needs ${quoted(opts.issuer)}` : `the token's issuer is ${quoted(payload.iss)}, not ${quoted(opts.issuer)}`);
    }
    if (claim === 'nbf' && reason === 'check_failed') return new TokenRejected('not-yet-valid', `the token is not valid before ${isoSeconds(Number(payload.nbf))}`);
    if (claim === 'exp' && reason === 'missing') return new TokenRejected('malformed', 'the token has no expiry (exp); only expiring projected tokens are accepted');
    return new TokenRejected('malformed', `the token's ${quoted(claim)} claim is invalid (${reason})`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new TokenRejected('bad-signature', `the token is signed with ${quoted(headerOf(token).alg)}; only ${ALGORITHMS.join(', ')} are accepted`);
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    const { kid, alg } = headerOf(token);
    return new TokenRejected('bad-signature', `no key of the JWKS matches the token (kid ${quoted(kid)}, alg ${quoted(alg)}): it was signed by another issuer, or with a key since removed`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new TokenRejected('bad-signature', "the token's signature does not verify with the JWKS key it names");
  if (err instanceof errors.JWKInvalid || err instanceof errors.JWKSInvalid || err instanceof errors.JOSENotSupported) {
    return new TokenRejected('bad-signature', `the JWKS key for the token cannot be used: ${(err as Error).message}`);
  }
  if (err instanceof errors.JWKSTimeout) return new TokenRejected('unavailable', `the JWKS did not arrive in time: ${err.message}`);
  // JWSInvalid, JWTInvalid and whatever else jose finds wrong with the token's bytes; its messages name the
  // part at fault, never its content.
  return new TokenRejected('malformed', `the token is not a valid JWT: ${err instanceof Error ? err.message : String(err)}`);
}

function headerOf(token: string): { alg?: unknown; kid?: unknown } {
  try {
    return decodeProtectedHeader(token);
  } catch {
    return {};
  }
}

/** A key set from JWKS text; throws (naming `source`) when it is not one or holds no usable public key. */
function parseJwks(text: string, source: string): JWTVerifyGetKey {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not JSON (${(err as Error).message})`);
  }
  const keys = asRecord(json).keys;
  if (!Array.isArray(keys)) throw new Error(`${source}: not a JWKS (no "keys" array)`);
  const usable = keys.filter((k) => ['RSA', 'EC', 'OKP'].includes(asRecord(k).kty as string));
  if (usable.some((k) => 'd' in asRecord(k))) throw new Error(`${source}: holds a private key; give the issuer's public keys only`);
  if (usable.length === 0) throw new Error(`${source}: holds no public signing key (kty RSA, EC or OKP)`);
  try {
    return createLocalJWKSet({ keys: usable } as JSONWebKeySet);
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`);
  }
}

/** A JWKS file, re-read when it changes (common/watched-file.ts); a bad version keeps the last good set. */
function fileKeySource(path: string, pollIntervalMs: number, onReload: JwksVerifierOptions['onReload']): KeySource {
  const file = watchedFile({
    path,
    parse: (text) => parseJwks(text, `JWKS file ${path}`),
    intervalMs: pollIntervalMs,
    onReload: (result, err) => onReload?.(result, err === undefined || err instanceof Error ? err : new Error(String(err))),
  });
  return { resolve: (header, token) => file.value(header, token), close: () => file.close() };
}

/**
 * A JWKS URL: jose caches the set (`cacheMaxAgeMs`) and refetches early for an unknown kid (at most every 30 s). When a
 * refetch fails the last fetched set stands in; with none yet the token is 'unavailable', not refused.
 */
function urlKeySource(url: string, cacheMaxAgeMs: number): KeySource {
  const remote = createRemoteJWKSet(new URL(url), { cacheMaxAge: cacheMaxAgeMs });
  let stale: { json: string; resolve: JWTVerifyGetKey } | undefined;
  const resolve: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported) throw err;
      const last = remote.jwks();
      if (last === undefined) throw new TokenRejected('unavailable', `cannot fetch the JWKS from ${url}: ${describeError(err)}`);
      const json = JSON.stringify(last);
      if (stale?.json !== json) stale = { json, resolve: createLocalJWKSet(last) };
      return stale.resolve(header, token);
    }
  };
  return { resolve, close: () => undefined };
}
