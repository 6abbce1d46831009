// Prices and cost end to end, over real boundaries: the quota service over gRPC with an operator's price
// file over the shipped table, the real sidecar with the fake provider, the official SDKs as callers, the
// built `llmgw` for the usage queries. The sidecar shows each answer's cost by the service's table; the
// service charges by its own table from the tokens, whatever a caller holds; usage is queried by model,
// scope, day and tag in tokens and dollars, by operators and viewers only.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Metadata, credentials, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatUsd } from '../../common/pricing/price-usage.js';
import { loadQuotaProto } from '../../proto/load.js';
import type { LeaseResponse } from '../../proto/messages.js';
import { AdminCallError, QuotaAdminClient } from '../../quota-service/admin-client.js';
import { AdminTokens } from '../../quota-service/auth/admin-tokens.js';
import { createJwksVerifier } from '../../quota-service/auth/jwks-verifier.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { envWithoutKeys, runCli } from '../helpers/cli.js';
import { createTokenIssuer, type TokenIssuer } from '../helpers/sa-tokens.js';
import { APP_KEY, startStack, type Stack } from '../helpers/stack.js';

const ADMIN_TOKEN = 'admin-token-for-pricing-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'llmgw-pricing-'));
// The operator prices a model the shipped table leaves out, and raises the default.
const PRICES = `
default: { input: 20, output: 100 }
models:
  openai:
    gpt-4o-mini: { input: 0.15, cachedInput: 0.075, output: 0.6, source: https://example.com/our-contract }
`;
let issuer: TokenIssuer;
let service: QuotaService;
let addr: string;
let stack: Stack;
const closing: (() => Promise<void> | void)[] = [];

/** Nano-USD of tokens at USD-per-million prices (tokens × price × 1000). */
const nano = (tokens: number, usdPerMTok: number): number => Math.round(tokens * usdPerMTok * 1000);
const today = (): string => new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  issuer = createTokenIssuer();
  const jwksFile = join(dir, 'jwks.json');
  issuer.writeJwks(jwksFile);
  const pricesFile = join(dir, 'prices.yaml');
  writeFileSync(pricesFile, PRICES);
  service = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: pino({ level: 'silent' }),
    auth: {
      mode: 'jwks',
      verifier: createJwksVerifier({ jwks: jwksFile, issuer: issuer.issuer, audience: 'llm-gateway' }),
      adminTokens: new AdminTokens({ tokens: [ADMIN_TOKEN] }),
      viewerSubjects: ['ops/dashboard'],
    },
    pricesFile,
  });
  closing.push(() => service.stop());
  addr = `127.0.0.1:${service.address.port}`;
  await service.allocator.setBudget('namespace/shop', 'day', 10_000_000);
  const tokenFile = join(dir, 'shop-token');
  writeFileSync(tokenFile, await issuer.mint({ namespace: 'shop', serviceAccount: 'web', pod: 'shop-1' }));
  stack = await startStack({
    config: (raw) => ({ ...raw, storage: { path: join(dir, 'sidecar.db') }, cache: { ttlSeconds: 600 }, quota: { address: addr, tokenFile } }),
  });
  closing.push(() => stack.close());
});
afterAll(async () => {
  for (const c of closing.splice(0).reverse()) await c();
});

/** What the sidecar served, as the providers reported it: the service's consumption must price the same tokens. */
const served = { miniNano: 0, haikuNano: 0, llamaNano: 0, llamaTokens: 0, tokens: 0, byFeature: {} as Record<string, number> };

