// Upstream answers that are not valid for their wire format (issue 17 item 2), through the real sidecar
// and the official SDKs: unparsable JSON, JSON of the wrong shape, malformed SSE frames, in both formats,
// passed through and translated. Before the first byte the app gets 502 llmgw_upstream_error in its own
// format (after the retries it earns, like a 502 from the provider); once a stream has started, the error
// event. A malformed answer falls back to the next model, and counts against the target's circuit.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Fault } from '../../sidecar/fake-provider/faults.js';
import { accessLines, APP_KEY, caught, eventually, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let openai: OpenAI;
let anthropic: Anthropic;

/** What a provider key accidentally echoed in a malformed answer must never reach the app or the logs. */
const ECHOED_SECRET = 'sk-proj-echoed0123456789abcdefghij';

beforeAll(async () => {
  stack = await startStack({
    // Weighted order deterministic and backoff jitter zero: retries happen at once.
    random: () => 0,
    config: (raw) => ({
      ...raw,
      models: {
        ...(raw.models as object),
        'with-fallback': { targets: [{ provider: 'openai', model: 'gpt-4o' }], fallbacks: ['claude-haiku'], retry: { attempts: 0 } },
      },
      // Every test here fails targets on purpose; the breaker has its own stack below.
      circuitBreaker: { enabled: false },
    }),
  });
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
});
afterAll(async () => stack.close());
beforeEach(() => {
  stack.fake.faults.clear();
  stack.fake.requests.length = 0;
});

/** Every request for this upstream model gets the fault (so retries fail the same way). */
const always = (model: string, fault: Fault): void => stack.fake.faults.add({ match: { model }, times: 0, ...fault });
const upstreamCalls = (model: string): number => stack.fake.requests.filter((r) => (r.body as { model?: string }).model === model).length;
const say = [{ role: 'user' as const, content: 'hi' }];

/** The OpenAI SDK's error for a JSON or stream request that failed before its first byte. */
function expectOpenAI502(err: any): void {
  expect(err).toBeInstanceOf(OpenAI.InternalServerError);
  expect(err.status).toBe(502);
  expect(err.code).toBe('llmgw_upstream_error');
}

function expectAnthropic502(err: any): void {
  expect(err).toBeInstanceOf(Anthropic.InternalServerError);
  expect(err.status).toBe(502);
  expect(err.error).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'llmgw_upstream_error' } });
}

const completion = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
const message = JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-haiku-4-5', content: [{ type: 'text', text: 'fine' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } });

/** Bodies that are not JSON at all, for either format. */
const NOT_JSON: Record<string, (valid: string) => string> = {
  NaN: () => '{"x":NaN}',
  'a truncated body': (valid) => valid.slice(0, -25),
  'an empty body': () => '',
  'HTML echoing a key': () => `<html>bad gateway ${ECHOED_SECRET}</html>`,
};

