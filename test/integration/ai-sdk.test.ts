// The Vercel AI SDK (`ai` 6 with `@ai-sdk/openai` and `@ai-sdk/anthropic`) as the app, against the real
// sidecar: `openai('…')` speaks the Responses API (passed through to the openai provider, translated for the
// Chat Completions and Anthropic ones), `openai.chat` Chat Completions and `anthropic('…')` Messages. Text, usage, finish reasons, streams and multi-step tool
// loops, each checked against what the fake provider received and answered.
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, Output, stepCountIs, streamText, tool } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { accessLines, APP_KEY, eventually, startStack, UPSTREAM_KEY, type Stack } from '../helpers/stack.js';

type Json = Record<string, unknown>;

// The AI SDK logs its compatibility warnings (an alias it does not know) to the console: the tests check
// behaviour, and the test output stays free of warnings.
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

let stack: Stack;
let openai: ReturnType<typeof createOpenAI>;
let anthropic: ReturnType<typeof createAnthropic>;
/** What the AI SDK sent the sidecar, to compare with what reached the fake. */
const sent: { url: string; body: Json }[] = [];
const recordingFetch: typeof fetch = async (input, init) => {
  sent.push({ url: input instanceof Request ? input.url : String(input), body: JSON.parse(String(init?.body)) as Json });
  return fetch(input, init);
};

beforeAll(async () => {
  stack = await startStack();
  openai = createOpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, fetch: recordingFetch });
  anthropic = createAnthropic({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, fetch: recordingFetch });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.requests.length = 0;
  stack.fake.faults.clear();
  sent.length = 0;
});

const echo = (said: string): string => `Hello from the fake provider. You said: ${said}`;
// The fake's counts: a prompt token per 4 characters of prompt text, an output token per word.
const promptTokens = (text: string): number => Math.ceil(text.length / 4);
const words = (text: string): number => text.match(/\S+\s*/g)!.length;

const bodyOf = (i: number): Json => stack.fake.requests[i]!.body as Json;

/** A weather tool recording every call of its execute. */
function weatherTool() {
  const calls: { city: string }[] = [];
  const getWeather = tool({
    description: 'Weather for a city',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      calls.push({ city });
      return { city, tempC: 21, sky: 'clear' };
    },
  });
  return { calls, tools: { get_weather: getWeather } };
}
const TOOL_PROMPT = 'What is the get_weather in Paris?';
// The fake fills a string argument with 'fake'; the second step echoes the tool's JSON result.
const TOOL_RESULT = { city: 'fake', tempC: 21, sky: 'clear' };
const AFTER_TOOL = `The tool returned: ${JSON.stringify(TOOL_RESULT)}`;

