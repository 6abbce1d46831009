// The response cache through the real sidecar and fake provider.
import Anthropic from '@anthropic-ai/sdk';
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { accessLines, eventually, scrapeMetrics, stackConfig, startStack, type Stack, type StackOptions } from '../helpers/stack.js';

const open: Stack[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function cached(path: string, extra: Record<string, unknown> = {}, opts: Omit<StackOptions, 'config'> = {}): Promise<Stack> {
  const s = await startStack({ ...opts, config: (raw) => ({ ...raw, storage: { path }, cache: { ttlSeconds: 60 }, ...extra }) });
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
    const metrics = await scrapeMetrics(s);
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
    await settle();
    const calls = s.fake.stats.requests;
    for (let i = 0; i < 2; i++) expect(await ask(s)).toMatchObject({ status: 200, cache: 'HIT' }); // JSON from the stored stream
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
    expect((await ask(s, {}, { temperature: 1 })).status).toBe(200); // a miss: the second request of the minute
    expect((await ask(s, {}, { temperature: 0.5 })).status).toBe(429); // a third miss meets the limit
  });

  it('answers a stream request from a stored JSON answer and a JSON request from a stored stream (OpenAI SDK)', async () => {
    const s = await cached(dbPath());
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'app', maxRetries: 0 });
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'call get_weather for Paris' }], tools };
    const json = await client.chat.completions.create(body);
    expect(json.choices[0]?.message.tool_calls?.[0]).toMatchObject({ function: { name: 'get_weather' } });
    await settle();
    const calls = s.fake.stats.requests;
    const replay = client.chat.completions.stream({ ...body, stream_options: { include_usage: true } });
    const final = await replay.finalChatCompletion();
    expect(final.choices[0]?.message.tool_calls).toEqual(json.choices[0]?.message.tool_calls);
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(final.usage).toEqual(json.usage);
    expect(s.fake.stats.requests).toBe(calls);

    // The other way: a stream recorded (without a usage chunk), then asked for as JSON and as a stream with usage.
    const streamed = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'stream me first' }] };
    let text = '';
    for await (const c of await client.chat.completions.create({ ...streamed, stream: true })) text += c.choices[0]?.delta.content ?? '';
    await settle();
    const before = s.fake.stats.requests;
    const { data: answer, response } = await client.chat.completions.create(streamed).withResponse();
    expect(response.headers.get('x-llmgw-cache')).toBe('HIT');
    expect(answer.choices[0]?.message.content).toBe(text);
    expect(answer.usage?.total_tokens).toBeGreaterThan(0); // the usage the gateway asked upstream for
    const withUsage = await client.chat.completions.stream({ ...streamed, stream_options: { include_usage: true } }).finalChatCompletion();
    expect(withUsage.usage).toMatchObject({ prompt_tokens: answer.usage?.prompt_tokens, completion_tokens: answer.usage?.completion_tokens });
    expect(s.fake.stats.requests).toBe(before);
  });

  it('does the same for Anthropic apps (Anthropic SDK)', async () => {
    const s = await cached(dbPath());
    const client = new Anthropic({ baseURL: s.url, apiKey: 'app', maxRetries: 0 });
    const body = { model: 'claude-haiku', max_tokens: 200, messages: [{ role: 'user' as const, content: 'hello from anthropic' }] };
    const message = await client.messages.create(body);
    await settle();
    const calls = s.fake.stats.requests;
    const { data: streamed, response } = await client.messages.stream(body).withResponse();
    expect(response.headers.get('x-llmgw-cache')).toBe('HIT');
    // The SDK's stream helper adds fields of its own to the message it assembles.
    const plain = ({ parsed_output: _, stop_details: __, ...m }: Anthropic.Message & { parsed_output?: unknown }) => m;
    expect(plain(await streamed.finalMessage())).toEqual(message);
    const other = { ...body, messages: [{ role: 'user' as const, content: 'stream first this time' }] };
    const fromStream = await client.messages.stream(other).finalMessage();
    await settle();
    expect(await client.messages.create(other)).toEqual(plain(fromStream));
    expect(s.fake.stats.requests).toBe(calls + 1);
  });

  it('reports the tokens a hit saved, never as spent', async () => {
    const s = await cached(dbPath());
    await ask(s);
    await settle();
    expect((await ask(s)).cache).toBe('HIT');
    const [miss, hit] = accessLines(s);
    expect(hit).toMatchObject({ cache: 'HIT', savedTokensIn: miss!.tokensIn, savedTokensOut: miss!.tokensOut });
    expect(hit!.tokensIn).toBeUndefined();
    const metrics = await scrapeMetrics(s);
    expect(metrics).toContain(`llmgw_cache_saved_tokens_total{model="gpt-4o-mini",direction="output"} ${String(miss!.tokensOut)}`);
    expect(metrics).toContain(`llmgw_tokens_total{model="gpt-4o-mini",direction="output"} ${String(miss!.tokensOut)}`);
  });

  it('evicts the least recently used entries at the size bound', async () => {
    const s = await cached(dbPath(), { cache: { ttlSeconds: 60, maxBytes: 2500 } });
    const prompt = (p: string) => ({ messages: [{ role: 'user', content: `${p} ${'padding '.repeat(60)}` }] });
    for (const p of ['one', 'two', 'three']) {
      expect((await ask(s, {}, prompt(p))).cache).toBe('MISS');
      await settle();
    }
    const metrics = await scrapeMetrics(s);
    const bytes = Number(/^llmgw_cache_bytes (\d+)$/m.exec(metrics)?.[1]);
    expect(bytes).toBeGreaterThan(1000);
    expect(bytes).toBeLessThanOrEqual(2500);
    expect(metrics).toContain('llmgw_cache_entries 2');
    expect((await ask(s, {}, prompt('three'))).cache).toBe('HIT');
    expect((await ask(s, {}, prompt('two'))).cache).toBe('HIT');
    expect((await ask(s, {}, prompt('one'))).cache).toBe('MISS'); // the oldest went
  });

  it('moves a corrupt database file aside and caches in a new one', async () => {
    const path = dbPath();
    writeFileSync(path, 'not a database at all, just text '.repeat(300));
    const s = await cached(path);
    expect(await ask(s)).toMatchObject({ status: 200, cache: 'MISS' });
    await settle();
    expect(await ask(s)).toMatchObject({ status: 200, cache: 'HIT' });
    expect(s.logs.some((l) => l.level === 40 && /unreadable; moved it aside/.test(String(l.msg)))).toBe(true);
    expect(readdirSync(dirname(path)).some((f) => f.startsWith('llmgw.db.corrupt-'))).toBe(true);
  });

  it('steps aside while another process holds the file locked, and caches again after', async () => {
    const path = dbPath();
    const s = await cached(path);
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    for (let i = 0; i < 2; i++) {
      expect(await ask(s)).toMatchObject({ status: 200, cache: 'MISS' }); // answered, not stored
      await new Promise((r) => setTimeout(r, 150)); // past the write's busy timeout
    }
    const metrics = await scrapeMetrics(s);
    expect(Number(/^llmgw_cache_errors_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    const warnings = s.logs.filter((l) => l.msg === 'the response cache failed; the request went on without it');
    expect(warnings).toHaveLength(1); // one a minute, however many requests bypass
    expect(String((warnings[0]?.err as { message?: string }).message)).toMatch(/locked|busy/i);
    other.exec('ROLLBACK');
    other.close();
    expect((await ask(s)).cache).toBe('MISS');
    await settle();
    expect((await ask(s)).cache).toBe('HIT');
  });

  it('serves without a cache when the file is locked at start, and opens it on the next config change', async () => {
    const path = dbPath();
    const other = new Database(path);
    other.pragma('journal_mode = WAL');
    other.exec('BEGIN IMMEDIATE');
    const configPath = join(dirname(path), 'config.yaml');
    writeFileSync(configPath, 'providers: {}\nmodels: {}\n'); // not read at start; replaced below
    const s = await cached(path, {}, { configPath });
    expect(s.logs.some((l) => l.level === 40 && l.msg === 'could not open the response cache; serving without it')).toBe(true);
    for (let i = 0; i < 2; i++) expect((await ask(s)).status).toBe(200);
    await settle();
    expect((await ask(s)).cache).not.toBe('HIT');
    const metrics = await scrapeMetrics(s);
    expect(metrics).toContain('# TYPE llmgw_cache_errors_total counter');
    expect(metrics).toMatch(/^llmgw_cache_errors_total 1$/m);
    other.exec('ROLLBACK');
    other.close();
    writeFileSync(configPath, stringify({ ...stackConfig(s.fake.url), storage: { path }, cache: { ttlSeconds: 30 } }));
    await eventually(() => expect(s.logs.some((l) => l.msg === 'config reloaded')).toBe(true));
    expect((await ask(s)).cache).toBe('MISS');
    await settle();
    expect((await ask(s)).cache).toBe('HIT');
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

  it('never stores an Anthropic stream that ended in an error event', async () => {
    const s = await cached(dbPath());
    s.fake.faults.add({ match: { path: '/v1/messages' }, errorAfterChunks: 6, chunkDelayMs: 20, times: 1 });
    const client = new Anthropic({ baseURL: s.url, apiKey: 'app', maxRetries: 0 });
    const body = { model: 'claude-haiku', max_tokens: 200, messages: [{ role: 'user' as const, content: 'one two three four five six' }] };
    await expect(client.messages.stream(body).finalMessage()).rejects.toThrow(/Overloaded/);
    await settle();
    const metrics = await scrapeMetrics(s);
    expect(metrics).toContain('llmgw_cache_entries 0');
    const calls = s.fake.stats.requests;
    const { response } = await client.messages.create(body).withResponse();
    expect(response.headers.get('x-llmgw-cache')).toBe('MISS');
    expect(s.fake.stats.requests).toBe(calls + 1);
  });
});
