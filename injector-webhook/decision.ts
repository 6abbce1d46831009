// Inject, skip or deny, with stable reason codes: a pure function of the pod, its namespace's defaults, what
// is known of its namespace's sidecar config, and the injector's config.
import { ignoredTeamWarning, INJECT, readOverrides, resourceProblems, STATUS, type PodOverrides } from './annotations.js';
import { nativeSidecars, type InjectorConfig } from './config.js';
import type { Pod } from './pod.js';
import { sidecarConfigFault, UNCHECKED, type SidecarConfigState } from './sidecar-config-check.js';

export const SIDECAR_NAME = 'llm-gateway';
export const VOLUME_NAMES = ['llm-gateway-data', 'llm-gateway-tmp', 'llm-gateway-config', 'llm-gateway-token', 'llm-gateway-providers'];

export type SkipReason =
  | 'excluded-namespace'
  | 'already-injected'
  | 'opted-out'
  | 'host-network'
  | 'windows'
  | 'mirror-pod'
  | 'port-conflict'
  | 'volume-conflict'
  | 'job-pod'
  | SidecarConfigReason;

/** The sidecar would not start: its namespace's sidecar ConfigMap is invalid, or there is none. */
export type SidecarConfigReason = 'invalid-sidecar-config' | 'missing-sidecar-config';

export type Decision =
  | { kind: 'inject'; native: boolean; overrides: PodOverrides; warnings: string[] }
  /** `annotate`: record the reason on the pod (not for pods already injected, so injection stays idempotent). */
  | { kind: 'skip'; reason: SkipReason; message: string; annotate: boolean; warnings: string[] }
  | { kind: 'deny'; reason: 'invalid-annotations' | SidecarConfigReason; message: string };

const skip = (reason: SkipReason, message: string, warnings: string[] = [], annotate = true): Decision => ({ kind: 'skip', reason, message, annotate, warnings });

export function decide(pod: Pod, namespace: string, config: InjectorConfig, namespaceAnnotations: Record<string, string> = {}, sidecarConfig: SidecarConfigState = UNCHECKED): Decision {
  const meta = pod.metadata ?? {};
  const spec = pod.spec ?? {};
  const annotations = meta.annotations ?? {};
  const labels = meta.labels ?? {};
  const containers = spec.containers ?? [];
  const initContainers = spec.initContainers ?? [];
  const all = [...initContainers, ...containers];

  if (namespace === config.releaseNamespace || config.excludedNamespaces.includes(namespace)) {
    return skip('excluded-namespace', `namespace ${namespace} is excluded from injection`);
  }
  if (annotations[STATUS] !== undefined || all.some((c) => c.name === SIDECAR_NAME)) {
    return skip('already-injected', 'the pod already has the llm-gateway sidecar', [], false);
  }
  if (annotations[INJECT] === 'false' || labels[INJECT] === 'false') return skip('opted-out', `the pod opts out (${INJECT}: "false")`);

  // Namespace-level defaults that are wrong only warn; the pod's own annotations must be right.
  const ns = readOverrides(namespaceAnnotations, containers.map((c) => c.name));
  const warnings = ns.problems.map((p) => `namespace ${namespace}: ${p} (ignored)`);
  const nsOverrides = ns.overrides; // the valid ones apply
  delete nsOverrides.containers; // a container list is per pod
  const own = readOverrides(annotations, containers.map((c) => c.name));
  // A team the pod or its namespace still claims is not trusted (DESIGN §6), but it is no reason to refuse the pod.
  if (ns.ignoredTeam !== undefined) warnings.push(`llm-gateway: namespace ${namespace}: ${ignoredTeamWarning(ns.ignoredTeam, namespace)}`);
  if (own.ignoredTeam !== undefined) warnings.push(`llm-gateway: ${ignoredTeamWarning(own.ignoredTeam, namespace)}`);
  const problems = [...own.problems];
  if (labels[INJECT] !== undefined && labels[INJECT] !== 'true' && labels[INJECT] !== 'false') problems.push(`${INJECT} (label): "${labels[INJECT]}" is not valid: expected "true" or "false"`);
  const overrides: PodOverrides = { ...nsOverrides, ...own.overrides, resources: { ...config.resources, ...nsOverrides.resources, ...own.overrides.resources } };
  problems.push(...resourceProblems(overrides.resources));
  if (problems.length > 0) return { kind: 'deny', reason: 'invalid-annotations', message: `llm-gateway: invalid pod annotations: ${problems.join('; ')}` };

  if (spec.hostNetwork === true) return skip('host-network', 'host-network pods are not injected (the sidecar would listen on the node)', warnings);
  if (spec.os?.name === 'windows' || spec.nodeSelector?.['kubernetes.io/os'] === 'windows') return skip('windows', 'Windows pods are not injected', warnings);
  if (annotations['kubernetes.io/config.mirror'] !== undefined) return skip('mirror-pod', 'mirror (static) pods are not injected', warnings, false);
  const ours = [config.ports.data, config.ports.status];
  const taken = all.flatMap((c) => (c.ports ?? []).filter((p) => ours.includes(p.containerPort) || (p.hostPort !== undefined && ours.includes(p.hostPort))).map((p) => `${c.name}:${p.containerPort}`));
  if (taken.length > 0) return skip('port-conflict', `ports ${ours.join(' and ')} are taken by ${taken.join(', ')}`, warnings);
  const clash = (spec.volumes ?? []).filter((v) => VOLUME_NAMES.includes(v.name)).map((v) => v.name);
  if (clash.length > 0) return skip('volume-conflict', `the pod already has volumes named ${clash.join(', ')}`, warnings);

  const native = overrides.native ?? nativeSidecars(config);
  const ownedByJob = (meta.ownerReferences ?? []).some((o) => o.kind === 'Job' && o.apiVersion.startsWith('batch/'));
  const jobsOptIn = config.injectJobs || annotations[INJECT] === 'true' || labels[INJECT] === 'true';
  if (ownedByJob && !native && !jobsOptIn) {
    return skip('job-pod', `Job pods are not injected without native sidecars (the sidecar would keep the Job running); opt in with ${INJECT}: "true"`, warnings);
  }
  // Last, so that only a pod that would get the sidecar is held back by it.
  const fault = sidecarConfigFault(sidecarConfig, namespace, config.configMapName);
  if (fault !== undefined) {
    if (config.onInvalidSidecarConfig === 'skip') return skip(fault.reason, fault.message, warnings);
    return { kind: 'deny', reason: fault.reason, message: `llm-gateway: pod refused: ${fault.message}. Fix the ConfigMap (e.g. helm upgrade with valid sidecar values), or opt the pod out with the label ${INJECT}: "false"` };
  }
  return { kind: 'inject', native, overrides, warnings };
}
