// Any SDK to any provider: the OpenAI SDK reaching an Anthropic upstream and the Anthropic SDK reaching
// an OpenAI upstream through the real sidecar, streaming and tools included; the fake upstream checks
// each translated request as strictly as the real API would.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { APP_KEY, startStack, UPSTREAM_KEY, type Stack } from '../helpers/stack.js';

let stack: Stack;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  stack = await startStack();
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.requests.length = 0;
});

type Body = Record<string, unknown>;
const lastUpstream = () => stack.fake.requests.at(-1)!;

const weatherTool: OpenAI.Chat.ChatCompletionTool = {
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};
const anthropicWeatherTool: Anthropic.Tool = {
  name: 'get_weather',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe('OpenAI SDK → Anthropic upstream', () => {
  it('translates a chat completion both ways', async () => {
    const r = await openai.chat.completions.create({
      model: 'claude-haiku',
      messages: [
        { role: 'system', content: 'Be nice.' },
        { role: 'user', content: 'Hello Claude' },
      ],
    });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('claude-haiku-4-5');
    expect(r.choices[0]!.message).toMatchObject({ role: 'assistant', content: 'Hello from the fake provider. You said: Hello Claude' });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 });
    const up = lastUpstream();
    expect(up.path).toBe('/v1/messages');
    expect(up.headers['x-api-key']).toBe(UPSTREAM_KEY);
    expect(up.headers['anthropic-version']).toBe('2023-06-01');
    expect(up.headers.authorization).toBeUndefined();
    expect(up.body).toMatchObject({ model: 'claude-haiku-4-5', system: 'Be nice.', max_tokens: 4096 });
  });

  it('streams a tool call the SDK helper can assemble, then completes the tool round trip', async () => {
    const stream = openai.chat.completions.stream({
      model: 'claude-haiku',
      messages: [{ role: 'user', content: 'Call get_weather please' }],
      tools: [weatherTool],
    });
    const first = await stream.finalChatCompletion();
    const call = first.choices[0]!.message.tool_calls![0]!;
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.type === 'function' && call.function.name).toBe('get_weather');
    expect(call.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ city: 'fake' });
    expect(call.id).toMatch(/^toolu_/);

    const second = await openai.chat.completions.create({
      model: 'claude-haiku',
      messages: [
        { role: 'user', content: 'Call get_weather please' },
        { role: 'assistant', content: null, tool_calls: first.choices[0]!.message.tool_calls! },
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ],
      tools: [weatherTool],
    });
    expect(second.choices[0]!.message.content).toBe('The tool returned: sunny');
  });

  it('gives usage in the final chunk when asked, with Anthropic cache reads counted as cached prompt tokens', async () => {
    const stream = await openai.chat.completions.create({
      model: 'claude-haiku',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'A long cached prefix [fake:cached] and a question' }],
    });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const usage = chunks.at(-1)!.usage!;
    expect(usage.prompt_tokens).toBe(13);
    expect(usage.prompt_tokens_details?.cached_tokens).toBe(6);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('sends images and maps stop sequences and max tokens', async () => {
    const r = await openai.chat.completions.create({
      model: 'claude-haiku',
      max_completion_tokens: 50,
      stop: ['provider'],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
      ],
    });
    expect(r.choices[0]!.message.content).toBe('Hello from the fake ');
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const body = lastUpstream().body as Body;
    expect(body.stop_sequences).toEqual(['provider']);
    expect(body.max_tokens).toBe(50);
    expect((body.messages as Body[])[0]!.content).toContainEqual({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } });

    const cut = await openai.chat.completions.create({ model: 'claude-haiku', max_tokens: 3, messages: [{ role: 'user', content: 'x' }] });
    expect(cut.choices[0]!.finish_reason).toBe('length');
    expect(cut.choices[0]!.message.content).toBe('Hello from the ');
  });
});

