// Hot reload: a valid change to the watched file applies without a restart; an invalid one is logged,
// counted, and the last good config stays in force.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, scrapeMetrics, stackConfig, startStack, type Stack } from '../helpers/stack.js';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';

let stack: Stack;
let fake: FakeProvider;
let path: string;

async function modelIds(): Promise<string[]> {
  const res = await request(`${stack.url}/v1/models`);
  const body = (await res.body.json()) as { data: { id: string }[] };
  return body.data.map((m) => m.id);
}

beforeAll(async () => {
  // The file needs the fake's URL before the sidecar starts: a first fake provides it.
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 });
  path = join(mkdtempSync(join(tmpdir(), 'llmgw-reload-')), 'config.yaml');
  writeFileSync(path, stringify(stackConfig(fake.url)));
  stack = await startStack({ configPath: path, config: () => stackConfig(fake.url) });
});
afterAll(async () => {
  await stack.close();
  await fake.close();
});

describe('hot reload', () => {
  it('applies a valid change without a restart', async () => {
    const next = stackConfig(fake.url);
    (next.models as Record<string, unknown>)['added-model'] = { targets: [{ provider: 'openai', model: 'gpt-4o' }] };
    writeFileSync(path, stringify(next));
    await eventually(async () => expect(await modelIds()).toContain('added-model'));
    expect(stack.logs.some((l) => l.msg === 'config reloaded')).toBe(true);
  });

  it('keeps the last good config when the change is invalid, and says why', async () => {
    writeFileSync(path, 'providers: {}\nmodels:\n  broken: { targets: [{ provider: nope, model: x }] }\n');
    await eventually(() => {
      const rejected = stack.logs.find((l) => l.msg === 'config change rejected; keeping the last good config');
      expect(rejected?.problems).toEqual(['config.yaml: models.broken.targets[0].provider: unknown provider "nope" (known: none)']);
    });
    expect(await modelIds()).toContain('added-model');
    const metrics = await scrapeMetrics(stack);
    expect(metrics).toContain('llmgw_config_reloads_total{result="rejected"} 1');
    expect(metrics).toContain('llmgw_config_reloads_total{result="applied"} 1');
  });
});
