// Large upstream answers through the real sidecar (issue 17 item 3): past `upstream.maxResponseBytes` (or a
// provider's or model's override) an answer is 502 llmgw_upstream_too_large and the upstream request is
// aborted; a stream is cut with an error event; under a raised limit a 40 MB answer arrives intact. A
// small upstream in this test serves the big bodies from Buffers built once, so the memory figures printed
// at the end are the sidecar's, not the fake's.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainedOrClosed } from '../helpers/drained.js';
import { answer } from '../../bench/lib/large-answers.js';
import { APP_KEY, eventually, startStack, type Stack } from '../helpers/stack.js';

const MB = 1_000_000;
const MiB = 1024 * 1024;

interface Upstream {
  server: Server;
  url: string;
  /**
   * Upstream model names whose connection the sidecar closed. A complete answer leaves its keep-alive
   * connection open; an aborted one closes it (whether the bytes were sent is no sign: the loopback's
   * socket buffers take tens of MB).
   */
  closed: string[];
  /** Upstream model names of the requests received, in order. */
  served: string[];
}

const bodies = new Map<string, Buffer>();
const body = (size: number, format: 'openai' | 'anthropic'): Buffer => {
  const key = `${format}:${size}`;
  let b = bodies.get(key);
  if (b === undefined) bodies.set(key, (b = answer(size, format)));
  return b;
};

/**
 * The upstream model name says what to answer: `json:<bytes>` (with Content-Length), `chunked:<bytes>` (none),
 * `error:<bytes>` (a 500 of that size), `stream:<bytes>` (SSE chunks of 64 KiB text until that many bytes).
 */
async function startUpstream(): Promise<Upstream> {
  const closed: string[] = [];
  const served: string[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const { model } = JSON.parse(Buffer.concat(parts).toString('utf8')) as { model: string };
      served.push(model);
      const [kind, n] = model.split(':');
      const size = Number(n);
      const format = req.url === '/v1/messages' ? 'anthropic' : 'openai';
      req.socket.once('close', () => closed.push(model));
      if (kind === 'stream') return void sse(res, size);
      if (kind === 'unterminated') {
        // One SSE comment line that never ends: no frame is ever complete.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.write(`: ${'z'.repeat(size)}`);
      }
      const b = body(size, format);
      const status = kind === 'error' ? 500 : 200;
      if (kind === 'chunked') {
        res.writeHead(status, { 'content-type': 'application/json' });
        for (let at = 0; at < b.length; at += 4 * MiB) res.write(b.subarray(at, at + 4 * MiB));
        res.end();
      } else {
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': b.length });
        res.end(b);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, closed, served };
}

async function sse(res: ServerResponse, size: number): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const frame = Buffer.from(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'big', choices: [{ index: 0, delta: { content: 'y'.repeat(64 * 1024) }, finish_reason: null }] })}\n\n`);
  for (let sent = 0; sent < size && !res.destroyed; sent += frame.length) {
    if (!res.write(frame)) await drainedOrClosed(res);
  }
  if (res.destroyed) return;
  res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'big', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
  res.end();
}

let upstream: Upstream;
let stack: Stack;

beforeAll(async () => {
  upstream = await startUpstream();
  stack = await startStack({
    config: (raw) => ({
      ...raw,
      providers: {
        ...(raw.providers as object),
        big: { type: 'openai-compatible', baseUrl: `${upstream.url}/v1` },
        'big-claude': { type: 'anthropic', baseUrl: upstream.url },
        'small-big': { type: 'openai-compatible', baseUrl: `${upstream.url}/v1`, maxResponseBytes: MiB },
      },
      models: {
        ...(raw.models as object),
        ...Object.fromEntries(
          ['json', 'chunked', 'error', 'stream'].flatMap((kind) => [
            [`${kind}-40`, { targets: [{ provider: 'big', model: `${kind}:${40 * MB}` }], retry: { attempts: 0 } }],
          ]),
        ),
        // The default retry settings (2 retries): a too-large answer must not use them.
        'json-retried': { targets: [{ provider: 'big', model: `json:${40 * MB}` }] },
        'unterminated-2': { targets: [{ provider: 'big', model: `unterminated:${2 * MiB}` }], maxResponseBytes: MiB, retry: { attempts: 0 } },
        'raised-40': { targets: [{ provider: 'big', model: `json:${40 * MB}` }], maxResponseBytes: 64 * MiB },
        'raised-30': { targets: [{ provider: 'big', model: `json:${30 * MB}` }], maxResponseBytes: 64 * MiB },
        'raised-chunked-30': { targets: [{ provider: 'big', model: `chunked:${30 * MB}` }], maxResponseBytes: 64 * MiB },
        'raised-claude-30': { targets: [{ provider: 'big-claude', model: `json:${30 * MB}` }], maxResponseBytes: 64 * MiB },
        'provider-limit': { targets: [{ provider: 'small-big', model: `json:${2 * MiB}` }] },
        'model-over-provider': { targets: [{ provider: 'small-big', model: `json:${2 * MiB}` }], maxResponseBytes: 4 * MiB },
        'exact-limit': { targets: [{ provider: 'big', model: `json:${MiB}` }], maxResponseBytes: MiB },
        'limit-plus-one': { targets: [{ provider: 'big', model: `json:${MiB + 1}` }], maxResponseBytes: MiB },
      },
    }),
  });
}, 60_000);
afterAll(async () => {
  await stack.close();
  await new Promise((resolve) => upstream.server.close(resolve));
});

const ask = (model: string, extra: object = {}) =>
  request(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${APP_KEY}` },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'a long one please' }], ...extra }),
  });

