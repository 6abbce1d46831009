// `llmgw injector --config FILE`: what to inject and where. The chart renders this file from its values;
// it is validated once, at start-up, with one line per problem naming the key.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as z from 'zod/mini';
import { ConfigError } from '../common/config/config-error.js';
import { formatPath } from '../common/config/config-path.js';
import { zodIssueProblems } from '../common/config/zod-issue-problems.js';
import { resourceProblems } from './annotations.js';
import { parseQuantity } from './quantity.js';

const quantity = z.string().check(z.refine((s: string) => (parseQuantity(s) ?? 0) > 0, 'must be a positive Kubernetes quantity'));
const version = z.string().check(z.regex(/^v?\d+\.\d+(\.\d+)?([-+].*)?$/, 'must be a Kubernetes version such as 1.30 or v1.30.2'));
const port = z.int().check(z.minimum(1), z.maximum(65535));

export const injectorConfigSchema = z.strictObject({
  /** The sidecar image (the same image runs every role). */
  image: z.string().check(z.minLength(1)),
  imagePullPolicy: z._default(z.enum(['Always', 'IfNotPresent', 'Never']), 'IfNotPresent'),
  /** The namespace the chart is installed in: never injected. */
  releaseNamespace: z.string().check(z.minLength(1)),
  excludedNamespaces: z._default(z.array(z.string()), ['kube-system', 'kube-public', 'kube-node-lease']),
  nativeSidecar: z._default(
    z.strictObject({
      /** auto: native when kubernetesVersion ≥ minVersion. */
      mode: z._default(z.enum(['auto', 'always', 'never']), 'auto'),
      /** The cluster's version, as the chart sees it (`.Capabilities.KubeVersion`). */
      kubernetesVersion: z.optional(version),
      minVersion: z._default(version, '1.29'),
    }),
    { mode: 'auto', minVersion: '1.29' },
  ),
  ports: z._default(z.strictObject({ data: z._default(port, 4000), status: z._default(port, 4001) }), { data: 4000, status: 4001 }),
  /** The ConfigMap holding the sidecar's config.yaml, in every injected namespace. */
  configMapName: z._default(z.string().check(z.minLength(1)), 'llm-gateway-sidecar'),
  /** Optional: a Secret with provider keys mounted read-only at /var/run/secrets/llm-gateway/providers. */
  providerSecretName: z.optional(z.string().check(z.minLength(1))),
  quotaAddress: z.optional(z.string().check(z.minLength(1))),
  resources: z._default(
    z.strictObject({ cpuRequest: z.optional(quantity), cpuLimit: z.optional(quantity), memoryRequest: z.optional(quantity), memoryLimit: z.optional(quantity) }),
    { cpuRequest: '50m', cpuLimit: '1', memoryRequest: '64Mi', memoryLimit: '256Mi' },
  ),
  dataSizeLimit: z._default(quantity, '256Mi'),
  tmpSizeLimit: z._default(quantity, '64Mi'),
  /** Job-owned pods get a regular (non-native) sidecar only when they opt in (it would keep the Job running). */
  injectJobs: z._default(z.boolean(), false),
  /** Seconds the app keeps the sidecar after it is told to stop (non-native preStop). */
  preStopSeconds: z._default(z.int().check(z.minimum(0), z.maximum(300)), 5),
  tokenAudience: z._default(z.string().check(z.minLength(1)), 'llm-gateway'),
  tokenExpirationSeconds: z._default(z.int().check(z.minimum(600)), 3600),
  /** User and group the sidecar runs as (the image's numeric user). */
  runAsUser: z._default(z.int().check(z.minimum(1)), 1000),
  /**
   * A pod whose namespace's sidecar ConfigMap is invalid or missing (its sidecar would not start): deny it
   * with the problems (the chart's choice with failurePolicy Fail, "never without its sidecar"), or skip
   * injection with a warning (with Ignore).
   */
  onInvalidSidecarConfig: z._default(z.enum(['deny', 'skip']), 'deny'),
});

export type InjectorConfig = z.infer<typeof injectorConfigSchema>;

export function validateInjectorConfig(raw: unknown, label: string): InjectorConfig {
  const r = injectorConfigSchema.safeParse(raw, { reportInput: true });
  if (!r.success) {
    const problems = r.error.issues.flatMap((i) => zodIssueProblems(i, injectorConfigSchema));
    throw new ConfigError(problems.map((p) => `${label}: ${formatPath(p.path)}: ${p.message}`));
  }
  const problems = resourceProblems(r.data.resources).map((p) => `${label}: resources: ${p}`);
  if (problems.length > 0) throw new ConfigError(problems);
  return r.data;
}

export async function loadInjectorConfig(path: string): Promise<InjectorConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`${path}: cannot read config file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    const yaml = await import('yaml');
    const parse = (yaml as { default?: typeof yaml }).default?.parse ?? yaml.parse;
    try {
      raw = parse(text);
    } catch (err) {
      throw new ConfigError([`${basename(path)}: ${String((err as Error).message).split('\n')[0]}`]);
    }
  }
  return validateInjectorConfig(raw, basename(path));
}

/** Whether the sidecar goes in as a native sidecar (an init container with restartPolicy Always). */
export function nativeSidecars(config: InjectorConfig): boolean {
  const n = config.nativeSidecar;
  if (n.mode !== 'auto') return n.mode === 'always';
  if (n.kubernetesVersion === undefined) return false;
  const [maj, min] = versionParts(n.kubernetesVersion);
  const [tMaj, tMin] = versionParts(n.minVersion);
  return maj > tMaj || (maj === tMaj && min >= tMin);
}

function versionParts(v: string): [number, number] {
  const m = /^v?(\d+)\.(\d+)/.exec(v)!;
  return [Number(m[1]), Number(m[2])];
}