describe('cost per request', () => {
  it('shows a non-streaming answer\'s cost by the service\'s table in x-llmgw-cost-usd, 0 on a cache hit, none on a stream', async () => {
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'A long shared context [fake:cached] and a question about prices' }] };
    const { data, response } = await openai.chat.completions.create(body, { headers: { 'x-llmgw-tags': 'feature=search' } }).withResponse();
    const u = data.usage!;
    const cached = u.prompt_tokens_details!.cached_tokens!;
    expect(cached).toBeGreaterThan(0);
    // Priced by the operator's entry, which only the service holds: the sidecar got it with its lease.
    const cost = nano(u.prompt_tokens - cached, 0.15) + nano(cached, 0.075) + nano(u.completion_tokens, 0.6);
    expect(response.headers.get('x-llmgw-cache')).toBe('MISS');
    expect(response.headers.get('x-llmgw-cost-usd')).toBe(formatUsd(cost));
    served.miniNano += cost;
    served.byFeature.search = cost;
    served.tokens += u.total_tokens;

    const again = await openai.chat.completions.create(body).withResponse();
    expect(again.response.headers.get('x-llmgw-cache')).toBe('HIT');
    expect(again.response.headers.get('x-llmgw-cost-usd')).toBe('0');

    const stream = await openai.chat.completions.create({ ...body, messages: [{ role: 'user', content: 'a streamed question' }], stream: true, stream_options: { include_usage: true } }).withResponse();
    expect(stream.response.headers.get('x-llmgw-cost-usd')).toBeNull();
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream.data) usage = chunk.usage ?? usage;
    const streamCost = nano(usage!.prompt_tokens, 0.15) + nano(usage!.completion_tokens, 0.6);
    served.miniNano += streamCost;
    served.tokens += usage!.total_tokens;
    // The access log carries every answer's cost, the stream's (known at its end) included.
    const lines = stack.logs.filter((l) => l.msg === 'request' && l.model === 'gpt-4o-mini');
    expect(lines.map((l) => [l.stream, l.cache, l.costUsd])).toEqual([
      [false, 'MISS', cost / 1e9],
      [false, 'HIT', 0],
      [true, 'MISS', streamCost / 1e9],
    ]);
  });

  it('prices Anthropic answers with cache reads and writes by the shipped entry the service keeps', async () => {
    const anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
    const { data, response } = await anthropic.messages
      .create({ model: 'claude-haiku', max_tokens: 40, messages: [{ role: 'user', content: 'Hello [fake:cached] there, and [fake:cache-write] this too' }] }, { headers: { 'x-llmgw-tags': 'feature=chat' } })
      .withResponse();
    const u = data.usage;
    expect(u.cache_creation_input_tokens).toBeGreaterThan(0);
    // claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 cache write, $5 output.
    const cost = nano(u.input_tokens, 1) + nano(u.cache_read_input_tokens!, 0.1) + nano(u.cache_creation_input_tokens!, 1.25) + nano(u.output_tokens, 5);
    expect(response.headers.get('x-llmgw-cost-usd')).toBe(formatUsd(cost));
    served.haikuNano += cost;
    served.byFeature.chat = cost;
    served.tokens += u.input_tokens + u.cache_read_input_tokens! + u.cache_creation_input_tokens! + u.output_tokens;
  });

  it('prices a model no table prices at the operator\'s default, never as free', async () => {
    const res = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${APP_KEY}` },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'self-hosted' }] }),
    });
    const answer = (await res.body.json()) as { usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
    const cost = nano(answer.usage.prompt_tokens, 20) + nano(answer.usage.completion_tokens, 100);
    expect(res.headers['x-llmgw-cost-usd']).toBe(formatUsd(cost));
    served.llamaNano += cost;
    served.llamaTokens += answer.usage.total_tokens;
    served.tokens += answer.usage.total_tokens;
  });
});

describe('what the service charges', () => {
  it('keeps tokens and dollars per model, priced by its own table: budget usage --by model', async () => {
    // The drain gives the leases back with the last usage.
    await stack.close();
    closing.pop();
    const args = ['budget', 'usage', 'namespace/shop', '--quota-addr', addr, '--token', ADMIN_TOKEN];
    const r = await runCli([...args, '--by', 'model', '--output', 'json'], envWithoutKeys());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const u = JSON.parse(r.stdout) as { by: string; windows: { windowStart: string; used: number; costUsd: number; byModel: { provider: string; model: string; used: number; costUsd: number }[] }[] };
    expect(u.by).toBe('model');
    const [w] = u.windows;
    expect(w!.used).toBe(served.tokens);
    const rows = Object.fromEntries(w!.byModel.map((m) => [`${m.provider}/${m.model}`, m]));
    expect(rows['openai/gpt-4o-mini']!.costUsd).toBe(Number(formatUsd(served.miniNano)));
    expect(rows['anthropic/claude-haiku-4-5']!.costUsd).toBe(Number(formatUsd(served.haikuNano)));
    expect(rows['openai-compatible/llama-3.1-8b']!.used).toBe(served.llamaTokens);
    expect(rows['openai-compatible/llama-3.1-8b']!.costUsd).toBe(Number(formatUsd(served.llamaNano)));
    expect(w!.costUsd).toBe(Number(formatUsd(served.miniNano + served.haikuNano + served.llamaNano)));

    const table = await runCli([...args, '--by', 'model'], envWithoutKeys());
    expect(table.stdout).toMatch(/^WINDOW START \(UTC\)\s+WINDOW END \(UTC\)\s+PROVIDER\s+MODEL\s+USED\s+INPUT\s+CACHED INPUT\s+CACHE WRITE\s+OUTPUT\s+COST \(USD\)$/m);
    expect(table.stdout).toMatch(new RegExp(`^\\s+anthropic\\s+claude-haiku-4-5\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+\\s+${formatUsd(served.haikuNano).replace('.', '\\.')}$`, 'm'));
  });

  it('breaks a namespace down by its services and by day, since a date', async () => {
    const base = ['budget', 'usage', 'namespace/shop', '--quota-addr', addr, '--token', ADMIN_TOKEN, '--output', 'json'];
    const byScope = JSON.parse((await runCli([...base, '--by', 'scope'], envWithoutKeys())).stdout) as { windows: { byScope: { scope: string; used: number }[] }[] };
    expect(byScope.windows[0]!.byScope.map((s) => [s.scope, s.used])).toEqual([
      ['namespace/shop', served.tokens],
      ['namespace/shop/service/web', served.tokens],
    ]);
    const byDay = JSON.parse((await runCli([...base, '--by', 'day', '--since', '3d'], envWithoutKeys())).stdout) as { window: string; windows: { windowStart: string }[] };
    expect(byDay.window).toBe('day');
    expect(byDay.windows).toHaveLength(4);
    expect(byDay.windows[0]!.windowStart).toBe(`${today()}T00:00:00Z`);
    const sinceDate = JSON.parse((await runCli([...base, '--window', 'hour', '--since', today()], envWithoutKeys())).stdout) as { windows: unknown[] };
    expect(sinceDate.windows).toHaveLength(new Date().getUTCHours() + 1);
    const byTag = JSON.parse((await runCli([...base, '--by', 'tag', 'feature'], envWithoutKeys())).stdout) as { tag: string; windows: { byTag: { value: string; costUsd: number }[]; untaggedCostUsd: number }[] };
    expect(byTag.tag).toBe('feature');
    expect(Object.fromEntries(byTag.windows[0]!.byTag.map((t) => [t.value, t.costUsd]))).toEqual({ search: Number(formatUsd(served.byFeature.search!)), chat: Number(formatUsd(served.byFeature.chat!)) });
    expect(byTag.windows[0]!.untaggedCostUsd).toBe(Number(formatUsd(served.miniNano + served.haikuNano + served.llamaNano - served.byFeature.search! - served.byFeature.chat!)));
    const alias = await runCli([...base, '--by-tag', 'feature'], envWithoutKeys());
    expect(JSON.parse(alias.stdout)).toEqual(byTag);
    const bad = await runCli([...base, '--by', 'colour'], envWithoutKeys());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--by: expected model, scope, day or tag KEY, got "colour"');
    const future = await runCli([...base, '--since', '2999-01-01'], envWithoutKeys());
    expect(future.code).toBe(2);
    expect(future.stderr).toContain('--since: 2999-01-01 is in the future');
  });

  it('charges a caller by its own table from the tokens, whatever version the caller says it holds', async () => {
    const { QuotaService } = loadQuotaProto();
    const client = new QuotaService(addr, credentials.createInsecure()) as Client & Record<string, Function>;
    closing.push(() => client.close());
    const token = await issuer.mint({ namespace: 'tamper', serviceAccount: 'bot', pod: 'tamper-1' });
    const call = <Res>(method: string, req: object): Promise<Res> =>
      new Promise((resolve, reject) => {
        const md = new Metadata();
        md.set('authorization', `Bearer ${token}`);
        client[method]!(req, md, { deadline: Date.now() + 5000 }, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
      });
    const empty = { namespace: '', service: '', team: '', pod: '' };
    const lease = await call<LeaseResponse>('AcquireLease', { identity: empty, priority: 'PRIORITY_INTERACTIVE', incarnation: 'tamper-inc', needTokens: 0, pricesVersion: 'a-table-of-zeros' });
    expect(lease.prices!.version).toBe(lease.pricesVersion);
    expect(lease.prices!.models.find((m) => m.model === 'gpt-4o-mini')!.prices).toEqual({ input: 0.15, cachedInput: 0.075, cacheWrite: 0.15, output: 0.6, reasoning: 0.6 });
    const held = await call<LeaseResponse>('RenewLease', { leaseId: lease.leaseId, pricesVersion: lease.pricesVersion, reports: [] });
    expect(held.prices).toBeNull();
    // claude-opus-4-5, 10,000 in (all of it claimed as cached) and 1,000 out; and 500 tokens it gives no kinds for.
    await call('RenewLease', {
      leaseId: lease.leaseId,
      pricesVersion: 'a-table-of-zeros',
      reports: [
        { sequence: 1, tokens: 11_000, startedAtMs: Date.now(), providerType: 'anthropic', upstreamModel: 'claude-opus-4-5', inputTokens: 10_000, cachedInputTokens: 10_000, outputTokens: 1000 },
        { sequence: 2, tokens: 500, startedAtMs: Date.now(), providerType: 'anthropic', upstreamModel: 'claude-opus-4-5' },
      ],
    });
    const admin = new QuotaAdminClient(addr, { token: ADMIN_TOKEN });
    closing.push(() => admin.close());
    const [w] = (await admin.getUsage('namespace/tamper', 'WINDOW_DAY', 1)).windows;
    // 10,000 × 0.50 + 1,000 × 25, and the 500 unexplained at the highest rate ($25).
    expect(w!.costNanoUsd).toBe(nano(10_000, 0.5) + nano(1000, 25) + nano(500, 25));
  });
});

describe('who may read usage', () => {
  it('lets a viewer read usage by model, and refuses a tenant and a caller without a credential', async () => {
    const viewer = new QuotaAdminClient(addr, { token: await issuer.mint({ namespace: 'ops', serviceAccount: 'dashboard' }) });
    const tenant = new QuotaAdminClient(addr, { token: await issuer.mint({ namespace: 'shop', serviceAccount: 'web' }) });
    const nobody = new QuotaAdminClient(addr);
    closing.push(() => viewer.close(), () => tenant.close(), () => nobody.close());
    const u = await viewer.getUsage('namespace/shop', 'WINDOW_DAY', 1, '', { by: 'model' });
    expect(u.windows[0]!.byModel!.map((m) => m.model).sort()).toEqual(['claude-haiku-4-5', 'gpt-4o-mini', 'llama-3.1-8b']);
    const refused = async (p: Promise<unknown>): Promise<AdminCallError> => p.then(() => { throw new Error('not refused'); }, (e: AdminCallError) => e);
    const t = await refused(tenant.getUsage('namespace/shop', 'WINDOW_DAY', 1, '', { by: 'scope' }));
    expect(t.code).toBe(grpcStatus.PERMISSION_DENIED);
    const n = await refused(nobody.getUsage('namespace/shop', 'WINDOW_DAY', 1, '', { by: 'model' }));
    expect(n.code).toBe(grpcStatus.UNAUTHENTICATED);
    const cli = await runCli(['budget', 'usage', 'namespace/shop', '--by', 'model', '--quota-addr', addr], envWithoutKeys());
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('the quota service refused the call (UNAUTHENTICATED)');
  });
});

describe('metrics and the price file', () => {
  it('counts unpriced tokens under a bounded model label, and cost per budgeted scope', async () => {
    const text = await (await request(`http://127.0.0.1:${service.statusAddress.port}/metrics`)).body.text();
    expect(text).toContain(`llmgw_quota_unpriced_tokens_total{model="other"} ${served.llamaTokens}`);
    const cost = /llmgw_quota_cost_usd_total\{scope="namespace\/shop"\} ([\d.e-]+)/.exec(text);
    expect(Number(cost![1])).toBeCloseTo((served.miniNano + served.haikuNano + served.llamaNano) / 1e9, 9);
    expect(text).not.toMatch(/llmgw_quota_cost_usd_total\{scope="namespace\/tamper"\}/);
  });

  it('exposes every budget\'s current use and limit for alerts, and forgets a deleted budget', async () => {
    const scrape = async (): Promise<string> => (await request(`http://127.0.0.1:${service.statusAddress.port}/metrics`)).body.text();
    await service.allocator.setBudget('team/alerts', 'hour', 5_000);
    const shop = (await service.allocator.listBudgets()).find((b) => b.scope === 'namespace/shop' && b.window === 'day')!;
    expect(shop.used).toBeGreaterThan(0);
    let text = await scrape();
    expect(text).toContain(`llmgw_quota_budget_used{scope="namespace/shop",window="day",unit="tokens"} ${shop.used}`);
    expect(text).toContain('llmgw_quota_budget_limit{scope="namespace/shop",window="day",unit="tokens"} 10000000');
    expect(text).toContain('llmgw_quota_budget_limit{scope="team/alerts",window="hour",unit="tokens"} 5000');
    expect(text).toContain('llmgw_quota_budget_used{scope="team/alerts",window="hour",unit="tokens"} 0');
    await service.allocator.deleteBudget('team/alerts', 'hour');
    text = await scrape();
    expect(text).not.toContain('scope="team/alerts"');
  });

  it('refuses to start the quota service with a bad price file, naming every problem', async () => {
    const bad = join(dir, 'bad-prices.yaml');
    writeFileSync(bad, 'default: { input: 0, output: 0 }\nmodels: { openai: { gpt-4o: { input: cheap, output: 1 } } }\n');
    const r = await runCli(['quota-service', '--auth', 'none', '--db', join(dir, 'never.db'), '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--prices', bad], envWithoutKeys());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`llmgw: --prices ${bad}: default: the default price must not be free`);
    expect(r.stderr).toContain(`llmgw: --prices ${bad}: models.openai.gpt-4o.input: expected a number`);
  });
});
