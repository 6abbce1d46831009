// Provider errors that quote the provider's key reach neither the app nor the logs with it (DESIGN §9):
// 401 bodies in both wire formats, same-format and translated, streaming and not, and error events in
// the middle of a stream, through the real sidecar and the official SDKs.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { APP_KEY, startStack, UPSTREAM_KEY, caught, type Stack } from '../helpers/stack.js';

/** Keys of the scripted upstream: shaped like no known provider key, so only the configured list catches them. */
const PLAIN_KEY = 'tenant-3f9a7c21e5b84d06a1';
const HEADER_TOKEN = 'svc-77d1e0b4c9a2f6e3';

const openaiKeyBody = {
  error: {
    message: `Incorrect API key provided: ${UPSTREAM_KEY}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    type: 'invalid_request_error',
    param: null,
    code: 'invalid_api_key',
  },
};
const anthropicKeyBody = { type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key (got ${UPSTREAM_KEY})` } };

let stack: Stack;
let scripted: Server;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  scripted = await startScriptedUpstream();
  const scriptedUrl = `http://127.0.0.1:${(scripted.address() as AddressInfo).port}`;
  stack = await startStack({
    config: (raw) => ({
      ...raw,
      providers: {
        ...(raw.providers as object),
        'scripted-openai': { type: 'openai-compatible', baseUrl: `${scriptedUrl}/v1`, apiKey: PLAIN_KEY, headers: { 'x-service-token': HEADER_TOKEN } },
        'scripted-claude': { type: 'anthropic', baseUrl: scriptedUrl, apiKey: PLAIN_KEY },
      },
      models: {
        ...(raw.models as object),
        'mid-openai': { targets: [{ provider: 'scripted-openai', model: 'scripted' }] },
        'mid-claude': { targets: [{ provider: 'scripted-claude', model: 'scripted' }] },
      },
    }),
  });
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await stack?.close();
  await new Promise((resolve) => scripted?.close(resolve));
});
beforeEach(() => stack.fake.faults.clear());


/** Everything an SDK error lets the app read. */
const visible = (err: any): string => JSON.stringify({ message: err.message, error: err.error, text: String(err) });

function expectNoKey(text: string): void {
  for (const secret of [UPSTREAM_KEY, PLAIN_KEY, HEADER_TOKEN, 'sk-']) expect(text).not.toContain(secret);
}

const ask = [{ role: 'user' as const, content: 'hi' }];
const openaiCall = (model: string) => caught(openai.chat.completions.create({ model, messages: ask }));
const openaiStream = (model: string) =>
  caught(
    (async () => {
      for await (const _ of await openai.chat.completions.create({ model, messages: ask, stream: true }));
    })(),
  );
const anthropicCall = (model: string) => caught(anthropic.messages.create({ model, max_tokens: 20, messages: ask }));
const anthropicStream = (model: string) => caught(anthropic.messages.stream({ model, max_tokens: 20, messages: ask }).finalMessage());

describe('a 401 quoting the key', () => {
  const openaiUpstream = () => stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, status: 401, body: openaiKeyBody });
  const anthropicUpstream = () => stack.fake.faults.add({ match: { path: '/v1/messages' }, status: 401, body: anthropicKeyBody });

  it.each([
    ['non-streaming', openaiCall],
    ['streaming', openaiStream],
  ])('reaches the OpenAI SDK from an OpenAI upstream scrubbed, code and rest of the message kept (%s)', async (_mode, call) => {
    openaiUpstream();
    const err = await call('gpt-4o-mini');
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.code).toBe('invalid_api_key');
    expect(err.type).toBe('invalid_request_error');
    expect(err.message).toContain('Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys.');
    expectNoKey(visible(err));
  });

  it.each([
    ['non-streaming', openaiCall],
    ['streaming', openaiStream],
  ])('reaches the OpenAI SDK from an Anthropic upstream translated and scrubbed (%s)', async (_mode, call) => {
    anthropicUpstream();
    const err = await call('claude-haiku');
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.message).toContain('invalid x-api-key (got [redacted])');
    expectNoKey(visible(err));
  });

  it.each([
    ['non-streaming', anthropicCall],
    ['streaming', anthropicStream],
  ])('reaches the Anthropic SDK from an Anthropic upstream scrubbed (%s)', async (_mode, call) => {
    anthropicUpstream();
    const err = await call('claude-haiku');
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.error).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key (got [redacted])' } });
    expectNoKey(visible(err));
  });

  it.each([
    ['non-streaming', anthropicCall],
    ['streaming', anthropicStream],
  ])('reaches the Anthropic SDK from an OpenAI upstream translated and scrubbed (%s)', async (_mode, call) => {
    openaiUpstream();
    const err = await call('gpt-4o-mini');
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.error.error.type).toBe('authentication_error');
    expect(err.error.error.message).toBe('Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys.');
    expectNoKey(visible(err));
  });

  it('scrubs a text body and a masked echo of the key as well', async () => {
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, status: 401, body: `bad key ${UPSTREAM_KEY.slice(0, 6)}****${UPSTREAM_KEY.slice(-4)}` });
    const err = await openaiCall('gpt-4o-mini');
    expect(err.status).toBe(401);
    expect(err.message).toContain('bad key [redacted]');
    expect(err.message).not.toContain(UPSTREAM_KEY.slice(-4));
    expectNoKey(visible(err));
  });
});

