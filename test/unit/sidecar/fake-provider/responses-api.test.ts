// The fake provider's OpenAI Responses endpoint and Anthropic count_tokens, driven by the official SDKs:
// answers, tool loops, limits, structured output, reasoning, streams and their faults, token counts.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../../../sidecar/fake-provider/fake-provider.js';

const KEY = 'sk-fake-test';
const MODEL = 'gpt-4o-mini';
const ECHO = 'Hello from the fake provider. You said: ';
const WEATHER = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'], additionalProperties: false },
  strict: true,
};
const LONG = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');

let fake: FakeProvider;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: KEY });
  openai = new OpenAI({ apiKey: KEY, baseURL: `${fake.url}/v1`, maxRetries: 0 });
  // This SDK sends its key as `Authorization: Bearer`; the fake checks Anthropic's `x-api-key`.
  anthropic = new Anthropic({ apiKey: KEY, baseURL: fake.url, maxRetries: 0, defaultHeaders: { 'x-api-key': KEY } });
});
afterAll(async () => {
  await fake.close();
});

async function collect(stream: AsyncIterable<ResponseStreamEvent>): Promise<ResponseStreamEvent[]> {
  const events: ResponseStreamEvent[] = [];
  for await (const e of stream) events.push(e);
  return events;
}

const deltas = (events: ResponseStreamEvent[], type: string): string =>
  events.flatMap((e) => (e.type === type && 'delta' in e && typeof e.delta === 'string' ? [e.delta] : [])).join('');