async function askJson(model: string): Promise<{ status: number; body: any }> {
  const res = await ask(model);
  return { status: res.statusCode, body: await res.body.json() };
}

// First, while the process is near idle: RSS grows with each run (V8 keeps freed heap), so the figures of
// later runs include what earlier ones left. The sidecar runs in this process (startStack).
describe('memory of large answers under a raised limit', () => {
  for (const [model, what] of [['raised-30', 'same format, Content-Length'], ['raised-chunked-30', 'same format, chunked'], ['raised-claude-30', 'translated from Anthropic']] as const) {
    it(`serves four 30 MB answers at once (${what}) and prints the RSS`, async () => {
      // Built before measuring: the upstream's Buffer lives in this process too.
      body(30 * MB, model === 'raised-claude-30' ? 'anthropic' : 'openai');
      (globalThis as { gc?: () => void }).gc?.();
      const mib = (n: number): string => `${Math.round(n / MiB)} MiB`;
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
      // The app side only counts the bytes, so what the test holds is not counted as the sidecar's.
      const sizes = await Promise.all(
        [0, 1, 2, 3].map(async () => {
          const res = await ask(model);
          expect(res.statusCode).toBe(200);
          let n = 0;
          let last = '';
          for await (const c of res.body) {
            n += (c as Buffer).length;
            last = (c as Buffer).toString('utf8').slice(-200);
          }
          expect(last).toMatch(/"total_tokens":18\}\}$/);
          return n;
        }),
      );
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = process.memoryUsage().rss;
      for (const n of sizes) expect(n).toBeGreaterThan(29 * MB);
      console.log(`large answers (${what}): 4 × 30 MB at once: RSS before ${mib(before)}, peak (sampled) ${mib(peak)}, after ${mib(after)} (peak − before ${mib(peak - before)})`);
    }, 60_000);
  }
});

describe('large translated answers', () => {
  it('carries a 30 MB text from an Anthropic answer into the OpenAI answer intact', async () => {
    const res = await ask('raised-claude-30');
    expect(res.statusCode).toBe(200);
    const got = (await res.body.json()) as { object: string; choices: { message: { content: string } }[]; usage: { total_tokens: number } };
    const sent = JSON.parse(body(30 * MB, 'anthropic').toString('utf8')) as { content: { text: string }[] };
    expect(got.object).toBe('chat.completion');
    expect(got.choices[0]!.message.content.length).toBe(sent.content[0]!.text.length);
    expect(got.choices[0]!.message.content === sent.content[0]!.text).toBe(true);
    expect(got.usage.total_tokens).toBe(18);
  }, 30_000);
});

