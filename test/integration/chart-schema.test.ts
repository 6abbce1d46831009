// The chart refuses what the sidecar would refuse (issue 22): values.schema.json's sidecar section is the
// sidecar's own config schema (regenerating it changes nothing), `helm template` fails on a bad sidecar value
// with the schema's message naming the key, the rules across keys fail at template time with the chart's
// message, and each refused case is one the sidecar refuses too.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { COPIED_KEYS, valuesSchemaText } from '../../scripts/chart-schema.js';
import { PROVIDERS_DIR } from '../../injector-webhook/patch.js';
import { validateConfig } from '../../sidecar/config/load-config.js';

const ROOT = join(import.meta.dirname, '../..');
const HELM = join(ROOT, 'node_modules/.bin/helm');
const CHART = join(ROOT, 'charts/llm-gateway');
const SCHEMA_FILE = join(CHART, 'values.schema.json');

type Doc = { kind: string; metadata: { name: string; namespace?: string }; [k: string]: any };
type Tree = Record<string, unknown>;

/** `helm template` with the values in `values` (a file, so lists and nulls are as written) and `--set`s. */
function template(values: Tree = {}, sets: string[] = []): { ok: true; docs: Doc[] } | { ok: false; error: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'llmgw-chart-schema-')), 'values.yaml');
  writeFileSync(file, stringify(values));
  try {
    const out = execFileSync(HELM, ['template', 'rel', CHART, '--namespace', 'llm-gateway', '--kube-version', '1.30.0', '-f', file, ...sets.flatMap((s) => ['--set', s])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { ok: true, docs: parseAllDocuments(out).map((d) => d.toJS() as Doc | null).filter((d): d is Doc => d !== null) };
  } catch (err) {
    return { ok: false, error: String((err as { stderr?: string }).stderr ?? err) };
  }
}

function rendered(values: Tree = {}, sets: string[] = []): Doc[] {
  const r = template(values, sets);
  if (!r.ok) throw new Error(r.error);
  return r.docs;
}

function refusal(values: Tree = {}, sets: string[] = []): string {
  const r = template(values, sets);
  if (r.ok) throw new Error(`the chart rendered ${JSON.stringify(values)} ${sets.join(' ')}`);
  return r.error;
}

const sidecarConfigOf = (docs: Doc[]): Tree => JSON.parse(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'llm-gateway-sidecar')!.data['config.yaml']) as Tree;
const injectorConfigOf = (docs: Doc[]): Tree => JSON.parse(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'rel-llm-gateway-injector')!.data['config.json']) as Tree;

/** `patch` over `tree` as Helm merges values: maps merge, null deletes, anything else replaces. */
function merge(tree: Tree, patch: Tree): Tree {
  const out: Tree = { ...tree };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' && out[k] !== null && !Array.isArray(out[k])) out[k] = merge(out[k] as Tree, v as Tree);
    else out[k] = v;
  }
  return out;
}

/** Key files as an injected sidecar sees them: the provider Secret's keys, and nothing else. */
function injectedReadSecret(path: string): string {
  if (path.startsWith(`${PROVIDERS_DIR}/`)) return 'sk-test';
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
}

