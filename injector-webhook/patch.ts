// The patch: explicit RFC 6902 operations, a pure function of the pod, the config and the decision.
// Parents are created before anything is appended to them, env changes use the original container
// indices and come before the sidecar is inserted, and every key is JSON-Pointer escaped.
import { INJECTED_LABEL, SKIP_REASON, STATUS } from './annotations.js';
import type { InjectorConfig } from './config.js';
import { SIDECAR_NAME } from './decision.js';
import type { PodOverrides } from './annotations.js';
import type { Container, EnvVar, Pod } from './pod.js';
import { pointer } from './pointer.js';

export type PatchOp = { op: 'add'; path: string; value: unknown };

export const CONFIG_DIR = '/etc/llm-gateway';
export const DATA_DIR = '/var/lib/llm-gateway';
export const TOKEN_DIR = '/var/run/secrets/llm-gateway/token';
export const PROVIDERS_DIR = '/var/run/secrets/llm-gateway/providers';

/** The variables app containers get (DESIGN §7). */
export function appEnv(config: InjectorConfig): EnvVar[] {
  const base = `http://127.0.0.1:${config.ports.data}`;
  return [
    { name: 'OPENAI_BASE_URL', value: `${base}/v1` },
    { name: 'ANTHROPIC_BASE_URL', value: base },
    { name: 'LLM_GATEWAY_URL', value: base },
  ];
}

function addAnnotationOps(pod: Pod, entries: Record<string, string>, labels: Record<string, string> = {}): PatchOp[] {
  const ops: PatchOp[] = [];
  if (pod.metadata === undefined) ops.push({ op: 'add', path: '/metadata', value: {} });
  if (pod.metadata?.annotations === undefined) ops.push({ op: 'add', path: '/metadata/annotations', value: {} });
  for (const [k, v] of Object.entries(entries)) ops.push({ op: 'add', path: pointer('metadata', 'annotations', k), value: v });
  if (Object.keys(labels).length > 0) {
    if (pod.metadata?.labels === undefined) ops.push({ op: 'add', path: '/metadata/labels', value: {} });
    for (const [k, v] of Object.entries(labels)) ops.push({ op: 'add', path: pointer('metadata', 'labels', k), value: v });
  }
  return ops;
}

/** Records why a pod was not injected. */
export function skipPatch(pod: Pod, reason: string): PatchOp[] {
  // Already recorded (a second admission of the same pod): nothing to change.
  if (pod.metadata?.annotations?.[SKIP_REASON] === reason) return [];
  return addAnnotationOps(pod, { [SKIP_REASON]: reason });
}

