// `llmgw config check` and `llmgw config example`, run as the built executable: every problem at once with
// exit 2, `FILE: ok` with exit 0, and an example that is the dev config and passes the check.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devConfig } from '../../cli/commands/dev-config.js';
import { envWithoutKeys, killAll, runCli } from '../helpers/cli.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmgw-config-cli-'));
});
afterAll(() => killAll());

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const withKeys = (): NodeJS.ProcessEnv => ({ ...envWithoutKeys(), OPENAI_API_KEY: 'sk-test', ANTHROPIC_API_KEY: 'ak-test' });

const fiveMistakes = readFileSync(new URL('../fixtures/config/five-mistakes.yaml', import.meta.url), 'utf8');

describe('llmgw config check', () => {
  it('prints every problem of a file at once, one line each, and exits 2', async () => {
    const path = write('five.yaml', fiveMistakes);
    const r = await runCli(['config', 'check', path], envWithoutKeys());
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      'llmgw: five.yaml: providers.openai.apiKey: environment variable LLMGW_TEST_UNSET_KEY is not set',
      'llmgw: five.yaml: providers.openai.type: must be one of "openai", "anthropic", "openai-compatible" (got "opnai")',
      'llmgw: five.yaml: models.gpt-4o-mini: unknown key "targtes" (did you mean "targets"?)',
      'llmgw: five.yaml: cache.ttlSeconds: expected a number, got the string "abc"',
      'llmgw: five.yaml: models.gpt-4o.targets[0].provider: unknown provider "opnai" (known: openai); did you mean "openai"?',
    ]);
  });

  it('reports the same problems as the sidecar does at start', async () => {
    const path = write('five-sidecar.yaml', fiveMistakes);
    const check = await runCli(['config', 'check', path], envWithoutKeys());
    const sidecar = await runCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], envWithoutKeys());
    expect(sidecar.code).toBe(2);
    expect(sidecar.stderr).toBe(check.stderr);
  });

  it('says FILE: ok and exits 0 for a valid file, reading its key files as the sidecar would', async () => {
    const key = write('openai.key', 'sk-from-file\n');
    const path = write('good.yaml', `providers:\n  openai: { type: openai, baseUrl: "https://api.openai.com/v1", apiKeyFile: ${key} }\nmodels:\n  gpt-4o: { targets: [{ provider: openai, model: gpt-4o }] }\n`);
    const ok = await runCli(['config', 'check', path], envWithoutKeys());
    expect(ok).toEqual({ code: 0, stdout: `${path}: ok\n`, stderr: '' });
    const missingKey = write('missing-key.yaml', `providers:\n  openai: { type: openai, baseUrl: "https://api.openai.com/v1", apiKeyFile: ${join(dir, 'nope.key')} }\nmodels: {}\n`);
    const bad = await runCli(['config', 'check', missingKey], envWithoutKeys());
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(`llmgw: missing-key.yaml: providers.openai.apiKeyFile: cannot read ${join(dir, 'nope.key')}: ENOENT`);
  });

  it('names a file it cannot read and points at the example', async () => {
    const path = join(dir, 'absent.yaml');
    const r = await runCli(['config', 'check', path], envWithoutKeys());
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`llmgw: ${path}: cannot read config file: ENOENT; \`llmgw config example\` prints a config to start from`);
  });

  it('says in its help that variables expand and key files are read', async () => {
    const r = await runCli(['config', 'check', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('${VAR}s expand from this environment and apiKeyFile key files are read');
  });
});

describe('llmgw sidecar without a readable config', () => {
  it('suggests --config and llmgw dev', async () => {
    const path = join(dir, 'no-such-config.yaml');
    const r = await runCli(['sidecar', '--config', path], envWithoutKeys());
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`llmgw: ${path}: cannot read config file: ENOENT; give the sidecar its config file with --config FILE, or try \`llmgw dev\` for a local setup that needs none`);
  });
});

describe('llmgw config example', () => {
  it('prints a config that passes llmgw config check', async () => {
    const example = await runCli(['config', 'example'], envWithoutKeys());
    expect(example.code).toBe(0);
    const path = write('example.yaml', example.stdout);
    expect(await runCli(['config', 'check', path], withKeys())).toEqual({ code: 0, stdout: `${path}: ok\n`, stderr: '' });
    // Its keys come from the environment: without them, both missing variables are named together.
    const noKeys = await runCli(['config', 'check', path], envWithoutKeys());
    expect(noKeys.code).toBe(2);
    expect(noKeys.stderr.trim().split('\n')).toEqual([
      'llmgw: example.yaml: providers.openai.apiKey: environment variable OPENAI_API_KEY is not set',
      'llmgw: example.yaml: providers.anthropic.apiKey: environment variable ANTHROPIC_API_KEY is not set',
    ]);
  });

  it('is the config llmgw dev runs, with a pod\'s paths and addresses', async () => {
    const { stdout } = await runCli(['config', 'example'], envWithoutKeys());
    const example = parse(stdout) as Record<string, Record<string, unknown>>;
    const dev = devConfig({ fakeUrl: undefined, stateDir: '.llmgw', env: { OPENAI_API_KEY: 'x', ANTHROPIC_API_KEY: 'y' }, quotaAddress: '127.0.0.1:50051', tokenFile: '.llmgw/sidecar-token' });
    expect(Object.keys(example)).toEqual(Object.keys(dev));
    expect(example.providers).toEqual(dev.providers);
    expect(example.models).toEqual(dev.models);
    expect(example.cache).toEqual(dev.cache);
    expect(example.storage).toEqual({ path: '/var/lib/llm-gateway/llmgw.db' });
    expect(example.quota).toEqual({ address: 'llm-gateway-quota.llm-gateway.svc:50051', tokenFile: '/var/run/secrets/llm-gateway/token/token' });
  });

  it('explains every section with a comment above it', async () => {
    const { stdout } = await runCli(['config', 'example'], envWithoutKeys());
    const lines = stdout.split('\n');
    const sections = lines.flatMap((l, i) => (/^[a-zA-Z]+:/.test(l) ? [i] : []));
    expect(sections.length).toBeGreaterThanOrEqual(5);
    for (const i of sections) expect(lines[i - 1], lines[i]).toMatch(/^# /);
    expect(stdout).toMatch(/^# A starting config for `llmgw sidecar --config FILE`/);
    expect(stdout).toContain('type: openai | anthropic | openai-compatible');
  });
});
