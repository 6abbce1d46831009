// The OpenAI Responses API through the real sidecar with the official SDK, passed through to an OpenAI
// provider (the fake provider speaking Responses): the model swapped and nothing else touched, usage read
// into the access log, streams checked and forwarded, failures retried before the first content and
// raised by the SDK after it, the response cache, and the refusals of what is not built yet.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accessLines, APP_KEY, eventually, startStack, UPSTREAM_KEY, type Stack } from '../helpers/stack.js';

let stack: Stack;
let client: OpenAI;

beforeAll(async () => {
  stack = await startStack({
    config: (raw) => {
      const models = raw.models as Record<string, unknown>;
      models.smart = { targets: [{ provider: 'openai', model: 'gpt-4o' }] };
      return { ...raw, cache: { ttlSeconds: 60 }, storage: { path: join(mkdtempSync(join(tmpdir(), 'llmgw-responses-')), 'llmgw.db') } };
    },
  });
  client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.requests.length = 0;
  stack.fake.faults.clear();
});

const weather: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: true,
};

describe('Responses API → OpenAI provider (pass-through)', () => {
  it('answers with the provider\'s response, the model swapped upstream and nothing else touched', async () => {
    const body = {
      model: 'smart',
      instructions: 'Be brief.',
      input: [{ role: 'user' as const, content: [{ type: 'input_text' as const, text: 'Hi there' }] }],
      max_output_tokens: 64,
      store: false,
      metadata: { app: 'test' },
      include: ['reasoning.encrypted_content' as const],
      reasoning: { effort: 'low' as const },
    };
    const { data, response } = await client.responses.create(body).withResponse();
    expect(data.object).toBe('response');
    expect(data.output_text).toBe('Hello from the fake provider. You said: Hi there');
    expect(data.usage).toMatchObject({ input_tokens: expect.any(Number), output_tokens: expect.any(Number) });
    expect(data.usage!.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-llmgw-provider')).toBe('openai');
    expect(response.headers.get('x-llmgw-model')).toBe('gpt-4o');
    const upstream = stack.fake.requests[0]!;
    expect(upstream.path).toBe('/v1/responses');
    expect(upstream.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(upstream.body).toEqual({ ...body, model: 'gpt-4o' });
    await eventually(() =>
      expect(accessLines(stack).at(-1)).toMatchObject({ path: '/v1/responses', status: 200, model: 'smart', upstreamModel: 'gpt-4o', tokensIn: data.usage!.input_tokens, tokensOut: data.usage!.output_tokens }),
    );
  });

  it('streams the response.* events as they came, and the SDK\'s accumulator gets the same answer', async () => {
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Stream please', stream: true });
    for await (const e of stream) events.push(e);
    expect(events[0]!.type).toBe('response.created');
    expect(events.at(-1)!.type).toBe('response.completed');
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    expect(text).toBe('Hello from the fake provider. You said: Stream please');

    const usage = (events.at(-1) as OpenAI.Responses.ResponseCompletedEvent).response.usage!;
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ stream: true, status: 200, cache: 'MISS', tokensIn: usage.input_tokens, tokensOut: usage.output_tokens }));

    const final = await client.responses.stream({ model: 'gpt-4o-mini', input: 'Stream again' }).finalResponse();
    expect(final.output_text).toBe('Hello from the fake provider. You said: Stream again');
    expect(final.usage).toMatchObject({ input_tokens: expect.any(Number), output_tokens: 9 });
  });

  it('runs a function tool loop with function_call_output', async () => {
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'What is the get_weather in Paris?', tools: [weather] });
    const call = first.output.find((o): o is OpenAI.Responses.ResponseFunctionToolCall => o.type === 'function_call');
    expect(call).toMatchObject({ name: 'get_weather', call_id: expect.any(String) });
    const second = await client.responses.create({
      model: 'gpt-4o-mini',
      tools: [weather],
      input: [
        { role: 'user', content: 'What is the get_weather in Paris?' },
        call!,
        { type: 'function_call_output', call_id: call!.call_id, output: '{"temp":21}' },
      ],
    });
    expect(second.output_text).toBe('The tool returned: {"temp":21}');
  });

  it('retries a failure before the first content, invisibly to the app', async () => {
    stack.fake.faults.add({ match: { path: '/v1/responses' }, status: 500 });
    const { data, response } = await client.responses.create({ model: 'gpt-4o-mini', input: 'again', stream: false }).withResponse();
    expect(data.output_text).toContain('again');
    expect(response.headers.get('x-llmgw-attempts')).toBe('2');
  });

  it('ends a stream that fails after its first content with an error the SDK raises', async () => {
    // Paced, so the first content reaches the app before the failure (in one read, it would be retried).
    stack.fake.faults.add({ match: { path: '/v1/responses' }, errorAfterChunks: 6, chunkDelayMs: 20 });
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'one two three four five six seven eight', stream: true });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const e of stream) seen.push(e.type);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(seen).toContain('response.output_text.delta');
    expect(seen).not.toContain('response.completed');
  });

  it('refuses a provider answer that is not a response (502, retried like one)', async () => {
    stack.fake.faults.add({ match: { path: '/v1/responses' }, times: 0, rawBody: '{"id":"resp_x","object":"response"}' });
    const err = await client.responses.create({ model: 'gpt-4o-mini', input: 'hi' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((err as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_upstream_error' });
    expect(stack.fake.requests.length).toBe(3); // the first try and two retries
  });

  it('answers a repeated request from the response cache in the form it was recorded in, and only in that form', async () => {
    const ask = { model: 'gpt-4o-mini', input: 'cache me', store: false };
    const a = await client.responses.create(ask).withResponse();
    const b = await client.responses.create(ask).withResponse();
    expect(a.response.headers.get('x-llmgw-cache')).toBe('MISS');
    expect(b.response.headers.get('x-llmgw-cache')).toBe('HIT');
    expect(b.data).toEqual(a.data);
    expect(stack.fake.requests.length).toBe(1);
    // The same request streamed: no Responses event stream is made from a stored JSON answer (a miss)…
    const raw = async (): Promise<{ text: string; cache: string | null }> => {
      const res = await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${APP_KEY}` }, body: JSON.stringify({ ...ask, stream: true }) });
      return { text: await res.text(), cache: res.headers.get('x-llmgw-cache') };
    };
    const streamed = await raw();
    expect(streamed.cache).toBe('MISS');
    expect(stack.fake.requests.length).toBe(2);
    // …and the recorded stream is replayed verbatim.
    await eventually(async () => expect(await raw()).toEqual({ text: streamed.text, cache: 'HIT' }));
    expect(stack.fake.requests.length).toBe(2);
  });

  it('refuses what it does not serve yet, and malformed input, with a 400 naming the parameter', async () => {
    const translated = await client.responses.create({ model: 'claude-haiku', input: 'hi' }).catch((e: unknown) => e);
    expect(translated).toBeInstanceOf(OpenAI.BadRequestError);
    expect((translated as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request', param: 'model' });
    const bad = await client.responses.create({ model: 'gpt-4o-mini', input: 42 as unknown as string }).catch((e: unknown) => e);
    expect((bad as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request', param: 'input' });
    const none = await client.responses.create({ model: 'gpt-4o-mini' } as OpenAI.Responses.ResponseCreateParamsNonStreaming).catch((e: unknown) => e);
    expect((none as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request', param: 'input' });
    expect(stack.fake.requests.length).toBe(0);
  });
});
