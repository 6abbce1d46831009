// The GenAI (OpenTelemetry semconv) and llmgw_* series on the status listener's /metrics, after scripted
// traffic through the real sidecar with the official SDKs: exact label sets and values.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accessLines, APP_KEY, caught, eventually, scrapeMetrics, startStack, type Stack } from '../helpers/stack.js';

/** One series per line of the exposition: `name{a="x",b="y"}` (labels sorted) → value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!] as const);
    out.set(key(m[1]!, Object.fromEntries(labels)), Number(m[3]));
  }
  return out;
}

function key(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return `${name}{${parts.join(',')}}`;
}

/** What a scrape changed: read `name` with exactly these labels, before and after. */
class Scrapes {
  private before = new Map<string, number>();
  private after = new Map<string, number>();

  constructor(private readonly stack: () => Stack) {}

  async mark(): Promise<void> {
    this.before = parse(await scrapeMetrics(this.stack()));
  }

  async read(): Promise<void> {
    this.after = parse(await scrapeMetrics(this.stack()));
  }

  /** The series' value now; undefined when it is not exposed. */
  now(name: string, labels: Record<string, string>): number | undefined {
    return this.after.get(key(name, labels));
  }

  delta(name: string, labels: Record<string, string>): number {
    return (this.after.get(key(name, labels)) ?? 0) - (this.before.get(key(name, labels)) ?? 0);
  }

  /** Exposed series of `name` whose labels include `having`. */
  find(name: string, having: Record<string, string>): string[] {
    const want = Object.entries(having).map(([k, v]) => `${k}="${v}"`);
    return [...this.after.keys()].filter((k) => k.startsWith(`${name}{`) && want.every((w) => k.includes(w)));
  }
}

const gen = (op: string, provider: string, requestModel: string, responseModel: string) => ({
  gen_ai_operation_name: op,
  gen_ai_provider_name: provider,
  gen_ai_request_model: requestModel,
  gen_ai_response_model: responseModel,
});
const ok = { error_type: '' };

const SEMCONV_TOKEN_BUCKETS = ['1', '4', '16', '64', '256', '1024', '4096', '16384', '65536', '262144', '1048576', '4194304', '16777216', '67108864', '+Inf'];
const SEMCONV_SECONDS_BUCKETS = ['0.01', '0.02', '0.04', '0.08', '0.16', '0.32', '0.64', '1.28', '2.56', '5.12', '10.24', '20.48', '40.96', '81.92', '+Inf'];

