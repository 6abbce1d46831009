// Dollar budgets end to end (issue 20, part 3): the real quota service over gRPC on port 0 with an
// operator's price file, the real sidecar with the fake provider, the official OpenAI SDK as the app. The
// sidecar reserves each request's priced estimate from its lease's dollar balance and settles to its
// priced usage; the service charges the budget by its own table. Refusals are truthful and in dollars; a
// token budget and a dollar budget of one scope both apply; an outage of the service loses no dollar.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../common/clock.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { windowAt } from '../../quota-service/windows.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startFakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { createGrpcQuotaClient } from '../../sidecar/quota/quota-client.js';
import { startSidecar, type Sidecar } from '../../sidecar/sidecar.js';
import { APP_KEY, stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

const silent = pino({ level: 'silent' });
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** gpt-4o-mini at $100 per million input tokens and $200 per million output tokens (only the service's table says so). */
const PRICES = 'models:\n  openai:\n    gpt-4o-mini: { input: 100, output: 200 }\n';
const IN_NANO = 100_000;
const OUT_NANO = 200_000;
const usd = (dollars: number): number => Math.round(dollars * 1e9);

/** Real time, moved to one second into the next minute, and able to jump ahead. */
function jumpingClock(): Clock & { advance(ms: number): void } {
  let offset = windowAt('minute', Date.now()).endMs + 1000 - Date.now();
  return { now: () => Date.now() + offset, monotonic: () => performance.now() + offset, advance: (ms) => void (offset += ms) };
}

async function quotaService(clock: Clock, dir: string, port = 0): Promise<QuotaService> {
  const pricesFile = join(dir, 'prices.yaml');
  writeFileSync(pricesFile, PRICES);
  const q = await startQuotaService({
    listen: { host: '127.0.0.1', port },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: silent,
    clock,
    leaseTtlMs: 3000,
    auth: { mode: 'none' },
    pricesFile,
  });
  open.push({ close: () => q.stop() });
  return q;
}

async function sidecar(clock: Clock, dir: string, quota: QuotaService): Promise<{ client: OpenAI; sc: Sidecar }> {
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  const raw: Record<string, unknown> = {
    ...stackConfig(fake.url),
    storage: { path: join(dir, 'pod-a.db') },
    quota: { address: `127.0.0.1:${quota.address.port}`, tokenFile: join(dir, 'no-token') },
  };
  const sc = await startSidecar({
    config: validateConfig(raw, 'test config'),
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    logger: silent,
    clock,
    env: { POD_NAME: 'pod-a' },
  });
  // Both stop() calls are idempotent: a test may stop them first.
  open.push({
    close: async () => {
      await sc.stop();
      await fake.close();
    },
  });
  return { client: new OpenAI({ baseURL: `http://127.0.0.1:${sc.address.port}/v1`, apiKey: APP_KEY, maxRetries: 0 }), sc };
}

const chat = (client: OpenAI, max: number) => client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: max, messages: [{ role: 'user', content: 'Hello there' }] });

/** What the service's table says a chat answer cost. */
const costOf = (u: OpenAI.CompletionUsage): number => u.prompt_tokens * IN_NANO + u.completion_tokens * OUT_NANO;

async function refusal(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof OpenAI.APIError) return err;
  throw new Error(`expected a refusal, got ${String(err)}`);
}

const retryAfter = (err: InstanceType<typeof OpenAI.APIError>): number | null => {
  const v = err.headers?.get('retry-after');
  return v === null || v === undefined ? null : Number(v);
};

const usdBudget = async (q: QuotaService, scope = 'namespace/default') => (await q.allocator.getBudgets(scope)).find((b) => b.unit === 'usd')!;