describe('JSON answers, passed through', () => {
  for (const [what, body] of Object.entries(NOT_JSON)) {
    it(`OpenAI → OpenAI: ${what} is 502 llmgw_upstream_error after the retries, never a 200`, async () => {
      always('gpt-4o-mini', { rawBody: body(completion) });
      const err = await caught(openai.chat.completions.create({ model: 'gpt-4o-mini', messages: say }));
      expectOpenAI502(err);
      expect(err.message).toContain('provider openai answered with a body that is not valid JSON');
      expect(err.message).not.toContain(ECHOED_SECRET);
      // Retried like a 502 from the provider: the first try and the 2 default retries.
      expect(upstreamCalls('gpt-4o-mini')).toBe(3);
    });

    it(`Anthropic → Anthropic: ${what} is 502 in the Anthropic shape`, async () => {
      always('claude-haiku-4-5', { rawBody: body(message) });
      const err = await caught(anthropic.messages.create({ model: 'claude-haiku', max_tokens: 20, messages: say }));
      expectAnthropic502(err);
      expect(JSON.stringify(err.error)).not.toContain(ECHOED_SECRET);
    });
  }

  const wrongChat = { 'an object without choices': '{"id":"x","object":"chat.completion"}', 'an array': '[]', 'choices that are not objects': '{"choices":[1]}', 'a 200 carrying an error': '{"error":{"message":"busy"}}' };
  for (const [what, body] of Object.entries(wrongChat)) {
    it(`OpenAI → OpenAI: ${what} is 502 llmgw_upstream_error`, async () => {
      always('gpt-4o-mini', { rawBody: body });
      const err = await caught(openai.chat.completions.create({ model: 'gpt-4o-mini', messages: say }));
      expectOpenAI502(err);
      expect(err.message).toContain('is not a chat completion: no object with a "choices" array of objects');
    });
  }

  for (const [what, body] of Object.entries({ 'a message without content': '{"type":"message","role":"assistant"}', 'content without type "message"': '{"content":[{"type":"text","text":"x"}]}' })) {
    it(`Anthropic → Anthropic: ${what} is 502 in the Anthropic shape`, async () => {
      always('claude-haiku-4-5', { rawBody: body });
      expectAnthropic502(await caught(anthropic.messages.create({ model: 'claude-haiku', max_tokens: 20, messages: say })));
    });
  }

  it('embeddings: NaN and a list without data are 502 llmgw_upstream_error', async () => {
    for (const body of ['{"object":"list","data":[{"embedding":[NaN]}]}', '{"object":"list","model":"text-embedding-3-small"}']) {
      always('text-embedding-3-small', { rawBody: body });
      expectOpenAI502(await caught(openai.embeddings.create({ model: 'embed', input: 'x' })));
      stack.fake.faults.clear();
    }
  });

  it('still passes a valid answer through byte for byte, odd spacing and all', async () => {
    const spaced = ` {"choices" : [ {"index":0,"message":{"role":"assistant","content":"a \\"usage\\": here"},"finish_reason":"stop"} ] ,\n "usage":{"prompt_tokens":4,"completion_tokens":5,"total_tokens":9}} `;
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, rawBody: spaced });
    const res = await request(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: say }) });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe(spaced);
    await eventually(() => expect(accessLines(stack).find((l) => l.reqId === res.headers['x-request-id'])).toMatchObject({ status: 200, tokensIn: 4, tokensOut: 5 }));
  });
});

describe('JSON answers, translated', () => {
  it('OpenAI app → Anthropic provider: invalid JSON and a wrong shape are 502 llmgw_upstream_error, not 500 or an empty 200', async () => {
    for (const body of ['{"type":"message",', '{"id":"msg_1","role":"assistant"}', '{"type":"message","content":"text"}']) {
      always('claude-haiku-4-5', { rawBody: body });
      const err = await caught(openai.chat.completions.create({ model: 'claude-haiku', messages: say }));
      expectOpenAI502(err);
      expect(err.message).toMatch(/^502 provider claude answered with a body that is not (valid JSON|a message)/);
      stack.fake.faults.clear();
    }
  });

  it('Anthropic app → OpenAI provider: invalid JSON and a wrong shape are 502 in the Anthropic shape', async () => {
    for (const body of ['{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":NaN}}', '{"object":"chat.completion","model":"gpt-4o-mini"}']) {
      always('gpt-4o-mini', { rawBody: body });
      expectAnthropic502(await caught(anthropic.messages.create({ model: 'gpt-4o-mini', max_tokens: 20, messages: say })));
      stack.fake.faults.clear();
    }
  });
});

/** The error a call ends in, or undefined when it succeeds. */
async function failureOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err;
  }
}

/** Reads an OpenAI SDK stream to its end or its error: the text it delivered, and the error. */
async function readOpenAIStream(model: string): Promise<{ text: string; err: any; requestId: string | null }> {
  let text = '';
  let requestId: string | null = null;
  const err = await failureOf(
    (async () => {
      const { data, response } = await openai.chat.completions.create({ model, stream: true, messages: say }).withResponse();
      requestId = response.headers.get('x-request-id');
      for await (const c of data) text += c.choices[0]?.delta.content ?? '';
    })(),
  );
  return { text, err, requestId };
}

async function readAnthropicStream(model: string): Promise<{ text: string; err: any }> {
  let text = '';
  const stream = anthropic.messages.stream({ model, max_tokens: 50, messages: say });
  stream.on('text', (t) => (text += t));
  const err = await failureOf(stream.finalMessage());
  return { text, err };
}

