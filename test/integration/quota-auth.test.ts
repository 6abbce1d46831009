// Who may call the quota service, over real gRPC: sidecars authenticate with projected service-account
// tokens (signed by a test issuer and checked against its JWKS file, or judged by a fake API server through
// TokenReview), the identity comes from the token and never from the message, incarnations and leases
// belong to their first owner, and the admin API needs an operator credential. Each refusal is checked to
// change nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, credentials, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadQuotaProto } from '../../proto/load.js';
import type { LeaseResponse } from '../../proto/messages.js';
import { AdminCallError, QuotaAdminClient } from '../../quota-service/admin-client.js';
import { AdminTokens } from '../../quota-service/auth/admin-tokens.js';
import { createJwksVerifier } from '../../quota-service/auth/jwks-verifier.js';
import { createTokenReviewVerifier } from '../../quota-service/auth/tokenreview-verifier.js';
import { MAX_LEASES_PER_POD } from '../../quota-service/allocator.js';
import { MAX_NEW_INCARNATIONS_PER_HOUR } from '../../quota-service/ownership.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { startFakeApiServer } from '../helpers/fake-kube-api.js';
import { createTokenIssuer, type TokenIssuer } from '../helpers/sa-tokens.js';
import { eventually, startStack } from '../helpers/stack.js';

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-auth-'));
const closing: (() => Promise<void> | void)[] = [];
let issuer: TokenIssuer;
let service: QuotaService;
let addr: string;

beforeAll(async () => {
  issuer = createTokenIssuer();
  const jwksFile = join(dir, 'jwks.json');
  issuer.writeJwks(jwksFile);
  service = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: pino({ level: 'silent' }),
    auth: {
      mode: 'jwks',
      verifier: createJwksVerifier({ jwks: jwksFile, issuer: issuer.issuer, audience: 'llm-gateway' }),
      adminTokens: new AdminTokens({ tokens: [ADMIN_TOKEN] }),
      adminSubjects: ['ops/budget-bot'],
      viewerSubjects: ['ops/dashboard'],
    },
  });
  addr = `127.0.0.1:${service.address.port}`;
  closing.push(() => service.stop());
});
afterAll(async () => {
  for (const c of closing.splice(0).reverse()) await c();
});

