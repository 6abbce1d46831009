// Retries, fallbacks and Retry-After against the fake provider, through the real sidecar.
import { performance } from 'node:perf_hooks';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { APP_KEY, eventually, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;

/** A stack whose config adds `models` (and any other top-level keys); weighted order deterministic
 * (first target first) and backoff jitter zero, so tests wait only when told to. */
function stackWith(models: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<Stack> {
  return startStack({ random: () => 0, config: (raw) => ({ ...raw, models: { ...(raw.models as object), ...models }, ...extra }) });
}

beforeAll(async () => {
  stack = await stackWith({
    'two-targets': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }, { provider: 'vllm', model: 'llama-3.1-8b' }] },
    primary: { targets: [{ provider: 'openai', model: 'gpt-4o' }], fallbacks: ['claude-haiku'], retry: { attempts: 1 } },
  }, { retry: { maxRetryAfterMs: 1000 } });
});
afterAll(async () => stack.close());
beforeEach(() => stack.fake.faults.clear());

const chat = (model: string, extra: object = {}) =>
  request(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${APP_KEY}` },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], ...extra }),
  });

const upstreamCalls = (model: string) => stack.fake.requests.filter((r) => (r.body as { model?: string }).model === model).length;

describe('resilience', () => {
  it('retries a 529 from Anthropic until it answers, and says how many attempts it took', async () => {
    stack.fake.faults.add({ match: { path: '/v1/messages' }, status: 529, times: 2 });
    const client = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
    const { data, response } = await client.messages.create({ model: 'claude-haiku', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(data.content[0]).toMatchObject({ type: 'text' });
    expect(response.headers.get('x-llmgw-attempts')).toBe('3');
  });

  it('never retries a 400, and passes it on', async () => {
    stack.fake.requests.length = 0;
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 400, times: 0 });
    const res = await chat('two-targets');
    expect(res.statusCode).toBe(400);
    await res.body.text();
    expect(stack.fake.requests).toHaveLength(1);
  });

  it('moves to the next target after a 401 without retrying the first', async () => {
    stack.fake.requests.length = 0;
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 401, times: 0 });
    const res = await chat('two-targets');
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-llmgw-provider']).toBe('vllm');
    expect(res.headers['x-llmgw-attempts']).toBe('2');
    await res.body.text();
    expect(upstreamCalls('gpt-4o-mini')).toBe(1);
  });

  it("waits as long as the provider's retry-after-ms asks before trying it again", async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 429, headers: { 'retry-after-ms': '300' } });
    const started = performance.now();
    const res = await chat('gpt-4o-mini');
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(res.headers['x-llmgw-attempts']).toBe('2');
  });

  it('falls back to the next model when every target fails, and does not wait out a long Retry-After', async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o' }, status: 503, headers: { 'retry-after': '60' }, times: 0 });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const started = performance.now();
    const { data, response } = await client.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(data.choices[0]!.message.content).toContain('Hello from the fake provider');
    expect(response.headers.get('x-llmgw-model')).toBe('claude-haiku-4-5');
    expect(response.headers.get('x-llmgw-attempts')).toBe('2');
  });

  it('retries a stream that fails before its first frame, invisibly to the app', async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 502 });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toContain('Hello from the fake provider');
  });

  it('holds back the role chunk until content arrives, so a stream failing right after it is retried invisibly', async () => {
    // Paced: the role chunk arrives alone, 50 ms before the error event.
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, errorAfterChunks: 1, chunkDelayMs: 50 });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const { data: stream, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    let roles = 0;
    let text = '';
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.role !== undefined) roles++;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(response.headers.get('x-llmgw-attempts')).toBe('2');
    expect(roles).toBe(1);
    expect(text).toBe('Hello from the fake provider. You said: hi');
  });

  it('holds back message_start the same way for Anthropic streams', async () => {
    stack.fake.faults.add({ match: { path: '/v1/messages' }, errorAfterChunks: 1, chunkDelayMs: 50 });
    const client = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
    const stream = client.messages.stream({ model: 'claude-haiku', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
    let starts = 0;
    stream.on('streamEvent', (e) => {
      if (e.type === 'message_start') starts++;
    });
    const message = await stream.finalMessage();
    expect(starts).toBe(1);
    expect(message.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake provider. You said: hi' });
  });

  it('gives up after its attempts and answers with the last failure', async () => {
    stack.fake.requests.length = 0;
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 500, times: 0 });
    const res = await chat('gpt-4o-mini');
    expect(res.statusCode).toBe(500);
    await res.body.text();
    expect(stack.fake.requests).toHaveLength(3); // the first try and 2 retries
  });
});

describe('circuit breakers and balancing', () => {
  let cb: Stack;
  beforeAll(async () => {
    cb = await stackWith({
      'rr': { strategy: 'round-robin', targets: [{ provider: 'openai', model: 'gpt-4o-mini' }, { provider: 'vllm', model: 'llama-3.1-8b' }] },
      'guarded': { targets: [{ provider: 'openai', model: 'gpt-4o' }], retry: { attempts: 0 } },
      'guarded-with-fallback': { targets: [{ provider: 'openai', model: 'gpt-4o' }], fallbacks: ['llama'], retry: { attempts: 0 } },
    }, { circuitBreaker: { consecutiveFailures: 3, coolDownMs: 400 } });
  });
  afterAll(async () => cb.close());

  const call = (model: string) =>
    request(`${cb.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
    });

  it('opens after consecutive failures and answers 503 llmgw_upstream_unavailable without calling, then probes and closes', async () => {
    cb.fake.faults.add({ match: { model: 'gpt-4o' }, status: 503, times: 3 });
    for (let i = 0; i < 3; i++) {
      const r = await call('guarded');
      expect(r.statusCode).toBe(503);
      await r.body.text();
    }
    const before = cb.fake.stats.requests;
    const open = await call('guarded');
    expect(open.statusCode).toBe(503);
    expect(open.headers['retry-after']).toBe('1');
    expect(await open.body.json()).toMatchObject({ error: { code: 'llmgw_upstream_unavailable' } });
    expect(cb.fake.stats.requests).toBe(before);

    // While it is open, a model with a fallback is answered by the fallback.
    const viaFallback = await call('guarded-with-fallback');
    expect(viaFallback.statusCode).toBe(200);
    expect(viaFallback.headers['x-llmgw-model']).toBe('llama-3.1-8b');
    await viaFallback.body.text();

    await new Promise((r) => setTimeout(r, 450));
    const probe = await call('guarded');
    expect(probe.statusCode).toBe(200);
    await probe.body.text();
    const closed = await call('guarded');
    expect(closed.statusCode).toBe(200);
    await closed.body.text();
  });

  it('round-robin alternates between the targets', async () => {
    const providers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await call('rr');
      providers.push(String(r.headers['x-llmgw-provider']));
      await r.body.text();
    }
    expect(providers).toEqual(['openai', 'vllm', 'openai', 'vllm']);
  });
});