describe('upstream answers larger than maxResponseBytes', () => {
  it('answers a 40 MB JSON answer (Content-Length) with 502 llmgw_upstream_too_large naming the default limit, and aborts the upstream', async () => {
    const r = await askJson('json-40');
    expect(r.status).toBe(502);
    expect(r.body.error.code).toBe('llmgw_upstream_too_large');
    expect(r.body.error.message).toBe('provider big answered more than 33554432 bytes (upstream.maxResponseBytes)');
    await eventually(() => expect(upstream.closed).toContain(`json:${40 * MB}`));
  });

  it('answers a 40 MB chunked answer (no Content-Length) with 502 once the limit is passed, and aborts the upstream', async () => {
    const r = await askJson('chunked-40');
    expect(r.status).toBe(502);
    expect(r.body.error.code).toBe('llmgw_upstream_too_large');
    await eventually(() => expect(upstream.closed).toContain(`chunked:${40 * MB}`));
  });

  it('keeps a 40 MB upstream error a provider error with its status (retried as a 500 is), reading only its first MiB', async () => {
    const r = await askJson('error-40');
    expect(r.status).toBe(500);
    expect(r.body.error.code).not.toBe('llmgw_upstream_too_large');
    expect(JSON.stringify(r.body)).toContain('an error body of more than 1048576 bytes, not read');
  });

  it('is not retried: the same target would answer as much again', async () => {
    const before = upstream.served.length;
    const res = await ask('json-retried');
    await res.body.dump();
    expect(res.statusCode).toBe(502);
    expect(upstream.served.slice(before)).toEqual([`json:${40 * MB}`]);
    const line = stack.logs.filter((l) => l.msg === 'request' && l.model === 'json-retried').at(-1);
    expect(line?.error).toBe('llmgw_upstream_too_large');
  });

  it('ends a 40 MB stream with an error event once it passed the limit, after forwarding what came before', async () => {
    const res = await ask('stream-40', { stream: true });
    expect(res.statusCode).toBe(200);
    let bytes = 0;
    let tail = '';
    for await (const chunk of res.body) {
      bytes += (chunk as Buffer).length;
      tail = (tail + (chunk as Buffer).toString('utf8')).slice(-2000);
    }
    expect(bytes).toBeGreaterThan(30 * MB);
    expect(bytes).toBeLessThan(34 * MB);
    expect(tail).toContain('llmgw_upstream_too_large');
    expect(tail).toContain('answered a stream of more than 33554432 bytes (upstream.maxResponseBytes)');
    expect(tail).not.toContain('[DONE]');
    await eventually(() => expect(upstream.closed).toContain(`stream:${40 * MB}`));
  });

  it('answers 502 before the first byte when a stream passes the limit before its first frame is complete', async () => {
    const res = await ask('unterminated-2', { stream: true });
    const b = (await res.body.json()) as { error: { code: string; message: string } };
    expect(res.statusCode).toBe(502);
    expect(b.error.code).toBe('llmgw_upstream_too_large');
    expect(b.error.message).toBe('provider big answered a stream of more than 1048576 bytes (models.unterminated-2.maxResponseBytes)');
    await eventually(() => expect(upstream.closed).toContain(`unterminated:${2 * MiB}`));
  });

  it('applies a provider override, and a model override over it', async () => {
    const p = await askJson('provider-limit');
    expect(p.status).toBe(502);
    expect(p.body.error.message).toBe('provider small-big answered more than 1048576 bytes (providers.small-big.maxResponseBytes)');
    const m = await ask('model-over-provider');
    expect(m.statusCode).toBe(200);
    expect(await m.body.text()).toBe(body(2 * MiB, 'openai').toString('utf8'));
  });

  it('passes an answer of exactly the limit and refuses one byte more', async () => {
    const exact = await ask('exact-limit');
    expect(exact.statusCode).toBe(200);
    expect(await exact.body.text()).toBe(body(MiB, 'openai').toString('utf8'));
    // Read whole, its connection stays open for the next request.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(upstream.closed).not.toContain(`json:${MiB}`);
    const over = await askJson('limit-plus-one');
    expect(over.status).toBe(502);
    expect(over.body.error.message).toBe('provider big answered more than 1048576 bytes (models.limit-plus-one.maxResponseBytes)');
  });
});

describe('large answers under a raised limit', () => {
  it('delivers a 40 MB answer intact when the model raises the limit', async () => {
    const res = await ask('raised-40');
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    expect(text === body(40 * MB, 'openai').toString('utf8')).toBe(true);
    expect(res.headers['content-length']).toBe(String(40 * MB));
  });

});