/** A bare QuotaService client that sends whatever metadata and message a test chooses. */
function raw(address = addr) {
  const { QuotaService } = loadQuotaProto();
  const client = new QuotaService(address, credentials.createInsecure()) as Client & Record<string, Function>;
  closing.push(() => client.close());
  return <Res>(method: string, req: object, token?: string): Promise<Res> =>
    new Promise((resolve, reject) => {
      const md = new Metadata();
      if (token !== undefined) md.set('authorization', `Bearer ${token}`);
      client[method]!(req, md, { deadline: Date.now() + 5000 }, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
    });
}

const refusal = (p: Promise<unknown>): Promise<ServiceError> =>
  p.then(
    () => {
      throw new Error('the call was not refused');
    },
    (err: ServiceError) => err,
  );

const tokenOf = (namespace: string, serviceAccount = 'default', pod = `${namespace}-pod`) => issuer.mint({ namespace, serviceAccount, pod });
const empty = { namespace: '', service: '', team: '', pod: '' };
const now = () => Date.now();

async function used(scope: string): Promise<number> {
  const admin = new QuotaAdminClient(addr, { token: ADMIN_TOKEN });
  try {
    return (await admin.getUsage(scope, 'WINDOW_DAY', 1)).windows[0]!.usedTokens;
  } finally {
    admin.close();
  }
}

describe('sidecar identity comes from the verified token', () => {
  it('charges the namespace and service account the token names, filling in what the message leaves empty', async () => {
    const call = raw();
    const token = await tokenOf('alpha', 'chat');
    await service.allocator.setBudget('namespace/alpha', 'day', 100_000);
    const lease = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'alpha-inc', needTokens: 100 }, token);
    expect(lease.unlimited).toBe(false);
    expect(lease.grantedTokens).toBeGreaterThanOrEqual(100);
    await call('RenewLease', { leaseId: lease.leaseId, reports: [{ sequence: 1, tokens: 42, startedAtMs: now() }] }, token);
    expect(await used('namespace/alpha')).toBe(42);
    expect(await used('namespace/alpha/service/chat')).toBe(42);
  });

  it('refuses an Identity message that claims another namespace, service account, pod or a team (PERMISSION_DENIED)', async () => {
    const call = raw();
    const token = await tokenOf('alpha', 'chat', 'alpha-pod');
    const cases = [
      [{ ...empty, namespace: 'victim' }, /identity.namespace "victim" does not match the token's namespace "alpha"/],
      [{ ...empty, namespace: 'alpha', service: 'billing' }, /identity.service "billing" does not match/],
      [{ ...empty, pod: 'other-pod' }, /identity.pod "other-pod" does not match/],
      [{ ...empty, team: 'payments' }, /team membership is operator data/],
    ] as const;
    for (const [identity, message] of cases) {
      const err = await refusal(call('AcquireLease', { identity, priority: 'PRIORITY_INTERACTIVE', incarnation: 'forged', needTokens: 1 }, token));
      expect(err.code).toBe(grpcStatus.PERMISSION_DENIED);
      expect(err.details).toMatch(message);
    }
    const report = await refusal(call('ReportUsage', { identity: { ...empty, namespace: 'victim' }, incarnation: 'forged', reports: [{ sequence: 1, tokens: 900_000, startedAtMs: now() }] }, token));
    expect(report.code).toBe(grpcStatus.PERMISSION_DENIED);
    expect(await used('namespace/victim')).toBe(0);
  });

  it('refuses missing, expired, wrong-audience, wrong-issuer, tampered and foreign tokens (UNAUTHENTICATED, saying which)', async () => {
    const call = raw();
    const good = await tokenOf('alpha');
    const [h, p] = good.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, { namespace: string }>;
    payload['kubernetes.io']!.namespace = 'victim';
    const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${good.split('.')[2]}`;
    const foreign = await createTokenIssuer({ issuer: issuer.issuer }).mint({ namespace: 'alpha', serviceAccount: 'default' });
    const cases: [string | undefined, RegExp][] = [
      [undefined, /missing: no service-account token was sent/],
      [await issuer.mint({ namespace: 'alpha', serviceAccount: 'default', expiresInSeconds: -120 }), /expired: the token expired at/],
      [await issuer.mint({ namespace: 'alpha', serviceAccount: 'default', audience: ['https://kubernetes.default.svc'] }), /wrong-audience/],
      [await issuer.mint({ namespace: 'alpha', serviceAccount: 'default', issuer: 'https://evil.example' }), /wrong-issuer/],
      [tampered, /bad-signature/],
      [foreign, /bad-signature/],
      ['not-a-jwt', /malformed/],
    ];
    for (const [token, message] of cases) {
      const err = await refusal(call('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'x', needTokens: 1 }, token));
      expect(err.code, String(message)).toBe(grpcStatus.UNAUTHENTICATED);
      expect(err.details).toMatch(message);
      if (token !== undefined) expect(err.details).not.toContain(token.split('.')[1]!);
    }
    // Nothing a refused caller sent was applied.
    const forged = await refusal(call('ReportUsage', { identity: empty, incarnation: 'x', reports: [{ sequence: 1, tokens: 900_000, startedAtMs: now() }] }, tampered));
    expect(forged.code).toBe(grpcStatus.UNAUTHENTICATED);
    expect(await used('namespace/victim')).toBe(0);
  });
});

describe('usage reports are bound to their owner', () => {
  it("another tenant can neither renew, release nor report to a sidecar's lease or incarnation, and nothing it sends counts", async () => {
    const call = raw();
    const bravo = await tokenOf('bravo');
    const mallory = await tokenOf('mallory');
    await service.allocator.setBudget('namespace/bravo', 'day', 1_000_000);
    const lease = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'bravo-inc', needTokens: 10 }, bravo);
    await call('RenewLease', { leaseId: lease.leaseId, reports: [{ sequence: 1, tokens: 10, startedAtMs: now() }] }, bravo);
    const attempts = [
      call('RenewLease', { leaseId: lease.leaseId, reports: [{ sequence: 2, tokens: 900_000, startedAtMs: now() }] }, mallory),
      call('ReleaseLease', { leaseId: lease.leaseId, reports: [{ sequence: 2, tokens: 900_000, startedAtMs: now() }] }, mallory),
      call('ReportUsage', { identity: empty, incarnation: 'bravo-inc', reports: [{ sequence: 2, tokens: 900_000, startedAtMs: now() }] }, mallory),
      // Replaying the owner's lease as a new one of the attacker's: the incarnation is not theirs either.
      call('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'bravo-inc', needTokens: 1 }, mallory),
    ];
    // Every refusal is awaited from the start: they may come back in any order.
    const refusals = attempts.map(refusal);
    for (const pending of refusals) {
      const err = await pending;
      expect(err.code).toBe(grpcStatus.PERMISSION_DENIED);
      expect(err.details).toMatch(/belongs to another identity/);
    }
    expect(await used('namespace/bravo')).toBe(10);
    expect(await used('namespace/mallory')).toBe(0);
    // The owner's lease still works, and its next report is not taken for a replay.
    const renewed = await call<LeaseResponse>('RenewLease', { leaseId: lease.leaseId, reports: [{ sequence: 2, tokens: 5, startedAtMs: now() }] }, bravo);
    expect(renewed.ackedSequence).toBe(2);
    expect(await used('namespace/bravo')).toBe(15);
  });

  it('refuses a sequence that jumps past the bound (the 9e15 forgery, or a chain of jumps) and still counts the sidecar’s next honest report', async () => {
    const call = raw();
    const token = await tokenOf('charlie');
    const jump = (reports: object[]) => refusal(call('ReportUsage', { identity: empty, incarnation: 'charlie-inc', reports }, token));
    const err = await jump([{ sequence: 9e15, tokens: 1, startedAtMs: now() }]);
    expect(err.code).toBe(grpcStatus.OUT_OF_RANGE);
    expect(err.details).toMatch(/jumps more than 10000 past 0/);
    const chain = await jump([5000, 10_000, 15_000].map((sequence) => ({ sequence, tokens: 1, startedAtMs: now() })));
    expect(chain.code).toBe(grpcStatus.OUT_OF_RANGE);
    expect(chain.details).toMatch(/report sequence 15000 jumps/);
    const ok = await call<{ ackedSequence: number }>('ReportUsage', { identity: empty, incarnation: 'charlie-inc', reports: [{ sequence: 1, tokens: 30, startedAtMs: now() }] }, token);
    expect(ok.ackedSequence).toBe(1);
    expect(await used('namespace/charlie')).toBe(30);
    for (const bad of [
      { sequence: 2, tokens: 60_000_000, startedAtMs: now() },
      { sequence: 2, tokens: -5, startedAtMs: now() },
      { sequence: 0, tokens: 5, startedAtMs: now() },
      // Tokens by kind are bounded too, and the cached and cache-write parts cannot exceed the input.
      { sequence: 2, tokens: 5, startedAtMs: now(), inputTokens: 60_000_000 },
      { sequence: 2, tokens: 5, startedAtMs: now(), inputTokens: 5, cachedInputTokens: 4, cacheWriteTokens: 4 },
    ]) {
      expect((await refusal(call('ReportUsage', { identity: empty, incarnation: 'charlie-inc', reports: [bad] }, token))).code).toBe(grpcStatus.INVALID_ARGUMENT);
    }
    expect(await used('namespace/charlie')).toBe(30);
    // A start an hour ahead of the service's clock (a skewed node) is charged now, not to a future window.
    await call('ReportUsage', { identity: empty, incarnation: 'charlie-inc', reports: [{ sequence: 2, tokens: 7, startedAtMs: now() + 3_600_000 }] }, token);
    expect(await used('namespace/charlie')).toBe(37);
  });

  it('bounds what one pod can make the service hold: leases, and new incarnations an hour', async () => {
    const call = raw();
    const token = await tokenOf('lima', 'default', 'lima-flood');
    const acquire = (i: number) => call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_BATCH', incarnation: `lima-${i}`, needTokens: 0 }, token);
    for (let i = 0; i < MAX_LEASES_PER_POD; i++) await acquire(i);
    const tooMany = await refusal(acquire(MAX_LEASES_PER_POD));
    expect(tooMany.code).toBe(grpcStatus.RESOURCE_EXHAUSTED);
    // A new lease of an incarnation replaces its old one instead of adding to the count.
    await acquire(3);
    // Incarnations: reports of ever new ones, up to the hourly allowance (17 claimed above).
    let refused: ServiceError | undefined;
    for (let i = 100; i < 100 + MAX_NEW_INCARNATIONS_PER_HOUR && refused === undefined; i++) {
      refused = await call('ReportUsage', { identity: empty, incarnation: `lima-${i}`, reports: [{ sequence: 1, tokens: 1, startedAtMs: now() }] }, token).then(
        () => undefined,
        (e: ServiceError) => e,
      );
    }
    expect(refused?.code).toBe(grpcStatus.RESOURCE_EXHAUSTED);
    expect(refused?.details).toMatch(/more than 60 incarnations this hour/);
  });

  it('flags, in a metric, an incarnation reporting far beyond what its leases covered', async () => {
    const call = raw();
    const token = await tokenOf('delta');
    await service.allocator.setBudget('namespace/delta', 'day', 10_000_000);
    const lease = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'delta-inc', needTokens: 100 }, token);
    await call('RenewLease', { leaseId: lease.leaseId, reports: [{ sequence: 1, tokens: 2_000_000, startedAtMs: now() }] }, token);
    const metrics = await (await fetch(`http://127.0.0.1:${service.statusAddress.port}/metrics`)).text();
    expect(metrics).toMatch(/^llmgw_quota_over_reports_total [1-9]/m);
  });
});

