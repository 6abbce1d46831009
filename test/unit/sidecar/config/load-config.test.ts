import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../common/config/config-error.js';
import { loadConfigFile, parseConfigText } from '../../../../sidecar/config/load-config.js';

const env = (vars: Record<string, string>) => (name: string) => vars[name];

// The example of DESIGN §5, verbatim.
const designExample = `
providers:
  openai:                                  # provider id, your choice
    type: openai                           # openai | anthropic | openai-compatible
    baseUrl: https://api.openai.com/v1
    apiKey: \${OPENAI_API_KEY}
  claude:
    type: anthropic
    baseUrl: https://api.anthropic.com
    apiKey: \${ANTHROPIC_API_KEY}
models:
  gpt-4o:                                  # the name apps send
    targets:                               # load-balanced by weight
      - { provider: openai, model: gpt-4o, weight: 1 }
    fallbacks: [claude-sonnet]             # other model names, tried in order when all targets fail
  claude-sonnet:
    targets:
      - { provider: claude, model: claude-sonnet-4-5 }
storage:
  path: /var/lib/llm-gateway/llmgw.db      # the sidecar's one SQLite file: response cache, unsent usage
cache:
  ttlSeconds: 3600                         # absent \`cache\`: caching off
quota:
  address: llm-gateway-quota.llm-gateway.svc:50051   # absent: no global quota
`;

async function problems(fn: () => Promise<unknown>): Promise<string[]> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config loading', () => {
  it('accepts the DESIGN example, expands variables and fills defaults', async () => {
    const c = await parseConfigText(designExample, 'config.yaml', { env: env({ OPENAI_API_KEY: 'sk-1', ANTHROPIC_API_KEY: 'ak-2' }) });
    expect(c.providers.openai?.apiKey).toBe('sk-1');
    expect(c.providers.claude?.apiKey).toBe('ak-2');
    expect(c.providers.claude?.anthropicVersion).toBe('2023-06-01');
    expect(c.models['gpt-4o']?.fallbacks).toEqual(['claude-sonnet']);
    expect(c.models['claude-sonnet']?.targets[0]?.weight).toBe(1);
    expect(c.server.maxBodyBytes).toBe(16 * 1024 * 1024);
    expect(c.cache?.ttlSeconds).toBe(3600);
    expect(c.quota?.address).toBe('llm-gateway-quota.llm-gateway.svc:50051');
    expect(Object.isFrozen(c.models['gpt-4o']?.targets[0])).toBe(true);
  });

  it('names the missing environment variable and where it is used', async () => {
    expect(await problems(() => parseConfigText(designExample, 'config.yaml', { env: env({ OPENAI_API_KEY: 'x' }) }))).toEqual([
      'config.yaml: providers.claude.apiKey: environment variable ANTHROPIC_API_KEY is not set',
    ]);
  });

  it('rejects unknown keys with their path', async () => {
    const text = 'providers:\n  openai: { type: openai, baseURL: "https://x" }\nmodels: {}\n';
    expect(await problems(() => parseConfigText(text, 'config.yaml'))).toEqual(['config.yaml: providers.openai: unknown key "baseURL" (did you mean "baseUrl"?)']);
  });

  it('rejects a target naming an unknown provider, as the style guide shows', async () => {
    const text = 'providers:\n  openai: { type: openai, baseUrl: "https://api.openai.com/v1" }\nmodels:\n  gpt-4o:\n    targets: [{ provider: opnai, model: gpt-4o }]\n';
    expect(await problems(() => parseConfigText(text, 'config.yaml'))).toEqual([
      'config.yaml: models.gpt-4o.targets[0].provider: unknown provider "opnai" (known: openai); did you mean "openai"?',
    ]);
  });

  it('rejects unknown fallbacks, bad types, bad URLs and YAML syntax errors', async () => {
    const text = [
      'providers:',
      '  p: { type: vertex, baseUrl: "ftp://x" }',
      'models:',
      '  a: { targets: [{ provider: p, model: m, weight: -1 }], fallbacks: [nope] }',
    ].join('\n');
    const got = await problems(() => parseConfigText(text, 'c.yaml'));
    expect(got.some((p) => p.startsWith('c.yaml: providers.p.type:'))).toBe(true);
    expect(got.some((p) => p.startsWith('c.yaml: providers.p.baseUrl: must be an http(s) URL'))).toBe(true);
    expect(got.some((p) => p.startsWith('c.yaml: models.a.targets[0].weight:'))).toBe(true);
    expect((await problems(() => parseConfigText('providers: [unclosed', 'c.yaml')))[0]).toMatch(/^c\.yaml: /);
  });

  it('checks the cache models and the semantic settings', async () => {
    const vars = env({ OPENAI_API_KEY: 'sk-1', ANTHROPIC_API_KEY: 'ak-2' });
    const withCache = (cache: string) => parseConfigText(designExample.replace('  ttlSeconds: 3600                         # absent `cache`: caching off', cache), 'config.yaml', { env: vars });
    const ok = await withCache('  models:\n    gpt-4o: { semantic: { embeddingModel: gpt-4o } }');
    expect(ok.cache?.models['gpt-4o']).toEqual({ enabled: true, semantic: { embeddingModel: 'gpt-4o', threshold: 0.95 } });
    expect(await problems(() => withCache('  models:\n    nope: { enabled: false }'))).toEqual(['config.yaml: cache.models.nope: unknown model "nope"']);
    expect(await problems(() => withCache('  models:\n    gpt-4o: { semantic: { embeddingModel: missing } }'))).toEqual(['config.yaml: cache.models.gpt-4o.semantic.embeddingModel: unknown model "missing"']);
    expect((await problems(() => withCache('  models:\n    gpt-4o: { semantic: { embeddingModel: claude-sonnet } }')))[0]).toMatch(/cache\.models\.gpt-4o\.semantic\.embeddingModel: model "claude-sonnet" has an Anthropic target/);
    expect((await problems(() => withCache('  models:\n    gpt-4o: { semantic: { embeddingModel: gpt-4o, threshold: 1.5 } }')))[0]).toMatch(/cache\.models\.gpt-4o\.semantic\.threshold/);
  });

  it('reads JSON too, honours $${ as a literal, and reads key files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-config-'));
    writeFileSync(join(dir, 'key'), 'sk-from-file\n');
    const json = JSON.stringify({
      providers: {
        o: { type: 'openai-compatible', baseUrl: 'http://vllm:8000/v1', apiKeyFile: join(dir, 'key'), headers: { 'x-note': 'cost $${NOT_A_VAR}' } },
      },
      models: { m: { targets: [{ provider: 'o', model: 'llama' }] } },
    });
    writeFileSync(join(dir, 'config.json'), json);
    const c = await loadConfigFile(join(dir, 'config.json'));
    expect(c.providers.o?.apiKey).toBe('sk-from-file');
    expect(c.providers.o?.headers['x-note']).toBe('cost ${NOT_A_VAR}');
  });

  it('says which file could not be read', async () => {
    expect(await problems(() => loadConfigFile('/nonexistent/config.yaml'))).toEqual([
      '/nonexistent/config.yaml: cannot read config file: ENOENT; give the sidecar its config file with --config FILE, or try `llmgw dev` for a local setup that needs none',
    ]);
  });
});
