import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJwksVerifier, type JwksVerifierOptions } from '../../../../quota-service/auth/jwks-verifier.js';
import type { TokenVerifier } from '../../../../quota-service/auth/token-verifier.js';
import { fakeClock, type FakeClock } from '../../../helpers/fake-clock.js';
import { createTokenIssuer, tokenRefusal, type TokenIssuer } from '../../../helpers/sa-tokens.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const WORKER = { namespace: 'team-a', serviceAccount: 'worker', pod: 'worker-7d9f8-x2x4q' };

const refusal = tokenRefusal;

/** base64url JSON, for hand-built tokens. */
const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('createJwksVerifier with a JWKS file', () => {
  let clock: FakeClock;
  let issuer: TokenIssuer;
  let jwksFile: string;
  let verifier: TokenVerifier;
  let reloads: { result: 'ok' | 'failed'; err?: Error }[];
  let reloadWaiter: (() => void) | undefined;

  const make = (extra: Partial<JwksVerifierOptions> = {}): TokenVerifier =>
    createJwksVerifier({
      jwks: jwksFile,
      issuer: ISSUER,
      audience: 'llm-gateway',
      clock,
      pollIntervalMs: 20,
      onReload: (result, err) => {
        reloads.push({ result, ...(err ? { err } : {}) });
        reloadWaiter?.();
      },
      ...extra,
    });
  const nextReload = async (): Promise<{ result: 'ok' | 'failed'; err?: Error }> => {
    const before = reloads.length;
    while (reloads.length === before) await new Promise<void>((resolve) => (reloadWaiter = resolve));
    return reloads[reloads.length - 1]!;
  };

  beforeEach(() => {
    clock = fakeClock();
    issuer = createTokenIssuer({ issuer: ISSUER, clock });
    jwksFile = join(mkdtempSync(join(tmpdir(), 'llmgw-jwks-')), 'jwks.json');
    issuer.writeJwks(jwksFile);
    reloads = [];
    verifier = make();
  });
  afterEach(() => verifier.close());

  it('returns the namespace, service account, pod, subject and expiry of a valid projected token', async () => {
    const token = await issuer.mint({ ...WORKER, expiresInSeconds: 3600 });
    expect(await verifier.verify(token)).toEqual({
      namespace: 'team-a',
      serviceAccount: 'worker',
      pod: 'worker-7d9f8-x2x4q',
      subject: 'team-a/worker',
      expiresAtMs: clock.now() + 3_600_000,
    });
  });

  it('gives an empty pod for a token bound to no pod', async () => {
    const token = await issuer.mint({ namespace: 'team-a', serviceAccount: 'batch' });
    expect(await verifier.verify(token)).toMatchObject({ subject: 'team-a/batch', pod: '' });
  });

  it('refuses an expired token, saying when it expired, and allows 30 s of clock skew', async () => {
    const token = await issuer.mint({ ...WORKER, expiresInSeconds: 600 });
    const expiredAt = new Date(clock.now() + 600_000).toISOString().replace('.000Z', 'Z');
    clock.advance(600_000 + 29_000);
    expect((await verifier.verify(token)).subject).toBe('team-a/worker');
    clock.advance(2_000);
    expect(await refusal(verifier, token)).toEqual({ reason: 'expired', message: `the token expired at ${expiredAt}` });
  });

  it('refuses a token that is not valid yet', async () => {
    const token = await issuer.mint({ ...WORKER, notBeforeInSeconds: 120 });
    expect((await refusal(verifier, token)).reason).toBe('not-yet-valid');
    clock.advance(120_000);
    expect((await verifier.verify(token)).namespace).toBe('team-a');
  });

  it('refuses a token for another audience, naming both', async () => {
    const token = await issuer.mint({ ...WORKER, audience: ['api'] });
    expect(await refusal(verifier, token)).toEqual({ reason: 'wrong-audience', message: 'the token\'s audience is ["api"], not "llm-gateway"' });
  });

  it('accepts a token whose audiences include ours among others', async () => {
    const token = await issuer.mint({ ...WORKER, audience: ['https://kubernetes.default.svc', 'llm-gateway'] });
    expect((await verifier.verify(token)).subject).toBe('team-a/worker');
  });

  it('refuses a token from another issuer when an issuer is configured, and accepts it when none is', async () => {
    const token = await issuer.mint({ ...WORKER, issuer: 'https://oidc.eks.example.com/id/1234' });
    expect(await refusal(verifier, token)).toEqual({
      reason: 'wrong-issuer',
      message: `the token's issuer is "https://oidc.eks.example.com/id/1234", not "${ISSUER}"`,
    });
    const anyIssuer = make({ issuer: undefined });
    expect((await anyIssuer.verify(token)).subject).toBe('team-a/worker');
    anyIssuer.close();
  });

  it('refuses a token whose payload was changed after signing', async () => {
    const [header, payload, signature] = (await issuer.mint(WORKER)).split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, { namespace: string }>;
    claims['kubernetes.io']!.namespace = 'kube-system';
    expect((await refusal(verifier, `${header}.${b64(claims)}.${signature}`)).reason).toBe('bad-signature');
  });

  it('refuses a token signed by a key the JWKS does not hold', async () => {
    const stranger = createTokenIssuer({ issuer: ISSUER, clock });
    const { reason, message } = await refusal(verifier, await stranger.mint(WORKER));
    expect(reason).toBe('bad-signature');
    expect(message).toContain(`kid "${stranger.kid}"`);
  });

  it('refuses an unsigned (alg none) token', async () => {
    const now = Math.floor(clock.now() / 1000);
    const token = new UnsecuredJWT({ aud: ['llm-gateway'], iss: ISSUER, exp: now + 600, 'kubernetes.io': { namespace: 'team-a', serviceaccount: { name: 'worker' } } }).encode();
    expect(await refusal(verifier, token)).toMatchObject({ reason: 'bad-signature', message: expect.stringContaining('"none"') });
  });

  it('refuses an HS256 token, even one MACed with the public JWKS and naming a real kid', async () => {
    const now = Math.floor(clock.now() / 1000);
    const token = await new SignJWT({ aud: ['llm-gateway'], iss: ISSUER, exp: now + 600, 'kubernetes.io': { namespace: 'team-a', serviceaccount: { name: 'worker' } } })
      .setProtectedHeader({ alg: 'HS256', kid: issuer.kid })
      .sign(new TextEncoder().encode(JSON.stringify(issuer.jwks)));
    expect(await refusal(verifier, token)).toMatchObject({ reason: 'bad-signature', message: expect.stringContaining('"HS256"') });
  });

  it('refuses a signed token without the kubernetes.io service-account claims', async () => {
    expect((await refusal(verifier, await issuer.mint({ ...WORKER, overrides: { 'kubernetes.io': undefined } }))).reason).toBe('not-a-service-account');
    const noName = await issuer.mint({ ...WORKER, overrides: { 'kubernetes.io': { namespace: 'team-a', serviceaccount: { uid: 'x' } } } });
    expect((await refusal(verifier, noName)).reason).toBe('not-a-service-account');
    const slash = await issuer.mint({ ...WORKER, overrides: { 'kubernetes.io': { namespace: 'team-a/service/x', serviceaccount: { name: 'worker' } } } });
    expect((await refusal(verifier, slash)).reason).toBe('not-a-service-account');
  });

  it('refuses a signed token without exp', async () => {
    const token = await issuer.mint({ ...WORKER, overrides: { exp: undefined } });
    expect(await refusal(verifier, token)).toMatchObject({ reason: 'malformed', message: expect.stringContaining('no expiry') });
  });

  it('says missing for an empty token and malformed for one that is not a JWT', async () => {
    expect((await refusal(verifier, '')).reason).toBe('missing');
    expect((await refusal(verifier, 'not-a-jwt')).reason).toBe('malformed');
    expect((await refusal(verifier, `${b64({ alg: 'ES256' })}.%%%.abc`)).reason).toBe('malformed');
    expect((await refusal(verifier, `${b64({ alg: 'ES256' })}.${'A'.repeat(20_000)}.abc`)).reason).toBe('malformed');
  });

  it('takes up a rotated JWKS file: tokens of the new key pass, those of the removed key are refused', async () => {
    const oldToken = await issuer.mint(WORKER);
    await issuer.rotateKey();
    const newToken = await issuer.mint(WORKER);
    expect((await refusal(verifier, newToken)).reason).toBe('bad-signature');
    issuer.writeJwks(jwksFile);
    expect((await nextReload()).result).toBe('ok');
    expect((await verifier.verify(newToken)).subject).toBe('team-a/worker');
    expect((await refusal(verifier, oldToken)).reason).toBe('bad-signature');
  });

  it('accepts tokens of both keys while the JWKS still publishes the previous one', async () => {
    const oldToken = await issuer.mint(WORKER);
    await issuer.rotateKey({ keepPrevious: true });
    issuer.writeJwks(jwksFile);
    expect((await nextReload()).result).toBe('ok');
    expect((await verifier.verify(oldToken)).subject).toBe('team-a/worker');
    expect((await verifier.verify(await issuer.mint(WORKER))).subject).toBe('team-a/worker');
  });

  it('keeps the last good key set when the file is replaced with garbage, and says so', async () => {
    const token = await issuer.mint(WORKER);
    writeFileSync(jwksFile, '{"keys": [ this is not json');
    const reload = await nextReload();
    expect(reload.result).toBe('failed');
    expect(reload.err?.message).toContain(jwksFile);
    expect((await verifier.verify(token)).subject).toBe('team-a/worker');
    writeFileSync(jwksFile, JSON.stringify({ keys: [] }));
    expect((await nextReload()).result).toBe('failed');
    expect((await verifier.verify(token)).subject).toBe('team-a/worker');
  });

  it('refuses to start on a JWKS file that is not one, naming the file', () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'llmgw-jwks-')), 'jwks.json');
    writeFileSync(bad, 'garbage');
    expect(() => make({ jwks: bad })).toThrow(`JWKS file ${bad}: not JSON`);
    expect(() => make({ jwks: `${bad}.missing` })).toThrow(/ENOENT/);
  });
});