describe('the admin API is an operator’s alone', () => {
  const admin = (token?: string) => {
    const c = new QuotaAdminClient(addr, token === undefined ? {} : { token });
    closing.push(() => c.close());
    return c;
  };
  const denied = async (p: Promise<unknown>, code: grpcStatus, message: RegExp) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AdminCallError);
    expect((err as AdminCallError).code).toBe(code);
    expect((err as AdminCallError).message).toMatch(message);
  };

  it('refuses every call without a credential, and with a wrong token', async () => {
    await denied(admin().setBudget({ scope: 'namespace/echo', window: 'WINDOW_DAY', tokens: 1, floors: null }), grpcStatus.UNAUTHENTICATED, /needs an operator credential: pass --token, --token-file or set LLMGW_ADMIN_TOKEN/);
    await denied(admin().listBudgets(), grpcStatus.UNAUTHENTICATED, /operator credential/);
    await denied(admin('wrong-token-0123456789').deleteBudget('namespace/alpha', 'WINDOW_UNSPECIFIED'), grpcStatus.UNAUTHENTICATED, /not an operator token/);
    expect((await admin(ADMIN_TOKEN).getBudget('namespace/alpha'))[0]!.tokens).toBe(100_000);
  });

  it("lets a tenant's service account read nothing and change nothing, a viewer read but not write, an operator subject do both", async () => {
    const tenant = await tokenOf('alpha');
    await denied(admin(tenant).getBudget('namespace/bravo'), grpcStatus.PERMISSION_DENIED, /alpha\/default is not an operator/);
    await denied(admin(tenant).getUsage('namespace/bravo', 'WINDOW_DAY', 1), grpcStatus.PERMISSION_DENIED, /not an operator/);
    await denied(admin(tenant).setBudget({ scope: 'namespace/alpha', window: 'WINDOW_DAY', tokens: 1e9, floors: null }), grpcStatus.PERMISSION_DENIED, /not an operator/);
    const viewer = await issuer.mint({ namespace: 'ops', serviceAccount: 'dashboard' });
    expect((await admin(viewer).getUsage('namespace/bravo', 'WINDOW_DAY', 1)).windows[0]!.usedTokens).toBe(15);
    await denied(admin(viewer).deleteBudget('namespace/bravo', 'WINDOW_UNSPECIFIED'), grpcStatus.PERMISSION_DENIED, /is a viewer/);
    await denied(admin(viewer).setTeam('core', ['alpha']), grpcStatus.PERMISSION_DENIED, /is a viewer/);
    const operator = await issuer.mint({ namespace: 'ops', serviceAccount: 'budget-bot' });
    expect((await admin(operator).setBudget({ scope: 'namespace/foxtrot', window: 'WINDOW_HOUR', tokens: 5, floors: null })).tokens).toBe(5);
    expect(await service.allocator.getBudgets('namespace/bravo')).toHaveLength(1);
    expect((await service.allocator.getBudgets('namespace/alpha'))[0]!.tokens).toBe(100_000);
  });

  it('maps namespaces to teams as operator data: a lease of a mapped namespace draws on the team budget', async () => {
    const ops = admin(ADMIN_TOKEN);
    await ops.setBudget({ scope: 'team/core', window: 'WINDOW_DAY', tokens: 50, floors: null });
    expect(await ops.setTeam('core', ['golf', 'hotel'])).toEqual({ team: 'core', namespaces: ['golf', 'hotel'] });
    expect(await ops.listTeams()).toContainEqual({ team: 'core', namespaces: ['golf', 'hotel'] });
    const call = raw();
    const token = await tokenOf('golf');
    const big = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'golf-inc', needTokens: 60 }, token);
    expect(big.unlimited).toBe(false);
    expect(big.grantedTokens).toBe(0); // more than team/core's 50 a day
    await call('ReportUsage', { identity: empty, incarnation: 'golf-inc', reports: [{ sequence: 1, tokens: 20, startedAtMs: now() }] }, token);
    expect(await used('team/core')).toBe(20);
    expect(await ops.deleteTeam('core')).toBe(1);
    const after = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'golf-inc-2', needTokens: 60 }, token);
    expect(after.unlimited).toBe(true);
  });
});

