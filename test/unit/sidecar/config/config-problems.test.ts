// Every problem of a config at once, one line each naming the file and key, worded so it can be fixed
// without the docs (issue 22): valid values of enums, expected types, "did you mean", missing variables.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../common/config/config-error.js';
import { parseConfigText, validateConfig } from '../../../../sidecar/config/load-config.js';

const noEnv = () => undefined;
const env = (vars: Record<string, string>) => (name: string) => vars[name];

async function problems(text: string, opts: Parameters<typeof parseConfigText>[2] = { env: noEnv }): Promise<string[]> {
  try {
    await parseConfigText(text, 'config.yaml', opts);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const provider = (extra = '') => `providers:\n  openai: { type: openai, baseUrl: "https://api.openai.com/v1"${extra} }\n`;
const model = 'models:\n  gpt-4o: { targets: [{ provider: openai, model: gpt-4o }] }\n';

describe('config problems, all at once', () => {
  it('reports a file with five mistakes in one go: missing variable, bad enum, wrong type, unknown provider, mistyped key', async () => {
    const text = readFileSync(new URL('../../../fixtures/config/five-mistakes.yaml', import.meta.url), 'utf8');
    expect(await problems(text)).toEqual([
      'config.yaml: providers.openai.apiKey: environment variable LLMGW_TEST_UNSET_KEY is not set',
      'config.yaml: providers.openai.type: must be one of "openai", "anthropic", "openai-compatible" (got "opnai")',
      'config.yaml: models.gpt-4o-mini: unknown key "targtes" (did you mean "targets"?)',
      'config.yaml: cache.ttlSeconds: expected a number, got the string "abc"',
      'config.yaml: models.gpt-4o.targets[0].provider: unknown provider "opnai" (known: openai); did you mean "openai"?',
    ]);
  });

  it('lists the valid values of an enum, and names them when the key is missing', async () => {
    expect(await problems(`${provider()}${model}logging: { level: loud }\n`)).toEqual([
      'config.yaml: logging.level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent" (got "loud")',
    ]);
    expect(await problems(`providers:\n  openai: { baseUrl: "https://api.openai.com/v1" }\n${model}`)).toEqual([
      'config.yaml: providers.openai.type: required (one of "openai", "anthropic", "openai-compatible")',
    ]);
    expect(await problems(provider(', apiKeyFrom: qouta') + model)).toContain('config.yaml: providers.openai.apiKeyFrom: must be "quota" (got "qouta")');
  });

  it('says which type was expected and which was found, never "required" for a value that is there', async () => {
    const text = `${provider(', streamUsage: "yes", maxConnections: 1.5')}${model}server: [1]\ncache:\n`;
    expect(await problems(text)).toEqual([
      'config.yaml: providers.openai.streamUsage: expected true or false, got the string "yes"',
      'config.yaml: providers.openai.maxConnections: expected a whole number, got the number 1.5',
      'config.yaml: server: expected an object (key: value pairs), got a list',
      'config.yaml: cache: expected an object (key: value pairs), got an empty value (null)',
    ]);
    expect(await problems(`${provider()}${model}cache: { ttlSeconds: -5 }\n`)).toEqual(['config.yaml: cache.ttlSeconds: must be greater than 0 (got -5)']);
    expect(await problems(`${provider()}models:\n  gpt-4o: { targets: [] }\n`)).toEqual(['config.yaml: models.gpt-4o.targets: needs at least one entry']);
  });

  it('still says "required" for a key that is absent', async () => {
    expect(await problems('providers: {}\n')).toEqual(['config.yaml: models: required']);
  });

  it('suggests the key meant by a mistyped one, or lists the known keys when none is close', async () => {
    expect(await problems(`${provider()}models:\n  gpt-4o: { targtes: [{ provider: openai, model: gpt-4o }] }\n`)).toEqual([
      'config.yaml: models.gpt-4o: unknown key "targtes" (did you mean "targets"?)',
    ]);
    expect(await problems(`${provider()}${model}storage: { path: /tmp/x.db, color: blue }\n`)).toEqual(['config.yaml: storage: unknown key "color" (known: path)']);
    expect(await problems(`providers:\n  openai: { tpye: openai, baseUrl: "https://api.openai.com/v1" }\n${model}`)).toEqual([
      'config.yaml: providers.openai: unknown key "tpye" (did you mean "type"?)',
    ]);
    expect(await problems(`${provider()}${model}cahce: { ttlSeconds: 60 }\n`)).toEqual([
      'config.yaml: (top level): unknown key "cahce" (did you mean "cache"?)',
    ]);
  });

  it('lists every missing variable together, one line each, and nothing spurious where they were used', async () => {
    const text = `providers:\n  openai: { type: openai, baseUrl: "\${LLMGW_TEST_BASE}/v1", apiKey: "\${LLMGW_TEST_KEY}" }\n${model}`;
    expect(await problems(text)).toEqual([
      'config.yaml: providers.openai.baseUrl: environment variable LLMGW_TEST_BASE is not set',
      'config.yaml: providers.openai.apiKey: environment variable LLMGW_TEST_KEY is not set',
    ]);
    const used = `${provider(', apiKey: "${LLMGW_TEST_KEY}"')}models:\n  gpt-4o: { targets: [{ provider: "\${LLMGW_TEST_PROVIDER}", model: gpt-4o }] }\n`;
    expect(await problems(used, { env: env({ LLMGW_TEST_KEY: 'sk-1' }) })).toEqual([
      'config.yaml: models.gpt-4o.targets[0].provider: environment variable LLMGW_TEST_PROVIDER is not set',
    ]);
  });

  it('checks references between keys even when other values fail', async () => {
    const text = `${provider(', maxConnections: lots')}models:\n  gpt-4o: { targets: [{ provider: openai, model: gpt-4o }], fallbacks: [gpt-4], strategy: random }\nrateLimits: { models: { gpt4o: {} } }\n`;
    expect(await problems(text)).toEqual([
      'config.yaml: providers.openai.maxConnections: expected a number, got the string "lots"',
      'config.yaml: models.gpt-4o.strategy: must be one of "weighted", "round-robin", "least-busy", "least-latency" (got "random")',
      'config.yaml: rateLimits.models.gpt4o: unknown model "gpt4o"; did you mean "gpt-4o"?',
      'config.yaml: models.gpt-4o.fallbacks[0]: unknown model "gpt-4"; did you mean "gpt-4o"?',
    ]);
  });

  it('does not call names unknown when the list they refer to is itself broken', async () => {
    expect(await problems(`providers: [openai]\n${model}`)).toEqual(['config.yaml: providers: expected an object (key: value pairs), got a list']);
  });

  it('reports unreadable key files with the other problems', async () => {
    const text = `${provider(', apiKeyFile: /nonexistent/key')}${model}cache: { ttlSeconds: abc }\n`;
    const readSecret = (path: string): string => {
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    };
    expect(await problems(text, { env: noEnv, readSecret })).toEqual([
      'config.yaml: cache.ttlSeconds: expected a number, got the string "abc"',
      'config.yaml: providers.openai.apiKeyFile: cannot read /nonexistent/key: ENOENT',
    ]);
  });

  it('does not read a key file named with a missing variable', async () => {
    const read: string[] = [];
    const readSecret = (path: string): string => {
      read.push(path);
      return 'sk-1';
    };
    const text = `${provider(', apiKeyFile: "${LLMGW_TEST_DIR}/key"')}${model}`;
    expect(await problems(text, { env: noEnv, readSecret })).toEqual(['config.yaml: providers.openai.apiKeyFile: environment variable LLMGW_TEST_DIR is not set']);
    expect(read).toEqual([]);
  });

  it('never repeats a secret in a message', async () => {
    const got = await problems(provider(', apiKey: 123456789, headers: { authorization: 42 }') + model);
    expect(got).toEqual([
      'config.yaml: providers.openai.apiKey: expected a string, got a number',
      'config.yaml: providers.openai.headers.authorization: expected a string, got a number',
    ]);
  });

  it('still validates and freezes a good tree', () => {
    const c = validateConfig({ providers: { openai: { type: 'openai', baseUrl: 'https://api.openai.com/v1' } }, models: { m: { targets: [{ provider: 'openai', model: 'x' }] } } }, 't');
    expect(c.models.m?.targets[0]?.weight).toBe(1);
    expect(Object.isFrozen(c.providers.openai)).toBe(true);
  });
});