describe('GenAI and llmgw metrics', () => {
  let stack: Stack;
  let dir: string;
  const m = new Scrapes(() => stack);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmgw-genai-'));
    stack = await startStack({
      random: () => 0,
      config: (raw) => ({
        ...raw,
        models: {
          ...(raw.models as object),
          primary: { targets: [{ provider: 'openai', model: 'gpt-4o' }], fallbacks: ['claude-haiku'], retry: { attempts: 1 } },
          limited: { targets: [{ provider: 'openai', model: 'limited-up' }], retry: { attempts: 1 } },
          cached: { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] },
          'one-a-minute': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] },
        },
        storage: { path: join(dir, 'llmgw.db') },
        cache: { ttlSeconds: 60 },
        rateLimits: { models: { 'one-a-minute': { requestsPerMinute: 1 } } },
      }),
    });
  });
  afterAll(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    stack.fake.faults.clear();
    await m.mark();
  });

  const openai = () => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  const anthropic = () => new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });

  it('counts a non-streaming chat as one chat operation: input and output tokens and its duration, with semconv labels and buckets', async () => {
    const { data: res, response } = await openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] }).withResponse();
    await m.read();
    const labels = gen('chat', 'openai', 'gpt-4o-mini', 'gpt-4o-mini');
    expect(m.delta('gen_ai_client_token_usage_count', { ...labels, gen_ai_token_type: 'input' })).toBe(1);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'input' })).toBe(res.usage!.prompt_tokens);
    expect(m.delta('gen_ai_client_token_usage_count', { ...labels, gen_ai_token_type: 'output' })).toBe(1);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'output' })).toBe(res.usage!.completion_tokens);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(1);
    // A non-streaming answer has no first chunk.
    expect(m.find('gen_ai_client_operation_time_to_first_chunk_seconds_count', { gen_ai_request_model: 'gpt-4o-mini' })).toEqual([]);
    expect(m.delta('llmgw_gateway_overhead_seconds_count', { endpoint: '/v1/chat/completions' })).toBe(1);
    // Semconv's advised boundaries.
    const les = (name: string, having: Record<string, string>) => m.find(name, having).map((k) => /le="([^"]+)"/.exec(k)![1]);
    expect(les('gen_ai_client_token_usage_bucket', { ...labels, gen_ai_token_type: 'input' })).toEqual(SEMCONV_TOKEN_BUCKETS);
    expect(les('gen_ai_client_operation_duration_seconds_bucket', { ...labels, ...ok })).toEqual(SEMCONV_SECONDS_BUCKETS);
    // The existing series keep counting as before.
    expect(m.delta('llmgw_requests_total', { endpoint: '/v1/chat/completions', model: 'gpt-4o-mini', status: '200' })).toBe(1);
    expect(m.delta('llmgw_tokens_total', { model: 'gpt-4o-mini', direction: 'input' })).toBe(res.usage!.prompt_tokens);
    // Its cost, as the header and the access log state it, by the model asked for and the provider id.
    const cost = Number(response.headers.get('x-llmgw-cost-usd'));
    expect(cost).toBeGreaterThan(0);
    expect(m.delta('llmgw_cost_usd_total', { model: 'gpt-4o-mini', provider: 'openai' })).toBeCloseTo(cost, 9);
    expect(accessLines(stack).at(-1)?.costUsd).toBeCloseTo(cost, 9);
  });

  it('records the time to first chunk of an Anthropic SDK stream, as provider anthropic', async () => {
    const stream = anthropic().messages.stream({ model: 'claude-haiku', max_tokens: 64, messages: [{ role: 'user', content: 'stream please' }] });
    const final = await stream.finalMessage();
    await m.read();
    const labels = gen('chat', 'anthropic', 'claude-haiku', 'claude-haiku-4-5');
    expect(m.delta('gen_ai_client_operation_time_to_first_chunk_seconds_count', labels)).toBe(1);
    expect(m.find('gen_ai_client_operation_time_to_first_chunk_seconds_bucket', labels).map((k) => /le="([^"]+)"/.exec(k)![1])).toEqual(SEMCONV_SECONDS_BUCKETS);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(1);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'input' })).toBe(final.usage.input_tokens);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'output' })).toBe(final.usage.output_tokens);
    expect(m.delta('llmgw_gateway_overhead_seconds_count', { endpoint: '/v1/messages' })).toBe(1);
  });

  it('names the Responses API chat, and an OpenAI-compatible provider openai with its own upstream model', async () => {
    const res = await openai().responses.create({ model: 'llama', input: 'hi' });
    await m.read();
    const labels = gen('chat', 'openai', 'llama', 'llama-3.1-8b');
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(1);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'input' })).toBe(res.usage!.input_tokens);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'output' })).toBe(res.usage!.output_tokens);
    expect(m.delta('llmgw_gateway_overhead_seconds_count', { endpoint: '/v1/responses' })).toBe(1);
  });

  it('counts embeddings as an embeddings operation with input tokens only', async () => {
    const res = await openai().embeddings.create({ model: 'embed', input: 'a sentence to embed' });
    await m.read();
    const labels = gen('embeddings', 'openai', 'embed', 'text-embedding-3-small');
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(1);
    expect(m.delta('gen_ai_client_token_usage_sum', { ...labels, gen_ai_token_type: 'input' })).toBe(res.usage.prompt_tokens);
    expect(m.find('gen_ai_client_token_usage_count', { gen_ai_operation_name: 'embeddings', gen_ai_token_type: 'output' })).toEqual([]);
  });

  it("labels a failed operation's error_type with the provider's status; a 429 passed on after its retry counts as a refusal", async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 400 });
    const bad = await caught(openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }));
    expect(bad.status).toBe(400);
    stack.fake.faults.add({ match: { model: 'limited-up' }, status: 429, times: 0 });
    const limited = await caught(openai().chat.completions.create({ model: 'limited', messages: [{ role: 'user', content: 'x' }] }));
    expect(limited.status).toBe(429);
    await m.read();
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...gen('chat', 'openai', 'gpt-4o-mini', 'gpt-4o-mini'), error_type: '400' })).toBe(1);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...gen('chat', 'openai', 'limited', 'limited-up'), error_type: '429' })).toBe(1);
    expect(m.delta('llmgw_upstream_retries_total', { provider: 'openai', model: 'limited-up' })).toBe(1);
    expect(m.delta('llmgw_refusals_total', { code: 'provider_429' })).toBe(1);
    expect(m.find('llmgw_refusals_total', { code: 'provider_400' })).toEqual([]);
    // A failure is no answer: no overhead observed for either.
    expect(m.delta('llmgw_gateway_overhead_seconds_count', { endpoint: '/v1/chat/completions' })).toBe(0);
  });

  it('counts the retry on the failing target and the fallback to the next model; the operation names the model asked for and the one that answered', async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o' }, status: 503, times: 0 });
    const { response } = await openai().chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(response.headers.get('x-llmgw-attempts')).toBe('3');
    await m.read();
    expect(m.delta('llmgw_upstream_retries_total', { provider: 'openai', model: 'gpt-4o' })).toBe(1);
    expect(m.delta('llmgw_fallbacks_total', { model: 'primary', from_provider: 'openai', to_provider: 'claude', to_model: 'claude-haiku' })).toBe(1);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...gen('chat', 'anthropic', 'primary', 'claude-haiku-4-5'), ...ok })).toBe(1);
    expect(m.find('gen_ai_client_operation_duration_seconds_count', { gen_ai_request_model: 'primary', gen_ai_response_model: 'gpt-4o' })).toEqual([]);
  });

  it("counts every refusal by its llmgw_ code, and none of them as a GenAI operation", async () => {
    const post = (path: string, body: string) => request(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const statuses: number[] = [];
    for (const [path, body] of [
      ['/v1/chat/completions', JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })],
      ['/v1/chat/completions', '{"model": '],
      ['/v1/nowhere', '{}'],
      ['/v1/chat/completions', JSON.stringify({ model: 'one-a-minute', messages: [{ role: 'user', content: 'first' }] })],
      // Another prompt: the same one would be a cache hit, which spends no rate limit.
      ['/v1/chat/completions', JSON.stringify({ model: 'one-a-minute', messages: [{ role: 'user', content: 'second' }] })],
    ] as const) {
      const res = await post(path, body);
      statuses.push(res.statusCode);
      await res.body.text();
    }
    expect(statuses).toEqual([404, 400, 404, 200, 429]);
    await m.read();
    expect(m.delta('llmgw_refusals_total', { code: 'llmgw_unknown_model' })).toBe(1);
    expect(m.delta('llmgw_refusals_total', { code: 'llmgw_invalid_request' })).toBe(1);
    expect(m.delta('llmgw_refusals_total', { code: 'llmgw_not_found' })).toBe(1);
    expect(m.delta('llmgw_refusals_total', { code: 'llmgw_rate_limited' })).toBe(1);
    // Only the admitted request was a GenAI operation; the unknown model never becomes a label value.
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...gen('chat', 'openai', 'one-a-minute', 'gpt-4o-mini'), ...ok })).toBe(1);
    expect(m.find('gen_ai_client_operation_duration_seconds_count', { error_type: 'llmgw_rate_limited' })).toEqual([]);
    expect(m.find('gen_ai_client_operation_duration_seconds_count', { gen_ai_request_model: 'no-such-model' })).toEqual([]);
  });

  it('labels a stream that failed after its first chunk with the code of the error event that ended it', async () => {
    stack.fake.faults.add({ match: { model: 'claude-haiku-4-5' }, errorAfterChunks: 6, chunkDelayMs: 20 });
    const stream = await openai().chat.completions.create({ model: 'claude-haiku', stream: true, messages: [{ role: 'user', content: 'a long answer that breaks' }] });
    const err = await caught((async () => {
      for await (const _ of stream);
    })());
    expect(err).toBeInstanceOf(Error);
    const line = await (async () => {
      let last: Record<string, unknown> | undefined;
      await eventually(() => {
        last = accessLines(stack).at(-1);
        expect(last?.error).toBeDefined();
      });
      return last!;
    })();
    const error = String(line.error);
    const errorType = error.startsWith('provider_') ? error.slice('provider_'.length) : error;
    await m.read();
    const labels = gen('chat', 'anthropic', 'claude-haiku', 'claude-haiku-4-5');
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, error_type: errorType })).toBe(1);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(0);
    // It had begun: its first chunk was timed.
    expect(m.delta('gen_ai_client_operation_time_to_first_chunk_seconds_count', labels)).toBe(1);
    if (error.startsWith('llmgw_')) expect(m.delta('llmgw_refusals_total', { code: error })).toBe(1);
  });

  it("bounds error_type: a number an upstream puts in a stream's error event becomes _OTHER", async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, rawFrame: 'data: {"error":{"code":123456,"message":"odd"}}\n\n', rawFrameAfterChunks: 4, chunkDelayMs: 20 });
    const stream = await openai().chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'an answer with an odd error' }] });
    await caught((async () => {
      for await (const _ of stream);
    })());
    const labels = gen('chat', 'openai', 'gpt-4o-mini', 'gpt-4o-mini');
    await eventually(async () => {
      await m.read();
      expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, error_type: '_OTHER' })).toBe(1);
    });
    expect(m.find('gen_ai_client_operation_duration_seconds_count', { error_type: '123456' })).toEqual([]);
  });

  it('labels a stream the app left midway cancelled', async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, chunkDelayMs: 150 });
    const stream = await openai().chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'a slow answer' }] });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 2) break;
    const labels = gen('chat', 'openai', 'gpt-4o-mini', 'gpt-4o-mini');
    await eventually(async () => {
      await m.read();
      expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, error_type: 'cancelled' })).toBe(1);
    });
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(0);
  });

  it('leaves a cache hit out of the GenAI series (no provider was called) but counts its overhead and cache result', async () => {
    const ask = () => openai().chat.completions.create({ model: 'cached', messages: [{ role: 'user', content: 'the same question' }] }).withResponse();
    const first = await ask();
    const second = await ask();
    expect([first.response.headers.get('x-llmgw-cache'), second.response.headers.get('x-llmgw-cache')]).toEqual(['MISS', 'HIT']);
    await m.read();
    const labels = gen('chat', 'openai', 'cached', 'gpt-4o-mini');
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(1);
    expect(m.delta('gen_ai_client_token_usage_count', { ...labels, gen_ai_token_type: 'input' })).toBe(1);
    expect(m.delta('llmgw_cache_requests_total', { result: 'HIT' })).toBe(1);
    expect(m.delta('llmgw_cache_requests_total', { result: 'MISS' })).toBe(1);
    expect(m.delta('llmgw_gateway_overhead_seconds_count', { endpoint: '/v1/chat/completions' })).toBe(2);
    // Only the miss was paid for.
    expect(m.find('llmgw_cost_usd_total', { provider: '' })).toEqual([]);
  });
});

