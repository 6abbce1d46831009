// The response cache through the real sidecar and fake provider.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

const open: Stack[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function cached(path: string, extra: Record<string, unknown> = {}): Promise<Stack> {
  const s = await startStack({ config: (raw) => ({ ...raw, storage: { path }, cache: { ttlSeconds: 60 }, ...extra }) });
  open.push(s);
  return s;
}
const dbPath = () => join(mkdtempSync(join(tmpdir(), 'llmgw-cache-it-')), 'llmgw.db');

async function ask(s: Stack, headers: Record<string, string> = {}, body: Record<string, unknown> = {}) {
  const res = await request(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'what is the cache?' }], ...body }),
  });
  return { status: res.statusCode, cache: res.headers['x-llmgw-cache'], text: await res.body.text() };
}
const settle = () => new Promise((r) => setTimeout(r, 30)); // the store is written after the answer

describe('response cache', () => {
  it('answers a repeated request from the cache with no upstream call, also after a restart', async () => {
    const path = dbPath();
    const s = await cached(path);
    const first = await ask(s);
    expect(first).toMatchObject({ status: 200, cache: 'MISS' });
    await settle();
    const calls = s.fake.stats.requests;
    const second = await ask(s);
    expect(second).toMatchObject({ status: 200, cache: 'HIT' });
    expect(second.text).toBe(first.text);
    expect(s.fake.stats.requests).toBe(calls);
    // Parameters that cannot change the answer do not change the key; those that can, do.
    expect((await ask(s, {}, { user: 'someone-else' })).cache).toBe('HIT');
    expect((await ask(s, {}, { temperature: 0.2 })).cache).toBe('MISS');
    await settle();
    const metrics = await (await request(`${s.statusUrl}/metrics`)).body.text();
    expect(metrics).toContain('llmgw_cache_requests_total{result="HIT"} 2');
    expect(metrics).toContain('llmgw_cache_requests_total{result="MISS"} 2');
    expect(metrics).toContain('llmgw_cache_entries 2');
    await s.close();
    open.length = 0;

    const again = await cached(path);
    const afterRestart = await ask(again);
    expect(afterRestart).toMatchObject({ status: 200, cache: 'HIT' });
    expect(afterRestart.text).toBe(first.text);
    expect(again.fake.stats.requests).toBe(0);
  });

  it('honours Cache-Control: no-store, no-cache and max-age', async () => {
    const s = await cached(dbPath());
    expect((await ask(s, { 'cache-control': 'no-store' })).cache).toBe('BYPASS');
    await settle();
    expect((await ask(s)).cache).toBe('MISS'); // no-store stored nothing
    await settle();
    expect((await ask(s, { 'cache-control': 'no-cache' })).cache).toBe('MISS'); // looked nothing up
    expect((await ask(s)).cache).toBe('HIT');
    await new Promise((r) => setTimeout(r, 1100));
    expect((await ask(s, { 'cache-control': 'max-age=1' })).cache).toBe('MISS'); // older than 1 s
    expect((await ask(s, { 'cache-control': 'max-age=60' })).cache).toBe('HIT');
  });

  it('stores a complete stream and replays it event by event; a hit spends no local rate limit', async () => {
    const s = await cached(dbPath(), { rateLimits: { requestsPerMinute: 2 } });
    const first = await ask(s, {}, { stream: true });
    expect(first).toMatchObject({ status: 200, cache: 'MISS' });
    expect((await ask(s)).status).toBe(200); // the second request of the minute (JSON: not served from the stream)
    await settle();
    const calls = s.fake.stats.requests;
    for (let i = 0; i < 2; i++) expect(await ask(s)).toMatchObject({ status: 200, cache: 'HIT' });
    const replayed = await ask(s, {}, { stream: true });
    expect(replayed).toMatchObject({ status: 200, cache: 'HIT' });
    expect(replayed.text).toBe(first.text);
    expect(replayed.text.split('\n\n').filter((e) => e.startsWith('data: {')).length).toBeGreaterThan(3);
    expect(s.fake.stats.requests).toBe(calls);
    // The official SDK reads the replay like any stream.
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'app', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'what is the cache?' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello from the fake provider. You said: what is the cache?');
    expect((await ask(s, {}, { temperature: 1 })).status).toBe(429); // a miss meets the limit
  });

  it('never stores a stream that failed midway or that the app left', async () => {
    const s = await cached(dbPath());
    s.fake.faults.add({ match: { model: 'gpt-4o-mini' }, errorAfterChunks: 6, chunkDelayMs: 20 });
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'app', maxRetries: 0 });
    const body = { model: 'gpt-4o-mini', stream: true as const, messages: [{ role: 'user' as const, content: 'one two three four five six seven' }] };
    await expect((async () => {
      for await (const _ of await client.chat.completions.create(body));
    })()).rejects.toThrow();
    s.fake.faults.add({ match: { model: 'gpt-4o-mini' }, chunkDelayMs: 50 });
    const left = await client.chat.completions.create(body);
    for await (const _ of left) break; // the SDK aborts on break
    await settle();
    const res = await request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.headers['x-llmgw-cache']).toBe('MISS');
    await res.body.text();
  });
});
