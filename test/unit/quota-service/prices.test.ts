// The operator's price file over the shipped table, re-read on change (a bad change keeps the last good
// table), and the table handed to sidecars with their lease answers only when they hold another version.
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { LeaseResponse } from '../../../proto/messages.js';
import { Allocator } from '../../../quota-service/allocator.js';
import { Authenticator } from '../../../quota-service/auth/authenticator.js';
import { quotaServiceHandlers } from '../../../quota-service/grpc-handlers.js';
import { ServicePrices } from '../../../quota-service/prices.js';
import { QuotaMetrics } from '../../../quota-service/quota-metrics.js';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { fakeClock } from '../../helpers/fake-clock.js';

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Replaces the file as a ConfigMap update does (a new inode), so the change is seen. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.new`, text);
  renameSync(`${path}.new`, path);
}

describe('ServicePrices', () => {
  it('applies a good change of the file and keeps the last good table on a bad one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-prices-'));
    const path = join(dir, 'prices.yaml');
    writeFileSync(path, 'models: { openai: { gpt-4o: { input: 2.5, output: 10 } } }\n');
    const reloads: string[] = [];
    const prices = new ServicePrices(path, (result, err) => reloads.push(`${result}${err === undefined ? '' : `: ${String(err)}`}`));
    try {
      const first = prices.current;
      expect(first.index.resolve('openai', 'gpt-4o').priced).toBe(true);
      expect(first.index.resolve('anthropic', 'claude-haiku-4-5').priced).toBe(true); // the shipped table stays under it
      replace(path, 'default: { input: 30, output: 150 }\nmodels: { openai: { gpt-4o: { input: 5, output: 20 } } }\n');
      await until(() => reloads.length === 1);
      expect(reloads).toEqual(['ok']);
      const second = prices.current;
      expect(second.version).not.toBe(first.version);
      expect(second.index.resolve('openai', 'gpt-4o').rates.input).toBe(5000);
      expect(second.index.resolve('openai', 'o1').rates.output).toBe(150_000);
      replace(path, 'default: { input: 0, output: 0 }\nmodels: { openai: { gpt-4o: { input: five } } }\n');
      await until(() => reloads.length === 2);
      expect(reloads[1]).toMatch(/^failed: .*default: the default price must not be free/s);
      expect(reloads[1]).toMatch(/models\.openai\.gpt-4o\.input: expected a number/);
      expect(reloads[1]).toMatch(/models\.openai\.gpt-4o\.output: required/);
      expect(prices.current).toBe(second);
    } finally {
      prices.close();
    }
  });

  it('refuses a file that cannot be used at start, naming its problems', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-prices-'));
    const path = join(dir, 'prices.yaml');
    writeFileSync(path, 'models: { openai: { gpt-4o: { input: -1, output: 1 } } }\n');
    expect(() => new ServicePrices(path)).toThrow(/models\.openai\.gpt-4o\.input: must be at least 0/);
  });

  it('hands the table with a lease answer only to a sidecar that holds another version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-prices-'));
    const path = join(dir, 'prices.yaml');
    writeFileSync(path, 'models: { openai: { gpt-4o: { input: 2.5, cachedInput: 1.25, output: 10 } } }\n');
    const prices = new ServicePrices(path);
    const clock = fakeClock();
    const alloc = new Allocator(new SqliteQuotaStore(':memory:'), { clock });
    const handlers = quotaServiceHandlers({
      alloc,
      auth: new Authenticator({ mode: 'none' }),
      metrics: new QuotaMetrics(),
      logger: pino({ level: 'silent' }),
      tls: false,
      prices: () => prices.current,
    }) as Record<string, (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => void>;
    const call = (method: string, request: object): Promise<LeaseResponse> =>
      new Promise((resolve, reject) => handlers[method]!({ request, metadata: new Metadata() } as ServerUnaryCall<unknown, unknown>, (err, res) => (err ? reject(err) : resolve(res as LeaseResponse))));
    try {
      const identity = { namespace: 'demo', service: 'web', team: '', pod: 'p' };
      const first = await call('AcquireLease', { identity, priority: 'PRIORITY_INTERACTIVE', incarnation: 'i', needTokens: 0, demandTokensPerSecond: 1, pricesVersion: '' });
      expect(first.pricesVersion).toBe(prices.current.version);
      expect(first.prices!.version).toBe(prices.current.version);
      const gpt4o = first.prices!.models.find((m) => m.providerType === 'openai' && m.model === 'gpt-4o');
      expect(gpt4o!.prices).toEqual({ input: 2.5, cachedInput: 1.25, cacheWrite: 2.5, output: 10, reasoning: 10 });
      const renew = { leaseId: first.leaseId, needTokens: 0, demandTokensPerSecond: 1, reports: [], unusedTokens: 0 };
      const held = await call('RenewLease', { ...renew, pricesVersion: first.pricesVersion });
      expect(held.pricesVersion).toBe(first.pricesVersion);
      expect(held.prices).toBeNull();
      // An older sidecar sends no version: it gets the table each time (it ignores the field).
      expect((await call('RenewLease', renew)).prices).not.toBeNull();
      replace(path, 'models: { openai: { gpt-4o: { input: 3, output: 12 } } }\n');
      await until(() => prices.current.version !== first.pricesVersion);
      const changed = await call('RenewLease', { ...renew, pricesVersion: first.pricesVersion });
      expect(changed.prices!.version).toBe(prices.current.version);
      expect(changed.prices!.models.find((m) => m.model === 'gpt-4o')!.prices!.input).toBe(3);
    } finally {
      prices.close();
    }
  });
});
