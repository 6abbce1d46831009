// The sidecar's quota and rate-limit layers on the wire: the real sidecar and fake provider, the real
// quota service over gRPC on port 0, the official SDKs as apps.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { pino } from 'pino';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { APP_KEY, eventually, startStack, type Stack } from '../helpers/stack.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function quotaStack(configure: (quota: Record<string, unknown>) => void = () => undefined): Promise<{ stack: Stack; quota: QuotaService }> {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-sidecar-'));
  const quota = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: pino({ level: 'silent' }),
    leaseTtlMs: 3000,
    auth: { mode: 'none' },
  });
  open.push({ close: () => quota.stop() });
  const stack = await startStack({
    config: (raw) => {
      const q: Record<string, unknown> = { address: `127.0.0.1:${quota.address.port}` };
      configure(q);
      return { ...raw, storage: { path: join(dir, 'sidecar.db') }, quota: q };
    },
  });
  open.push(stack);
  return { stack, quota };
}

const chat = (url: string, headers: Record<string, string> = {}, max = 50) =>
  request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${APP_KEY}`, ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: max, messages: [{ role: 'user', content: 'Hello there' }] }),
  });

const used = async (quota: QuotaService): Promise<number> => (await quota.allocator.usage('namespace/default', 'day', 1))[0]!.used;

describe('global budget in the sidecar', () => {
  it('shows its leases on the status listener: tokens held and lease calls by class', async () => {
    const { stack, quota } = await quotaStack();
    await quota.allocator.setBudget('namespace/default', 'day', 1_000_000);
    for (let i = 0; i < 3; i++) expect((await (await chat(stack.url)).body.text()).length).toBeGreaterThan(0);
    await eventually(async () => {
      const text = await (await request(`${stack.statusUrl}/metrics`)).body.text();
      expect(text).toMatch(/^llmgw_quota_lease_tokens\{priority="interactive"\} [1-9]/m);
      expect(text).toMatch(/^llmgw_quota_lease_calls_total\{[^}]*priority="interactive"[^}]*\} [1-9]/m);
    });
  });

  it('reports the remaining tokens and refuses with 429 llmgw_quota_exhausted once the budget is spent', async () => {
    const { stack, quota } = await quotaStack();
    await quota.allocator.setBudget('namespace/default', 'day', 300);
    let remaining = Infinity;
    let last;
    // Each request reserves 53 tokens and uses 12: about 25 fit.
    for (let i = 0; i < 40; i++) {
      last = await chat(stack.url);
      if (last.statusCode !== 200) break;
      const r = Number(last.headers['x-ratelimit-remaining-tokens']);
      expect(r).toBeLessThanOrEqual(remaining);
      remaining = r;
      await last.body.text();
    }
    expect(last!.statusCode).toBe(429);
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    expect(await last!.body.json()).toMatchObject({ error: { code: 'llmgw_quota_exhausted', type: 'rate_limit_error' } });

    // The Anthropic shape on /v1/messages.
    const anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
    const err = await anthropic.messages.create({ model: 'claude-haiku', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(JSON.stringify((err as InstanceType<typeof Anthropic.RateLimitError>).error)).toContain('llmgw_quota_exhausted');
  });

  it('stops a batch request at the batch floor while interactive ones go on', async () => {
    const { stack, quota } = await quotaStack();
    await quota.allocator.setBudget('namespace/default', 'day', 1000);
    await quota.allocator.report({ namespace: 'default', service: '', pod: '' }, '', 'an-earlier-pod', [{ sequence: 1, tokens: 600, startedAtMs: Date.now() }]);
    const batch = await chat(stack.url, { 'x-llmgw-priority': 'batch' });
    expect(batch.statusCode).toBe(429);
    expect(await batch.body.json()).toMatchObject({ error: { code: 'llmgw_quota_exhausted' } });
    const interactive = await chat(stack.url);
    expect(interactive.statusCode).toBe(200);
    await interactive.body.text();
  });

  it('settles an abandoned stream to what was sent, not to its estimate', async () => {
    const { stack, quota } = await quotaStack();
    await quota.allocator.setBudget('namespace/default', 'day', 1_000_000);
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, chunkDelayMs: 100 });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      max_tokens: 900,
      stream: true,
      messages: [{ role: 'user', content: 'one two three four five six seven eight nine ten eleven twelve' }],
    });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 3) break;
    await stack.sidecar.stop(); // releases the lease with the last usage
    // The prompt (~20 tokens) and a token per frame sent: far below the 900-token estimate.
    await eventually(async () => expect(await used(quota)).toBeGreaterThan(0));
    expect(await used(quota)).toBeLessThan(60);
  });

  it('answers 503 llmgw_quota_unavailable when the service is out of reach in failClosed mode', async () => {
    const { stack, quota } = await quotaStack((q) => (q.failMode = 'failClosed'));
    await quota.allocator.setBudget('namespace/default', 'day', 1_000_000);
    await quota.stop();
    // Whatever lease the sidecar got at start covers a little; a large request exceeds it.
    let res;
    for (let i = 0; i < 50; i++) {
      res = await chat(stack.url, {}, 100_000);
      if (res.statusCode !== 200) break;
      await res.body.text();
    }
    expect(res!.statusCode).toBe(503);
    expect(await res!.body.json()).toMatchObject({ error: { code: 'llmgw_quota_unavailable' } });
  });
});

describe('local rate limits', () => {
  it('refuses the request over the per-model limit with 429 llmgw_rate_limited and Retry-After', async () => {
    const stack = await startStack({ config: (raw) => ({ ...raw, rateLimits: { models: { 'gpt-4o-mini': { requestsPerMinute: 3 } } } }) });
    open.push(stack);
    for (let i = 0; i < 3; i++) {
      const ok = await chat(stack.url);
      expect(ok.statusCode).toBe(200);
      await ok.body.text();
    }
    const refused = await chat(stack.url);
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBe(20);
    expect(await refused.body.json()).toMatchObject({ error: { code: 'llmgw_rate_limited' } });
    // Other models have no limit.
    const other = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(other.statusCode).toBe(200);
    await other.body.text();
  });

  it('charges tokens per minute by what requests really used', async () => {
    const stack = await startStack({ config: (raw) => ({ ...raw, rateLimits: { tokensPerMinute: 200 } }) });
    open.push(stack);
    // Each reserves 53 tokens (prompt + max_tokens 50) but uses 11: about 14 fit, not 3.
    let served = 0;
    for (let i = 0; i < 30; i++) {
      const res = await chat(stack.url);
      await res.body.text();
      if (res.statusCode === 200) served++;
      else expect(res.statusCode).toBe(429);
      await new Promise((r) => setImmediate(r));
    }
    expect(served).toBeGreaterThanOrEqual(12);
    expect(served).toBeLessThan(30);
  });
});