/** The sidecar's verdict on the default config.yaml with `patch` applied (the values keys are the config keys). */
function sidecarProblems(patch: Tree): string {
  const config = merge(sidecarConfigOf(rendered()), patch);
  try {
    validateConfig(config, 'config.yaml', { readSecret: injectedReadSecret, env: () => undefined });
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

describe('values.schema.json: the sidecar section is the sidecar config schema', () => {
  it('is what npm run chart:schema generates from sidecar/config/schema.ts (no drift)', () => {
    const committed = readFileSync(SCHEMA_FILE, 'utf8');
    expect(valuesSchemaText(committed), 'charts/llm-gateway/values.schema.json is stale: run `npm run chart:schema` and commit the result').toBe(committed);
  });

  it('describes exactly the values the chart copies into config.yaml, and refuses the keys the chart fills in', () => {
    const values = {
      sidecar: { cache: { ttlSeconds: 60 }, rateLimits: { requestsPerMinute: 600 }, logging: { level: 'debug', accessLog: false }, quota: { failMode: 'failClosed' }, tracing: { endpoint: 'http://otel-collector:4318/v1/traces' } },
    };
    const config = sidecarConfigOf(rendered(values));
    // Every top-level key of config.yaml comes from the values the schema describes, except the SQLite path.
    expect(Object.keys(config).sort()).toEqual([...COPIED_KEYS, 'storage'].sort());
    expect(config.cache).toEqual(values.sidecar.cache);
    expect(config.rateLimits).toEqual(values.sidecar.rateLimits);
    expect(config.logging).toEqual(values.sidecar.logging);
    expect(config.tracing).toEqual(values.sidecar.tracing);
    expect(config.quota).toMatchObject({ failMode: 'failClosed', address: 'rel-llm-gateway-quota.llm-gateway.svc:50051' });
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { properties: { sidecar: { properties: Record<string, { $comment?: string }> } } };
    for (const key of COPIED_KEYS) expect(schema.properties.sidecar.properties[key]?.$comment, key).toMatch(/Generated from sidecar\/config\/schema\.ts/);
    for (const key of ['address', 'tokenFile', 'tls']) {
      expect(refusal({ sidecar: { quota: { [key]: key === 'tls' ? { caFile: '/x' } : 'x' } } })).toContain(`sidecar.quota: Additional property ${key} is not allowed`);
    }
  });

  it('lints clean and renders the defaults', () => {
    expect(execFileSync(HELM, ['lint', CHART], { encoding: 'utf8' })).toContain('0 chart(s) failed');
    const config = sidecarConfigOf(rendered());
    expect(() => validateConfig(config, 'config.yaml', { readSecret: () => 'sk-test' })).not.toThrow();
  });
});

describe('helm template refuses a sidecar value the sidecar would refuse, naming the key', () => {
  // [--set, what helm says, the config path the sidecar names]
  const cases: [string, string, string][] = [
    ['sidecar.cache.ttlSecond=5', 'sidecar.cache: Additional property ttlSecond is not allowed', 'cache: unknown key "ttlSecond"'],
    ['sidecar.cache.ttlSeconds=0', 'sidecar.cache.ttlSeconds: Must be greater than 0', 'cache.ttlSeconds:'],
    ['sidecar.logging.level=loud', 'sidecar.logging.level must be one of the following: "fatal", "error", "warn", "info", "debug", "trace", "silent"', 'logging.level:'],
    ['sidecar.providers.openai.type=opnai', 'sidecar.providers.openai.type must be one of the following: "openai", "anthropic", "openai-compatible"', 'providers.openai.type:'],
    ['sidecar.providers.openai.baseUrl=api.openai.com/v1', 'sidecar.providers.openai.baseUrl: Does not match pattern', 'providers.openai.baseUrl:'],
    ['sidecar.providers.openai.maxConnections=many', 'sidecar.providers.openai.maxConnections: Invalid type. Expected: integer, given: string', 'providers.openai.maxConnections:'],
    ['sidecar.providers.openai.organization=org-1', 'sidecar.providers.openai: Additional property organization is not allowed', 'providers.openai: unknown key "organization"'],
    ['sidecar.models.gpt-4o-mini.strategy=random', 'sidecar.models.gpt-4o-mini.strategy must be one of the following: "weighted", "round-robin", "least-busy", "least-latency"', 'models.gpt-4o-mini.strategy:'],
    ['sidecar.quota.failMode=sometimes', 'sidecar.quota.failMode must be one of the following: "failOpen", "failClosed"', 'quota.failMode:'],
    ['sidecar.rateLimits.requestsPerMinute=-1', 'sidecar.rateLimits.requestsPerMinute: Must be greater than 0', 'rateLimits.requestsPerMinute:'],
  ];
  it('a fraction where a whole number goes (from a values file: --set keeps 1.5 a string)', () => {
    expect(refusal({ sidecar: { cache: { maxEntries: 1.5 } } })).toContain('sidecar.cache.maxEntries: Invalid type. Expected: integer, given: number');
    expect(sidecarProblems({ cache: { maxEntries: 1.5 } })).toContain('config.yaml: cache.maxEntries:');
  });
  for (const [set, helmSays, sidecarSays] of cases) {
    it(`--set ${set}`, () => {
      expect(refusal({}, [set])).toContain(helmSays);
      const [path, raw] = set.split('=') as [string, string];
      const value = /^-?[0-9.]+$/.test(raw) ? Number(raw) : raw;
      const patch = path.split('.').slice(1).reduceRight<unknown>((v, k) => ({ [k]: v }), value) as Tree;
      expect(sidecarProblems(patch)).toContain(sidecarSays);
    });
  }
});

describe('helm template refuses values whose keys do not fit together, as the sidecar would', () => {
  // One case per rule of checkCrossFieldRules (sidecar/config/schema.ts) the values can reach, and the
  // chart's own: [name, values under `sidecar`, what helm says, the config path the sidecar names, the
  // config patch when it is not the values'].
  const keyFile = '/var/run/secrets/llm-gateway/providers/';
  const cases: [string, Tree, string, string, Tree?][] = [
    ['one way to give a key', { providers: { openai: { apiKey: 'sk-1' } } }, 'sidecar.providers.openai: set one of apiKey, apiKeyFile and apiKeyFrom, not apiKey and apiKeyFile', 'providers.openai:'],
    ['apiKeyName needs apiKeyFrom', { providers: { openai: { apiKeyName: 'prod' } } }, 'sidecar.providers.openai.apiKeyName goes with apiKeyFrom: quota', 'providers.openai.apiKeyName:'],
    ['an unknown provider', { models: { 'gpt-4o-mini': { targets: [{ provider: 'opnai', model: 'gpt-4o-mini' }] } } }, 'sidecar.models.gpt-4o-mini.targets[0].provider: unknown provider "opnai" (known: anthropic, openai)', 'models.gpt-4o-mini.targets[0].provider:'],
    ['every weight 0', { models: { 'gpt-4o-mini': { targets: [{ provider: 'openai', model: 'gpt-4o-mini', weight: 0 }] } } }, 'sidecar.models.gpt-4o-mini.targets: at least one target needs a weight above 0', 'models.gpt-4o-mini.targets:'],
    ['a fallback to itself', { models: { 'gpt-4o-mini': { fallbacks: ['gpt-4o-mini'] } } }, 'sidecar.models.gpt-4o-mini.fallbacks[0]: a model cannot fall back to itself', 'models.gpt-4o-mini.fallbacks[0]:'],
    ['an unknown fallback', { models: { 'gpt-4o-mini': { fallbacks: ['gpt-5'] } } }, 'sidecar.models.gpt-4o-mini.fallbacks[0]: unknown model "gpt-5"', 'models.gpt-4o-mini.fallbacks[0]:'],
    ['an unknown context fallback', { models: { 'gpt-4o-mini': { contextFallbacks: ['gpt-5'] } } }, 'sidecar.models.gpt-4o-mini.contextFallbacks[0]: unknown model "gpt-5"', 'models.gpt-4o-mini.contextFallbacks[0]:'],
    ['a rate limit for an unknown model', { rateLimits: { models: { 'gpt-5': { requestsPerMinute: 10 } } } }, 'sidecar.rateLimits.models.gpt-5: unknown model "gpt-5"', 'rateLimits.models.gpt-5:'],
    ['a cache setting for an unknown model', { cache: { models: { 'gpt-5': { enabled: false } } } }, 'sidecar.cache.models.gpt-5: unknown model "gpt-5"', 'cache.models.gpt-5:'],
    ['an unknown embedding model', { cache: { models: { 'gpt-4o-mini': { semantic: { embeddingModel: 'embed' } } } } }, 'sidecar.cache.models.gpt-4o-mini.semantic.embeddingModel: unknown model "embed"', 'cache.models.gpt-4o-mini.semantic.embeddingModel:'],
    ['an embedding model served by Anthropic', { cache: { models: { 'gpt-4o-mini': { semantic: { embeddingModel: 'claude-haiku-4-5' } } } } }, 'model "claude-haiku-4-5" has an Anthropic target, which has no embeddings API', 'cache.models.gpt-4o-mini.semantic.embeddingModel:'],
    // The chart's: what an injected sidecar in particular cannot do.
    ['a key file outside the provider Secret', { providers: { openai: { apiKeyFile: '/etc/openai-key' } } }, `sidecar.providers.openai.apiKeyFile: /etc/openai-key is not a file an injected sidecar can read: it reads keys only from the Secret sidecar.providerSecretName, mounted at ${keyFile}`, 'providers.openai.apiKeyFile:'],
    ['a variable injected sidecars do not have', { providers: { openai: { apiKeyFile: null, apiKey: '${OPENAI_API_KEY}' } } }, 'sidecar.providers.openai: ${OPENAI_API_KEY} is not set in injected sidecars', 'providers.openai.apiKey: environment variable OPENAI_API_KEY is not set'],
  ];
  for (const [name, values, helmSays, sidecarSays, configPatch] of cases) {
    it(`refuses ${name}`, () => {
      expect(refusal({ sidecar: values })).toContain(helmSays);
      expect(sidecarProblems(configPatch ?? values)).toContain(`config.yaml: ${sidecarSays}`);
    });
  }

  it('refuses keys from the quota service without TLS, and client certificates the chart cannot mount', () => {
    expect(refusal({ quota: { tls: { enabled: false } }, sidecar: { providers: { openai: { apiKeyFile: null, apiKeyFrom: 'quota' } } } })).toContain('sidecar.providers.openai.apiKeyFrom=quota needs quota.enabled=true and quota.tls.enabled=true');
    expect(sidecarProblems({ quota: { tls: null }, providers: { openai: { apiKeyFile: null, apiKeyFrom: 'quota' } } })).toContain('config.yaml: providers.openai.apiKeyFrom:');
    // quota.tls (certFile and keyFile go together) is the chart's: no value reaches it.
    expect(refusal({ sidecar: { quota: { tls: { certFile: '/x' } } } })).toContain('sidecar.quota: Additional property tls is not allowed');
  });

  it('refuses an empty or malformed providerSecretName when a provider reads a key file, and needs none otherwise', () => {
    expect(refusal({ sidecar: { providerSecretName: '' } })).toContain('sidecar.providerSecretName is empty, but providers anthropic, openai read their keys from /var/run/secrets/llm-gateway/providers/');
    expect(refusal({ sidecar: { providerSecretName: 'LLM Keys' } })).toContain('sidecar.providerSecretName: Does not match pattern');
    const docs = rendered({ sidecar: { providerSecretName: '', providers: { openai: { apiKeyFile: null }, anthropic: null }, models: { 'claude-haiku-4-5': null } } });
    expect(injectorConfigOf(docs).providerSecretName).toBeUndefined();
    expect(() => validateConfig(sidecarConfigOf(docs), 'config.yaml', { readSecret: () => expect.unreachable('no key file') })).not.toThrow();
  });

  it('lets through what an injected sidecar can do: its own variables, $${...} literals, any key file name in quota mode', () => {
    const docs = rendered({ sidecar: { providers: { openai: { headers: { 'x-pod': '${POD_NAMESPACE}/${POD_NAME}', 'x-literal': '$${NOT_EXPANDED}' } } } } });
    const config = validateConfig(sidecarConfigOf(docs), 'config.yaml', { readSecret: () => 'sk-test', env: (n) => ({ POD_NAMESPACE: 'demo', POD_NAME: 'chat-1' })[n] });
    expect(config.providers.openai?.headers).toEqual({ 'x-pod': 'demo/chat-1', 'x-literal': '${NOT_EXPANDED}' });
    const quota = rendered({ sidecar: { providerKeys: { mode: 'quota' }, providers: { openai: { apiKeyFile: '/anywhere/openai-prod' } } }, quota: { providerKeys: { secretName: 'keys' } } });
    expect((sidecarConfigOf(quota).providers as Tree).openai).toMatchObject({ apiKeyFrom: 'quota', apiKeyName: 'openai-prod' });
  });
});

describe('the injector is told what to do with pods whose sidecar config is bad', () => {
  it('refuses them with failurePolicy Fail, starts them without the sidecar with Ignore, and may read the ConfigMap (by name only)', () => {
    expect(injectorConfigOf(rendered()).onInvalidSidecarConfig).toBe('deny');
    expect(injectorConfigOf(rendered({ injector: { failurePolicy: 'Ignore' } })).onInvalidSidecarConfig).toBe('skip');
    const role = rendered({ sidecar: { configMapName: 'gw-config' } }).find((d) => d.kind === 'ClusterRole')!;
    expect(role.rules).toContainEqual({ apiGroups: [''], resources: ['configmaps'], resourceNames: ['gw-config'], verbs: ['get'] });
  });
});
