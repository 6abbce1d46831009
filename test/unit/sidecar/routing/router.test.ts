import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import type { Provider } from '../../../../sidecar/providers/provider.js';
import { pickWeighted, Router, weightedOrder, type Target } from '../../../../sidecar/routing/router.js';

const provider = { id: 'p' } as Provider;
const t = (model: string, weight: number): Target => ({ provider, model, weight });

describe('routing', () => {
  it('picks targets in proportion to their weights and never a weight-0 target', () => {
    const targets = [t('a', 1), t('off', 0), t('b', 3)];
    const counts: Record<string, number> = { a: 0, b: 0, off: 0 };
    for (let i = 0; i < 1000; i++) counts[pickWeighted(targets, () => i / 1000).model]! += 1;
    expect(counts).toEqual({ a: 250, b: 750, off: 0 });
  });

  it('orders every weighted target, heavier ones first more often, never a weight-0 target', () => {
    const targets = [t('a', 1), t('off', 0), t('b', 3)];
    const firsts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 1000; i++) {
      const order = weightedOrder(targets, () => i / 1000);
      expect(order.map((x) => x.model).sort()).toEqual(['a', 'b']);
      firsts[order[0]!.model]! += 1;
    }
    expect(firsts).toEqual({ a: 250, b: 750 });
  });

  it('answers an unknown model with 404 llmgw_unknown_model listing the known ones', () => {
    const router = new Router(new Map([['gpt-4o', { name: 'gpt-4o', targets: [t('x', 1)], fallbacks: [], defaultMaxTokens: undefined, strategy: 'weighted', timeouts: undefined, hedgeAfterMs: undefined, contextFallbacks: [], promptCache: 'off', retry: { attempts: 2, budgetMs: 30_000, baseDelayMs: 200, maxDelayMs: 5_000, maxRetryAfterMs: 30_000 } }]]));
    expect(router.resolve('gpt-4o').name).toBe('gpt-4o');
    try {
      router.resolve('gpt-5');
      expect.unreachable();
    } catch (err) {
      const e = err as GatewayError;
      expect(e).toBeInstanceOf(GatewayError);
      expect([e.status, e.code, e.param]).toEqual([404, 'llmgw_unknown_model', 'model']);
      expect(e.message).toContain('known models: gpt-4o');
    }
  });
});
