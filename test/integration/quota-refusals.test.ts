// Every refusal on the wire is truthful (issue 17, item 5): a 429 carries a Retry-After after which the same
// request is admitted, and a request that can never fit by waiting gets its own code (400, no Retry-After)
// naming the limit or budget, its estimate, what is left and the fix. The real sidecar and fake provider,
// the real quota service over gRPC on port 0, the official OpenAI SDK as the app. Sidecars and service
// share a clock that runs in real time but can jump ahead, so a retry "after Retry-After" needs no wait.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../common/clock.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { windowAt } from '../../quota-service/windows.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startFakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { APP_KEY, stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

const silent = pino({ level: 'silent' });
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** Real time, moved to one second into the next minute, and able to jump ahead. */
function jumpingClock(): Clock & { advance(ms: number): void } {
  let offset = windowAt('minute', Date.now()).endMs + 1000 - Date.now();
  return { now: () => Date.now() + offset, monotonic: () => performance.now() + offset, advance: (ms) => void (offset += ms) };
}

async function quotaService(clock: Clock, dir: string, leaseTtlMs = 3000): Promise<QuotaService> {
  const q = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: silent,
    clock,
    leaseTtlMs,
    auth: { mode: 'none' },
  });
  open.push({ close: () => q.stop() });
  return q;
}

/** A sidecar of pod `pod` in namespace default, with its own fake provider; the OpenAI SDK pointed at it. */
async function sidecar(clock: Clock, dir: string, opts: { quota?: QuotaService; rateLimits?: Record<string, unknown>; pod?: string }): Promise<OpenAI> {
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  const pod = opts.pod ?? 'pod-a';
  const raw: Record<string, unknown> = { ...stackConfig(fake.url), storage: { path: join(dir, `${pod}.db`) } };
  if (opts.quota !== undefined) raw.quota = { address: `127.0.0.1:${opts.quota.address.port}`, tokenFile: join(dir, 'no-token') };
  if (opts.rateLimits !== undefined) raw.rateLimits = opts.rateLimits;
  const sc = await startSidecar({
    config: validateConfig(raw, 'test config'),
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    logger: silent,
    clock,
    env: { POD_NAME: pod },
  });
  open.push({
    close: async () => {
      await sc.stop();
      await fake.close();
    },
  });
  return new OpenAI({ baseURL: `http://127.0.0.1:${sc.address.port}/v1`, apiKey: APP_KEY, maxRetries: 0 });
}

/** A chat call: "Hello there" (3 tokens) plus `max_tokens`, or a prompt of `words` words (a token each). */
function chat(client: OpenAI, opts: { max?: number; words?: number; priority?: string } = {}) {
  const content = opts.words === undefined ? 'Hello there' : 'word '.repeat(opts.words).trim();
  return client.chat.completions.create(
    { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...(opts.max === undefined ? {} : { max_tokens: opts.max }) },
    opts.priority === undefined ? {} : { headers: { 'x-llmgw-priority': opts.priority } },
  );
}

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

const earlierUse = (q: QuotaService, tokens: number, at: number) => q.allocator.report({ namespace: 'default', service: '', pod: 'earlier' }, '', `earlier-${at}`, [{ sequence: 1, tokens, startedAtMs: at }]);

describe('truthful refusals of the local rate limits', () => {
  it('answers a request larger than the whole tokens-per-minute bucket with 400 llmgw_request_exceeds_rate_limit, and one that must wait with a Retry-After after which it is admitted', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-refusals-'));
    const client = await sidecar(clock, dir, { rateLimits: { tokensPerMinute: 1000 } });

    const never = await refusal(chat(client, { max: 1200 }));
    expect(never.status).toBe(400);
    expect(never.code).toBe('llmgw_request_exceeds_rate_limit');
    expect(retryAfter(never)).toBeNull();
    expect(never.message).toContain("this request's estimated 1203 tokens");
    expect(never.message).toContain('rateLimits.tokensPerMinute allows in a minute (1000)');
    expect(never.message).toContain('lower max_tokens, or raise rateLimits.tokensPerMinute');

    // A prompt of 750 tokens uses about what it reserves: the second one finds the bucket short.
    await chat(client, { words: 750, max: 5 });
    const wait = await refusal(chat(client, { words: 750, max: 5 }));
    expect(wait.status).toBe(429);
    expect(wait.code).toBe('llmgw_rate_limited');
    const seconds = retryAfter(wait)!;
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(wait.message).toContain(`rateLimits.tokensPerMinute (1000 tokens a minute) has`);
    expect(wait.message).toContain(`retry in ${seconds} s`);
    clock.advance(seconds * 1000);
    const done = await chat(client, { words: 750, max: 5 });
    expect(done.choices[0]!.message.content).toBeTruthy();
  });
});