// The fake's streams: OpenAI sends a role chunk, then one chunk per word ("Hello ", "from ", "the ", …);
// Anthropic sends message_start, content_block_start and a ping before its word deltas.
const BAD_OPENAI_FRAMES = { 'not JSON': 'data: {"id":"c1","choices":[{"delta":\n\n', 'JSON without choices': 'data: {"id":"c1","object":"chat.completion.chunk"}\n\n', 'not an object': 'data: [1,2]\n\n' };
const BAD_ANTHROPIC_FRAMES = {
  'not JSON': 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n',
  'an event without type': 'event: content_block_delta\ndata: {"index":0,"delta":{"type":"text_delta","text":"x"}}\n\n',
  'a delta without its delta': 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0}\n\n',
};

describe('streams that start malformed: 502 before the first byte, retried', () => {
  for (const [what, frame] of Object.entries(BAD_OPENAI_FRAMES)) {
    it(`OpenAI → OpenAI: a first frame that is ${what}`, async () => {
      always('gpt-4o-mini', { rawFrame: frame });
      expectOpenAI502((await readOpenAIStream('gpt-4o-mini')).err);
      expect(upstreamCalls('gpt-4o-mini')).toBe(3);
    });

    it(`OpenAI provider → Anthropic app: a first frame that is ${what}`, async () => {
      always('gpt-4o-mini', { rawFrame: frame });
      expectAnthropic502((await readAnthropicStream('gpt-4o-mini')).err);
    });
  }

  for (const [what, frame] of Object.entries(BAD_ANTHROPIC_FRAMES)) {
    it(`Anthropic → Anthropic: ${what} before any content`, async () => {
      always('claude-haiku-4-5', { rawFrame: frame });
      expectAnthropic502((await readAnthropicStream('claude-haiku')).err);
      expect(upstreamCalls('claude-haiku-4-5')).toBe(3);
    });

    it(`Anthropic provider → OpenAI app: ${what} before any content`, async () => {
      always('claude-haiku-4-5', { rawFrame: frame });
      expectOpenAI502((await readOpenAIStream('claude-haiku')).err);
    });
  }

  it('Anthropic: a message_start without its message', async () => {
    always('claude-haiku-4-5', { rawFrame: 'event: message_start\ndata: {"type":"message_start"}\n\n' });
    expectAnthropic502((await readAnthropicStream('claude-haiku')).err);
  });
});

describe('streams that turn malformed midway: the error event after the text so far', () => {
  // Paced, so content reaches the app before the bad frame; the bad frame shares its write (one read in
  // the sidecar) with the word before it, which still reaches the app.
  for (const [what, frame] of Object.entries(BAD_OPENAI_FRAMES)) {
    it(`OpenAI → OpenAI: a frame that is ${what}, logged as llmgw_upstream_error`, async () => {
      stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, rawFrame: frame, rawFrameAfterChunks: 4, chunkDelayMs: 20 });
      const { text, err, requestId } = await readOpenAIStream('gpt-4o-mini');
      expect(text).toBe('Hello from the ');
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.code).toBe('llmgw_upstream_error');
      expect(err.message).toContain('provider openai sent a stream');
      expect(upstreamCalls('gpt-4o-mini')).toBe(1);
      await eventually(() => expect(accessLines(stack).find((l) => l.reqId === requestId)).toMatchObject({ status: 200, stream: true, error: 'llmgw_upstream_error' }));
    });

    it(`OpenAI provider → Anthropic app: a frame that is ${what}`, async () => {
      stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, rawFrame: frame, rawFrameAfterChunks: 4, chunkDelayMs: 20 });
      const { text, err } = await readAnthropicStream('gpt-4o-mini');
      expect(text).toBe('Hello from the ');
      expect(err).toBeInstanceOf(Anthropic.APIError);
      expect(err.error).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'llmgw_upstream_error' } });
    });
  }

  for (const [what, frame] of Object.entries(BAD_ANTHROPIC_FRAMES)) {
    it(`Anthropic → Anthropic: ${what}`, async () => {
      stack.fake.faults.add({ match: { model: 'claude-haiku-4-5' }, rawFrame: frame, rawFrameAfterChunks: 5, chunkDelayMs: 20 });
      const { text, err } = await readAnthropicStream('claude-haiku');
      expect(text).toBe('Hello from ');
      expect(err).toBeInstanceOf(Anthropic.APIError);
      expect(err.error).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'llmgw_upstream_error' } });
      expect(upstreamCalls('claude-haiku-4-5')).toBe(1);
    });

    it(`Anthropic provider → OpenAI app: ${what}`, async () => {
      stack.fake.faults.add({ match: { model: 'claude-haiku-4-5' }, rawFrame: frame, rawFrameAfterChunks: 5, chunkDelayMs: 20 });
      const { text, err } = await readOpenAIStream('claude-haiku');
      expect(text).toBe('Hello from ');
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.code).toBe('llmgw_upstream_error');
    });
  }
});