describe('AI SDK openai provider → /v1/responses (pass-through to the openai provider)', () => {
  it('generateText: the echo, the fake\'s usage and finish reason, over the Responses route', async () => {
    const prompt = 'Hi there';
    const result = await generateText({ model: openai('gpt-4o-mini'), prompt, maxRetries: 0 });

    expect(result.text).toBe(echo(prompt));
    expect(result.finishReason).toBe('stop');
    expect(result.usage.inputTokens).toBe(promptTokens(prompt));
    expect(result.usage.outputTokens).toBe(words(echo(prompt)));
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    expect(result.usage.outputTokens).toBeGreaterThan(0);
    expect(result.usage.totalTokens).toBe(result.usage.inputTokens! + result.usage.outputTokens!);

    expect(stack.fake.requests).toHaveLength(1);
    const upstream = stack.fake.requests[0]!;
    expect(upstream.path).toBe('/v1/responses');
    expect(upstream.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(upstream.body).toMatchObject({ model: 'gpt-4o-mini', input: [{ role: 'user', content: [{ type: 'input_text', text: prompt }] }] });
    expect(upstream.body).not.toHaveProperty('stream', true);
    // Passed through: the body the SDK sent is the body the provider got (the model name is the same here).
    expect(sent.map((r) => r.url)).toEqual([`${stack.url}/v1/responses`]);
    expect(upstream.body).toEqual(sent[0]!.body);
    expect(result.response.id).toMatch(/^resp_fake/);

    await eventually(() =>
      expect(accessLines(stack).at(-1)).toMatchObject({
        path: '/v1/responses',
        status: 200,
        model: 'gpt-4o-mini',
        upstreamModel: 'gpt-4o-mini',
        tokensIn: result.usage.inputTokens,
        tokensOut: result.usage.outputTokens,
      }),
    );
  });

  it('streamText: the text stream concatenates to the echo, with usage and finish reason at the end', async () => {
    const prompt = 'Stream please';
    const result = streamText({ model: openai('gpt-4o-mini'), prompt, maxRetries: 0 });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);

    expect(deltas.join('')).toBe(echo(prompt));
    expect(deltas.length).toBe(words(echo(prompt))); // it really came in pieces, one per word of the fake
    expect(await result.finishReason).toBe('stop');
    const usage = await result.usage;
    expect(usage.inputTokens).toBe(promptTokens(prompt));
    expect(usage.outputTokens).toBe(words(echo(prompt)));

    expect(stack.fake.requests).toHaveLength(1);
    expect(stack.fake.requests[0]!.path).toBe('/v1/responses');
    expect(bodyOf(0)).toMatchObject({ model: 'gpt-4o-mini', stream: true });
    await eventually(() =>
      expect(accessLines(stack).at(-1)).toMatchObject({ path: '/v1/responses', status: 200, stream: true, tokensIn: usage.inputTokens, tokensOut: usage.outputTokens }),
    );
  });

  it('generateText runs a multi-step tool loop: the fake calls the tool, execute runs, the second step answers with its result', async () => {
    const { calls, tools } = weatherTool();
    const result = await generateText({ model: openai('gpt-4o-mini'), prompt: TOOL_PROMPT, tools, stopWhen: stepCountIs(3), maxRetries: 0 });

    expect(calls).toEqual([{ city: 'fake' }]);
    expect(result.steps).toHaveLength(2);
    const [first, second] = result.steps;
    expect(first!.finishReason).toBe('tool-calls');
    expect(first!.toolCalls).toMatchObject([{ toolName: 'get_weather', input: { city: 'fake' } }]);
    expect(first!.toolResults).toMatchObject([{ toolName: 'get_weather', output: TOOL_RESULT }]);
    expect(second!.finishReason).toBe('stop');
    expect(result.text).toBe(AFTER_TOOL);
    expect(result.finishReason).toBe('stop');
    expect(result.totalUsage.outputTokens).toBe(first!.usage.outputTokens! + second!.usage.outputTokens!);

    // Both steps went over the Responses route; the second carried the call's output back.
    expect(stack.fake.requests.map((r) => r.path)).toEqual(['/v1/responses', '/v1/responses']);
    expect(bodyOf(0)).toMatchObject({ tools: [{ type: 'function', name: 'get_weather', parameters: { properties: { city: { type: 'string' } } } }] });
    const callId = (first!.toolCalls[0] as { toolCallId: string }).toolCallId;
    expect(bodyOf(1).input).toContainEqual(expect.objectContaining({ type: 'function_call_output', call_id: callId, output: JSON.stringify(TOOL_RESULT) }));
  });

  it('streamText runs the same tool loop, streaming both steps', async () => {
    const { calls, tools } = weatherTool();
    const result = streamText({ model: openai('gpt-4o-mini'), prompt: TOOL_PROMPT, tools, stopWhen: stepCountIs(3), maxRetries: 0 });
    const parts: string[] = [];
    let text = '';
    for await (const part of result.fullStream) {
      parts.push(part.type);
      if (part.type === 'text-delta') text += part.text;
      if (part.type === 'error') throw part.error;
    }

    expect(calls).toEqual([{ city: 'fake' }]);
    expect(text).toBe(AFTER_TOOL);
    expect(parts).toContain('tool-input-delta'); // the arguments streamed in pieces
    expect(parts.indexOf('tool-call')).toBeLessThan(parts.indexOf('tool-result'));
    expect(parts.indexOf('tool-result')).toBeLessThan(parts.indexOf('text-delta'));
    const steps = await result.steps;
    expect(steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
    expect(steps[0]!.toolResults).toMatchObject([{ toolName: 'get_weather', input: { city: 'fake' }, output: TOOL_RESULT }]);
    expect(await result.finishReason).toBe('stop');
    expect((await result.usage).outputTokens).toBe(words(AFTER_TOOL));

    expect(stack.fake.requests.map((r) => [r.path, (r.body as Json).stream])).toEqual([
      ['/v1/responses', true],
      ['/v1/responses', true],
    ]);
  });
});

describe.each([
  { model: 'llama', path: '/v1/chat/completions' },
  { model: 'claude-haiku', path: '/v1/messages' },
])('AI SDK openai provider → /v1/responses, translated for $path ($model)', ({ model, path }) => {
  it('generateText and streamText: the echo, usage and finish reason', async () => {
    const result = await generateText({ model: openai(model), prompt: 'Hi there', maxRetries: 0 });
    expect(result.text).toBe(echo('Hi there'));
    expect(result.finishReason).toBe('stop');
    expect(result.usage.outputTokens).toBe(words(echo('Hi there')));
    const streamed = streamText({ model: openai(model), prompt: 'Stream please', maxRetries: 0 });
    const deltas: string[] = [];
    for await (const delta of streamed.textStream) deltas.push(delta);
    expect(deltas.join('')).toBe(echo('Stream please'));
    expect(deltas.length).toBe(words(echo('Stream please')));
    expect(await streamed.finishReason).toBe('stop');
    expect((await streamed.usage).outputTokens).toBe(words(echo('Stream please')));
    expect(stack.fake.requests.map((r) => r.path)).toEqual([path, path]);
  });

  it('runs the multi-step tool loop, generated and streamed', async () => {
    const generated = weatherTool();
    const result = await generateText({ model: openai(model), prompt: TOOL_PROMPT, tools: generated.tools, stopWhen: stepCountIs(3), maxRetries: 0 });
    expect(generated.calls).toEqual([{ city: 'fake' }]);
    expect(result.steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
    expect(result.text).toBe(AFTER_TOOL);

    const streamedTool = weatherTool();
    const streamed = streamText({ model: openai(model), prompt: TOOL_PROMPT, tools: streamedTool.tools, stopWhen: stepCountIs(3), maxRetries: 0 });
    let text = '';
    for await (const part of streamed.fullStream) {
      if (part.type === 'text-delta') text += part.text;
      if (part.type === 'error') throw part.error;
    }
    expect(streamedTool.calls).toEqual([{ city: 'fake' }]);
    expect(text).toBe(AFTER_TOOL);
    expect((await streamed.steps).map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
  });
});

describe('AI SDK openai provider → /v1/responses, call settings', () => {
  it('passes system, temperature, topP and maxOutputTokens through, and a cut answer ends in finishReason length', async () => {
    const prompt = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen';
    const result = await generateText({ model: openai('gpt-4o-mini'), system: 'Be brief.', prompt, temperature: 0.2, topP: 0.9, maxOutputTokens: 16, maxRetries: 0 });
    expect(result.finishReason).toBe('length');
    expect(result.usage.outputTokens).toBe(16);
    expect(result.text).toBe(echo(prompt).match(/\S+\s*/g)!.slice(0, 16).join(''));
    expect(bodyOf(0)).toMatchObject({ input: [{ role: 'system', content: 'Be brief.' }, { role: 'user' }], temperature: 0.2, top_p: 0.9, max_output_tokens: 16 });
    expect(bodyOf(0)).toEqual(sent[0]!.body);
  });

  it('structured output (Output.object) goes as text.format json_schema and comes back parsed', async () => {
    const result = await generateText({
      model: openai('gpt-4o-mini'),
      prompt: 'Give me a city',
      output: Output.object({ schema: z.object({ city: z.string(), rank: z.number() }) }),
      maxRetries: 0,
    });
    // The fake answers the JSON the schema asks for: 'fake' for strings, 1 for numbers.
    expect(result.output).toEqual({ city: 'fake', rank: 1 });
    expect(stack.fake.requests[0]!.path).toBe('/v1/responses');
    expect(bodyOf(0)).toMatchObject({ text: { format: { type: 'json_schema', strict: true, schema: { required: ['city', 'rank'] } } } });
  });
});

describe('AI SDK, other routes as controls', () => {
  it('openai.chat (Chat Completions) answers through /v1/chat/completions', async () => {
    const prompt = 'Hi there';
    const result = await generateText({ model: openai.chat('gpt-4o-mini'), prompt, maxRetries: 0 });
    expect(result.text).toBe(echo(prompt));
    expect(result.finishReason).toBe('stop');
    expect(result.usage).toMatchObject({ inputTokens: promptTokens(prompt), outputTokens: words(echo(prompt)) });
    expect(stack.fake.requests.map((r) => r.path)).toEqual(['/v1/chat/completions']);
    expect(bodyOf(0)).toMatchObject({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
  });

  it('the anthropic provider answers through the sidecar\'s /v1/messages', async () => {
    const prompt = 'Hi there';
    const result = await generateText({ model: anthropic('claude-haiku'), prompt, maxRetries: 0 });
    expect(result.text).toBe(echo(prompt));
    expect(result.finishReason).toBe('stop');
    expect(result.usage.inputTokens).toBe(promptTokens(prompt));
    expect(result.usage.outputTokens).toBe(words(echo(prompt)));

    expect(stack.fake.requests).toHaveLength(1);
    const upstream = stack.fake.requests[0]!;
    expect(upstream.path).toBe('/v1/messages');
    expect(upstream.headers['x-api-key']).toBe(UPSTREAM_KEY);
    expect(upstream.body).toMatchObject({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: [{ type: 'text', text: prompt }] }] });
    // The model swapped and nothing else touched. (The SDK does not know the alias 'claude-haiku', so it sends
    // its fallback max_tokens, 128000, above what it knows claude-haiku-4-5 allows, 64000; the fake accepts it.)
    expect(sent.map((r) => r.url)).toEqual([`${stack.url}/v1/messages`]);
    expect(upstream.body).toEqual({ ...sent[0]!.body, model: 'claude-haiku-4-5' });
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ path: '/v1/messages', status: 200, model: 'claude-haiku', upstreamModel: 'claude-haiku-4-5' }));
  });
});