describe('truthful refusals of global budgets', () => {
  it('answers a request larger than the whole budget window with 400 llmgw_request_exceeds_budget, and serves small ones right after', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-refusals-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/default', 'minute', 500);
    const client = await sidecar(clock, dir, { quota });

    // No max_tokens: the prompt plus quota.defaultOutputTokens (1024).
    const never = await refusal(chat(client));
    expect(never.status).toBe(400);
    expect(never.code).toBe('llmgw_request_exceeds_budget');
    expect(retryAfter(never)).toBeNull();
    expect(never.message).toContain("this request's estimated 1027 tokens");
    expect(never.message).toContain('more than interactive requests may use of budget namespace/default (500 tokens a minute) in a whole minute; 500 are left in this one');
    expect(never.message).toContain('lower max_tokens, or raise the budget (llmgw budget set namespace/default --tokens N --window minute)');
    for (let i = 0; i < 5; i++) expect((await chat(client, { max: 50 })).usage!.total_tokens).toBeGreaterThan(0);

    // A batch request is held to what the batch floor leaves it.
    await quota.allocator.deleteBudget('namespace/default', 'minute');
    await quota.allocator.setBudget('namespace/default', 'day', 1000);
    const batch = await refusal(chat(client, { max: 600, priority: 'batch' }));
    expect(batch.status).toBe(400);
    expect(batch.code).toBe('llmgw_request_exceeds_budget');
    expect(batch.message).toContain('more than batch requests may use of budget namespace/default (1000 tokens a day, of which batch requests may use 500)');
    expect(batch.message).toContain('send it with a higher x-llmgw-priority');
    expect((await chat(client, { max: 400, priority: 'interactive' })).usage!.total_tokens).toBeGreaterThan(0);
  });

  it('meters a Responses request like a chat: estimated from input, instructions and max_output_tokens, settled to its usage', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-refusals-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/default', 'minute', 500);
    const client = await sidecar(clock, dir, { quota });
    // "Hello there" and "Be brief." (20 characters, 5 tokens), plus quota.defaultOutputTokens (1024).
    const never = await refusal(client.responses.create({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'Hello there' }));
    expect(never.status).toBe(400);
    expect(never.code).toBe('llmgw_request_exceeds_budget');
    expect(never.message).toContain("this request's estimated 1029 tokens");
    const first = await client.responses.create({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'Hello there', max_output_tokens: 50 }).withResponse();
    const used = first.data.usage!.input_tokens + first.data.usage!.output_tokens;
    const before = Number(first.response.headers.get('x-ratelimit-remaining-tokens'));
    await sleep(50); // the first one settles after its answer went out
    const second = await client.responses.create({ model: 'gpt-4o-mini', input: 'Hello there', max_output_tokens: 50 }).withResponse();
    expect(Number(second.response.headers.get('x-ratelimit-remaining-tokens'))).toBe(before - used);
  });

  it('refuses a request larger than what is left of the window with Retry-After to its end, serves what fits meanwhile, and admits it after', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-refusals-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/default', 'hour', 1000);
    await earlierUse(quota, 700, clock.now());
    const client = await sidecar(clock, dir, { quota });

    const err = await refusal(chat(client, { max: 400 }));
    const end = windowAt('hour', clock.now()).endMs;
    expect(err.status).toBe(429);
    expect(err.code).toBe('llmgw_quota_exhausted');
    const seconds = retryAfter(err)!;
    expect(Math.abs(seconds - (end - clock.now()) / 1000)).toBeLessThanOrEqual(1.5);
    expect(err.message).toContain("budget namespace/default (1000 tokens a hour) has 300 tokens left for interactive requests in this hour, fewer than this request's estimated 403");
    expect(err.message).toContain(`the window resets at ${new Date(end).toISOString().replace('.000Z', 'Z')}: retry in ${seconds} s, or lower max_tokens`);
    expect((await chat(client, { max: 100 })).usage!.total_tokens).toBeGreaterThan(0);

    clock.advance(seconds * 1000);
    expect((await chat(client, { max: 400 })).usage!.total_tokens).toBeGreaterThan(0);
  });

  it('serves small requests within a second of a budget raised after it was spent', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-refusals-'));
    const quota = await quotaService(clock, dir);
    await quota.allocator.setBudget('namespace/default', 'hour', 100);
    await earlierUse(quota, 100, clock.now());
    const client = await sidecar(clock, dir, { quota });
    const spent = await refusal(chat(client, { max: 20 }));
    expect(spent.code).toBe('llmgw_quota_exhausted');
    expect(spent.message).toContain('budget namespace/default (100 tokens a hour) is spent for interactive requests in this hour');
    await quota.allocator.setBudget('namespace/default', 'hour', 1000);
    clock.advance(1000);
    expect((await chat(client, { max: 20 })).usage!.total_tokens).toBeGreaterThan(0);
  });

  it('with two pods sharing a per-minute budget, tells the one refused for the leftover the other holds when it is back, and admits it then', async () => {
    const clock = jumpingClock();
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-refusals-'));
    // Leases renewed every 2 s.
    const quota = await quotaService(clock, dir, 6000);
    await quota.allocator.setBudget('namespace/default', 'minute', 1000);
    const a = await sidecar(clock, dir, { quota, pod: 'pod-a' });
    const b = await sidecar(clock, dir, { quota, pod: 'pod-b' });

    // b reserves 603 and uses a few: it holds the rest for its next requests.
    await chat(b, { max: 600 });
    const err = await refusal(chat(a, { max: 500 }));
    expect(err.status).toBe(429);
    expect(err.code).toBe('llmgw_quota_exhausted');
    expect(err.message).toMatch(/budget namespace\/default \(1000 tokens a minute\) has \d+ tokens left for interactive requests in this minute, but the leases of other pods or classes hold all but \d+ of them, fewer than this request's estimated 503/);
    const seconds = retryAfter(err)!;
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(6); // b renews within 2 s and gives back at once
    await sleep(seconds * 1000);
    expect((await chat(a, { max: 500 })).usage!.total_tokens).toBeGreaterThan(0);
  }, 30_000);
});
