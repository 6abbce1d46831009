// An app that goes away aborts the upstream request at once (tokens are money).
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainedOrClosed } from '../helpers/drained.js';
import { accessLines, APP_KEY, eventually, scrapeMetrics, startStack, type Stack } from '../helpers/stack.js';

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

  describe('an app that stops reading a large stream', () => {
    // An upstream that streams about 20 MB, minding backpressure: far more than the socket buffers
    // hold, so the sidecar has to wait for 'drain' on the app's side (and so stop reading upstream).
    const CHUNKS = 20_000;
    const piece = 'x'.repeat(1000);
    let big: Server;
    let bigStack: Stack;
    const upstream = { aborted: 0, finished: 0 };
    beforeAll(async () => {
      big = createServer(async (req, res) => {
        for await (const _ of req);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.on('close', () => (res.writableFinished ? upstream.finished++ : upstream.aborted++));
        const chunk = (delta: object, finish: string | null) =>
          `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'big', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        res.write(chunk({ role: 'assistant', content: '' }, null));
        for (let i = 0; i < CHUNKS && !res.destroyed; i++) {
          if (!res.write(chunk({ content: piece }, null))) await drainedOrClosed(res);
        }
        if (!res.destroyed) res.end(`${chunk({}, 'stop')}data: [DONE]\n\n`);
      });
      await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(big.address() as AddressInfo).port}/v1`;
      bigStack = await startStack({
        config: (raw) => ({
          ...raw,
          providers: { ...(raw.providers as object), big: { type: 'openai-compatible', baseUrl: url } },
          models: { ...(raw.models as object), big: { targets: [{ provider: 'big', model: 'big' }] } },
        }),
      });
    });
    afterAll(async () => {
      await bigStack.close();
      big.close();
    });

    const ask = async (): Promise<{ socket: Socket; received: () => number; tail: () => string }> => {
      const socket = await new Promise<Socket>((resolve) => {
        const s = connect(Number(new URL(bigStack.url).port), '127.0.0.1', () => resolve(s));
      });
      let received = 0;
      let tail = '';
      socket.on('data', (d: Buffer) => {
        received += d.length;
        tail = (tail + d.toString('latin1')).slice(-100);
      });
      const body = JSON.stringify({ model: 'big', stream: true, messages: [{ role: 'user', content: 'a long one' }] });
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      await eventually(() => expect(received).toBeGreaterThan(0));
      socket.pause();
      await new Promise((r) => setTimeout(r, 300)); // the sidecar now waits for the app
      return { socket, received: () => received, tail: () => tail };
    };

    it('gets everything once it reads again', async () => {
      const { socket, received, tail } = await ask();
      const paused = received();
      expect(paused).toBeLessThan(CHUNKS * piece.length); // it did have to wait
      socket.resume();
      await eventually(() => expect(tail()).toContain('data: [DONE]'), 20_000);
      expect(received()).toBeGreaterThan(CHUNKS * piece.length);
      await eventually(() => expect(upstream.finished).toBe(1));
      socket.destroy();
    });

    it('aborts the upstream and finishes the request when the app leaves while the sidecar waits for it', async () => {
      const { socket } = await ask();
      expect(upstream.aborted).toBe(0); // held back by the sidecar, not cut
      socket.destroy();
      await eventually(() => expect(upstream.aborted).toBe(1), 3000);
      await eventually(() => expect(accessLines(bigStack).at(-1)).toMatchObject({ clientAborted: true, stream: true }));
      await eventually(async () => expect(await scrapeMetrics(bigStack)).toMatch(/^llmgw_inflight_requests 0$/m));
    });
  });
});