describe('an error event in the middle of a stream quoting the key', () => {
  it('reaches the OpenAI SDK from an OpenAI-style upstream scrubbed, after the text before it', async () => {
    let text = '';
    const err = await caught(
      (async () => {
        const s = await openai.chat.completions.create({ model: 'mid-openai', messages: ask, stream: true });
        for await (const c of s) text += c.choices[0]?.delta.content ?? '';
      })(),
    );
    expect(text).toBe('Hello');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.message).toBe('Stream aborted: key [redacted] (header [redacted], echo [redacted]) was revoked');
    expectNoKey(visible(err));
  });

  it('reaches the Anthropic SDK from an OpenAI-style upstream translated and scrubbed', async () => {
    const err = await anthropicStream('mid-openai');
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(err.error.error.message).toBe('Stream aborted: key [redacted] (header [redacted], echo [redacted]) was revoked');
    expectNoKey(visible(err));
  });

  it('reaches the Anthropic SDK from an Anthropic upstream scrubbed', async () => {
    const err = await anthropicStream('mid-claude');
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(err.error).toEqual({ type: 'error', error: { type: 'api_error', message: 'Stream aborted: key [redacted] (Bearer [redacted]) was revoked' } });
    expectNoKey(visible(err));
  });

  it('reaches the OpenAI SDK from an Anthropic upstream translated and scrubbed', async () => {
    const err = await openaiStream('mid-claude');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.message).toContain('Stream aborted: key [redacted] (Bearer [redacted]) was revoked');
    expectNoKey(visible(err));
  });
});

describe('logs', () => {
  it('never hold a provider key, after every error above', async () => {
    // Once more here, so the suite holds on its own too.
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, status: 401, body: openaiKeyBody });
    await openaiCall('gpt-4o-mini');
    await openaiStream('mid-openai');
    const logs = stack.rawLogs.join('\n');
    expect(logs).toContain('upstream attempt failed');
    expectNoKey(logs);
    expect(logs).not.toContain(APP_KEY);
  });
});

/**
 * An upstream whose streams send a first text chunk, pause (so it reaches the app), then an error event
 * quoting its key: the fake provider's own error events carry a fixed message.
 */
async function startScriptedUpstream(): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (req.url === '/v1/chat/completions') {
        const chunk = (delta: object) => `data: ${JSON.stringify({ id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1, model: 'scripted', choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
        res.write(chunk({ role: 'assistant', content: '' }) + chunk({ content: 'Hello' }));
        const message = `Stream aborted: key ${PLAIN_KEY} (header ${HEADER_TOKEN}, echo sk-proj-abc***xyz) was revoked`;
        setTimeout(() => res.end(`data: ${JSON.stringify({ error: { message, type: 'server_error', param: null, code: null } })}\n\n`), 50);
      } else {
        const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
        res.write(
          event('message_start', { message: { id: 'msg_s', type: 'message', role: 'assistant', model: 'scripted', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } }) +
            event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
            event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
        );
        const message = `Stream aborted: key ${PLAIN_KEY} (Bearer ${PLAIN_KEY}) was revoked`;
        setTimeout(() => res.end(event('error', { error: { type: 'api_error', message } })), 50);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
