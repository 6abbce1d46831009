// Slow, idle and malformed clients: timeouts close them, and no input makes the sidecar answer 500 or
// stop answering.
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ config: (raw) => ({ ...raw, server: { headersTimeoutMs: 300, requestTimeoutMs: 600 } }) });
});
afterAll(async () => stack.close());

function openSocket(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(stack.sidecar.address.port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with what the server sent before it closed the connection. */
function untilClosed(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.once('close', () => resolve(got));
  });
}

describe('slow and idle clients', () => {
  it('closes a client that never finishes its headers', async () => {
    const s = await openSocket();
    s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
    const t0 = Date.now();
    const got = await untilClosed(s);
    expect(got).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('closes a client that never finishes its body', async () => {
    const s = await openSocket();
    s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":');
    const got = await untilClosed(s);
    expect(got).toMatch(/^HTTP\/1\.1 408/);
  });

  it('keeps answering while a thousand idle connections are open', async () => {
    const sockets = await Promise.all(Array.from({ length: 1000 }, () => openSocket()));
    const res = await request(`${stack.url}/v1/models`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    for (const s of sockets) s.destroy();
  });
});

/** A small seeded generator so a failure replays exactly. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

function junk(r: () => number, depth: number): unknown {
  const pick = Math.floor(r() * (depth > 2 ? 5 : 8));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return Math.floor(r() * 10) - 3;
    case 2:
      return ['user', 'assistant', 'tool', 'system', 'text', 'image_url', 'tool_use', 'function', ''][Math.floor(r() * 9)];
    case 3:
      return r() > 0.5;
    case 4:
      return 'data:image/png;base64,AAAA';
    case 5:
      return Array.from({ length: Math.floor(r() * 3) }, () => junk(r, depth + 1));
    default: {
      const keys = ['role', 'content', 'type', 'text', 'tool_calls', 'id', 'function', 'arguments', 'name', 'image_url', 'url', 'source', 'input', 'tool_use_id', 'tool_call_id'];
      const o: Record<string, unknown> = {};
      for (let i = 0; i < 1 + Math.floor(r() * 4); i++) o[keys[Math.floor(r() * keys.length)]!] = junk(r, depth + 1);
      return o;
    }
  }
}

/** A message that is often valid and often subtly wrong, so requests reach every translation branch. */
function plausibleMessage(r: () => number, anthropicShape: boolean): unknown {
  const roles = ['user', 'assistant', 'tool', 'system', 'user', 'user'];
  const role = roles[Math.floor(r() * roles.length)]!;
  const part = (): unknown => {
    const kinds = anthropicShape
      ? [{ type: 'text', text: 'hi' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }, { type: 'tool_result', tool_use_id: 't1', content: 'ok' }, { type: 'tool_use', id: 't1', name: 'f', input: {} }, junk(r, 2)]
      : [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: 'https://x/y.png' } }, { type: 'image_url', image_url: {} }, junk(r, 2)];
    return kinds[Math.floor(r() * kinds.length)];
  };
  const m: Record<string, unknown> = { role };
  const c = r();
  m.content = c < 0.4 ? 'hello' : c < 0.8 ? Array.from({ length: 1 + Math.floor(r() * 3) }, part) : junk(r, 1);
  if (!anthropicShape && role === 'assistant' && r() > 0.5) m.tool_calls = [{ id: 't1', type: 'function', function: { name: 'f', arguments: r() > 0.5 ? '{}' : junk(r, 2) } }];
  if (!anthropicShape && role === 'tool') m.tool_call_id = r() > 0.3 ? 't1' : junk(r, 2);
  return m;
}

describe('malformed requests', () => {
  it('never answers 500 to a malformed request on any translation path, and keeps serving', async () => {
    const r = rng(42);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const toMessages = i % 2 === 0;
      const body: Record<string, unknown> = {
        model: toMessages ? 'gpt-4o-mini' : 'claude-haiku',
        messages: [{ role: 'user', content: 'start' }, plausibleMessage(r, toMessages), plausibleMessage(r, toMessages)],
        max_tokens: 20,
      };
      if (r() > 0.6) body.tools = junk(r, 1);
      if (r() > 0.7) body.tool_choice = junk(r, 2);
      if (r() > 0.8) body.stream = true;
      const res = await request(`${stack.url}${toMessages ? '/v1/messages' : '/v1/chat/completions'}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      await res.body.dump();
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      expect(res.statusCode, JSON.stringify(body)).toBeLessThan(500);
    }
    // Both outcomes occur, so the run went through translation and upstream, not only early checks.
    expect(statuses.get(400)).toBeGreaterThan(30);
    expect(statuses.get(200)).toBeGreaterThan(30);
    const ok = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still here?' }] }),
    });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });
});
