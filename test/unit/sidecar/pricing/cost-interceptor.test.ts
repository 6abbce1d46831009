// The cost of each request from the sidecar's price book: set at once on a JSON answer (for the header),
// at the end of a stream (for the access log), 0 on a cache hit, absent without usage; priced by the
// provider type and upstream model that answered, by the service's table once the service sent one.
import { describe, expect, it } from 'vitest';
import { priceTableMsg } from '../../../../common/pricing/price-table-msg.js';
import { mergePriceTables } from '../../../../common/pricing/price-table.js';
import { SHIPPED_PRICES } from '../../../../common/pricing/shipped-prices.js';
import { validateConfig } from '../../../../sidecar/config/load-config.js';
import type { Usage } from '../../../../sidecar/formats/usage.js';
import type { GatewayRequest, GatewayResponse, ResponseMeta } from '../../../../sidecar/pipeline/types.js';
import { costHeader, costInterceptor } from '../../../../sidecar/pricing/cost-interceptor.js';
import { PriceBook } from '../../../../sidecar/pricing/price-book.js';
import { stackConfig } from '../../../helpers/stack.js';

const config = validateConfig(stackConfig('http://127.0.0.1:9'), 'test');
const req = (model: string, stream = false): GatewayRequest =>
  ({ id: 'r', endpoint: 'chat', format: 'openai', model, body: { model, messages: [] }, stream, headers: {}, priority: 'interactive', tags: undefined }) as unknown as GatewayRequest;
const usage = (inputTokens: number, outputTokens: number, cachedInputTokens = 0, cacheWriteTokens = 0): Usage => ({ inputTokens, outputTokens, cachedInputTokens, cacheWriteTokens });

function run(book: PriceBook, res: GatewayResponse, model = 'claude-haiku'): Promise<GatewayResponse> {
  return costInterceptor({ book, config: () => config })(async () => res)(req(model, res.kind === 'stream'));
}

const json = (meta: Partial<ResponseMeta>): GatewayResponse => ({ kind: 'json', status: 200, body: '{}', meta: { attempts: 1, cache: 'MISS', ...meta } });

describe('cost interceptor', () => {
  it('prices a JSON answer at once by the provider type and upstream model that answered', async () => {
    // The stack's `claude` provider is of type anthropic; claude-haiku-4-5: 1,000 × 1 + 1,000 × 0.10 + 500 × 5 per million.
    const res = await run(new PriceBook(), json({ provider: 'claude', upstreamModel: 'claude-haiku-4-5', usage: usage(2000, 500, 1000) }));
    expect(res.meta.costUsd).toBe(0.0036);
    expect(costHeader(res.meta.costUsd!)).toBe('0.0036');
  });

  it('prices a stream when it ends, not before', async () => {
    const meta: ResponseMeta = { attempts: 1, cache: 'MISS', provider: 'openai', upstreamModel: 'gpt-5-mini-2025-08-07' };
    async function* rest(): AsyncGenerator<string> {
      yield 'data: 1\n\n';
      meta.usage = usage(1000, 500);
    }
    // Usage at the start of a stream is partial (the prompt): no cost until the end.
    meta.usage = usage(1000, 0);
    const frames = rest();
    const res = await run(new PriceBook(), { kind: 'stream', head: 'data: 0\n\n', rest: frames, meta });
    expect(res.meta.costUsd).toBeUndefined();
    if (res.kind !== 'stream') throw new Error('expected a stream');
    // The frames go to the app as the upstream sent them, through no wrapper of the interceptor's.
    expect(res.rest).toBe(frames);
    const it = res.rest[Symbol.asyncIterator]();
    await it.next();
    expect((await it.next()).done).toBe(true);
    // Priced when asked at the end (the access log's line), from the final usage.
    expect(meta.costAtEnd!()).toBe(0.00125);
  });

  it('says a cache hit cost nothing, and leaves an answer without usage unpriced', async () => {
    const hit = await run(new PriceBook(), json({ cache: 'HIT', savedUsage: usage(1000, 1000) }));
    expect(hit.meta.costUsd).toBe(0);
    expect(costHeader(0)).toBe('0');
    const error = await run(new PriceBook(), { kind: 'json', status: 502, body: '{}', meta: { attempts: 1, cache: 'MISS', provider: 'openai', upstreamModel: 'gpt-5-mini' } });
    expect(error.meta.costUsd).toBeUndefined();
  });

  it('prices by the table the service sent once it arrived, and says which version it holds', async () => {
    const book = new PriceBook();
    expect(book.version).toBe('');
    const table = mergePriceTables(SHIPPED_PRICES, { models: { anthropic: { 'claude-haiku-4-5': { input: 2, output: 10 } } } });
    book.receive(priceTableMsg(table, 'v2'));
    expect(book.version).toBe('v2');
    // 2,000 × 2 + 500 × 10 per million: cached reads at the input price now (the entry gives no cache price).
    const res = await run(book, json({ provider: 'claude', upstreamModel: 'claude-haiku-4-5', usage: usage(2000, 500, 1000) }));
    expect(res.meta.costUsd).toBe(0.009);
  });

  it('prices an openai-compatible model by name, else at the default', async () => {
    // The stack's `vllm` provider is openai-compatible; llama is not priced: $15 / $75 per million.
    const res = await run(new PriceBook(), json({ provider: 'vllm', upstreamModel: 'llama-3.1-8b', usage: usage(1000, 100) }), 'llama');
    expect(res.meta.costUsd).toBe(0.0225);
  });
});