describe('Anthropic SDK → OpenAI upstream', () => {
  it('translates a message both ways', async () => {
    const msg = await anthropic.messages.create({
      model: 'gpt-4o-mini',
      max_tokens: 200,
      system: 'Be nice.',
      messages: [{ role: 'user', content: 'Hello GPT' }],
    });
    expect(msg.type).toBe('message');
    expect(msg.content).toEqual([{ type: 'text', text: 'Hello from the fake provider. You said: Hello GPT' }]);
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.usage).toMatchObject({ input_tokens: 5, output_tokens: 9 });
    const up = lastUpstream();
    expect(up.path).toBe('/v1/chat/completions');
    expect(up.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(up.body).toMatchObject({
      model: 'gpt-4o-mini',
      max_completion_tokens: 200,
      messages: [
        { role: 'system', content: 'Be nice.' },
        { role: 'user', content: 'Hello GPT' },
      ],
    });
  });

  it('streams text through the SDK stream helper with the usage the upstream reported', async () => {
    const stream = anthropic.messages.stream({ model: 'gpt-4o-mini', max_tokens: 200, messages: [{ role: 'user', content: 'Stream it' }] });
    let text = '';
    stream.on('text', (t) => (text += t));
    const final = await stream.finalMessage();
    expect(text).toBe('Hello from the fake provider. You said: Stream it');
    expect(final.content).toHaveLength(1);
    expect(final.content[0]).toMatchObject({ type: 'text', text });
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.input_tokens).toBe(3);
    expect(final.usage.output_tokens).toBe(9);
  });

  it('streams a tool_use block and completes the tool round trip', async () => {
    const stream = anthropic.messages.stream({
      model: 'gpt-4o-mini',
      max_tokens: 200,
      messages: [{ role: 'user', content: 'Please call get_weather' }],
      tools: [anthropicWeatherTool],
    });
    const first = await stream.finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    const toolUse = first.content.find((b) => b.type === 'tool_use')!;
    expect(toolUse).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'fake' } });

    const second = await anthropic.messages.create({
      model: 'gpt-4o-mini',
      max_tokens: 200,
      tools: [anthropicWeatherTool],
      messages: [
        { role: 'user', content: 'Please call get_weather' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.type === 'tool_use' ? toolUse.id : '', content: 'rainy' }] },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'The tool returned: rainy' }]);
    const upstreamMessages = (lastUpstream().body as Body).messages as Body[];
    expect(upstreamMessages.at(-1)).toEqual({ role: 'tool', tool_call_id: toolUse.type === 'tool_use' ? toolUse.id : '', content: 'rainy' });
  });

  it('uses max_tokens for an openai-compatible upstream', async () => {
    await anthropic.messages.create({ model: 'llama', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    expect(lastUpstream().body).toMatchObject({ model: 'llama-3.1-8b', max_tokens: 64 });
  });
});

describe('Anthropic SDK → Anthropic upstream', () => {
  it('passes the request through with the model swapped and the app’s API version and betas kept', async () => {
    const msg = await anthropic.messages.create(
      { model: 'claude-haiku', max_tokens: 100, messages: [{ role: 'user', content: 'Straight through' }] },
      { headers: { 'anthropic-beta': 'context-1m-2025-08-07' } },
    );
    expect(msg.content).toEqual([{ type: 'text', text: 'Hello from the fake provider. You said: Straight through' }]);
    const up = lastUpstream();
    expect(up.body).toMatchObject({ model: 'claude-haiku-4-5', max_tokens: 100 });
    expect(up.headers['anthropic-beta']).toBe('context-1m-2025-08-07');
    expect(up.headers['anthropic-version']).toBe('2026-10-21');
    expect(up.headers['x-api-key']).toBe(UPSTREAM_KEY);
  });

  it('streams events through with usage intact', async () => {
    const final = await anthropic.messages.stream({ model: 'claude-haiku', max_tokens: 100, messages: [{ role: 'user', content: 'Go' }] }).finalMessage();
    expect(final.usage).toMatchObject({ input_tokens: 1, output_tokens: 8 });
    expect(final.stop_reason).toBe('end_turn');
  });

  it('lists models in the Anthropic shape for the Anthropic SDK', async () => {
    const page = await anthropic.models.list();
    expect(page.data.map((m) => m.id)).toContain('claude-haiku');
    expect(page.data[0]!.type).toBe('model');
  });

  it('describes one model in the Anthropic shape, and refuses an unknown one with an Anthropic 404', async () => {
    expect(await anthropic.models.retrieve('claude-haiku')).toMatchObject({ type: 'model', id: 'claude-haiku', display_name: 'claude-haiku' });
    const err = await anthropic.models.retrieve('no-such-model').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect((err as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });
});