export function sidecarContainer(pod: Pod, config: InjectorConfig, overrides: PodOverrides, native: boolean): Container {
  const labels = pod.metadata?.labels ?? {};
  const service = labels['app.kubernetes.io/name'] ?? labels.app;
  const status = config.ports.status;
  const probe = (path: string, extra: Record<string, number>) => ({ httpGet: { path, port: status }, ...extra });
  const r = overrides.resources;
  const pick = (cpu: string | undefined, memory: string | undefined): Record<string, string> => ({ ...(cpu ? { cpu } : {}), ...(memory ? { memory } : {}) });
  const env: EnvVar[] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'POD_SERVICE_ACCOUNT', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
    ...(service !== undefined ? [{ name: 'LLMGW_SERVICE', value: service }] : []),
    ...(config.quotaAddress !== undefined ? [{ name: 'LLMGW_QUOTA_ADDR', value: config.quotaAddress }] : []),
    { name: 'LLMGW_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
  ];
  const mounts = [
    { name: 'llm-gateway-data', mountPath: DATA_DIR },
    { name: 'llm-gateway-tmp', mountPath: '/tmp' },
    { name: 'llm-gateway-config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'llm-gateway-token', mountPath: TOKEN_DIR, readOnly: true },
    ...(config.providerSecretName !== undefined ? [{ name: 'llm-gateway-providers', mountPath: PROVIDERS_DIR, readOnly: true }] : []),
  ];
  const container: Container = {
    name: SIDECAR_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    args: ['sidecar', '--config', `${CONFIG_DIR}/config.yaml`, '--listen', `127.0.0.1:${config.ports.data}`, '--status-listen', `0.0.0.0:${status}`],
    ports: [{ name: 'llmgw-status', containerPort: status, protocol: 'TCP' }],
    env,
    resources: { requests: pick(r.cpuRequest, r.memoryRequest), limits: pick(r.cpuLimit, r.memoryLimit) },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: config.runAsUser,
      runAsGroup: config.runAsUser,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: mounts,
    startupProbe: probe('/healthz/ready', { periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 1 }),
    readinessProbe: probe('/healthz/ready', { periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 1 }),
    livenessProbe: probe('/healthz/live', { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 1 }),
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (native) {
    // A native sidecar: started before the app containers (gated by its startup probe), stopped after them.
    container.restartPolicy = 'Always';
  } else {
    // A regular container placed first: the kubelet starts the app only once postStart returns.
    container.lifecycle = {
      postStart: { exec: { command: ['llmgw', 'await', '--url', `http://127.0.0.1:${status}/healthz/ready`, '--timeout', '120s'] } },
      preStop: { exec: { command: ['sleep', String(config.preStopSeconds)] } },
    };
  }
  return container;
}

export function volumes(config: InjectorConfig): { name: string; [key: string]: unknown }[] {
  return [
    { name: 'llm-gateway-data', emptyDir: { sizeLimit: config.dataSizeLimit } },
    { name: 'llm-gateway-tmp', emptyDir: { sizeLimit: config.tmpSizeLimit } },
    { name: 'llm-gateway-config', configMap: { name: config.configMapName } },
    {
      name: 'llm-gateway-token',
      projected: { sources: [{ serviceAccountToken: { audience: config.tokenAudience, expirationSeconds: config.tokenExpirationSeconds, path: 'token' } }] },
    },
    ...(config.providerSecretName !== undefined ? [{ name: 'llm-gateway-providers', secret: { secretName: config.providerSecretName, optional: true } }] : []),
  ];
}

/** Whether the container defines `name` itself (envFrom may define more; those cannot be seen here). */
const defines = (c: Container, name: string): boolean => (c.env ?? []).some((e) => e.name === name);

export function injectPatch(pod: Pod, config: InjectorConfig, overrides: PodOverrides, native: boolean): PatchOp[] {
  const spec = pod.spec ?? {};
  const ops: PatchOp[] = [];
  // 1. App containers' variables, by their original indices (before the sidecar shifts them).
  const wanted = appEnv(config);
  (spec.containers ?? []).forEach((c, i) => {
    if (overrides.containers !== undefined && !overrides.containers.includes(c.name)) return;
    const add = wanted.filter((v) => !defines(c, v.name));
    if (add.length === 0) return;
    if (c.env === undefined) ops.push({ op: 'add', path: pointer('spec', 'containers', i, 'env'), value: [] });
    for (const v of add) ops.push({ op: 'add', path: `${pointer('spec', 'containers', i, 'env')}/-`, value: v });
  });
  // 2. Volumes.
  if (spec.volumes === undefined) ops.push({ op: 'add', path: '/spec/volumes', value: [] });
  for (const v of volumes(config)) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });
  // 3. The sidecar, first among the init containers (native) or the containers.
  const sidecar = sidecarContainer(pod, config, overrides, native);
  if (native) {
    if (spec.initContainers === undefined) ops.push({ op: 'add', path: '/spec/initContainers', value: [] });
    ops.push({ op: 'add', path: '/spec/initContainers/0', value: sidecar });
  } else {
    ops.push({ op: 'add', path: '/spec/containers/0', value: sidecar });
  }
  // 4. The record of the injection.
  const status = JSON.stringify({ version: 1, container: SIDECAR_NAME, native, image: config.image });
  ops.push(...addAnnotationOps(pod, { [STATUS]: status }, { [INJECTED_LABEL]: 'true' }));
  return ops;
}
