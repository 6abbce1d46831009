// The drain on shutdown is logged: what is in flight and the window at the start, progress every second,
// and how it ended, so a long drain is never silent.
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { APP_KEY, startStack } from '../helpers/stack.js';

async function streamThenStop(drainTimeoutMs: number) {
  const stack = await startStack({ config: (raw) => ({ ...raw, server: { drainTimeoutMs } }) });
  // The fake's answer is ~15 chunks: a stream of ~2.5 s.
  stack.fake.faults.add({ match: { path: '/v1/chat/completions' }, chunkDelayMs: 170 });
  const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'drain me' }] });
  const consumed = (async () => {
    try {
      for await (const _ of stream);
      return 'completed';
    } catch {
      return 'cut';
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  await stack.sidecar.stop();
  const outcome = await consumed;
  await stack.fake.close();
  const drain = stack.logs.filter((l) => String(l.msg).startsWith('drain'));
  return { outcome, drain };
}

describe('drain progress', () => {
  it('logs the requests in flight and the window at the start, progress every second, and the end', async () => {
    const { outcome, drain } = await streamThenStop(10_000);
    expect(outcome).toBe('completed');
    expect(drain[0]).toMatchObject({ level: 30, inflight: 1, drainMs: 10_000, msg: 'draining: waiting up to 10000 ms for 1 request(s) in flight (streams included)' });
    const progress = drain.slice(1, -1);
    expect(progress.length).toBeGreaterThanOrEqual(1);
    for (const [i, p] of progress.entries()) {
      expect(p).toMatchObject({ level: 30, inflight: 1, drainMs: 10_000, msg: 'draining: 1 request(s) still in flight' });
      // Once a second (timers may run late on a busy machine, never early).
      expect(p.waitedMs).toBeGreaterThanOrEqual(1000 * (i + 1) - 50);
      if (i > 0) expect(p.waitedMs).toBeGreaterThan(progress[i - 1]!.waitedMs as number);
    }
    expect(drain.at(-1)).toMatchObject({ level: 30, msg: 'drained: every request in flight finished' });
    expect(drain.at(-1)!.waitedMs).toBeGreaterThan(progress.at(-1)!.waitedMs as number);
  }, 20_000);

  it('says so at warn level when the window runs out, after the progress lines', async () => {
    const { outcome, drain } = await streamThenStop(1_300);
    expect(outcome).toBe('cut');
    expect(drain.map((l) => l.msg)).toEqual([
      'draining: waiting up to 1300 ms for 1 request(s) in flight (streams included)',
      'draining: 1 request(s) still in flight',
      'drain window over; closing remaining connections',
    ]);
    expect(drain.at(-1)).toMatchObject({ level: 40, inflight: 1, drainMs: 1_300 });
  }, 20_000);

  it('logs no drain when nothing is in flight', async () => {
    const stack = await startStack();
    await stack.sidecar.stop();
    await stack.fake.close();
    expect(stack.logs.filter((l) => String(l.msg).startsWith('drain'))).toEqual([]);
    expect(stack.logs.map((l) => l.msg)).toContain('sidecar stopped');
  });
});
