// An app that goes away aborts the upstream request at once (tokens are money).
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLines, APP_KEY, eventually, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack.close());

describe('client aborts', () => {
  it('aborts the upstream stream when the app disconnects mid-stream', async () => {
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, chunkDelayMs: 200 });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const abortedBefore = stack.fake.stats.aborted;
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'long answer' }] });
    let chunks = 0;
    for await (const _ of stream) {
      chunks += 1;
      if (chunks === 2) break; // the SDK aborts its request on break
    }
    // The fake would need ~2 s more to finish; an abort shows up long before.
    await eventually(() => expect(stack.fake.stats.aborted).toBe(abortedBefore + 1), 1000);
    expect(stack.fake.stats.active).toBe(0);
    await eventually(() => expect(accessLines(stack).at(-1)).toMatchObject({ clientAborted: true, stream: true }));
  });

  it('aborts a translated stream too (Anthropic SDK → OpenAI upstream)', async () => {
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, chunkDelayMs: 200 });
    const client = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
    const abortedBefore = stack.fake.stats.aborted;
    const stream = client.messages.stream({ model: 'gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content: 'long' }] });
    const ended = stream.done().then(
      () => 'completed',
      (err: unknown) => (err instanceof Anthropic.APIUserAbortError ? 'aborted' : String(err)),
    );
    await new Promise<void>((resolve) => stream.once('text', () => resolve()));
    stream.abort();
    expect(await ended).toBe('aborted');
    await eventually(() => expect(stack.fake.stats.aborted).toBe(abortedBefore + 1), 1000);
  });

  it('aborts the upstream request when the app gives up waiting for a non-streaming answer', async () => {
    stack.fake.faults.add({ match: { path: '/v1/messages' }, hang: true });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0, timeout: 300 });
    const abortedBefore = stack.fake.stats.aborted;
    await expect(client.chat.completions.create({ model: 'claude-haiku', messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow(/timed out/i);
    await eventually(() => expect(stack.fake.stats.aborted).toBe(abortedBefore + 1), 1000);
  });
});