describe('dollar budgets', () => {
  it('refuses a request whose priced estimate exceeds the whole budget with 400, spends the rest, then answers 429 with a Retry-After to the window\'s end; the spend is what the service\'s table prices', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-usd-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/default', 'hour', usd(0.05), undefined, 'usd');
    const { client, sc } = await sidecar(clock, dir, quota);

    // "Hello there" is 3 prompt tokens by the sidecar's estimate: 3 × $100 + 1000 × $200 per million = $0.2003.
    const never = await refusal(chat(client, 1000));
    expect(never.status).toBe(400);
    expect(never.code).toBe('llmgw_request_exceeds_budget');
    expect(retryAfter(never)).toBeNull();
    expect(never.message).toContain("this request's estimated cost $0.2003 (its prompt at the input price plus max_tokens at the output price) is more than interactive requests may use of budget namespace/default ($0.05 a hour)");
    expect(never.message).toContain('llmgw budget set namespace/default --usd AMOUNT --window hour');

    let spent = 0;
    let served = 0;
    let err: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        const r = await chat(client, 20);
        spent += costOf(r.usage!);
        served++;
      } catch (e) {
        err = e as InstanceType<typeof OpenAI.APIError>;
      }
    }
    expect(err).toBeDefined();
    expect(err!.status).toBe(429);
    expect(err!.code).toBe('llmgw_quota_exhausted');
    const end = windowAt('hour', clock.now()).endMs;
    const seconds = retryAfter(err!)!;
    expect(Math.abs(seconds - (end - clock.now()) / 1000)).toBeLessThanOrEqual(1.5);
    expect(err!.message).toMatch(/budget namespace\/default \(\$0\.05 a hour\) (is spent|has \$0\.\d+ left) for interactive requests in this hour/);
    expect(err!.message).toContain("this request's estimated cost $0.0043");
    expect(err!.message).toContain(`retry in ${seconds} s`);
    // Each request cost about $0.0019 and reserved $0.0043: at most one estimate is left unspent.
    expect(served).toBeGreaterThan(10);
    await sc.stop(); // its leases go back with the last usage
    const b = await usdBudget(quota);
    expect(b.used).toBe(spent);
    expect(b.used).toBeLessThanOrEqual(usd(0.05));
    expect(b.used).toBeGreaterThanOrEqual(usd(0.05) - usd(0.0043) - usd(0.0019));
    expect(b.usedTokens).toBeGreaterThan(0);
    // The alert series, in USD.
    const metrics = await (await fetch(`http://127.0.0.1:${quota.statusAddress.port}/metrics`)).text();
    expect(metrics).toContain('llmgw_quota_budget_limit{scope="namespace/default",window="hour",unit="usd"} 0.05');
    const used = /llmgw_quota_budget_used\{scope="namespace\/default",window="hour",unit="usd"\} ([\d.e-]+)/.exec(metrics);
    expect(Number(used![1])).toBeCloseTo(spent / 1e9, 9);
  }, 30_000);

  it('applies a token budget and a dollar budget of the same scope: each refuses in its own unit', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-usd-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/default', 'hour', 2000);
    await quota.allocator.setBudget('namespace/default', 'hour', usd(0.5), undefined, 'usd');
    const { client } = await sidecar(clock, dir, quota);
    // 200 prompt tokens: about $0.02 a request.
    const words = 'word '.repeat(200).trim();
    const untilRefused = async (): Promise<InstanceType<typeof OpenAI.APIError>> => {
      for (let i = 0; i < 100; i++) {
        try {
          await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content: words }] });
        } catch (e) {
          return e as InstanceType<typeof OpenAI.APIError>;
        }
      }
      throw new Error('never refused');
    };
    const byTokens = await untilRefused();
    expect(byTokens.status).toBe(429);
    expect(byTokens.message).toContain('budget namespace/default (2000 tokens a hour)');
    const spentByThen = (await usdBudget(quota)).used;
    expect(spentByThen).toBeLessThan(usd(0.5));

    // Tokens plenty from now on: the dollar budget refuses once spent.
    await quota.allocator.setBudget('namespace/default', 'hour', 1_000_000);
    clock.advance(1100); // past the remembered refusal
    const byDollars = await untilRefused();
    expect(byDollars.status).toBe(429);
    expect(byDollars.code).toBe('llmgw_quota_exhausted');
    expect(byDollars.message).toMatch(/budget namespace\/default \(\$0\.50 a hour\) (is spent|has \$0\.\d+ left) for interactive requests in this hour/);
    const [t, u] = await quota.allocator.getBudgets('namespace/default');
    expect(t!.unit).toBe('tokens');
    expect(u!.used).toBeLessThanOrEqual(usd(0.5));
    expect(u!.used).toBeGreaterThan(usd(0.45));
    expect(t!.used).toBe(u!.usedTokens);
  }, 30_000);

  it('loses no dollar across an outage of the quota service: spent within the fail-open share, reported once it is back', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-usd-'));
    let quota = await quotaService(clock, dir);
    const port = quota.address.port;
    await quota.allocator.setBudget('namespace/default', 'day', usd(100), undefined, 'usd');
    const { client, sc } = await sidecar(clock, dir, quota);
    let spent = 0;
    for (let i = 0; i < 10; i++) spent += costOf((await chat(client, 20)).usage!);
    await quota.stop();
    // The service is down: the lease's dollars, then the fail-open share.
    for (let i = 0; i < 20; i++) spent += costOf((await chat(client, 20)).usage!);
    quota = await quotaService(clock, dir, port);
    for (let i = 0; i < 5; i++) spent += costOf((await chat(client, 20)).usage!);
    await sc.stop();
    expect((await usdBudget(quota)).used).toBe(spent);
    // Recorded once: every window the reports were charged to holds the same.
    const [month] = await quota.allocator.usage('namespace/default', 'month', 1);
    expect(month!.costNano).toBe(spent);
  }, 30_000);

  it('charges a caller that sends no dollar fields (an older sidecar) by its own table, and grants it nothing once the dollar window is spent', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-usd-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/legacy', 'hour', usd(0.01), undefined, 'usd');
    const rpc = createGrpcQuotaClient(`127.0.0.1:${quota.address.port}`, { token: () => '' });
    open.push({ close: async () => rpc.close() });
    const identity = { namespace: 'legacy', service: 'old', team: '', pod: 'old-1' };
    // As a sidecar from before dollar budgets asks: tokens only.
    const lease = await rpc.acquire({ identity, priority: 'PRIORITY_INTERACTIVE', incarnation: 'old-inc', needTokens: 100, demandTokensPerSecond: 1 }, 5000);
    expect(lease.grantedTokens).toBeGreaterThanOrEqual(100);
    expect(lease.usd).toBe(false);
    expect(lease.remainingTokens).toBe(-1); // no token budget
    // It spends 40 input and 40 output tokens of gpt-4o-mini, whatever price it holds: $0.012 by the service's table.
    const report = { sequence: 1, tokens: 80, startedAtMs: clock.now(), model: 'gpt-4o-mini', providerType: 'openai', upstreamModel: 'gpt-4o-mini', inputTokens: 40, outputTokens: 40 };
    const spent = await rpc.renew({ leaseId: lease.leaseId, needTokens: 100, demandTokensPerSecond: 1, reports: [report], unusedTokens: 0 }, 5000);
    expect((await usdBudget(quota, 'namespace/legacy')).used).toBe(40 * IN_NANO + 40 * OUT_NANO);
    expect(spent.grantedTokens).toBe(0);
    expect(spent.refusal).toMatchObject({ scope: 'namespace/legacy', window: 'WINDOW_HOUR', unit: 'BUDGET_UNIT_USD', reason: 'REFUSAL_WINDOW_SPENT' });
    const end = windowAt('hour', clock.now()).endMs;
    expect(Math.abs(spent.retryAfterMs - (end - clock.now()))).toBeLessThan(1000);
    // A new lease of it gets nothing either.
    const again = await rpc.acquire({ identity, priority: 'PRIORITY_INTERACTIVE', incarnation: 'old-inc-2', needTokens: 10, demandTokensPerSecond: 1 }, 5000);
    expect(again.grantedTokens).toBe(0);
    expect(again.refusal?.unit).toBe('BUDGET_UNIT_USD');
  }, 30_000);
});
