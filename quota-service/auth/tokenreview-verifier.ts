// Verifies projected service-account tokens by asking the Kubernetes API server (a TokenReview), with a
// bounded cache of answers that never outlives a token, and the in-cluster connection settings.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import { Agent, request } from 'undici';
import { asRecord, checkTokenShape, describeError, isoSeconds, quoted, serviceAccountIdentity, TokenRejected, type TokenVerifier, type VerifiedIdentity } from './token-verifier.js';

export interface TokenReviewVerifierOptions {
  /** The API server's base URL, e.g. https://10.96.0.1:443. */
  apiServerUrl: string;
  /** PEM CA bundle the API server's certificate chains to; default: the system CAs. */
  caFile?: string;
  /** The quota service's own service-account token, sent as Bearer; re-read at most every minute (it rotates). */
  bearerTokenFile: string;
  /** The audience asked for in spec.audiences and required in status.audiences. */
  audience: string;
  /** Wall clock in epoch ms; default Date.now. */
  clock?: { now(): number };
  /** Longest time an answer is reused, in ms (never past the token's exp); default 300_000. */
  cacheMaxMs?: number;
  /** Most answers kept, oldest dropped first; default 10_000. */
  cacheMaxEntries?: number;
  /** TokenReviews under way at once (default MAX_REVIEWS_IN_FLIGHT); more new tokens meanwhile are answered unavailable. */
  maxReviewsInFlight?: number;
  /** Limit on one TokenReview round trip, in ms; default 5000. */
  timeoutMs?: number;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const POD_NAME_KEY = 'authentication.kubernetes.io/pod-name';
const BEARER_REFRESH_MS = 60_000;
const MAX_RESPONSE_BYTES = 1 << 20;
/** How long a refused token stays refused without asking again, in ms (a pod just started may be unknown for a moment). */
export const REJECTION_CACHE_MS = 10_000;
/** The default of `maxReviewsInFlight`. */
export const MAX_REVIEWS_IN_FLIGHT = 64;
const RBAC_HINT = 'it needs create on tokenreviews.authentication.k8s.io, e.g. a ClusterRoleBinding to system:auth-delegator';

/** Where the API server and the pod's own credentials are when running in a cluster. */
export function inClusterTokenReviewOptions(env: Record<string, string | undefined> = process.env): { apiServerUrl: string; caFile: string; bearerTokenFile: string } {
  for (const name of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT']) {
    if (!env[name]) throw new Error(`--auth kubernetes needs to run in a cluster (${name} is not set); use --auth jwks outside one`);
  }
  const host = env.KUBERNETES_SERVICE_HOST!;
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return { apiServerUrl: `https://${bracketed}:${env.KUBERNETES_SERVICE_PORT}`, caFile: `${SA_DIR}/ca.crt`, bearerTokenFile: `${SA_DIR}/token` };
}

type Outcome = { ok: true; identity: VerifiedIdentity } | { ok: false; error: TokenRejected };

/** A TokenVerifier asking the API server; throws at once when caFile cannot be read. */
export function createTokenReviewVerifier(opts: TokenReviewVerifierOptions): TokenVerifier {
  const clock = opts.clock ?? { now: () => Date.now() };
  const cacheMaxMs = opts.cacheMaxMs ?? 300_000;
  const cacheMaxEntries = opts.cacheMaxEntries ?? 10_000;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxInFlight = opts.maxReviewsInFlight ?? MAX_REVIEWS_IN_FLIGHT;
  const endpoint = opts.apiServerUrl.replace(/\/+$/, '') + REVIEW_PATH;
  const agent = new Agent(opts.caFile === undefined ? {} : { connect: { ca: readCa(opts.caFile) } });
  /** Keyed by the token's SHA-256, so the cache holds no token; Map order is insertion order, oldest first. */
  const cache = new Map<string, { outcome: Outcome; untilMs: number }>();
  const inflight = new Map<string, Promise<Outcome>>();
  let bearer: { token: string; readAtMs: number } | undefined;

  async function ownToken(force: boolean): Promise<string> {
    if (!force && bearer !== undefined && clock.now() - bearer.readAtMs < BEARER_REFRESH_MS) return bearer.token;
    try {
      bearer = { token: (await readFile(opts.bearerTokenFile, 'utf8')).trim(), readAtMs: clock.now() };
    } catch (err) {
      throw new TokenRejected('unavailable', `cannot read the quota service's own token ${opts.bearerTokenFile}: ${(err as Error).message}`);
    }
    return bearer.token;
  }

  async function post(body: string, credential: string): Promise<{ status: number; text: string }> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const res = await request(endpoint, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${credential}` },
        body,
        signal,
      });
      return { status: res.statusCode, text: await readCapped(res.body) };
    } catch (err) {
      const why = signal.aborted ? `no answer within ${timeoutMs} ms` : describeError(err);
      throw new TokenRejected('unavailable', `the API server at ${opts.apiServerUrl} did not answer the TokenReview: ${why}`);
    }
  }

  async function review(token: string, expiresAtMs: number): Promise<Outcome> {
    const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [opts.audience] } });
    const used = await ownToken(false);
    let res = await post(body, used);
    if (res.status === 401) {
      // The projected token may have rotated since it was read: try once more with the file as it is now.
      const fresh = await ownToken(true);
      if (fresh !== used) res = await post(body, fresh);
    }
    if (res.status === 401) {
      throw new TokenRejected('unavailable', `the API server refused the quota service's own token from ${opts.bearerTokenFile} (HTTP 401); check the token and the quota service's RBAC: ${RBAC_HINT}`);
    }
    if (res.status === 403) {
      throw new TokenRejected('unavailable', `the API server forbids the quota service to create TokenReviews (HTTP 403): its RBAC is missing; ${RBAC_HINT}`);
    }
    if (res.status < 200 || res.status > 299) throw new TokenRejected('unavailable', `the API server answered the TokenReview with HTTP ${res.status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch {
      throw new TokenRejected('unavailable', 'the API server answered the TokenReview with something that is not JSON');
    }
    return judge(asRecord(asRecord(parsed).status), token, expiresAtMs, opts.audience);
  }

  function remember(key: string, outcome: Outcome, expiresAtMs: number): void {
    // A refusal is kept briefly: the API server may not know a pod that has just started.
    const untilMs = Math.min(expiresAtMs, clock.now() + (outcome.ok ? cacheMaxMs : Math.min(cacheMaxMs, REJECTION_CACHE_MS)));
    cache.delete(key);
    while (cache.size >= cacheMaxEntries) cache.delete(cache.keys().next().value!);
    cache.set(key, { outcome, untilMs });
  }

  return {
    async verify(token: string): Promise<VerifiedIdentity> {
      checkTokenShape(token);
      const exp = unverifiedExp(token);
      if (exp * 1000 <= clock.now()) throw new TokenRejected('expired', `the token expired at ${isoSeconds(exp)}`);
      const key = createHash('sha256').update(token).digest('hex');
      const hit = cache.get(key);
      let outcome: Outcome;
      if (hit !== undefined && hit.untilMs > clock.now()) {
        outcome = hit.outcome;
      } else {
        if (hit !== undefined) cache.delete(key);
        let pending = inflight.get(key);
        if (pending === undefined) {
          // Each new token costs the API server a review: a bounded number at once, so a flood of forged
          // tokens cannot turn the quota service against its API server.
          if (inflight.size >= maxInFlight) throw new TokenRejected('unavailable', `${maxInFlight} TokenReviews are under way already; try again`);
          // Failures to reach the API server reject here and so are never remembered.
          pending = review(token, exp * 1000)
            .then((o) => (remember(key, o, exp * 1000), o))
            .finally(() => inflight.delete(key));
          inflight.set(key, pending);
        }
        outcome = await pending;
      }
      if (!outcome.ok) throw outcome.error;
      return { ...outcome.identity };
    },
    close(): void {
      cache.clear();
      void agent.close().catch(() => undefined);
    },
  };
}

/** The API server's verdict (status of a TokenReview) → an identity or a refusal. */
function judge(status: Record<string, unknown>, token: string, expiresAtMs: number, audience: string): Outcome {
  const refuse = (reason: TokenRejected['reason'], message: string): Outcome => ({ ok: false, error: new TokenRejected(reason, message) });
  if (status.authenticated !== true) {
    const why = typeof status.error === 'string' && status.error !== '' ? scrub(status.error, token) : 'no reason given';
    return refuse('rejected', `the API server rejected the token: ${why}`);
  }
  const user = asRecord(status.user);
  const account = typeof user.username === 'string' ? /^system:serviceaccount:([^:]+):([^:]+)$/.exec(user.username) : null;
  if (account === null) return refuse('not-a-service-account', `the token belongs to the user ${quoted(user.username)}, not to a service account`);
  const audiences = Array.isArray(status.audiences) ? status.audiences : [];
  if (!audiences.includes(audience)) {
    return refuse('wrong-audience', `the API server accepted the token for the audiences ${quoted(audiences)}, not ${quoted(audience)}`);
  }
  const podNames = asRecord(user.extra)[POD_NAME_KEY];
  const pod = Array.isArray(podNames) && typeof podNames[0] === 'string' ? podNames[0] : '';
  try {
    return { ok: true, identity: serviceAccountIdentity(account[1], account[2], pod, expiresAtMs) };
  } catch (err) {
    return { ok: false, error: err as TokenRejected };
  }
}

/** The exp claim, read without verifying (it only bounds the cache and short-cuts expired tokens). */
function unverifiedExp(token: string): number {
  let exp: unknown;
  try {
    exp = decodeJwt(token).exp;
  } catch (err) {
    throw new TokenRejected('malformed', `the token is not a valid JWT: ${(err as Error).message}`);
  }
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new TokenRejected('malformed', 'the token has no expiry (exp); only expiring projected tokens are accepted');
  return exp;
}

/** The API server's error text without the token (or anything shaped like a JWT), cut to 300 characters. */
function scrub(text: string, token: string): string {
  let out = text.split(token).join('[token]');
  for (const part of token.split('.')) if (part.length >= 8) out = out.split(part).join('[token]');
  out = out.replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g, '[token]');
  return out.length > 300 ? `${out.slice(0, 300)}…` : out;
}

function readCa(caFile: string): string {
  try {
    return readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the API server's CA ${caFile}: ${(err as Error).message}`);
  }
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy();
      throw new Error(`the answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