describe('the real sidecar authenticates with its token file', () => {
  it('is charged to the namespace its token names, not to POD_NAMESPACE, and picks up a replaced token file', async () => {
    await service.allocator.setBudget('namespace/india', 'day', 1_000_000);
    await service.allocator.setBudget('namespace/victim', 'day', 1_000_000);
    const tokenFile = join(dir, 'india-token');
    // A token of an unknown issuer first: the service refuses it and the sidecar refuses requests (503).
    writeFileSync(tokenFile, await createTokenIssuer().mint({ namespace: 'india', serviceAccount: 'web', pod: 'india-1' }));
    const stack = await startStack({
      env: { POD_NAMESPACE: 'victim', LLMGW_SERVICE: 'billing', POD_NAME: 'india-1' },
      config: (raw) => ({ ...raw, storage: { path: join(dir, 'india.db') }, quota: { address: addr, tokenFile } }),
    });
    closing.push(() => stack.close());
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const ask = () => openai.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'who pays for this?' }] });
    await eventually(async () => {
      const err = (await ask().catch((e: unknown) => e)) as { status?: number; error?: { code?: string; message?: string } };
      expect(err.status).toBe(503);
      expect(err.error?.code).toBe('llmgw_quota_unavailable');
      expect(err.error?.message).toMatch(/refused this pod's credentials/);
    }, 5000);
    writeFileSync(tokenFile, await issuer.mint({ namespace: 'india', serviceAccount: 'web', pod: 'india-1' }));
    let answer: Awaited<ReturnType<typeof ask>> | undefined;
    await eventually(async () => {
      answer = await ask();
    }, 8000);
    const tokens = answer!.usage!.total_tokens;
    await eventually(async () => expect(await used('namespace/india/service/web')).toBe(tokens), 8000);
    expect(await used('namespace/victim')).toBe(0);
    expect(await used('namespace/victim/service/billing')).toBe(0);
  });
});

