// Turns a config file (YAML or JSON) into a validated, frozen Config, or a ConfigError whose lines each
// name the file and the key at fault.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../../common/config/config-error.js';
import { formatPath, isWithin } from '../../common/config/config-path.js';
import { zodIssueProblems } from '../../common/config/zod-issue-problems.js';
import { expandEnv, type EnvLookup } from './expand-env.js';
import { checkCrossFieldRules, configSchema, type Config } from './schema.js';

export interface LoadOptions {
  env?: EnvLookup;
  /** Reads key files (`apiKeyFile`); injectable for tests. */
  readSecret?: (path: string) => string;
  /** Appended when the file cannot be read (default: how to give the sidecar its file, or do without). */
  unreadableHint?: string;
}

const sidecarHint = '; give the sidecar its config file with --config FILE, or try `llmgw dev` for a local setup that needs none';

const defaultEnv: EnvLookup = (name) => process.env[name];
const defaultReadSecret = (path: string): string => readFileSync(path, 'utf8').trim();

/** Reads and validates the file at `path`. Rejects with ConfigError. */
export async function loadConfigFile(path: string, opts: LoadOptions = {}): Promise<Config> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const hint = code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' ? (opts.unreadableHint ?? sidecarHint) : '';
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

/**
 * Validates an already parsed tree (e.g. the built-in dev config). Throws a ConfigError listing every
 * problem at once: missing environment variables, values the schema refuses, broken references between
 * keys, unreadable key files.
 */
export function validateConfig(raw: unknown, label: string, opts: LoadOptions = {}): Config {
  const { value, missing } = expandEnv(raw, opts.env ?? defaultEnv);
  // A missing variable expands to '' so the rest is still checked; whatever is then wrong at its key is
  // that variable's doing and is not reported again.
  const problems: ConfigProblem[] = missing.map((m) => ({ path: m.path, message: `environment variable ${m.name} is not set` }));
  const notCausedByMissing = (p: { path: readonly PropertyKey[] }): boolean => !missing.some((m) => isWithin(p.path, m.path));
  const parsed = configSchema.safeParse(value, { reportInput: true });
  if (!parsed.success) problems.push(...schemaProblems(parsed.error.issues, value).filter(notCausedByMissing));
  const keyFiles = readKeyFiles(value, opts.readSecret ?? defaultReadSecret, notCausedByMissing);
  problems.push(...keyFiles.problems);
  if (problems.length > 0 || !parsed.success) {
    throw new ConfigError(problems.map((p) => `${label}: ${formatPath(p.path)}: ${p.message}`));
  }
  const config = parsed.data;
  for (const [id, key] of keyFiles.keys) config.providers[id]!.apiKey = key;
  return deepFreeze(config);
}

/**
 * The schema's issues, then the rules across keys, which zod skips once a value failed: they run here on
 * the tree as written, except where they would only repeat a value already reported. An unknown key that
 * is a typo of a required one makes that key's "required" redundant: the "did you mean" says it.
 */
function schemaProblems(issues: readonly z.core.$ZodIssue[], tree: unknown): ConfigProblem[] {
  const fromSchema = issues.flatMap((i) => zodIssueProblems(i, configSchema));
  const atFault = fromSchema.map((p) => p.at);
  const meant = fromSchema.flatMap((p) => (p.meant === undefined ? [] : [formatPath(p.meant)]));
  const out: ConfigProblem[] = fromSchema.filter((p) => !(p.absent === true && meant.includes(formatPath(p.path))));
  const seen = new Set(out.map((p) => `${formatPath(p.path)}: ${p.message}`));
  checkCrossFieldRules(tree, (path, message) => {
    const line = `${formatPath(path)}: ${message}`;
    if (seen.has(line) || atFault.some((at) => isWithin(path, at))) return;
    seen.add(line);
    out.push({ path, message });
  });
  return out;
}

/**
 * Reads every `apiKeyFile` of the tree, valid or not, so an unreadable one is reported with the rest;
 * `wanted` leaves out the ones named with a missing variable.
 */
function readKeyFiles(
  tree: unknown,
  readSecret: (path: string) => string,
  wanted: (p: { path: readonly PropertyKey[] }) => boolean,
): { keys: Map<string, string>; problems: ConfigProblem[] } {
  const keys = new Map<string, string>();
  const problems: ConfigProblem[] = [];
  const providers = (tree as { providers?: unknown } | null)?.providers;
  if (providers === null || typeof providers !== 'object') return { keys, problems };
  for (const [id, p] of Object.entries(providers)) {
    const file = (p as { apiKeyFile?: unknown } | null)?.apiKeyFile;
    if (typeof file !== 'string' || file === '') continue;
    const path = ['providers', id, 'apiKeyFile'];
    if (!wanted({ path })) continue;
    try {
      const key = readSecret(file);
      if (key === '') problems.push({ path, message: `${file} is empty` });
      else keys.set(id, key);
    } catch (err) {
      problems.push({ path, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
    }
  }
  return { keys, problems };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
