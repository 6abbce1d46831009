// The official OpenAI SDK against the real sidecar, routed to OpenAI-format upstreams (the fake provider).
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { accessLines, APP_KEY, eventually, startStack, UPSTREAM_KEY, type Stack } from '../helpers/stack.js';

let stack: Stack;
let client: OpenAI;

beforeAll(async () => {
  stack = await startStack();
  client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.requests.length = 0;
});

const tools: OpenAI.Chat.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
    },
  },
];

describe('OpenAI SDK → OpenAI upstream', () => {
  it('answers a chat completion with the upstream body, gateway headers and the provider key only upstream', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi there' }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe('Hello from the fake provider. You said: Hi there');
    expect(data.choices[0]?.finish_reason).toBe('stop');
    expect(data.model).toBe('gpt-4o-mini');
    expect(data.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 9, total_tokens: 11 });
    expect(response.headers.get('x-llmgw-provider')).toBe('openai');
    expect(response.headers.get('x-llmgw-model')).toBe('gpt-4o-mini');
    expect(response.headers.get('x-llmgw-attempts')).toBe('1');
    expect(response.headers.get('x-llmgw-cache')).toBe('BYPASS');
    expect(Number(response.headers.get('x-llmgw-overhead-ms'))).toBeGreaterThanOrEqual(0);
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const upstream = stack.fake.requests[0]!;
    expect(upstream.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(JSON.stringify(upstream.headers)).not.toContain(APP_KEY);
  });

  it('streams chunks, asking the upstream for usage but not passing it to an app that did not ask', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Stream please' }] });
    let text = '';
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('Hello from the fake provider. You said: Stream please');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
    expect((stack.fake.requests[0]!.body as { stream_options?: unknown }).stream_options).toEqual({ include_usage: true });
    await eventually(() => {
      const line = accessLines(stack).at(-1)!;
      expect(line).toMatchObject({ stream: true, status: 200, tokensIn: 4, tokensOut: 9, provider: 'openai', model: 'gpt-4o-mini' });
    });
  });

  it('passes the usage chunk to an app that asked for it', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Count me' }],
    });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 9 });
  });

  it('round-trips a tool call and its result', async () => {
    const first = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Use get_weather for Paris' }],
      tools,
    });
    const call = first.choices[0]!.message.tool_calls![0]!;
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.type === 'function' && call.function.name).toBe('get_weather');
    expect(call.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ city: 'fake', days: 1 });
    const second = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'user', content: 'Use get_weather for Paris' },
        first.choices[0]!.message,
        { role: 'tool', tool_call_id: call.id, content: '18°C' },
      ],
      tools,
    });
    expect(second.choices[0]!.message.content).toBe('The tool returned: 18°C');
  });

  it('reaches an openai-compatible server with its extra headers', async () => {
    const r = await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.model).toBe('llama-3.1-8b');
    expect(stack.fake.requests[0]!.headers['x-tenant']).toBe('blue');
  });

  it('serves embeddings, including the base64 encoding the SDK asks for by default', async () => {
    const r = await client.embeddings.create({ model: 'embed', input: ['one', 'two'] });
    expect(r.data).toHaveLength(2);
    expect(r.data[0]!.embedding).toHaveLength(256);
    expect(Math.hypot(...r.data[0]!.embedding)).toBeCloseTo(1, 5);
    expect(r.usage.prompt_tokens).toBe(2);
    expect((stack.fake.requests[0]!.body as { model: string }).model).toBe('text-embedding-3-small');
  });

  it('carries priority and tags from the caller headers into the access log', async () => {
    await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'tagged' }] },
      { headers: { 'x-llmgw-priority': 'batch', 'x-llmgw-tags': 'team=search, feature=autocomplete' } },
    );
    await eventually(() =>
      expect(accessLines(stack).at(-1)).toMatchObject({ priority: 'batch', tags: { team: 'search', feature: 'autocomplete' } }),
    );
  });

  it('lists the routed model names', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual(['gpt-4o-mini', 'claude-haiku', 'llama', 'embed', 'claude-embed', 'gone-model']);
  });

  it('describes one routed model, and answers 404 in OpenAI\'s shape for a name it does not route', async () => {
    expect(await client.models.retrieve('claude-haiku')).toMatchObject({ id: 'claude-haiku', object: 'model', owned_by: 'llm-gateway' });
    const err = await client.models.retrieve('gpt-5-unknown').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({ code: 'llmgw_unknown_model', param: 'model' });
  });
});
