// Whether an injected sidecar would start with the config its pod mounts: the sidecar ConfigMap of the pod's
// namespace, judged by the sidecar's own loader, so the injector does not add a sidecar that exits 2 at once
// (a native one holding the app back with it) when that ConfigMap was broken past the chart's checks.
import { ConfigError } from '../common/config/config-error.js';
import { parseConfigText } from '../sidecar/config/load-config.js';

/** The key of the ConfigMap the sidecar reads (`--config /etc/llm-gateway/config.yaml`). */
export const CONFIG_KEY = 'config.yaml';

/** What the injector knows of the config a namespace's sidecars would start with. */
export type SidecarConfigState =
  | { status: 'valid' }
  | { status: 'invalid'; problems: string[] }
  | { status: 'missing' }
  /** Not looked at (no API access, a lookup that failed): injection goes on as before. */
  | { status: 'unchecked'; reason?: string };

export const UNCHECKED: SidecarConfigState = { status: 'unchecked' };

/**
 * Judges the `data` of the sidecar's ConfigMap. What the injector cannot see is not judged: `${VAR}`
 * references (expanded from the sidecar's environment) and key files (in the provider Secret).
 */
export async function checkSidecarConfigData(data: Record<string, string> | undefined): Promise<SidecarConfigState> {
  const text = data?.[CONFIG_KEY];
  if (text === undefined) return { status: 'invalid', problems: [`the ConfigMap has no key ${CONFIG_KEY}`] };
  const variables = new Set<string>();
  const env = (name: string): undefined => void variables.add(name);
  try {
    await parseConfigText(text, CONFIG_KEY, { env, readSecret: () => 'not read by the injector' });
    return { status: 'valid' };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The loader reports each variable as unset, and nothing else that depends on one.
    const problems = err.problems.filter((p) => ![...variables].some((name) => p.endsWith(`: environment variable ${name} is not set`)));
    return problems.length === 0 ? { status: 'valid' } : { status: 'invalid', problems };
  }
}

/** Why pods of the namespace cannot get a working sidecar, or undefined when they can (or nobody knows). */
export function sidecarConfigFault(state: SidecarConfigState, namespace: string, configMapName: string): { reason: 'invalid-sidecar-config' | 'missing-sidecar-config'; message: string } | undefined {
  const where = `ConfigMap ${namespace}/${configMapName}`;
  if (state.status === 'missing') {
    return { reason: 'missing-sidecar-config', message: `the sidecar config ${where} does not exist, so an injected sidecar could not start (add ${namespace} to the chart's sidecar.namespaces)` };
  }
  if (state.status !== 'invalid') return undefined;
  const shown = state.problems.slice(0, 5).join('; ');
  const more = state.problems.length > 5 ? `; and ${state.problems.length - 5} more` : '';
  return { reason: 'invalid-sidecar-config', message: `the sidecar config in ${where} is invalid, so an injected sidecar would exit at start: ${shown}${more}` };
}
