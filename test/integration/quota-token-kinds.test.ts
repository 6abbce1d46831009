// Usage by kind of token reaches the quota service (issue 19, part 3): the real sidecar, fake provider and
// quota service over gRPC; the fake reports half of a prompt with [fake:cached] as read from its prompt
// cache, and a quarter of one with [fake:cache-write] as written to it. The service keeps input, output, cached input and cache writes beside the tokens it charges.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { startQuotaService } from '../../quota-service/quota-service.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startFakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { APP_KEY, stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

it('carries input, output, cached input and cache-write tokens from the providers\' usage to the service\'s consumption', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-kinds-'));
  const silent = pino({ level: 'silent' });
  const quota = await startQuotaService({ listen: { host: '127.0.0.1', port: 0 }, statusListen: { host: '127.0.0.1', port: 0 }, dbPath: join(dir, 'quota.db'), logger: silent, auth: { mode: 'none' } });
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  try {
    await quota.allocator.setBudget('namespace/default', 'day', 1_000_000_000);
    const raw = { ...stackConfig(fake.url), storage: { path: join(dir, 'sidecar.db') }, quota: { address: `127.0.0.1:${quota.address.port}`, tokenFile: join(dir, 'no-token') } };
    const sidecar = await startSidecar({ config: validateConfig(raw, 'test config'), listen: { host: '127.0.0.1', port: 0 }, statusListen: { host: '127.0.0.1', port: 0 }, logger: silent, env: { POD_NAME: 'pod-k' } });
    const url = `http://127.0.0.1:${sidecar.address.port}`;
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const anthropic = new Anthropic({ baseURL: url, apiKey: APP_KEY, maxRetries: 0 });

    const chat = await openai.chat.completions.create({ model: 'claude-haiku', messages: [{ role: 'user', content: 'A long shared context [fake:cached] and then a question' }] });
    const message = await anthropic.messages.create({ model: 'claude-haiku', max_tokens: 50, messages: [{ role: 'user', content: 'Hello [fake:cached] there, and [fake:cache-write] this too' }] });
    const response = await openai.responses.create({ model: 'gpt-4o-mini', input: 'Plain question' });
    // The sidecar's drain gives its leases back with their last usage.
    await sidecar.stop();

    const written = message.usage.cache_creation_input_tokens!;
    expect(written).toBeGreaterThan(0);
    const input = chat.usage!.prompt_tokens + message.usage.input_tokens + message.usage.cache_read_input_tokens! + written + response.usage!.input_tokens;
    const output = chat.usage!.completion_tokens + message.usage.output_tokens + response.usage!.output_tokens;
    const cached = chat.usage!.prompt_tokens_details!.cached_tokens! + message.usage.cache_read_input_tokens!;
    expect(cached).toBeGreaterThan(0);
    const [day] = await quota.allocator.usage('namespace/default', 'day', 1);
    expect(day!.used).toBe(input + output);
    expect(day!.kinds).toEqual({ input, output, cachedInput: cached, cacheWrite: written });
  } finally {
    await fake.close();
    await quota.stop();
  }
}, 30_000);