describe('createJwksVerifier with a JWKS URL', () => {
  let server: Server | undefined;
  afterEach(async () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('fetches the key set from the URL and verifies against it', async () => {
    const clock = fakeClock(Date.now());
    const issuer = createTokenIssuer({ issuer: ISSUER, alg: 'RS256', clock });
    let fetches = 0;
    server = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const verifier = createJwksVerifier({ jwks: `http://127.0.0.1:${port}/openid/v1/jwks`, issuer: ISSUER, audience: 'llm-gateway', clock });
    expect((await verifier.verify(await issuer.mint(WORKER))).subject).toBe('team-a/worker');
    expect((await verifier.verify(await issuer.mint(WORKER))).pod).toBe(WORKER.pod);
    expect(fetches).toBe(1);
    verifier.close();
  });

  it('keeps verifying with the last fetched key set while the URL is down', async () => {
    const clock = fakeClock(Date.now());
    const issuer = createTokenIssuer({ issuer: ISSUER, clock });
    server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks)));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const verifier = createJwksVerifier({ jwks: `http://127.0.0.1:${port}/jwks`, audience: 'llm-gateway', clock, urlCacheMaxAgeMs: 20 });
    expect((await verifier.verify(await issuer.mint(WORKER))).subject).toBe('team-a/worker');
    server.closeAllConnections();
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect((await verifier.verify(await issuer.mint(WORKER))).subject).toBe('team-a/worker');
    expect((await refusal(verifier, await createTokenIssuer({ clock }).mint(WORKER))).reason).toBe('bad-signature');
    verifier.close();
  });

  it('answers unavailable, not a refusal, when the JWKS URL cannot be reached', async () => {
    const clock = fakeClock(Date.now());
    const issuer = createTokenIssuer({ issuer: ISSUER, clock });
    server = createServer();
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const verifier = createJwksVerifier({ jwks: `http://127.0.0.1:${port}/jwks`, audience: 'llm-gateway', clock });
    expect(await refusal(verifier, await issuer.mint(WORKER))).toMatchObject({ reason: 'unavailable', message: expect.stringContaining(`127.0.0.1:${port}`) });
    verifier.close();
  });
});
