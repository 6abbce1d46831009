import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TokenVerifier } from '../../../../quota-service/auth/token-verifier.js';
import { createTokenReviewVerifier, MAX_REVIEWS_IN_FLIGHT, REJECTION_CACHE_MS, inClusterTokenReviewOptions, type TokenReviewVerifierOptions } from '../../../../quota-service/auth/tokenreview-verifier.js';
import { fakeClock, type FakeClock } from '../../../helpers/fake-clock.js';
import { startFakeApiServer, type FakeApiServer } from '../../../helpers/fake-kube-api.js';
import { createTokenIssuer, tokenRefusal, type TokenIssuer } from '../../../helpers/sa-tokens.js';

const WORKER = { namespace: 'team-a', serviceAccount: 'worker', pod: 'worker-7d9f8-x2x4q' };

const refusal = tokenRefusal;

describe('createTokenReviewVerifier', () => {
  let clock: FakeClock;
  let issuer: TokenIssuer;
  let api: FakeApiServer;
  let bearerFile: string;
  let verifier: TokenVerifier;
  const extraVerifiers: TokenVerifier[] = [];

  const make = (extra: Partial<TokenReviewVerifierOptions> = {}): TokenVerifier => {
    const v = createTokenReviewVerifier({ apiServerUrl: api.url, caFile: api.caFile, bearerTokenFile: bearerFile, audience: 'llm-gateway', clock, timeoutMs: 2000, ...extra });
    extraVerifiers.push(v);
    return v;
  };

  beforeEach(async () => {
    // Real time, for the server certificate; the fake clock then moves the tokens' time by hand.
    clock = fakeClock(Math.floor(Date.now() / 1000) * 1000);
    issuer = createTokenIssuer({ clock });
    api = await startFakeApiServer({ issuer, clock, bearerToken: 'quota-sa-token-1' });
    bearerFile = join(mkdtempSync(join(tmpdir(), 'llmgw-sa-')), 'token');
    writeFileSync(bearerFile, 'quota-sa-token-1\n');
    verifier = make();
  });
  afterEach(async () => {
    for (const v of extraVerifiers.splice(0)) v.close();
    await api.close();
  });

  it('returns the identity the API server vouches for, asking with our audience and our own token', async () => {
    const token = await issuer.mint({ ...WORKER, expiresInSeconds: 3600 });
    expect(await verifier.verify(token)).toEqual({
      namespace: 'team-a',
      serviceAccount: 'worker',
      pod: 'worker-7d9f8-x2x4q',
      subject: 'team-a/worker',
      expiresAtMs: clock.now() + 3_600_000,
    });
    expect(api.lastAudiences).toEqual(['llm-gateway']);
    expect(api.seenBearerTokens).toEqual(['quota-sa-token-1']);
  });

  it('gives an empty pod for a token bound to no pod', async () => {
    expect(await verifier.verify(await issuer.mint({ namespace: 'team-a', serviceAccount: 'batch' }))).toMatchObject({ subject: 'team-a/batch', pod: '' });
  });

  it('passes on the API server\'s refusal as rejected, without the token it echoes', async () => {
    const stranger = createTokenIssuer({ clock });
    const { reason, message } = await refusal(verifier, await stranger.mint(WORKER));
    expect(reason).toBe('rejected');
    expect(message).toMatch(/^the API server rejected the token: \[invalid bearer token, /);
    const token = await issuer.mint(WORKER);
    api.rewrite = () => ({ error: `token ${token} is not valid`, user: {} });
    expect(await refusal(verifier, token)).toEqual({ reason: 'rejected', message: 'the API server rejected the token: token [token] is not valid' });
  });

  it('refuses a token the API server authenticated for other audiences only', async () => {
    api.rewrite = (status) => ({ ...status, audiences: [] });
    expect(await refusal(verifier, await issuer.mint(WORKER))).toEqual({
      reason: 'wrong-audience',
      message: 'the API server accepted the token for the audiences [], not "llm-gateway"',
    });
  });

  it('refuses a token of a user that is not a service account', async () => {
    api.rewrite = (status) => ({ ...status, user: { username: 'alice@example.com', groups: ['system:authenticated'] } });
    expect(await refusal(verifier, await issuer.mint(WORKER))).toEqual({
      reason: 'not-a-service-account',
      message: 'the token belongs to the user "alice@example.com", not to a service account',
    });
  });

  it('answers unavailable when the API server fails, and does not remember it', async () => {
    const token = await issuer.mint(WORKER);
    api.mode = 'fail';
    expect(await refusal(verifier, token)).toEqual({ reason: 'unavailable', message: 'the API server answered the TokenReview with HTTP 503' });
    api.mode = 'ok';
    expect((await verifier.verify(token)).subject).toBe('team-a/worker');
    expect(api.requests).toBe(2);
  });

  it('answers unavailable when the API server does not answer in time', async () => {
    api.mode = 'hang';
    const fast = make({ timeoutMs: 200 });
    expect(await refusal(fast, await issuer.mint(WORKER))).toMatchObject({ reason: 'unavailable', message: expect.stringContaining('no answer within 200 ms') });
  });

  it('answers unavailable when nothing listens at the API server address', async () => {
    await api.close();
    expect((await refusal(verifier, await issuer.mint(WORKER))).reason).toBe('unavailable');
    api = await startFakeApiServer({ issuer, clock });
  });

  it('answers unavailable naming the missing RBAC when the API server refuses our own token (401) or forbids reviews (403)', async () => {
    writeFileSync(bearerFile, 'not-our-token');
    const unauthorized = await refusal(make(), await issuer.mint(WORKER));
    expect(unauthorized.reason).toBe('unavailable');
    expect(unauthorized.message).toContain('HTTP 401');
    expect(unauthorized.message).toContain('create on tokenreviews');
    expect(unauthorized.message).toContain('system:auth-delegator');
    expect(unauthorized.message).not.toContain('not-our-token');
    writeFileSync(bearerFile, 'quota-sa-token-1\n');
    api.mode = 'forbid';
    const forbidden = await refusal(verifier, await issuer.mint(WORKER));
    expect(forbidden).toMatchObject({ reason: 'unavailable', message: expect.stringContaining('system:auth-delegator') });
    expect(forbidden.message).toContain('HTTP 403');
  });

  it('reuses an answer: a second verification of the same token makes no request', async () => {
    const token = await issuer.mint(WORKER);
    const first = await verifier.verify(token);
    clock.advance(60_000);
    expect(await verifier.verify(token)).toEqual(first);
    expect(api.requests).toBe(1);
  });

  it('reuses a refusal for 10 s only (the API server may not know a pod that has just started)', async () => {
    const token = await createTokenIssuer({ clock }).mint(WORKER);
    expect((await refusal(verifier, token)).reason).toBe('rejected');
    expect((await refusal(verifier, token)).reason).toBe('rejected');
    expect(api.requests).toBe(1);
    clock.advance(REJECTION_CACHE_MS + 1);
    expect((await refusal(verifier, token)).reason).toBe('rejected');
    expect(api.requests).toBe(2);
  });

  it('keeps a bounded number of reviews in flight: a flood of new tokens is answered unavailable, not queued', async () => {
    expect(MAX_REVIEWS_IN_FLIGHT).toBe(64);
    api.mode = 'hang';
    const bounded = make({ maxReviewsInFlight: 2, timeoutMs: 300 });
    const tokens = await Promise.all([0, 1, 2].map((i) => issuer.mint({ ...WORKER, pod: `p-${i}` })));
    const pending = tokens.slice(0, 2).map((t) => bounded.verify(t).catch((e: unknown) => e));
    const over = await refusal(bounded, tokens[2]!);
    expect(over.reason).toBe('unavailable');
    expect(over.message).toMatch(/2 TokenReviews are under way already/);
    for (const e of await Promise.all(pending)) expect(e).toBeInstanceOf(Error);
    api.mode = 'ok';
    // Once they ended, the next token is reviewed again.
    expect((await bounded.verify(tokens[2]!)).pod).toBe('p-2');
  });

  it('never reuses an answer past the token\'s expiry', async () => {
    const token = await issuer.mint({ ...WORKER, expiresInSeconds: 120 });
    await verifier.verify(token);
    clock.advance(119_000);
    expect((await verifier.verify(token)).subject).toBe('team-a/worker');
    expect(api.requests).toBe(1);
    clock.advance(1_000);
    expect((await refusal(verifier, token)).reason).toBe('expired');
    expect(api.requests).toBe(1);
  });

  it('asks again once cacheMaxMs has passed', async () => {
    const shortCache = make({ cacheMaxMs: 30_000 });
    const token = await issuer.mint(WORKER);
    await shortCache.verify(token);
    clock.advance(29_000);
    await shortCache.verify(token);
    expect(api.requests).toBe(1);
    clock.advance(1_000);
    await shortCache.verify(token);
    expect(api.requests).toBe(2);
  });

  it('drops the oldest answer when the cache is full', async () => {
    const small = make({ cacheMaxEntries: 2 });
    const tokens = await Promise.all(['a', 'b', 'c'].map((sa) => issuer.mint({ namespace: 'team-a', serviceAccount: sa })));
    for (const t of tokens) await small.verify(t);
    await small.verify(tokens[2]!);
    await small.verify(tokens[1]!);
    expect(api.requests).toBe(3);
    expect((await small.verify(tokens[0]!)).serviceAccount).toBe('a');
    expect(api.requests).toBe(4);
  });

  it('makes one request for concurrent verifications of the same token', async () => {
    const token = await issuer.mint(WORKER);
    const identities = await Promise.all(Array.from({ length: 8 }, () => verifier.verify(token)));
    expect(new Set(identities.map((i) => i.subject))).toEqual(new Set(['team-a/worker']));
    expect(api.requests).toBe(1);
  });

  it('refuses a token that is not a JWT, or has no exp, without asking', async () => {
    expect((await refusal(verifier, 'opaque-bearer-token')).reason).toBe('malformed');
    expect((await refusal(verifier, 'aaaaaaaa.bbbbbbbb.cccccccc')).reason).toBe('malformed');
    expect(await refusal(verifier, await issuer.mint({ ...WORKER, overrides: { exp: undefined } }))).toMatchObject({ reason: 'malformed', message: expect.stringContaining('no expiry') });
    expect((await refusal(verifier, '')).reason).toBe('missing');
    expect(api.requests).toBe(0);
  });

  it('re-reads its own rotated token when the API server answers 401, and retries once', async () => {
    await verifier.verify(await issuer.mint(WORKER));
    api.acceptedBearerTokens = ['quota-sa-token-2'];
    writeFileSync(bearerFile, 'quota-sa-token-2\n');
    expect((await verifier.verify(await issuer.mint({ ...WORKER, pod: 'worker-2' }))).pod).toBe('worker-2');
    expect(api.seenBearerTokens).toEqual(['quota-sa-token-1', 'quota-sa-token-1', 'quota-sa-token-2']);
  });

  it('re-reads its own token file after a minute', async () => {
    api.acceptedBearerTokens = ['quota-sa-token-1', 'quota-sa-token-2'];
    await verifier.verify(await issuer.mint(WORKER));
    writeFileSync(bearerFile, 'quota-sa-token-2\n');
    clock.advance(30_000);
    await verifier.verify(await issuer.mint({ ...WORKER, pod: 'worker-2' }));
    clock.advance(30_000);
    await verifier.verify(await issuer.mint({ ...WORKER, pod: 'worker-3' }));
    expect(api.seenBearerTokens).toEqual(['quota-sa-token-1', 'quota-sa-token-1', 'quota-sa-token-2']);
  });
});

describe('inClusterTokenReviewOptions', () => {
  it('points at the kubernetes service with the pod\'s own CA and token', () => {
    expect(inClusterTokenReviewOptions({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' })).toEqual({
      apiServerUrl: 'https://10.96.0.1:443',
      caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
      bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    });
  });

  it('brackets an IPv6 service address', () => {
    expect(inClusterTokenReviewOptions({ KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' }).apiServerUrl).toBe('https://[fd00:10:96::1]:443');
  });

  it('says to use --auth jwks outside a cluster', () => {
    expect(() => inClusterTokenReviewOptions({})).toThrow('--auth kubernetes needs to run in a cluster (KUBERNETES_SERVICE_HOST is not set); use --auth jwks outside one');
    expect(() => inClusterTokenReviewOptions({ KUBERNETES_SERVICE_HOST: '10.96.0.1' })).toThrow('(KUBERNETES_SERVICE_PORT is not set)');
  });
});
