// Shutdown: in-flight work finishes inside the drain window; what outlives it is cut, and stop() returns.
import OpenAI from 'openai';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { APP_KEY, startStack } from '../helpers/stack.js';

describe('drain on shutdown', () => {
  it('reports not-ready while draining, and bounds the drain by server.drainTimeoutMs', async () => {
    const stack = await startStack({ config: (raw) => ({ ...raw, server: { drainTimeoutMs: 400 } }) });
    // A stream that would take ~10 s.
    stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, chunkDelayMs: 1000 });
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'slow' }] });
    const consumed = (async () => {
      let n = 0;
      try {
        for await (const _ of stream) n += 1;
        return `completed after ${n}`;
      } catch {
        return 'cut';
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    const stopping = stack.sidecar.stop();
    // The status listener stays up until the drain ends, so probes see the pod leaving.
    const ready = await request(`${stack.statusUrl}/healthz/ready`);
    expect(ready.statusCode).toBe(503);
    await ready.body.dump();
    await stopping;
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(2000);
    expect(await consumed).toBe('cut');
    await stack.fake.close();
  });
});
