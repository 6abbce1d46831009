// Semantic mode through the real sidecar: the prompt is embedded by the fake provider's embeddings model
// (routed like any model), and a stored answer serves a prompt similar enough, within one scope and the
// same non-prompt parameters.
import Anthropic from '@anthropic-ai/sdk';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { accessLines, eventually, scrapeMetrics, startStack, type Stack } from '../helpers/stack.js';

const open: Stack[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

const semantic = { embeddingModel: 'embed', threshold: 0.9 };
async function stack(path: string, env: NodeJS.ProcessEnv = { POD_NAMESPACE: 'shop', LLMGW_SERVICE: 'web' }): Promise<Stack> {
  const s = await startStack({
    config: (raw) => ({ ...raw, storage: { path }, cache: { ttlSeconds: 60, models: { 'gpt-4o-mini': { semantic }, 'claude-haiku': { semantic } } } }),
    env,
  });
  open.push(s);
  return s;
}
const dbPath = () => join(mkdtempSync(join(tmpdir(), 'llmgw-semantic-')), 'llmgw.db');
const settle = () => new Promise((r) => setTimeout(r, 30));

async function ask(s: Stack, content: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const res = await request(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...body }),
  });
  const similarity = res.headers['x-llmgw-cache-similarity'];
  return { status: res.statusCode, cache: res.headers['x-llmgw-cache'], similarity: similarity === undefined ? undefined : Number(similarity), text: await res.body.text() };
}

/** Paths the fake provider was asked, since `from`. */
const upstreamPaths = (s: Stack, from: number) => s.fake.requests.slice(from).map((r) => r.path);

describe('semantic cache', () => {
  it('serves a similar prompt above the threshold and reports the similarity; a less similar one misses', async () => {
    const s = await stack(dbPath());
    const first = await ask(s, 'What is the capital of France?');
    expect(first).toMatchObject({ status: 200, cache: 'MISS', similarity: undefined });
    expect(upstreamPaths(s, 0)).toEqual(['/v1/embeddings', '/v1/chat/completions']);
    await settle();

    let seen = s.fake.requests.length;
    const close = await ask(s, 'what is the capital of France, please?');
    expect(close).toMatchObject({ status: 200, cache: 'HIT' });
    expect(close.similarity).toBeGreaterThanOrEqual(0.9);
    expect(close.similarity).toBeLessThan(1);
    expect(close.text).toBe(first.text); // the stored answer, not a new one
    expect(upstreamPaths(s, seen)).toEqual(['/v1/embeddings']);

    seen = s.fake.requests.length;
    const exact = await ask(s, 'What is the capital of France?');
    expect(exact).toMatchObject({ cache: 'HIT', similarity: undefined }); // exact lookup first: no embedding
    expect(upstreamPaths(s, seen)).toEqual([]);

    const far = await ask(s, 'What is the capital of Spain?');
    expect(far.cache).toBe('MISS');
    expect(far.text).toContain('Spain');
    // The same prompt with another sampling parameter is another partition.
    expect((await ask(s, 'what is the capital of France, please?', { temperature: 0.3 })).cache).toBe('MISS');
    await settle();
    const metrics = await scrapeMetrics(s);
    expect(metrics).toContain('llmgw_cache_semantic_lookups_total{result="hit"} 1');
    expect(metrics).toContain('llmgw_cache_semantic_lookups_total{result="miss"} 3');
  });

  it('reports the tokens of each embeddings call in the access log and llmgw_tokens_total', async () => {
    const s = await stack(dbPath());
    await ask(s, 'What is the capital of France?');
    await settle();
    await ask(s, 'what is the capital of France, please?');
    await eventually(() => expect(accessLines(s)).toHaveLength(2));
    const lines = accessLines(s);
    expect(lines.map((l) => [l.cache, l.embeddingModel])).toEqual([['MISS', 'embed'], ['HIT', 'embed']]);
    const embedded = lines.map((l) => Number(l.embeddingTokens));
    for (const n of embedded) expect(n).toBeGreaterThan(0);
    const metrics = await scrapeMetrics(s);
    expect(metrics).toContain(`llmgw_tokens_total{model="embed",direction="input"} ${embedded[0]! + embedded[1]!}`);
    expect(metrics).toContain(`llmgw_tokens_total{model="gpt-4o-mini",direction="input"} ${String(lines[0]!.tokensIn)}`); // the hit spent none
  });

  it('never serves across scopes, also from the same file', async () => {
    const path = dbPath();
    const a = await stack(path);
    await ask(a, 'What is the capital of France?');
    await settle();
    expect((await ask(a, 'what is the capital of France, please?')).cache).toBe('HIT');
    await a.close();
    open.length = 0;

    // Another service: neither the same prompt nor a similar one finds the first service's answer.
    const b = await stack(path, { POD_NAMESPACE: 'shop', LLMGW_SERVICE: 'billing' });
    expect((await ask(b, 'What is the capital of France?')).cache).toBe('MISS');
    await b.close();
    open.length = 0;
    const c = await stack(path, { POD_NAMESPACE: 'other-team', LLMGW_SERVICE: 'web' });
    expect((await ask(c, 'what is the capital of France, please?')).cache).toBe('MISS');
  });

  it('answers without the cache when the embeddings model fails, and skips prompts that are not text', async () => {
    const s = await stack(dbPath());
    s.fake.faults.add({ match: { model: 'text-embedding-3-small' }, status: 400, times: 0 });
    const res = await ask(s, 'What is the capital of France?');
    expect(res).toMatchObject({ status: 200, cache: 'MISS' });
    s.fake.faults.clear();
    await settle();
    expect((await ask(s, 'What is the capital of France?')).cache).toBe('HIT'); // still stored, exact
    const seen = s.fake.requests.length;
    const image = [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }];
    const res2 = await request(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: image }] }),
    });
    expect(res2.statusCode).toBe(200);
    await res2.body.text();
    expect(upstreamPaths(s, seen)).toEqual(['/v1/chat/completions']);
    const metrics = await scrapeMetrics(s);
    expect(metrics).toContain('llmgw_cache_semantic_lookups_total{result="failed"} 1');
    expect(metrics).toContain('llmgw_cache_semantic_lookups_total{result="skipped"} 1');
  });

  it('serves Anthropic apps too, as a stream from a stored JSON answer', async () => {
    const s = await stack(dbPath());
    const client = new Anthropic({ baseURL: s.url, apiKey: 'app', maxRetries: 0 });
    const body = (content: string) => ({ model: 'claude-haiku', max_tokens: 100, system: 'Answer briefly.', messages: [{ role: 'user' as const, content }] });
    const first = await client.messages.create(body('Which river flows through Paris?'));
    await settle();
    const { data, response } = await client.messages.stream(body('which river flows through Paris')).withResponse();
    expect(response.headers.get('x-llmgw-cache')).toBe('HIT');
    expect(Number(response.headers.get('x-llmgw-cache-similarity'))).toBeGreaterThanOrEqual(0.9);
    expect((await data.finalMessage()).content).toEqual(first.content);
    // Another system prompt is another prompt.
    const other = await client.messages.create({ ...body('Which river flows through Paris?'), system: 'Answer in French, with details.' }).withResponse();
    expect(other.response.headers.get('x-llmgw-cache')).toBe('MISS');
  });
});
