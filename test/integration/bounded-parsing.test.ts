// Bounded parsing through the real sidecar: too-deep bodies and too many messages, tools or content parts
// get 400 `llmgw_invalid_request` naming the limit, and a body near the 16 MiB default limit does not stall
// other requests (their latency is measured while it is read and parsed, and printed).
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../common/http/read-json-body.js';
import { MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_TOOLS } from '../../sidecar/http/json-limits.js';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack.close());

interface Answer {
  status: number;
  error: { code?: string; param?: string | null; message?: string; type?: string };
  ms: number;
}

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const t0 = performance.now();
  const res = await request(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const json = (await res.body.json()) as { error: Answer['error'] };
  return { status: res.statusCode, error: json.error, ms: performance.now() - t0 };
}

const user = (content: unknown) => ({ role: 'user', content });
const chat = (extra: Record<string, unknown>) => JSON.stringify({ model: 'gpt-4o-mini', messages: [user('hi')], ...extra });

describe('limits', () => {
  it('refuses JSON nested 100,000 levels with 400 naming the depth limit and the field', async () => {
    const deep = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const a = await post('/v1/chat/completions', deep);
    expect(a.status).toBe(400);
    expect(a.error.code).toBe('llmgw_invalid_request');
    expect(a.error.param).toBe('metadata');
    expect(a.error.message).toBe(`request JSON is nested deeper than the limit of ${MAX_JSON_DEPTH} levels`);
  });

  it('accepts exactly the depth limit', async () => {
    // The body is level 1, "metadata" level 2, so 126 more levels reach the limit exactly.
    const levels = MAX_JSON_DEPTH - 2;
    const body = chat({ metadata: { x: JSON.parse('['.repeat(levels) + ']'.repeat(levels)) as unknown } });
    const a = await post('/v1/chat/completions', body);
    expect(a.status).toBe(200);
    const over = chat({ metadata: { x: JSON.parse('['.repeat(levels + 1) + ']'.repeat(levels + 1)) as unknown } });
    expect((await post('/v1/chat/completions', over)).status).toBe(400);
  });

  it('refuses too many messages, tools or content parts with 400 naming the limit and the field', async () => {
    const parts = (n: number) => Array.from({ length: n }, () => ({ type: 'text', text: 'x' }));
    const cases: [string, string, string, number, string?][] = [
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: Array.from({ length: MAX_MESSAGES + 1 }, () => user('x')) }), 'messages', MAX_MESSAGES],
      ['/v1/chat/completions', chat({ tools: Array.from({ length: MAX_TOOLS + 1 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } })) }), 'tools', MAX_TOOLS],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [user('a'), user(parts(MAX_CONTENT_PARTS + 1))] }), 'messages[1].content', MAX_CONTENT_PARTS],
      ['/v1/messages', JSON.stringify({ model: 'claude-haiku', max_tokens: 5, messages: [user(parts(MAX_CONTENT_PARTS + 1))] }), 'messages[0].content', MAX_CONTENT_PARTS, 'anthropic'],
    ];
    for (const [path, body, param, limit, format] of cases) {
      const a = await post(path, body, format === undefined ? {} : { 'anthropic-version': '2023-06-01' });
      expect(a.status).toBe(400);
      expect(a.error.message).toContain(`the limit is ${limit}`);
      if (format === undefined) {
        expect(a.error.code).toBe('llmgw_invalid_request');
        expect(a.error.param).toBe(param);
      } else {
        expect(a.error.type).toBe('invalid_request_error');
      }
    }
  });

  it('accepts exactly the message and content-part limits', async () => {
    const a = await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: Array.from({ length: MAX_MESSAGES }, () => user('x')) }));
    expect(a.status).toBe(200);
  });
});

/** Sends `big` while small requests run one after another; returns the small requests' latencies. */
async function latencyDuring(big: () => Promise<Answer>): Promise<{ big: Answer; small: number[] }> {
  const small: number[] = [];
  let done = false;
  const probe = (async () => {
    while (!done) small.push((await post('/v1/chat/completions', chat({}))).ms);
  })();
  const answer = await big();
  done = true;
  await probe;
  return { big: answer, small };
}

const p = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

describe('other requests while a huge body is read, at the default 16 MiB body limit', () => {
  it('refuses a 15 MB body of 500k messages while other requests keep being answered (their latency printed)', async () => {
    const big = Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', messages: Array.from({ length: 500_000 }, () => user('x')) }));
    expect(big.length).toBeLessThan(16 << 20);
    const base = await latencyDuring(async () => {
      await new Promise((r) => setTimeout(r, 500));
      return { status: 0, error: {}, ms: 0 };
    });
    const run = await latencyDuring(() => post('/v1/chat/completions', big));
    console.log(
      `500k messages (${(big.length / 1e6).toFixed(1)} MB): answered ${run.big.status} in ${run.big.ms.toFixed(0)} ms; ` +
        `other requests: ${run.small.length} done, p50 ${p(run.small, 0.5).toFixed(1)} ms, max ${Math.max(...run.small).toFixed(1)} ms ` +
        `(idle: p50 ${p(base.small, 0.5).toFixed(1)} ms, max ${Math.max(...base.small).toFixed(1)} ms)`,
    );
    expect(run.big.status).toBe(400);
    expect(run.big.error.param).toBe('messages');
    // The stall is printed, not asserted: timings belong in benchmarks (the machines are shared and noisy).
    expect(run.small.length).toBeGreaterThan(0);
  }, 60_000);
});
