import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { validateConfig } from '../../../../sidecar/config/load-config.js';
import { rateLimitInterceptor } from '../../../../sidecar/limits/rate-limit-interceptor.js';
import type { GatewayRequest, GatewayResponse } from '../../../../sidecar/pipeline/types.js';
import { fakeClock, type FakeClock } from '../../../helpers/fake-clock.js';
import { stackConfig } from '../../../helpers/stack.js';

/** A chat request of about `prompt` + `max` tokens (its prompt at 4 characters a token). */
const chat = (max: number, prompt = 3, model = 'gpt-4o-mini'): GatewayRequest =>
  ({
    id: 'r',
    endpoint: 'chat',
    format: 'openai',
    model,
    body: { model, max_tokens: max, messages: [{ role: 'user', content: 'x'.repeat(prompt * 4) }] },
    stream: false,
    headers: {},
    priority: 'interactive',
    tags: undefined,
  }) as unknown as GatewayRequest;

function limited(rateLimits: Record<string, unknown>, clock: FakeClock, used = (req: GatewayRequest) => (req.body as { max_tokens: number }).max_tokens + 3) {
  const config = validateConfig({ ...stackConfig('http://127.0.0.1:9'), rateLimits }, 'test');
  // The upstream uses the whole estimate, so only the clock gives tokens back.
  const next = async (req: GatewayRequest): Promise<GatewayResponse> => ({
    kind: 'json',
    status: 200,
    body: '{}',
    meta: { attempts: 1, cache: 'MISS', usage: { inputTokens: 3, outputTokens: used(req) - 3, cachedInputTokens: 0, cacheWriteTokens: 0 } },
  });
  return rateLimitInterceptor({ config: () => config, clock })(next);
}

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof GatewayError) return err;
  throw new Error(`expected a refusal, got ${String(err)}`);
}

const settled = () => new Promise((r) => setImmediate(r));
const status = (res: GatewayResponse): number => (res.kind === 'json' ? res.status : 200);

describe('local rate limits', () => {
  it('refuses a request larger than the whole tokens-per-minute bucket with 400 llmgw_request_exceeds_rate_limit, naming the limit and the fix', async () => {
    const handler = limited({ tokensPerMinute: 500, models: { 'gpt-4o-mini': { tokensPerMinute: 300 } } }, fakeClock());
    const pod = await refusal(handler(chat(600)));
    expect(pod.code).toBe('llmgw_request_exceeds_rate_limit');
    expect(pod.status).toBe(400);
    expect(pod.retryAfterSeconds).toBeUndefined();
    expect(pod.message).toContain('estimated 603 tokens');
    expect(pod.message).toContain('rateLimits.tokensPerMinute allows in a minute (500); 500 are available now');
    expect(pod.message).toContain('lower max_tokens, or raise rateLimits.tokensPerMinute');
    const model = await refusal(handler(chat(400)));
    expect(model.code).toBe('llmgw_request_exceeds_rate_limit');
    expect(model.message).toContain('rateLimits.models.gpt-4o-mini.tokensPerMinute allows in a minute (300)');
    // Another model is held to the pod's limit only.
    expect(status(await handler(chat(400, 3, 'llama')))).toBe(200);
  });

  it('refuses a request the bucket holds too little for with a Retry-After after which it is admitted', async () => {
    const clock = fakeClock();
    const handler = limited({ tokensPerMinute: 1000 }, clock);
    await handler(chat(797)); // uses its 800
    await settled();
    const err = await refusal(handler(chat(597)));
    expect(err.code).toBe('llmgw_rate_limited');
    expect(err.status).toBe(429);
    // 400 missing at 1000 a minute: 24 s.
    expect(err.retryAfterSeconds).toBe(24);
    expect(err.message).toBe("this pod's local limit rateLimits.tokensPerMinute (1000 tokens a minute) has 200 tokens available, fewer than this request's estimated 600: retry in 24 s");
    clock.advance(23_000);
    expect((await refusal(handler(chat(597)))).retryAfterSeconds).toBe(1);
    clock.advance(1000);
    expect(status(await handler(chat(597)))).toBe(200);
  });

  it('with several limits, waits for the slowest: after it, every bucket holds what the request takes', async () => {
    const clock = fakeClock();
    const handler = limited({ tokensPerMinute: 1200, models: { 'gpt-4o-mini': { requestsPerMinute: 2 } } }, clock);
    await handler(chat(97));
    await handler(chat(997));
    await settled();
    // The model's 2 requests a minute: 30 s; the pod's tokens (100 of 1200 left, 300 wanted): 10 s.
    const err = await refusal(handler(chat(297)));
    expect(err.retryAfterSeconds).toBe(30);
    expect(err.message).toContain('rateLimits.models.gpt-4o-mini.requestsPerMinute (2 requests a minute) is reached');
    clock.advance(30_000);
    expect(status(await handler(chat(297)))).toBe(200);
  });
});