describe('circuit metrics', () => {
  let stack: Stack;
  const m = new Scrapes(() => stack);
  const COOL_DOWN_MS = 600;

  beforeAll(async () => {
    stack = await startStack({
      random: () => 0,
      config: (raw) => ({
        ...raw,
        models: { ...(raw.models as object), fragile: { targets: [{ provider: 'openai', model: 'fragile-up' }], retry: { attempts: 0 } } },
        circuitBreaker: { consecutiveFailures: 2, coolDownMs: COOL_DOWN_MS },
      }),
    });
  });
  afterAll(async () => stack.close());

  const chat = async (model: string): Promise<number> => {
    const res = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
    });
    await res.body.text();
    return res.statusCode;
  };

  it('shows every configured target closed, then the failing one open, refused as llmgw_upstream_unavailable, half-open after its cool-down and closed again', async () => {
    await m.mark();
    await m.read();
    expect(m.now('llmgw_circuit_state', { provider: 'openai', model: 'fragile-up' })).toBe(0);
    expect(m.now('llmgw_circuit_state', { provider: 'claude', model: 'claude-haiku-4-5' })).toBe(0);

    stack.fake.faults.add({ match: { model: 'fragile-up' }, status: 503, times: 2 });
    expect([await chat('fragile'), await chat('fragile'), await chat('fragile')]).toEqual([503, 503, 503]);
    await m.read();
    expect(m.now('llmgw_circuit_state', { provider: 'openai', model: 'fragile-up' })).toBe(2);
    expect(m.delta('llmgw_circuit_transitions_total', { provider: 'openai', model: 'fragile-up', to: 'open' })).toBe(1);
    expect(m.now('llmgw_circuit_state', { provider: 'openai', model: 'gpt-4o-mini' })).toBe(0);
    expect(m.delta('llmgw_refusals_total', { code: 'llmgw_upstream_unavailable' })).toBe(1);
    const labels = gen('chat', 'openai', 'fragile', 'fragile-up');
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, error_type: '503' })).toBe(2);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, error_type: 'llmgw_upstream_unavailable' })).toBe(1);

    await new Promise((r) => setTimeout(r, COOL_DOWN_MS + 100));
    await m.read();
    // The cool-down passed: the state reads half-open before the probe goes.
    expect(m.now('llmgw_circuit_state', { provider: 'openai', model: 'fragile-up' })).toBe(1);
    expect(await chat('fragile')).toBe(200);
    await m.read();
    expect(m.now('llmgw_circuit_state', { provider: 'openai', model: 'fragile-up' })).toBe(0);
    expect(m.delta('llmgw_circuit_transitions_total', { provider: 'openai', model: 'fragile-up', to: 'half-open' })).toBe(1);
    expect(m.delta('llmgw_circuit_transitions_total', { provider: 'openai', model: 'fragile-up', to: 'closed' })).toBe(1);
    expect(m.delta('gen_ai_client_operation_duration_seconds_count', { ...labels, ...ok })).toBe(1);
  });
});
