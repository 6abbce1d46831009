// Turns a config file (YAML or JSON) into a validated, frozen Config, or a ConfigError whose lines each
// name the file and the key at fault.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { z } from 'zod';
import { ConfigError } from '../../common/config/config-error.js';
import { formatPath } from '../../common/config/config-path.js';
import { expandEnv, type EnvLookup } from './expand-env.js';
import { configSchema, type Config } from './schema.js';

export interface LoadOptions {
  env?: EnvLookup;
  /** Reads key files (`apiKeyFile`); injectable for tests. */
  readSecret?: (path: string) => string;
}

const defaultEnv: EnvLookup = (name) => process.env[name];
const defaultReadSecret = (path: string): string => readFileSync(path, 'utf8').trim();

/** Reads and validates the file at `path`. Rejects with ConfigError. */
export async function loadConfigFile(path: string, opts: LoadOptions = {}): Promise<Config> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const hint = code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' ? '; give the sidecar its config file with --config FILE, or try `llmgw dev` for a local setup that needs none' : '';
    throw new ConfigError([`${path}: cannot read config file: ${code}${hint}`]);
  }
  return parseConfigText(text, basename(path), opts);
}

/** Validates config text; `label` names the source in messages. Rejects with ConfigError. */
export async function parseConfigText(text: string, label: string, opts: LoadOptions = {}): Promise<Config> {
  return validateConfig(await parseTree(text, label), label, opts);
}

async function parseTree(text: string, label: string): Promise<unknown> {
  // JSON needs no YAML parser (≈10 ms of start-up); anything else, or JSON with an error worth a good
  // message, goes to the YAML parser, loaded on demand.
  if (/^\s*\{/.test(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // fall through
    }
  }
  const yaml = await import('yaml');
  // yaml is CommonJS: Node gives its exports as named ones, the bundle only as `default`.
  const parseDocument = (yaml as { default?: typeof yaml }).default?.parseDocument ?? yaml.parseDocument;
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${label}: ${e.message.split('\n')[0]}`));
  }
  return doc.toJS() ?? {};
}

/** Validates an already parsed tree (e.g. the built-in dev config). Throws ConfigError. */
export function validateConfig(raw: unknown, label: string, opts: LoadOptions = {}): Config {
  const { value, missing } = expandEnv(raw, opts.env ?? defaultEnv);
  if (missing.length > 0) {
    throw new ConfigError(
      missing.map((m) => `${label}: ${formatPath(m.path)}: environment variable ${m.name} is not set`),
    );
  }
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => formatIssue(label, i)));
  const config = parsed.data;
  resolveKeyFiles(config, label, opts.readSecret ?? defaultReadSecret);
  return deepFreeze(config);
}

function formatIssue(label: string, issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return `${label}: ${formatPath(issue.path)}: unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return `${label}: ${formatPath(issue.path)}: required`;
  }
  return `${label}: ${formatPath(issue.path)}: ${issue.message}`;
}

function resolveKeyFiles(config: Config, label: string, readSecret: (path: string) => string): void {
  const problems: string[] = [];
  for (const [id, p] of Object.entries(config.providers)) {
    if (p.apiKeyFile === undefined) continue;
    try {
      const key = readSecret(p.apiKeyFile);
      if (key === '') problems.push(`${label}: providers.${id}.apiKeyFile: ${p.apiKeyFile} is empty`);
      else p.apiKey = key;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      problems.push(`${label}: providers.${id}.apiKeyFile: cannot read ${p.apiKeyFile}: ${code}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
