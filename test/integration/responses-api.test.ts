// The OpenAI Responses API through the real sidecar with the official SDK: passed through to an OpenAI
// provider (the fake provider speaking Responses) with the model swapped and nothing else touched, usage
// read into the access log, streams checked and forwarded, failures retried before the first content and
// raised by the SDK after it, the response cache; and translated for a Chat Completions provider and for
// an Anthropic one, streams and tools included, with 400s naming what cannot be translated.
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
      // A Responses request falls back, and is hedged, across providers of different APIs.
      models['with-fallback'] = { targets: [{ provider: 'openai', model: 'gpt-4o' }], fallbacks: ['claude-haiku'], retry: { attempts: 0 } };
      models.hedged = { hedgeAfterMs: 100, strategy: 'round-robin', targets: [{ provider: 'openai', model: 'gpt-4o-mini' }, { provider: 'vllm', model: 'llama-3.1-8b' }] };
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

  it('falls back to another provider (translated for it) when the first fails, and hedges across providers', async () => {
    stack.fake.faults.add({ match: { path: '/v1/responses' }, status: 503 });
    const { data, response } = await client.responses.create({ model: 'with-fallback', input: 'fall back' }).withResponse();
    expect(data.output_text).toBe('Hello from the fake provider. You said: fall back');
    expect(response.headers.get('x-llmgw-provider')).toBe('claude');
    expect(stack.fake.requests.map((r) => r.path)).toEqual(['/v1/responses', '/v1/messages']);

    // Round robin: of two requests one goes to the slow OpenAI target first, and is hedged to the other.
    stack.fake.requests.length = 0;
    stack.fake.faults.add({ match: { path: '/v1/responses' }, delayMs: 2000, times: 0 });
    for (let i = 0; i < 2; i++) {
      const hedged = await client.responses.create({ model: 'hedged', input: `race ${i}` }, { timeout: 1500 }).withResponse();
      expect(hedged.data.output_text).toBe(`Hello from the fake provider. You said: race ${i}`);
      expect(hedged.response.headers.get('x-llmgw-provider')).toBe('vllm');
    }
    expect(stack.fake.requests.map((r) => r.path)).toContain('/v1/responses');
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

  it('refuses malformed input with a 400 naming the parameter', async () => {
    const bad = await client.responses.create({ model: 'gpt-4o-mini', input: 42 as unknown as string }).catch((e: unknown) => e);
    expect((bad as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request', param: 'input' });
    // Bounded like messages: more input items than a conversation may hold is refused before parsing.
    const flood = Array.from({ length: 10_001 }, () => ({ role: 'user' as const, content: 'x' }));
    const tooMany = await client.responses.create({ model: 'gpt-4o-mini', input: flood }).catch((e: unknown) => e);
    expect((tooMany as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
    expect((tooMany as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request' });
    expect((tooMany as InstanceType<typeof OpenAI.APIError>).message).toContain('"input" has more input items than the limit of 10000');
    const none = await client.responses.create({ model: 'gpt-4o-mini' } as OpenAI.Responses.ResponseCreateParamsNonStreaming).catch((e: unknown) => e);
    expect((none as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request', param: 'input' });
    expect(stack.fake.requests.length).toBe(0);
  });
});

describe.each([
  { model: 'llama', upstreamPath: '/v1/chat/completions', kind: 'a Chat Completions provider' },
  { model: 'claude-haiku', upstreamPath: '/v1/messages', kind: 'an Anthropic provider' },
])('Responses API → $kind (translated)', ({ model, upstreamPath }) => {
  it('answers a Response with the provider\'s text and usage, from a request translated to its API', async () => {
    const { data, response } = await client.responses.create({ model, instructions: 'Be brief.', input: 'Hi there', max_output_tokens: 100, temperature: 0.5 }).withResponse();
    expect(data.object).toBe('response');
    expect(data.status).toBe('completed');
    expect(data.output_text).toBe('Hello from the fake provider. You said: Hi there');
    expect(data.output).toHaveLength(1);
    expect(data.instructions).toBe('Be brief.');
    expect(data.usage!.total_tokens).toBe(data.usage!.input_tokens + data.usage!.output_tokens);
    expect(data.usage!.output_tokens).toBe(9);
    expect(response.headers.get('x-llmgw-model')).toBe(model === 'llama' ? 'llama-3.1-8b' : 'claude-haiku-4-5');
    const upstream = stack.fake.requests[0]!;
    expect(upstream.path).toBe(upstreamPath);
    const body = upstream.body as Record<string, unknown>;
    if (model === 'llama') {
      expect(body).toEqual({ model: 'llama-3.1-8b', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }], max_tokens: 100, temperature: 0.5 });
    } else {
      expect(body).toEqual({ model: 'claude-haiku-4-5', system: 'Be brief.', messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 100, temperature: 0.5 });
    }
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ path: '/v1/responses', model, tokensOut: 9 }));
  });

  it('streams the response.* events, numbered, that the SDK accumulates into the same answer', async () => {
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    const stream = await client.responses.create({ model, input: 'Stream please', stream: true });
    for await (const e of stream) events.push(e);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array(9).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.usage!.output_tokens).toBe(9);
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ stream: true, cache: 'MISS', tokensOut: 9 }));
    const final = await client.responses.stream({ model, input: 'Stream again' }).finalResponse();
    expect(final.output_text).toBe('Hello from the fake provider. You said: Stream again');
    expect(final.usage!.output_tokens).toBe(9);
  });

  it('runs a function tool loop, streamed and not', async () => {
    const ask = 'What is the get_weather in Paris?';
    const first = await client.responses.create({ model, input: ask, tools: [weather], tool_choice: 'auto' });
    const call = first.output.find((o): o is OpenAI.Responses.ResponseFunctionToolCall => o.type === 'function_call');
    expect(call).toMatchObject({ name: 'get_weather', arguments: '{"city":"fake"}', status: 'completed' });
    const streamed = await client.responses.stream({ model, input: ask, tools: [weather] }).finalResponse();
    expect(streamed.output.find((o) => o.type === 'function_call')).toMatchObject({ name: 'get_weather', arguments: '{"city":"fake"}' });
    const second = await client.responses.create({
      model,
      tools: [weather],
      input: [{ role: 'user', content: ask }, call!, { type: 'function_call_output', call_id: call!.call_id, output: '{"temp":21}' }],
    });
    expect(second.output_text).toBe('The tool returned: {"temp":21}');
  });

  it('reports a cut answer as incomplete for max_output_tokens', async () => {
    const res = await client.responses.create({ model, input: 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen', max_output_tokens: 16 });
    expect(res.status).toBe('incomplete');
    expect(res.incomplete_details).toEqual({ reason: 'max_output_tokens' });
  });

  it('refuses with 400 naming the parameter what the provider\'s API cannot express', async () => {
    const refused = async (body: Record<string, unknown>): Promise<unknown> => {
      const err = await client.responses.create({ model, input: 'hi', ...body } as OpenAI.Responses.ResponseCreateParamsNonStreaming).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      return (err as InstanceType<typeof OpenAI.APIError>).error;
    };
    expect(await refused({ tools: [{ type: 'web_search' }] })).toMatchObject({ code: 'llmgw_invalid_request', param: 'tools[0].type' });
    expect(await refused({ reasoning: { effort: 'low', summary: 'verbose' } })).toMatchObject({ param: 'reasoning.summary' });
    expect(await refused({ previous_response_id: 'resp_123' })).toMatchObject({ param: 'previous_response_id' });
    expect(await refused({ input: [{ type: 'item_reference', id: 'msg_1' }] })).toMatchObject({ param: 'input[0].type' });
    expect(stack.fake.requests.length).toBe(0);
  });
});

describe('Responses API reasoning summaries on Anthropic (what Codex asks for)', () => {
  it('gives Claude\'s thinking as the reasoning summary, streamed and not', async () => {
    const ask = { model: 'claude-haiku', input: 'Think first', reasoning: { effort: 'low' as const, summary: 'auto' as const } };
    const res = await client.responses.create(ask);
    const item = res.output.find((o): o is OpenAI.Responses.ResponseReasoningItem => o.type === 'reasoning')!;
    expect(item.summary).toHaveLength(1);
    expect(item.summary[0]!.type).toBe('summary_text');
    expect(item.summary[0]!.text.length).toBeGreaterThan(0);
    expect(res.reasoning).toMatchObject({ effort: 'low', summary: 'auto' });
    expect((stack.fake.requests.at(-1)!.body as Record<string, unknown>).thinking).toEqual({ type: 'enabled', budget_tokens: 1024 });

    const events: string[] = [];
    let summary = '';
    const stream = await client.responses.create({ ...ask, input: 'Think while streaming', stream: true });
    for await (const e of stream) {
      events.push(e.type);
      if (e.type === 'response.reasoning_summary_text.delta') summary += e.delta;
    }
    expect(events).toContain('response.reasoning_summary_part.added');
    expect(events).toContain('response.reasoning_summary_part.done');
    expect(summary.length).toBeGreaterThan(0);
    expect(events).not.toContain('response.reasoning_text.delta');
  });
});

describe('Responses API conversation state kept by the sidecar', () => {
  it('answers a follow-up by previous_response_id on a provider without the Responses API, with the whole conversation', async () => {
    const first = await client.responses.create({ model: 'llama', instructions: 'Be brief.', input: 'My name is Ada' });
    const second = await client.responses.create({ model: 'llama', previous_response_id: first.id, input: 'What is my name?' });
    expect(second.output_text).toBe('Hello from the fake provider. You said: What is my name?');
    const upstream = stack.fake.requests[1]!.body as { messages: unknown[] };
    // Instructions are not carried over (as with OpenAI); the earlier turn and its answer are.
    expect(upstream.messages).toEqual([
      { role: 'user', content: 'My name is Ada' },
      { role: 'assistant', content: 'Hello from the fake provider. You said: My name is Ada' },
      { role: 'user', content: 'What is my name?' },
    ]);
  });

  it('carries a conversation across providers, streamed answers and tool calls included', async () => {
    const ask = 'What is the get_weather in Paris?';
    const streamed = await client.responses.stream({ model: 'claude-haiku', input: ask, tools: [weather] }).finalResponse();
    const call = streamed.output.find((o) => o.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
    const followUp = await client.responses.create({
      model: 'gpt-4o-mini',
      previous_response_id: streamed.id,
      tools: [weather],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"temp":21}' }],
    });
    expect(followUp.output_text).toBe('The tool returned: {"temp":21}');
    // The OpenAI provider got the conversation, not an id it never issued.
    const upstream = stack.fake.requests.at(-1)!.body as Record<string, unknown>;
    expect(upstream.previous_response_id).toBeUndefined();
    expect(upstream.input).toEqual([
      { role: 'user', content: ask },
      { type: 'function_call', call_id: call.call_id, name: 'get_weather', arguments: '{"city":"fake"}' },
      { type: 'function_call_output', call_id: call.call_id, output: '{"temp":21}' },
    ]);
  });

  it('answers GET and DELETE /v1/responses/{id} for what it stored (responses.retrieve and responses.delete)', async () => {
    const made = await client.responses.create({ model: 'claude-haiku', input: 'Remember this' });
    const got = await client.responses.retrieve(made.id);
    expect(got).toEqual(made);
    await client.responses.delete(made.id);
    const gone = await client.responses.retrieve(made.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
    expect((gone as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_not_found' });
    // Deleted: a follow-up by its id is the provider's to answer (a translated route refuses it).
    const followUp = await client.responses.create({ model: 'llama', previous_response_id: made.id, input: 'again' }).catch((e: unknown) => e);
    expect((followUp as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ param: 'previous_response_id' });
    const unstored = await client.responses.create({ model: 'llama', input: 'not kept', store: false });
    expect(await client.responses.retrieve(unstored.id).catch((e: unknown) => (e as InstanceType<typeof OpenAI.APIError>).status)).toBe(404);
    const post = await fetch(`${stack.url}/v1/responses/${made.id}`, { method: 'PUT' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, DELETE');
  });

  it('keeps nothing for store: false, and leaves an id it does not know to the provider', async () => {
    const unstored = await client.responses.create({ model: 'llama', input: 'forget me', store: false });
    const translated = await client.responses.create({ model: 'llama', previous_response_id: unstored.id, input: 'again' }).catch((e: unknown) => e);
    expect((translated as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'llmgw_invalid_request', param: 'previous_response_id' });
    const passed = await client.responses.create({ model: 'gpt-4o-mini', previous_response_id: 'resp_unknown', input: 'again' }).catch((e: unknown) => e);
    expect((passed as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
    expect((stack.fake.requests.at(-1)!.body as Record<string, unknown>).previous_response_id).toBe('resp_unknown');
  });
});