describe('retries and fallback', () => {
  it('retries the same target after one malformed answer, and answers 200', async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, rawBody: '{"x":NaN}' });
    const { data, response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: say }).withResponse();
    expect(data.choices[0]!.message.content).toBe('Hello from the fake provider. You said: hi');
    expect(response.headers.get('x-llmgw-attempts')).toBe('2');
  });

  it('falls back to the next model when the first answers malformed JSON', async () => {
    always('gpt-4o', { rawBody: '{"choices":' });
    const { data, response } = await openai.chat.completions.create({ model: 'with-fallback', messages: say }).withResponse();
    expect(data.choices[0]!.message.content).toBe('Hello from the fake provider. You said: hi');
    expect(response.headers.get('x-llmgw-model')).toBe('claude-haiku-4-5');
    expect(upstreamCalls('gpt-4o')).toBe(1);
  });

  it('falls back, invisibly to the app, when the first stream starts with a malformed frame', async () => {
    always('gpt-4o', { rawFrame: BAD_OPENAI_FRAMES['not JSON'] });
    const { text, err } = await readOpenAIStream('with-fallback');
    expect(err).toBeUndefined();
    expect(text).toBe('Hello from the fake provider. You said: hi');
  });
});

describe('circuit breaker', () => {
  let cb: Stack;
  beforeAll(async () => {
    cb = await startStack({
      config: (raw) => ({
        ...raw,
        models: { ...(raw.models as object), guarded: { targets: [{ provider: 'openai', model: 'gpt-4o-guarded' }], retry: { attempts: 0 } } },
        circuitBreaker: { consecutiveFailures: 2, coolDownMs: 60_000 },
      }),
    });
  });
  afterAll(async () => cb.close());

  it('counts malformed answers against the target: after 2 it opens and answers 503 without calling', async () => {
    cb.fake.faults.add({ match: { model: 'gpt-4o-guarded' }, rawBody: '{"x":NaN}', times: 0 });
    const client = new OpenAI({ baseURL: `${cb.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    for (let i = 0; i < 2; i++) expectOpenAI502(await caught(client.chat.completions.create({ model: 'guarded', messages: say })));
    const before = cb.fake.stats.requests;
    const open = await caught(client.chat.completions.create({ model: 'guarded', messages: say }));
    expect(open.status).toBe(503);
    expect(open.code).toBe('llmgw_upstream_unavailable');
    expect(cb.fake.stats.requests).toBe(before);
  });
});

describe('secrets', () => {
  it('never puts what a malformed answer echoed into a response or a log line', async () => {
    always('gpt-4o-mini', { rawBody: `{"choices": "${ECHOED_SECRET}"` });
    const res = await request(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: say }) });
    expect(res.statusCode).toBe(502);
    expect(await res.body.text()).not.toContain(ECHOED_SECRET);
    stack.fake.faults.clear();
    always('gpt-4o-mini', { rawFrame: `data: {"oops": "${ECHOED_SECRET}"}\n\n`, rawFrameAfterChunks: 3, chunkDelayMs: 10 });
    const { err } = await readOpenAIStream('gpt-4o-mini');
    expect(JSON.stringify(err.error)).not.toContain(ECHOED_SECRET);
    expect(stack.rawLogs.join('\n')).not.toContain(ECHOED_SECRET);
  });
});
