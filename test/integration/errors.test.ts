// Every error class the sidecar answers, in the shape of the path the app called, and the rules about
// keys: the app's Authorization never travels upstream, provider keys never come back or get logged.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { APP_KEY, scrapeMetrics, startStack, UPSTREAM_KEY, caught, type Stack } from '../helpers/stack.js';

let stack: Stack;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  stack = await startStack({
    config: (raw) => ({
      ...raw,
      providers: { ...(raw.providers as object), down: { type: 'openai', baseUrl: 'http://127.0.0.1:1/v1' } },
      models: { ...(raw.models as object), 'down-model': { targets: [{ provider: 'down', model: 'x' }] } },
      server: { maxBodyBytes: 4096 },
    }),
  });
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => stack.fake.faults.clear());

async function post(path: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const res = await request(`${stack.url}${path}`, { method: 'POST', body, headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: JSON.parse(text) as Record<string, any> };
}

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });


describe('bad input', () => {
  it('answers malformed JSON with 400 llmgw_invalid_request', async () => {
    const r = await post('/v1/chat/completions', '{"model": ');
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('llmgw_invalid_request');
    expect(r.body.error.message).toMatch(/not valid JSON/);
  });

  it('answers a wrong content type with 415', async () => {
    const r = await post('/v1/chat/completions', chat, { 'content-type': 'text/plain' });
    expect(r.status).toBe(415);
    expect(r.body.error.code).toBe('llmgw_unsupported_media_type');
  });

  it('answers a body over the limit with 413 and closes the connection', async () => {
    const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(5000) }] });
    const r = await post('/v1/chat/completions', big);
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('llmgw_body_too_large');
    expect(r.headers.connection).toBe('close');
  });

  it('answers 404 for an unknown path and 405 with Allow for a wrong method, in the caller’s shape', async () => {
    const r = await post('/v1/completions', chat);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('llmgw_not_found');
    const anth = await post('/v1/nothing', '{}', { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' });
    expect(anth.body).toMatchObject({ type: 'error', error: { type: 'not_found_error', code: 'llmgw_not_found' } });
    const res = await request(`${stack.url}/v1/chat/completions`, { method: 'GET' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST');
    await res.body.dump();
  });

  it('answers requests without a model or messages with 400 naming the parameter', async () => {
    const r = await post('/v1/messages', JSON.stringify({ max_tokens: 5, messages: [] }));
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'llmgw_invalid_request' } });
    const m = await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [] }));
    expect(m.body.error.param).toBe('messages');
  });

  it('refuses a bad priority or malformed tags with 400 naming the header', async () => {
    const p = await post('/v1/chat/completions', chat, { 'content-type': 'application/json', 'x-llmgw-priority': 'urgent' });
    expect(p.status).toBe(400);
    expect(p.body.error.param).toBe('x-llmgw-priority');
    const t = await post('/v1/chat/completions', chat, { 'content-type': 'application/json', 'x-llmgw-tags': 'no-equals-sign' });
    expect(t.status).toBe(400);
    expect(t.body.error.param).toBe('x-llmgw-tags');
  });

  it('answers an unknown model with 404 llmgw_unknown_model listing the known models', async () => {
    const err = await caught(openai.chat.completions.create({ model: 'gpt-5', messages: [{ role: 'user', content: 'x' }] }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('llmgw_unknown_model');
    expect(err.message).toContain('known models: gpt-4o-mini, claude-haiku');
    const aerr = await caught(anthropic.messages.create({ model: 'gpt-5', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    expect(aerr).toBeInstanceOf(Anthropic.NotFoundError);
    expect(aerr.error).toMatchObject({ type: 'error', error: { type: 'not_found_error', code: 'llmgw_unknown_model' } });
  });

  it('refuses what cannot be translated with 400 naming the parameter', async () => {
    const err = await caught(openai.chat.completions.create({ model: 'claude-haiku', n: 2, messages: [{ role: 'user', content: 'x' }] }));
    expect(err.status).toBe(400);
    expect(err.code).toBe('llmgw_invalid_request');
    expect(err.param).toBe('n');
    const emb = await caught(openai.embeddings.create({ model: 'claude-embed', input: 'x' }));
    expect(emb.status).toBe(400);
    expect(emb.message).toMatch(/no embeddings API/);
  });
});

describe('provider errors', () => {
  it('passes a 429 through with its Retry-After when the wait is longer than it retries for', async () => {
    // 90 s is over retry.maxRetryAfterMs: no waiting it out, no other target, so the app gets the 429.
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, status: 429, headers: { 'retry-after': '90' } });
    const err = await caught(openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers.get('retry-after')).toBe('90');
    expect(err.message).toContain('injected 429');
  });

  it('translates an Anthropic 400 into the OpenAI shape with its status and message', async () => {
    const err = await caught(openai.chat.completions.create({ model: 'claude-haiku', temperature: 1.5, messages: [{ role: 'user', content: 'x' }] }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toContain('temperature: range: 0 <= temperature <= 1');
    expect(err.type).toBe('invalid_request_error');
  });

  it('translates an OpenAI 404 into the Anthropic shape', async () => {
    const err = await caught(anthropic.messages.create({ model: 'gone-model', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }));
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    expect(err.message).toContain('missing-model');
  });

  it('answers an unreachable provider with 502 llmgw_upstream_error', async () => {
    const err = await caught(openai.chat.completions.create({ model: 'down-model', messages: [{ role: 'user', content: 'x' }] }));
    expect(err.status).toBe(502);
    expect(err.code).toBe('llmgw_upstream_error');
  });

  it('turns an error event that opens the stream into an HTTP error the SDK raises', async () => {
    // Every attempt fails the same way (the first frame is the error), so retries end in the error too.
    stack.fake.faults.add({ match: { path: '/v1/messages' }, errorAfterChunks: 0, times: 3 });
    const err = await caught(
      (async () => {
        const s = await openai.chat.completions.create({ model: 'claude-haiku', stream: true, messages: [{ role: 'user', content: 'x' }] });
        for await (const _ of s);
      })(),
    );
    expect(err.status).toBe(529);
    expect(err.message).toContain('Overloaded');
  });

  it('ends a stream cut midway with an error event in the app’s format, never a silent truncation', async () => {
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, dropAfterChunks: 3 });
    let text = '';
    const err = await caught(
      (async () => {
        const s = await openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] });
        for await (const c of s) text += c.choices[0]?.delta.content ?? '';
      })(),
    );
    expect(text).toBe('Hello from ');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.code).toBe('llmgw_upstream_error');

    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, dropAfterChunks: 4 });
    const aerr = await caught(anthropic.messages.stream({ model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] }).finalMessage());
    expect(aerr).toBeInstanceOf(Anthropic.APIError);
    expect(aerr.error).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'llmgw_upstream_error' } });
  });

  it('forwards a mid-stream provider error event translated to the app’s format', async () => {
    // Paced, so text reaches the app before the error (a failure in the same read as the first frames is
    // retried instead, invisibly).
    stack.fake.faults.add({ match: { path: '/v1/messages' }, errorAfterChunks: 6, chunkDelayMs: 20 });
    let text = '';
    const err = await caught(
      (async () => {
        const s = await openai.chat.completions.create({ model: 'claude-haiku', stream: true, messages: [{ role: 'user', content: 'x' }] });
        for await (const c of s) text += c.choices[0]?.delta.content ?? '';
      })(),
    );
    expect(text).not.toBe('');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.message).toContain('Overloaded');
  });
});

describe('keys', () => {
  it('never returns or logs the provider key, and logs every request once', async () => {
    const before = stack.rawLogs.length;
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    await caught(openai.chat.completions.create({ model: 'down-model', messages: [{ role: 'user', content: 'x' }] }));
    const r = await post('/v1/chat/completions', chat);
    expect(JSON.stringify(r)).not.toContain(UPSTREAM_KEY);
    expect(stack.rawLogs.join('\n')).not.toContain(UPSTREAM_KEY);
    expect(stack.rawLogs.join('\n')).not.toContain(APP_KEY);
    expect(stack.rawLogs.slice(before).filter((l) => l.includes('"msg":"request"'))).toHaveLength(3);
    const metrics = await scrapeMetrics(stack);
    expect(metrics).not.toContain(UPSTREAM_KEY);
    expect(metrics).toMatch(/llmgw_requests_total\{endpoint="\/v1\/chat\/completions",model="gpt-4o-mini",status="200"\} \d+/);
  });
});