describe('timeouts', () => {
  let ts: Stack;
  beforeAll(async () => {
    ts = await stackWith({
      'first-byte-200': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }], timeouts: { firstByteMs: 200 } },
      'total-300': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }], timeouts: { totalMs: 300 }, retry: { attempts: 0 } },
      'idle-150': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }], timeouts: { idleMs: 150 } },
    });
  });
  afterAll(async () => ts.close());
  beforeEach(() => ts.fake.faults.clear());
  const client = () => new OpenAI({ baseURL: `${ts.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });

  it('retries an attempt whose first byte is late', async () => {
    ts.fake.faults.add({ match: { model: 'gpt-4o-mini' }, delayMs: 600 });
    const started = performance.now();
    const { data, response } = await client().chat.completions.create({ model: 'first-byte-200', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(data.choices[0]!.message.content).toContain('Hello');
    expect(response.headers.get('x-llmgw-attempts')).toBe('2');
    expect(performance.now() - started).toBeLessThan(600);
  });

  it('answers 504 llmgw_upstream_timeout when an attempt takes longer than its total', async () => {
    ts.fake.faults.add({ match: { model: 'gpt-4o-mini' }, delayMs: 800 });
    const res = await request(`${ts.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'total-300', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.statusCode).toBe(504);
    expect(await res.body.json()).toMatchObject({ error: { code: 'llmgw_upstream_timeout' } });
  });

  it('ends a stream that outlives its total with an error event after the text it had', async () => {
    ts.fake.faults.add({ match: { model: 'gpt-4o-mini' }, chunkDelayMs: 100 });
    let text = '';
    let error: unknown;
    try {
      const stream = await client().chat.completions.create({ model: 'total-300', stream: true, messages: [{ role: 'user', content: 'one two three four five six seven eight' }] });
      for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    } catch (err) {
      error = err;
    }
    expect(text).not.toBe('');
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(String((error as Error).message)).toContain('took longer than 300 ms');
  });

  it('retries a stream that goes silent before its first content', async () => {
    ts.fake.faults.add({ match: { model: 'gpt-4o-mini' }, chunkDelayMs: 400 });
    const stream = await client().chat.completions.create({ model: 'idle-150', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello from the fake provider. You said: hi');
  });
});

