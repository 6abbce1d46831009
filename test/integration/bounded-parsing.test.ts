// Bounded parsing through the real sidecar: too-deep bodies and too many messages, tools, content parts or
// embedding inputs get 400 `llmgw_invalid_request` naming the limit (a large body as soon as it passes
// one, before the rest is sent, closing the connection); long strings arrive upstream unchanged; and
// hostile bodies at the 16 MiB default limit keep other requests answered (their latency is measured
// meanwhile; the tight ~50 ms bar is the benchmark's, bench/lib/hostile-bodies.ts).
import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ENTRIES, MAX_JSON_DEPTH } from '../../common/http/read-json-body.js';
import { MAX_CONTENT_PARTS, MAX_EMBEDDING_INPUTS, MAX_MESSAGES, MAX_TOOLS } from '../../sidecar/http/json-limits.js';
import { eventually, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack.close());

interface Answer {
  status: number;
  error: { code?: string; param?: string | null; message?: string; type?: string };
  connection: string | undefined;
  ms: number;
}

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const t0 = performance.now();
  const res = await request(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const json = (await res.body.json()) as { error: Answer['error'] };
  return { status: res.statusCode, error: json.error, connection: res.headers.connection as string | undefined, ms: performance.now() - t0 };
}

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: { error?: Answer['error'] };
  /** Body bytes written before the answer came (the client stops sending then). */
  sent: number;
}

/**
 * POSTs over a raw socket: a head declaring `declared` body bytes, then `body` in 64 KiB pieces, stopping
 * as soon as an answer arrives (as RFC 9112 asks of a client). Between pieces it lets the event loop poll
 * for 1 ms: a write after the server has closed fails (EPIPE) and Node then drops the answer unread.
 * Resolves with the answer once the server has closed the connection; rejects if none came within 5 s of
 * the last byte sent.
 */