describe('POST /v1/responses', () => {
  it('echoes a string input as a completed message with consistent usage', async () => {
    const r = await openai.responses.create({ model: MODEL, input: 'What is the capital of France?' });
    expect(r.output_text).toBe(`${ECHO}What is the capital of France?`);
    expect(r).toMatchObject({ object: 'response', status: 'completed', model: MODEL, error: null, incomplete_details: null, store: true, previous_response_id: null });
    expect(r.id).toMatch(/^resp_/);
    expect(r.output).toEqual([
      { id: expect.stringMatching(/^msg_/), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: r.output_text, annotations: [], logprobs: [] }] },
    ]);
    const u = r.usage!;
    expect(u.input_tokens).toBeGreaterThan(0);
    expect(u.output_tokens).toBe(r.output_text.split(' ').length);
    expect(u.total_tokens).toBe(u.input_tokens + u.output_tokens);
    expect(u.input_tokens_details.cached_tokens).toBe(0);
    expect(u.output_tokens_details.reasoning_tokens).toBe(0);
  });

  it('reports half the prompt as cached when it carries [fake:cached]', async () => {
    const r = await openai.responses.create({ model: MODEL, instructions: 'Be brief.', input: '[fake:cached] a long enough prompt to count several tokens' });
    expect(r.usage!.input_tokens_details.cached_tokens).toBe(Math.floor(r.usage!.input_tokens / 2));
    expect(r.usage!.input_tokens_details.cached_tokens).toBeGreaterThan(0);
  });

  it('counts the instructions as prompt and echoes the request settings', async () => {
    const input = 'Hi there';
    const plain = await openai.responses.create({ model: MODEL, input });
    const r = await openai.responses.create({ model: MODEL, input, instructions: 'You are a terse assistant.', temperature: 0.2, metadata: { run: '7' }, store: false, tools: [WEATHER] });
    expect(r.usage!.input_tokens).toBeGreaterThan(plain.usage!.input_tokens);
    expect(r).toMatchObject({ instructions: 'You are a terse assistant.', temperature: 0.2, metadata: { run: '7' }, store: false, tool_choice: 'auto', parallel_tool_calls: true });
    expect(r.tools).toEqual([WEATHER]);
  });

  it('calls a named function tool, then answers its output', async () => {
    const question = 'Use get_weather for Paris';
    const first = await openai.responses.create({ model: MODEL, input: question, tools: [WEATHER] });
    expect(first.output).toHaveLength(1);
    const call = first.output[0]!;
    if (call.type !== 'function_call') throw new Error(`expected a function call, got ${call.type}`);
    expect(call).toMatchObject({ name: 'get_weather', status: 'completed', call_id: expect.stringMatching(/^call_/), id: expect.stringMatching(/^fc_/) });
    expect(JSON.parse(call.arguments)).toEqual({ city: 'fake', days: 1 });
    expect(first.output_text).toBe('');

    const second = await openai.responses.create({
      model: MODEL,
      tools: [WEATHER],
      input: [{ role: 'user', content: question }, call, { type: 'function_call_output', call_id: call.call_id, output: '22 degrees and sunny' }],
    });
    expect(second.output_text).toBe('The tool returned: 22 degrees and sunny');
  });

  it('forces a tool with tool_choice and never calls one with tool_choice none', async () => {
    const forced = await openai.responses.create({ model: MODEL, input: 'hello', tools: [WEATHER], tool_choice: { type: 'function', name: 'get_weather' } });
    expect(forced.output[0]?.type).toBe('function_call');
    const none = await openai.responses.create({ model: MODEL, input: 'Use get_weather', tools: [WEATHER], tool_choice: 'none' });
    expect(none.output_text).toBe(`${ECHO}Use get_weather`);
  });

  it('rejects a function_call_output without its call, as OpenAI does', async () => {
    const err = await openai.responses.create({ model: MODEL, input: [{ role: 'user', content: 'x' }, { type: 'function_call_output', call_id: 'call_nowhere', output: 'y' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('No tool call found for function call output with call_id call_nowhere');
  });

  it('rejects chat-style content parts with the Responses part types', async () => {
    const err = await openai.responses
      .create({ model: MODEL, input: [{ role: 'user', content: [{ type: 'text', text: 'hi' } as never] }] })
      .catch((e: unknown) => e as InstanceType<typeof OpenAI.BadRequestError>);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'invalid_value', param: 'input[0].content[0].type' });
  });

  it('answers previous_response_id with previous_response_not_found: the fake keeps no state', async () => {
    const err = await openai.responses.create({ model: MODEL, input: 'again', previous_response_id: 'resp_abc' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'previous_response_not_found', param: 'previous_response_id', type: 'invalid_request_error' });
  });

  it('stops at max_output_tokens with status incomplete', async () => {
    const r = await openai.responses.create({ model: MODEL, input: LONG, max_output_tokens: 16 });
    expect(r.status).toBe('incomplete');
    expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(r.usage!.output_tokens).toBe(16);
    expect(r.output[0]).toMatchObject({ type: 'message', status: 'incomplete' });
    expect(`${ECHO}${LONG}`.startsWith(r.output_text)).toBe(true);
    expect(r.output_text.length).toBeLessThan(`${ECHO}${LONG}`.length);
  });

  it('refuses max_output_tokens below 16 like OpenAI', async () => {
    const err = await openai.responses.create({ model: MODEL, input: 'x', max_output_tokens: 8 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, code: 'integer_below_min_value', param: 'max_output_tokens' });
  });

  it('answers a json_schema text format with JSON built from the schema', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string' }, population: { type: 'integer' }, capital: { type: 'boolean' }, kind: { type: 'string', enum: ['city', 'town'] } }, required: ['name', 'population', 'capital', 'kind'], additionalProperties: false };
    const r = await openai.responses.create({ model: MODEL, input: 'Describe Paris', text: { format: { type: 'json_schema', name: 'place', schema, strict: true } } });
    expect(JSON.parse(r.output_text)).toEqual({ name: 'fake', population: 1, capital: true, kind: 'city' });
    expect(r.text?.format).toMatchObject({ type: 'json_schema', name: 'place' });
  });

  it('puts a reasoning item with its summary first and counts reasoning tokens in the output', async () => {
    const r = await openai.responses.create({ model: MODEL, input: 'Think about it', reasoning: { effort: 'low', summary: 'auto' } });
    expect(r.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
    const reasoning = r.output[0]!;
    if (reasoning.type !== 'reasoning') throw new Error('expected reasoning first');
    expect(reasoning.id).toMatch(/^rs_/);
    expect(reasoning.summary).toHaveLength(1);
    expect(reasoning.summary[0]!.text.length).toBeGreaterThan(0);
    const u = r.usage!;
    expect(u.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(u.output_tokens).toBe(u.output_tokens_details.reasoning_tokens + r.output_text.split(' ').length);
    expect(r.reasoning).toEqual({ effort: 'low', summary: 'auto' });

    const noSummary = await openai.responses.create({ model: MODEL, input: 'Think', reasoning: { effort: 'high' } });
    expect(noSummary.output[0]).toMatchObject({ type: 'reasoning', summary: [] });
    expect(noSummary.usage!.output_tokens_details.reasoning_tokens).toBeGreaterThan(u.output_tokens_details.reasoning_tokens);
  });

  it('honours auth and answers model_not_found for missing models', async () => {
    const stranger = new OpenAI({ apiKey: 'wrong', baseURL: `${fake.url}/v1`, maxRetries: 0 });
    await expect(stranger.responses.create({ model: MODEL, input: 'x' })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const err = await openai.responses.create({ model: 'missing-model', input: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err).toMatchObject({ code: 'model_not_found' });
  });

  it('records the request and bills input plus output tokens', async () => {
    const before = fake.stats.billedTokens;
    const r = await openai.responses.create({ model: MODEL, input: 'bill me', reasoning: { effort: 'minimal' } });
    expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', path: '/v1/responses', body: { input: 'bill me' } });
    const deadline = Date.now() + 2000;
    while (fake.stats.billedTokens === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(fake.stats.billedTokens - before).toBe(r.usage!.total_tokens);
  });
});

describe('POST /v1/responses, streamed', () => {
  it('numbers the events from 0 and streams the text the final response holds', async () => {
    const events = await collect(await openai.responses.create({ model: MODEL, input: 'Stream this please', stream: true }));
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t !== 'response.output_text.delta')).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(types.filter((t) => t === 'response.output_text.delta').length).toBeGreaterThan(1);
    const first = events[0]!;
    if (first.type !== 'response.created') throw new Error('expected response.created first');
    expect(first.response).toMatchObject({ status: 'in_progress', output: [], usage: null });
    const last = events.at(-1)!;
    if (last.type !== 'response.completed') throw new Error('expected response.completed last');
    const text = deltas(events, 'response.output_text.delta');
    expect(text).toBe(`${ECHO}Stream this please`);
    const message = last.response.output[0]!;
    expect(message.type === 'message' && message.content[0]?.type === 'output_text' ? message.content[0].text : undefined).toBe(text);
    expect(last.response.usage!.total_tokens).toBe(last.response.usage!.input_tokens + last.response.usage!.output_tokens);
  });

  it('gives the SDK stream helper the same final response as the plain call', async () => {
    const params = { model: MODEL, input: '[fake:cached] same answer either way', reasoning: { effort: 'medium' as const, summary: 'detailed' as const } };
    const plain = await openai.responses.create(params);
    const streamed = await openai.responses.stream(params).finalResponse();
    expect(streamed.output_text).toBe(plain.output_text);
    expect(streamed.usage).toEqual(plain.usage);
    expect(streamed.status).toBe('completed');
    const summary = (r: typeof plain) => (r.output[0]?.type === 'reasoning' ? r.output[0].summary : undefined);
    expect(summary(streamed)).toEqual(summary(plain));
  });

  it('streams reasoning summary parts in the order OpenAI sends them', async () => {
    const events = await collect(await openai.responses.create({ model: MODEL, input: 'why', reasoning: { effort: 'low', summary: 'auto' }, stream: true }));
    const types = events.map((e) => e.type).filter((t) => !t.endsWith('.delta'));
    expect(types.slice(0, 8)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.reasoning_summary_part.added',
      'response.reasoning_summary_text.done',
      'response.reasoning_summary_part.done',
      'response.output_item.done',
      'response.output_item.added',
    ]);
    const done = events.find((e) => e.type === 'response.reasoning_summary_text.done');
    expect(done?.type === 'response.reasoning_summary_text.done' ? done.text : undefined).toBe(deltas(events, 'response.reasoning_summary_text.delta'));
  });

  it('streams function call arguments whose pieces make the final arguments', async () => {
    const events = await collect(await openai.responses.create({ model: MODEL, input: 'weather?', tools: [WEATHER], tool_choice: 'required', stream: true }));
    const added = events.find((e) => e.type === 'response.output_item.added');
    expect(added?.type === 'response.output_item.added' ? added.item : undefined).toMatchObject({ type: 'function_call', arguments: '', status: 'in_progress', name: 'get_weather' });
    const pieces = events.filter((e) => e.type === 'response.function_call_arguments.delta');
    expect(pieces.length).toBeGreaterThan(1);
    const done = events.find((e) => e.type === 'response.function_call_arguments.done');
    const joined = deltas(events, 'response.function_call_arguments.delta');
    expect(done?.type === 'response.function_call_arguments.done' ? done.arguments : undefined).toBe(joined);
    const last = events.at(-1)!;
    const item = last.type === 'response.completed' ? last.response.output[0] : undefined;
    expect(item?.type === 'function_call' ? item.arguments : undefined).toBe(joined);
    expect(JSON.parse(joined)).toEqual({ city: 'fake', days: 1 });
  });

  it('ends a stream cut by max_output_tokens with response.incomplete', async () => {
    const events = await collect(await openai.responses.create({ model: MODEL, input: LONG, max_output_tokens: 16, stream: true }));
    const last = events.at(-1)!;
    expect(last.type).toBe('response.incomplete');
    expect(last.type === 'response.incomplete' ? last.response.incomplete_details : undefined).toEqual({ reason: 'max_output_tokens' });
    expect(events.filter((e) => e.type === 'response.output_text.delta')).toHaveLength(16);
  });

  it('makes the SDK throw on an injected mid-stream error', async () => {
    fake.faults.add({ match: { path: '/v1/responses' }, errorAfterChunks: 4 });
    const seen: ResponseStreamEvent[] = [];
    const failure = await (async () => {
      for await (const e of await openai.responses.create({ model: MODEL, input: 'fail midway', stream: true })) seen.push(e);
    })().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect(String((failure as Error).message)).toContain('The server had an error');
    expect(seen.map((e) => e.sequence_number)).toEqual([0, 1, 2, 3]);

    fake.faults.add({ match: { path: '/v1/responses' }, errorAfterChunks: 3 });
    await expect(openai.responses.stream({ model: MODEL, input: 'fail again' }).finalResponse()).rejects.toBeInstanceOf(OpenAI.APIError);
  });

  it('sends the error event in both shapes, then response.failed', async () => {
    fake.faults.add({ match: { path: '/v1/responses' }, errorAfterChunks: 2 });
    const res = await fetch(`${fake.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, input: 'raw', stream: true }),
    });
    const frames = (await res.text()).split('\n\n').filter(Boolean);
    expect(frames).toHaveLength(4);
    const [errorFrame, failedFrame] = frames.slice(2).map((f) => ({ event: f.split('\n')[0], data: JSON.parse(f.split('\n')[1]!.slice(6)) as Record<string, unknown> }));
    expect(errorFrame).toEqual({
      event: 'event: error',
      data: { type: 'error', sequence_number: 2, code: 'server_error', message: expect.any(String), param: null, error: { type: 'server_error', code: 'server_error', message: expect.any(String), param: null } },
    });
    expect(failedFrame!.event).toBe('event: response.failed');
    expect(failedFrame!.data).toMatchObject({ sequence_number: 3, response: { status: 'failed', error: { code: 'server_error' } } });
  });
});

describe('POST /v1/messages/count_tokens', () => {
  const system = 'You answer questions about geography.';
  const messages: Anthropic.MessageParam[] = [
    { role: 'user', content: 'What is the capital of France?' },
    { role: 'assistant', content: 'Paris.' },
    { role: 'user', content: [{ type: 'text', text: 'And of Italy?' }] },
  ];

  it('counts exactly the input tokens the matching Messages answer reports', async () => {
    const counted = await anthropic.messages.countTokens({ model: 'claude-haiku-4-5', messages, system });
    const answer = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 100, messages, system });
    expect(counted.input_tokens).toBeGreaterThan(0);
    expect(counted.input_tokens).toBe(answer.usage.input_tokens);
    const shorter = await anthropic.messages.countTokens({ model: 'claude-haiku-4-5', messages: messages.slice(0, 1) });
    expect(shorter.input_tokens).toBeLessThan(counted.input_tokens);
  });

  it('counts cached prompt too, as input plus cache reads', async () => {
    const cached: Anthropic.MessageParam[] = [{ role: 'user', content: '[fake:cached] a prompt long enough to be cached in part' }];
    const counted = await anthropic.messages.countTokens({ model: 'claude-haiku-4-5', messages: cached });
    const answer = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 100, messages: cached });
    expect(answer.usage.cache_read_input_tokens).toBeGreaterThan(0);
    expect(counted.input_tokens).toBe(answer.usage.input_tokens + (answer.usage.cache_read_input_tokens ?? 0));
  });

  it('checks the request like /v1/messages, in Anthropic error shapes', async () => {
    const stranger = new Anthropic({ apiKey: 'wrong', baseURL: fake.url, maxRetries: 0, defaultHeaders: { 'x-api-key': 'wrong' } });
    await expect(stranger.messages.countTokens({ model: 'claude-haiku-4-5', messages })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    await expect(anthropic.messages.countTokens({ model: 'claude-haiku-4-5', messages: [] })).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(anthropic.messages.countTokens({ model: 'missing-claude', messages })).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    const res = await fetch(`${fake.url}/v1/messages/count_tokens`, { method: 'POST', headers: { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' }, body: '{not json' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    const noVersion = await fetch(`${fake.url}/v1/messages/count_tokens`, { method: 'POST', headers: { 'x-api-key': KEY }, body: JSON.stringify({ model: 'claude-haiku-4-5', messages }) });
    expect(noVersion.status).toBe(400);
  });
});