describe('hedging', () => {
  let hs: Stack;
  beforeAll(async () => {
    hs = await stackWith({
      hedged: { hedgeAfterMs: 100, targets: [{ provider: 'openai', model: 'gpt-4o-mini' }, { provider: 'vllm', model: 'llama-3.1-8b' }] },
    });
  });
  afterAll(async () => hs.close());
  beforeEach(() => hs.fake.faults.clear());
  const ask = () =>
    request(`${hs.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'hedged', messages: [{ role: 'user', content: 'hi' }] }),
    });

  it('asks the second target when the first is slow, answers with the first success and aborts the other', async () => {
    hs.fake.faults.add({ match: { model: 'gpt-4o-mini' }, delayMs: 1500 });
    const abortedBefore = hs.fake.stats.aborted;
    const started = performance.now();
    const res = await ask();
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-llmgw-provider']).toBe('vllm');
    expect(res.headers['x-llmgw-attempts']).toBe('2');
    await res.body.text();
    expect(performance.now() - started).toBeLessThan(1000);
    await eventually(() => expect(hs.fake.stats.aborted).toBe(abortedBefore + 1));
  });

  it('sends one request when the first target answers in time', async () => {
    const before = hs.fake.stats.requests;
    const res = await ask();
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-llmgw-provider']).toBe('openai');
    await res.body.text();
    expect(hs.fake.stats.requests).toBe(before + 1);
  });

  it('sends the hedge at once when the first target fails fast, but never after a bad request', async () => {
    hs.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 503 });
    const ok = await ask();
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['x-llmgw-provider']).toBe('vllm');
    await ok.body.text();
    hs.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 400 });
    const before = hs.fake.stats.requests;
    const bad = await ask();
    expect(bad.statusCode).toBe(400);
    await bad.body.text();
    await new Promise((r) => setTimeout(r, 150));
    expect(hs.fake.stats.requests).toBe(before + 1);
  });
});

describe('failure scenarios, counted at the upstream', () => {
  let st: Stack;
  beforeAll(async () => {
    st = await stackWith({
      'primary-oa': { targets: [{ provider: 'openai', model: 'gpt-4o' }], fallbacks: ['claude-haiku'], retry: { attempts: 0 }, timeouts: { firstByteMs: 300 } },
      // Upstream models no other test of this stack uses: their latencies start unmeasured.
      fastest: { strategy: 'least-latency', targets: [{ provider: 'openai', model: 'gpt-4o-slow' }, { provider: 'vllm', model: 'llama-3.1-fast' }] },
      'small-context': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }], contextFallbacks: ['claude-haiku'] },
    });
  });
  afterAll(async () => st.close());
  beforeEach(() => {
    st.fake.faults.clear();
    st.fake.requests.length = 0;
  });
  const calls = (model: string) => st.fake.requests.filter((r) => (r.body as { model?: string }).model === model).length;
  const openai = () => new OpenAI({ baseURL: `${st.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });

  it('a 500 then success: one retry', async () => {
    st.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 500 });
    const r = await openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0]!.message.content).toContain('Hello');
    expect(calls('gpt-4o-mini')).toBe(2);
  });

  it('a 429 with Retry-After: 1 is waited out (≥ 1 s), then succeeds', async () => {
    st.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 429, headers: { 'retry-after': '1' } });
    const started = performance.now();
    const r = await openai().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    expect(r.choices[0]!.message.content).toContain('Hello');
    expect(calls('gpt-4o-mini')).toBe(2);
  });

  it('primary down: the Anthropic fallback answers the OpenAI app, streaming and not', async () => {
    st.fake.faults.add({ match: { model: 'gpt-4o' }, status: 503, times: 0 });
    const { data, response } = await openai().chat.completions.create({ model: 'primary-oa', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(data.choices[0]!.message.content).toBe('Hello from the fake provider. You said: hi');
    expect(response.headers.get('x-llmgw-model')).toBe('claude-haiku-4-5');
    const stream = await openai().chat.completions.create({ model: 'primary-oa', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello from the fake provider. You said: hi');
    expect(calls('gpt-4o')).toBe(2);
    expect(calls('claude-haiku-4-5')).toBe(2);
  });

  it('primary hangs: the first-byte timeout hands over to the fallback', async () => {
    st.fake.faults.add({ match: { model: 'gpt-4o' }, hang: true });
    const started = performance.now();
    const r = await openai().chat.completions.create({ model: 'primary-oa', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0]!.message.content).toContain('Hello');
    expect(performance.now() - started).toBeLessThan(1500);
    expect(calls('gpt-4o')).toBe(1);
    expect(calls('claude-haiku-4-5')).toBe(1);
  });

  it('a stream dropped before any content falls back invisibly', async () => {
    st.fake.faults.add({ match: { model: 'gpt-4o' }, dropAfterChunks: 1 });
    const stream = await openai().chat.completions.create({ model: 'primary-oa', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    let roles = 0;
    for await (const c of stream) {
      if (c.choices[0]?.delta.role !== undefined) roles++;
      text += c.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('Hello from the fake provider. You said: hi');
    expect(roles).toBe(1);
  });

  it('least-latency moves to the faster upstream once both are measured', async () => {
    st.fake.faults.add({ match: { model: 'gpt-4o-slow' }, delayMs: 150, times: 0 });
    const providers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { response } = await openai().chat.completions.create({ model: 'fastest', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
      providers.push(response.headers.get('x-llmgw-provider')!);
    }
    // First each unmeasured target once, then the faster one only.
    expect(providers).toEqual(['openai', 'vllm', 'vllm', 'vllm', 'vllm']);
  });

  it('a prompt too long for the model goes to its larger-context fallback', async () => {
    st.fake.faults.add({
      match: { model: 'gpt-4o-mini' },
      status: 400,
      body: { error: { message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } },
    });
    const { data, response } = await openai().chat.completions.create({ model: 'small-context', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(data.choices[0]!.message.content).toContain('Hello');
    expect(response.headers.get('x-llmgw-model')).toBe('claude-haiku-4-5');
    expect(calls('gpt-4o-mini')).toBe(1);
  });
});