describe('TokenReview', () => {
  it('leases through the API server’s verdict, caches it, and refuses what the API server refuses', async () => {
    const kubeIssuer = createTokenIssuer();
    const api = await startFakeApiServer({ issuer: kubeIssuer });
    closing.push(() => api.close());
    const ownToken = join(dir, 'quota-sa-token');
    writeFileSync(ownToken, 'quota-service-token');
    const reviewed = await startQuotaService({
      listen: { host: '127.0.0.1', port: 0 },
      statusListen: { host: '127.0.0.1', port: 0 },
      dbPath: join(dir, 'quota-tokenreview.db'),
      logger: pino({ level: 'silent' }),
      auth: { mode: 'kubernetes', verifier: createTokenReviewVerifier({ apiServerUrl: api.url, caFile: api.caFile, bearerTokenFile: ownToken, audience: 'llm-gateway' }) },
    });
    closing.push(() => reviewed.stop());
    await reviewed.allocator.setBudget('namespace/juliet', 'day', 1000);
    const call = raw(`127.0.0.1:${reviewed.address.port}`);
    const token = await kubeIssuer.mint({ namespace: 'juliet', serviceAccount: 'api', pod: 'juliet-7' });
    const lease = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'juliet-inc', needTokens: 50 }, token);
    expect(lease.grantedTokens).toBeGreaterThanOrEqual(50);
    await call('RenewLease', { leaseId: lease.leaseId, reports: [{ sequence: 1, tokens: 50, startedAtMs: now() }] }, token);
    expect(api.requests).toBe(1); // the second call was answered from the cache
    expect(api.lastAudiences).toEqual(['llm-gateway']);
    const forged = await refusal(call('AcquireLease', { identity: { ...empty, namespace: 'kilo' }, priority: 'PRIORITY_INTERACTIVE', incarnation: 'j2', needTokens: 1 }, token));
    expect(forged.code).toBe(grpcStatus.PERMISSION_DENIED);
    const unknown = await refusal(call('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'j3', needTokens: 1 }, await issuer.mint({ namespace: 'juliet', serviceAccount: 'api' })));
    expect(unknown.code).toBe(grpcStatus.UNAUTHENTICATED);
    expect(unknown.details).toMatch(/rejected/);
    api.mode = 'fail';
    const down = await refusal(call('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'j4', needTokens: 1 }, await kubeIssuer.mint({ namespace: 'juliet', serviceAccount: 'api' })));
    expect(down.code).toBe(grpcStatus.UNAVAILABLE);
  });
});
