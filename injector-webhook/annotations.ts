// The pod and namespace annotations and labels the injector reads and writes, and the validation of the
// ones users set. Every key is under `llm-gateway.dev/`.
import { parseQuantity } from './quantity.js';

export const PREFIX = 'llm-gateway.dev/';
export const INJECT = `${PREFIX}inject`;
export const STATUS = `${PREFIX}status`;
export const INJECTED_LABEL = `${PREFIX}injected`;
export const SKIP_REASON = `${PREFIX}skip-reason`;
export const CONTAINERS = `${PREFIX}containers`;
export const NATIVE = `${PREFIX}native-sidecar`;
/** No longer read: team membership is operator data (`llmgw team set`); a pod or namespace cannot claim a team. */
export const TEAM = `${PREFIX}team`;
export const RESOURCE_KEYS = {
  cpuRequest: `${PREFIX}cpu-request`,
  cpuLimit: `${PREFIX}cpu-limit`,
  memoryRequest: `${PREFIX}memory-request`,
  memoryLimit: `${PREFIX}memory-limit`,
} as const;

/** The annotations users may set, validated before anything is injected. */
const SETTABLE = new Set([INJECT, CONTAINERS, NATIVE, ...Object.values(RESOURCE_KEYS)]);
/** Ours too, but written by the injector. */
const WRITTEN = new Set([STATUS, SKIP_REASON]);

export interface PodOverrides {
  containers?: string[];
  native?: boolean;
  resources: { cpuRequest?: string; cpuLimit?: string; memoryRequest?: string; memoryLimit?: string };
}

const BOOL = new Set(['true', 'false']);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The warning for a `llm-gateway.dev/team` annotation left over from before team membership became
 * operator data: the object is still injected, and the message says what to run instead (the value is
 * echoed only when it is a DNS label, so the warning stays printable and the command valid).
 */
export function ignoredTeamWarning(team: string, namespace: string): string {
  const name = DNS_LABEL.test(team) && team.length <= 63 ? team : 'TEAM';
  return `${TEAM} is ignored: team membership is now operator data (llmgw team set ${name} --namespaces ${namespace})`;
}

/**
 * Validates our annotations on one object; returns the overrides, one problem per bad key (each naming
 * the key, the value and what is expected), and the value of an ignored team annotation, if any.
 */
export function readOverrides(annotations: Record<string, string>, containerNames: string[]): { overrides: PodOverrides; problems: string[]; ignoredTeam?: string } {
  const problems: string[] = [];
  const overrides: PodOverrides = { resources: {} };
  let ignoredTeam: string | undefined;
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(PREFIX) || WRITTEN.has(key)) continue;
    if (key === TEAM) {
      ignoredTeam = value;
      continue;
    }
    const bad = (expected: string): void => void problems.push(`${key}: "${value}" is not valid: ${expected}`);
    if (!SETTABLE.has(key)) {
      bad(`unknown annotation (known: ${[...SETTABLE].sort().join(', ')})`);
      continue;
    }
    if (key === INJECT || key === NATIVE) {
      if (!BOOL.has(value)) bad('expected "true" or "false"');
      else if (key === NATIVE) overrides.native = value === 'true';
    } else if (key === CONTAINERS) {
      const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const unknown = names.filter((n) => !containerNames.includes(n));
      if (names.length === 0) bad('expected a comma-separated list of container names');
      else if (unknown.length > 0) bad(`no container named ${unknown.map((n) => `"${n}"`).join(', ')} in this pod`);
      else overrides.containers = names;
    } else {
      const field = (Object.keys(RESOURCE_KEYS) as (keyof typeof RESOURCE_KEYS)[]).find((k) => RESOURCE_KEYS[k] === key)!;
      const n = parseQuantity(value);
      if (n === undefined || n <= 0) bad(`expected a positive Kubernetes quantity such as ${field.startsWith('cpu') ? '"100m" or "1"' : '"128Mi" or "1Gi"'}`);
      else overrides.resources[field] = value;
    }
  }
  return { overrides, problems, ...(ignoredTeam !== undefined ? { ignoredTeam } : {}) };
}

/** A request above its limit, after overrides are merged over defaults; one message per pair. */
export function resourceProblems(r: { cpuRequest?: string; cpuLimit?: string; memoryRequest?: string; memoryLimit?: string }): string[] {
  const out: string[] = [];
  for (const kind of ['cpu', 'memory'] as const) {
    const req = r[`${kind}Request`];
    const lim = r[`${kind}Limit`];
    if (req === undefined || lim === undefined) continue;
    if (parseQuantity(req)! > parseQuantity(lim)!) out.push(`${kind} request ${req} is above its limit ${lim}`);
  }
  return out;
}