function rawPost(path: string, body: Buffer, declared = body.length): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const s = connect(stack.sidecar.address.port, '127.0.0.1');
    const got: Buffer[] = [];
    let sent = 0;
    let giveUp: NodeJS.Timeout | undefined;
    s.on('data', (d: Buffer) => got.push(d));
    // A reset after the answer (the server stopped reading) changes nothing: what came before counts.
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(giveUp);
      const text = Buffer.concat(got);
      const at = text.indexOf('\r\n\r\n');
      if (at === -1) return reject(new Error(`no answer (${sent} body bytes sent)`));
      const [statusLine, ...lines] = text.toString('latin1', 0, at).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(text.toString('utf8', at + 4)) as RawAnswer['body'], sent });
    });
    s.once('connect', async () => {
      s.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${declared}\r\nconnection: close\r\n\r\n`);
      for (let i = 0; i < body.length && got.length === 0 && !s.destroyed; i += 1 << 16) {
        const piece = body.subarray(i, i + (1 << 16));
        sent += piece.length;
        if (!s.write(piece)) await new Promise((r) => s.once('drain', r));
        await new Promise((r) => setTimeout(r, 1));
      }
      giveUp = setTimeout(() => s.destroy(), 5000);
    });
  });
}

const user = (content: unknown) => ({ role: 'user', content });
const chat = (extra: Record<string, unknown>) => JSON.stringify({ model: 'gpt-4o-mini', messages: [user('hi')], ...extra });
const deepBody = (levels: number) => `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":${'['.repeat(levels)}${']'.repeat(levels)}}`;

describe('limits', () => {
  it('refuses JSON nested 100,000 levels with 400 naming the limit and the field, before the rest of the body is sent', async () => {
    const deep = Buffer.from(deepBody(100_000));
    // Only the first 1,000 bytes (past level 128) are ever sent of the 200 KB declared.
    const a = await rawPost('/v1/chat/completions', deep.subarray(0, 1000), deep.length);
    expect(a.sent).toBe(1000);
    expect(a.status).toBe(400);
    expect(a.body.error).toMatchObject({ code: 'llmgw_invalid_request', param: 'metadata', message: `request JSON is nested deeper than the limit of ${MAX_JSON_DEPTH} levels` });
  });

  it('drops the rest of a refused body of declared length unparsed, and serves the next request on the same connection', async () => {
    const deep = Buffer.from(deepBody(100_000));
    const s = connect(stack.sidecar.address.port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    await new Promise((r) => s.once('connect', r));
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${deep.length}\r\n\r\n`);
    s.write(deep.subarray(0, 1000));
    await eventually(() => expect(got).toContain('"llmgw_invalid_request"'));
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    expect(got.toLowerCase()).not.toContain('connection: close');
    // The client writes the rest (as it may, before it sees the answer), then its next request.
    s.write(deep.subarray(1000));
    const next = chat({});
    got = '';
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(next)}\r\n\r\n${next}`);
    await eventually(() => expect(got).toMatch(/^HTTP\/1\.1 200 /));
    s.destroy();
  });

  it('accepts exactly the depth limit', async () => {
    // The body is level 1, "metadata" level 2, so 126 more levels reach the limit exactly.
    const levels = MAX_JSON_DEPTH - 2;
    const body = chat({ metadata: { x: JSON.parse('['.repeat(levels) + ']'.repeat(levels)) as unknown } });
    expect((await post('/v1/chat/completions', body)).status).toBe(200);
    const over = chat({ metadata: { x: JSON.parse('['.repeat(levels + 1) + ']'.repeat(levels + 1)) as unknown } });
    expect((await post('/v1/chat/completions', over)).status).toBe(400);
  });

  it('refuses too many messages, tools, content parts or embedding inputs with 400 naming the limit and the field', async () => {
    const parts = (n: number) => Array.from({ length: n }, () => ({ type: 'text', text: 'x' }));
    const cases: [string, string, string, number, string?][] = [
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: Array.from({ length: MAX_MESSAGES + 1 }, () => user('x')) }), 'messages', MAX_MESSAGES],
      ['/v1/chat/completions', chat({ tools: Array.from({ length: MAX_TOOLS + 1 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } })) }), 'tools', MAX_TOOLS],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [user('a'), user(parts(MAX_CONTENT_PARTS + 1))] }), 'messages[1].content', MAX_CONTENT_PARTS],
      ['/v1/embeddings', JSON.stringify({ model: 'embed', input: Array.from({ length: MAX_EMBEDDING_INPUTS + 1 }, () => 'x') }), 'input', MAX_EMBEDDING_INPUTS],
      ['/v1/chat/completions', chat({ metadata: { ids: Array.from({ length: MAX_ENTRIES + 1 }, () => 0) } }), 'metadata.ids', MAX_ENTRIES],
      ['/v1/messages', JSON.stringify({ model: 'claude-haiku', max_tokens: 5, messages: [user(parts(MAX_CONTENT_PARTS + 1))] }), 'messages[0].content', MAX_CONTENT_PARTS, 'anthropic'],
    ];
    for (const [path, body, param, limit, format] of cases) {
      const a = await post(path, body, format === undefined ? {} : { 'anthropic-version': '2023-06-01' });
      expect(a.status).toBe(400);
      // Passed within the last 64 KiB of the body: the rest is read and dropped, the connection kept.
      expect(a.connection).toBe('keep-alive');
      expect(a.error.message).toContain(`"${param}" has more`);
      expect(a.error.message).toContain(`than the limit of ${limit}`);
      if (format === undefined) {
        expect(a.error.code).toBe('llmgw_invalid_request');
        expect(a.error.param).toBe(param);
      } else {
        expect(a.error.type).toBe('invalid_request_error');
      }
    }
  });

  it('accepts exactly the message and embedding-input limits', async () => {
    expect((await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: Array.from({ length: MAX_MESSAGES }, () => user('x')) }))).status).toBe(200);
    const embed = await request(`${stack.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'embed', input: Array.from({ length: MAX_EMBEDDING_INPUTS }, () => 'x') }),
    });
    expect(embed.statusCode).toBe(200);
    await embed.body.dump();
  });

  it('refuses 500k messages once 10k have arrived, before the rest is sent', async () => {
    const head = '{"model":"gpt-4o-mini","messages":[';
    const message = '{"role":"user","content":"x"},';
    const declared = head.length + 500_000 * message.length;
    // Exactly up to the comma that makes one message too many: nothing is left unread when the server stops.
    const prefix = Buffer.from(head + message.repeat(MAX_MESSAGES));
    const a = await rawPost('/v1/chat/completions', prefix, declared);
    expect(a.sent).toBe(prefix.length);
    expect(a.status).toBe(400);
    expect(a.body.error).toMatchObject({ param: 'messages', message: `"messages" has more entries than the limit of ${MAX_MESSAGES}` });
  });

  it('forwards long strings upstream exactly as sent (decoded in pieces: multi-byte characters, escapes, surrogates)', async () => {
    const text = 'héllo 漢字 😀 "quoted" \\ back\\slash \n\t\u0001 \ud800 '.repeat(60_000);
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [user(text)], metadata: { [text.slice(0, 300_000)]: 'long key' } });
    expect(Buffer.byteLength(body)).toBeGreaterThan(2 << 20);
    expect((await post('/v1/chat/completions', body)).status).toBe(200);
    const sent = stack.fake.requests.at(-1)!.body as { messages: { content: string }[]; metadata: Record<string, string> };
    expect(sent.messages[0]!.content === text).toBe(true);
    expect(sent.metadata[text.slice(0, 300_000)]).toBe('long key');
  });
});

/** Runs `hostile` while small chat requests run back to back on two connections; their latencies. */
async function latencyDuring<T>(hostile: () => Promise<T>): Promise<{ result: T; small: number[] }> {
  const small: number[] = [];
  let done = false;
  const probe = async (): Promise<void> => {
    while (!done) small.push((await post('/v1/chat/completions', chat({}))).ms);
  };
  const probes = [probe(), probe()];
  try {
    return { result: await hostile(), small };
  } finally {
    done = true;
    await Promise.all(probes);
  }
}

const p = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

describe('other requests while hostile bodies are processed, at the default 16 MiB body limit', () => {
  const LIMIT = 16 << 20;
  const fill = (unit: string, before: string, after: string): Buffer => {
    const n = Math.floor((LIMIT - 1024 - Buffer.byteLength(before + after)) / Buffer.byteLength(unit));
    return Buffer.from(before + unit.repeat(n) + after);
  };
  const head = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],';
  const message = '{"role":"user","content":"x"},';
  /**
   * A body of just under the limit. A refused one is sent up to the byte that passes its bound, with the
   * whole length declared: the server stops there whatever follows, and a client that went on writing
   * after the server closed would lose the answer to EPIPE (Node drops what it had not read yet).
   */
  const shape = (name: string, status: number, body: Buffer, refusedAt?: string) => ({ name, status, body, sent: refusedAt === undefined ? body.length : Buffer.byteLength(refusedAt) });
  // The huge strings go to a model nobody serves: the sidecar reads and parses all 16 MB, then answers 404,
  // so the in-process fake upstream does not parse 16 MB too (it shares this event loop).
  const shapes = [
    shape('deep nesting', 400, Buffer.from(deepBody((LIMIT - 1024 - head.length) >> 1)), `${head}"metadata":${'['.repeat(MAX_JSON_DEPTH)}`),
    shape('500k messages', 400, fill(message, '{"model":"gpt-4o-mini","messages":[', '{"role":"user","content":"x"}]}'), `{"model":"gpt-4o-mini","messages":[${message.repeat(MAX_MESSAGES)}`),
    shape('one array of numbers', 400, fill('0,', `${head}"metadata":{"ids":[`, '0]}}'), `${head}"metadata":{"ids":[${'0,'.repeat(MAX_ENTRIES)}`),
    shape('one 16 MB string', 404, fill('x', '{"model":"nobody-serves-this","messages":[{"role":"user","content":"', '"}]}')),
    shape('one 16 MB string of 3-byte characters', 404, fill('漢', '{"model":"nobody-serves-this","messages":[{"role":"user","content":"', '"}]}')),
  ];

  it.each(shapes)('answers $name without stalling every other request meanwhile (latency printed; the ~50 ms target is the bench\'s)', async ({ name, status, body, sent }) => {
    expect(body.length).toBeLessThan(LIMIT);
    const idle = await latencyDuring(() => new Promise((r) => setTimeout(r, 300)));
    const run = await latencyDuring(async () => {
      const answers: RawAnswer[] = [];
      for (let i = 0; i < 3; i++) answers.push(await rawPost('/v1/chat/completions', body.subarray(0, sent), body.length));
      return answers;
    });
    console.log(
      `${name} (${(body.length / 1e6).toFixed(1)} MB) x3: answered ${run.result.map((a) => a.status).join('/')} after ${run.result.map((a) => (a.sent / 1e6).toFixed(2)).join('/')} MB sent; ` +
        `other requests: ${run.small.length} done, p50 ${p(run.small, 0.5).toFixed(1)} ms, p99 ${p(run.small, 0.99).toFixed(1)} ms, max ${Math.max(...run.small).toFixed(1)} ms ` +
        `(idle: p50 ${p(idle.small, 0.5).toFixed(1)} ms, max ${Math.max(...idle.small).toFixed(1)} ms)`,
    );
    for (const a of run.result) expect(a).toMatchObject({ status, sent });
    expect(run.small.length).toBeGreaterThan(0);
    // A loose bound for a shared, noisy machine, over what the idle sidecar saw: a 16 MB body parsed or
    // written in one go holds the loop 0.4-1.6 s, and that would show here in full. The ~50 ms target is
    // measured by the bench on a pinned core.
    expect(Math.max(...run.small)).toBeLessThan(300 + Math.max(...idle.small));
  }, 60_000);
});
