// The chart's quota service on PostgreSQL (quota.store=postgres) with the real helm binary: several
// replicas spread over nodes, a PodDisruptionBudget, the connection string from an existing Secret, a
// headless Service whose A records the sidecars' channel connects to, and the refusals of what cannot work.
// The default (sqlite) output is pinned by a golden file (UPDATE_GOLDEN=1 rewrites it), so the option
// changes nothing for releases that do not use it.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateInjectorConfig } from '../../injector-webhook/config.js';
import { validateConfig } from '../../sidecar/config/load-config.js';

const ROOT = join(import.meta.dirname, '../..');
const HELM = join(ROOT, 'node_modules/.bin/helm');
const CHART = join(ROOT, 'charts/llm-gateway');
const GOLDEN = join(ROOT, 'test/fixtures/chart/quota-sqlite-default.json');
const NS = 'llm-gateway';
const QUOTA = 'rel-llm-gateway-quota';
const POSTGRES = ['quota.store=postgres', 'quota.postgres.existingSecret=quota-pg'];

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: any };

function render(sets: string[] = [], chart = CHART): Doc[] {
  const out = execFileSync(HELM, ['template', 'rel', chart, '--namespace', NS, '--kube-version', '1.29.0', ...sets.flatMap((s) => ['--set', s])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

function renderError(sets: string[], chart = CHART): string {
  try {
    render(sets, chart);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`the chart rendered with ${sets.join(' ')}`);
}

const find = (docs: Doc[], kind: string, name: string): Doc => {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  if (d === undefined) throw new Error(`no ${kind} ${name} rendered`);
  return d;
};
const quotaPod = (docs: Doc[]) => find(docs, 'Deployment', QUOTA).spec.template.spec;
const sidecarConfig = (docs: Doc[]) => JSON.parse(find(docs, 'ConfigMap', 'llm-gateway-sidecar').data['config.yaml'] as string);

/**
 * What the quota service's part of a render is, without what is random per render (generated tokens and
 * certificates): its objects, the sidecar's quota settings and the injector's quota address.
 */
function quotaPart(docs: Doc[]): unknown {
  const objects = docs
    .filter((d) => d.metadata.labels?.['app.kubernetes.io/component'] === 'quota')
    .map((d) => (d.kind === 'Secret' ? { ...d, data: Object.fromEntries(Object.keys(d.data).map((k) => [k, '<generated>'])) } : d));
  const injector = JSON.parse(find(docs, 'ConfigMap', 'rel-llm-gateway-injector').data['config.json'] as string);
  return { objects, sidecarQuota: sidecarConfig(docs).quota, injectorQuotaAddress: injector.quotaAddress };
}

describe('the chart with the quota service on PostgreSQL', () => {
  it('lints with either store', () => {
    execFileSync(HELM, ['lint', CHART], { stdio: 'pipe' });
    execFileSync(HELM, ['lint', CHART, ...POSTGRES.flatMap((s) => ['--set', s])], { stdio: 'pipe' });
  });

  it('renders the default (sqlite) exactly as before the store option', () => {
    const got = quotaPart(render());
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, `${JSON.stringify(got, null, 2)}\n`);
    expect(got).toEqual(JSON.parse(readFileSync(GOLDEN, 'utf8')));
    // Saying sqlite is the same as saying nothing.
    expect(quotaPart(render(['quota.store=sqlite']))).toEqual(got);
  });

  it('runs two replicas spread over nodes, with no volume claim and a disruption budget', () => {
    const docs = render(POSTGRES);
    const deployment = find(docs, 'Deployment', QUOTA);
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(docs.some((d) => d.kind === 'PersistentVolumeClaim')).toBe(false);
    const pod = quotaPod(docs);
    expect(pod.volumes.map((v: { name: string }) => v.name)).not.toContain('data');
    const selector = { 'app.kubernetes.io/name': 'llm-gateway', 'app.kubernetes.io/instance': 'rel', 'app.kubernetes.io/component': 'quota' };
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual([
      { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } } },
    ]);
    const pdb = find(docs, 'PodDisruptionBudget', QUOTA);
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: selector } });
    // hard: never two on one node; replicas as asked; the operator's own affinity replaces the rule.
    const hard = quotaPod(render([...POSTGRES, 'quota.antiAffinity=hard', 'quota.replicas=3']));
    expect(hard.affinity.podAntiAffinity).toEqual({ requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } }] });
    expect(find(render([...POSTGRES, 'quota.replicas=3']), 'Deployment', QUOTA).spec.replicas).toBe(3);
    const own = quotaPod(render([...POSTGRES, 'quota.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey=topology.kubernetes.io/zone']));
    expect(Object.keys(own.affinity.podAntiAffinity)).toEqual(['requiredDuringSchedulingIgnoredDuringExecution']);
  });

  it('gives the service the connection string from the existing Secret, in its environment only', () => {
    const docs = render([...POSTGRES, 'quota.postgres.key=dsn']);
    const container = quotaPod(docs).containers[0];
    expect(container.env).toContainEqual({ name: 'LLMGW_QUOTA_STORE', valueFrom: { secretKeyRef: { name: 'quota-pg', key: 'dsn' } } });
    expect((container.args as string[]).some((a) => a.startsWith('--db') || a.startsWith('--store'))).toBe(false);
    expect(container.volumeMounts.map((m: { mountPath: string }) => m.mountPath)).not.toContain('/var/lib/llm-gateway');
    // No database, and no Secret for it, comes with the chart.
    expect(docs.some((d) => d.kind === 'Secret' && d.metadata.name === 'quota-pg')).toBe(false);
    expect(docs.some((d) => d.kind === 'StatefulSet')).toBe(false);
    // The readiness probe is the service's own.
    expect(container.readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 'status' });
    expect(quotaPod(render(POSTGRES)).containers[0].env[0].valueFrom.secretKeyRef.key).toBe('url');
  });

  it('adds a headless Service for gRPC, and points the sidecars at every replica through it', () => {
    const docs = render(POSTGRES);
    const headless = find(docs, 'Service', `${QUOTA}-headless`);
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.ports).toEqual([{ name: 'grpc', port: 50051, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' }]);
    expect(headless.spec.selector).toEqual(find(docs, 'Service', QUOTA).spec.selector);
    expect(headless.spec.publishNotReadyAddresses).toBeUndefined();
    const raw = sidecarConfig(docs);
    expect(raw.quota.address).toBe(`dns:///${QUOTA}-headless.${NS}.svc.cluster.local:50051`);
    // The certificate names the Service, not the headless one: checked for the Service's name.
    expect(raw.quota.tls).toEqual({ caFile: '/etc/llm-gateway/quota-ca.crt', serverName: `${QUOTA}.${NS}.svc` });
    expect(validateConfig(raw, 'rendered sidecar config', { readSecret: () => 'sk-test' }).quota?.address).toBe(raw.quota.address);
    // Without TLS, nothing to check the name for.
    expect(sidecarConfig(render([...POSTGRES, 'quota.tls.enabled=false'])).quota.tls).toBeUndefined();
    // The admin CLI in the sidecar's container keeps the Service's address (one replica answers it).
    const injector = validateInjectorConfig(JSON.parse(find(docs, 'ConfigMap', 'rel-llm-gateway-injector').data['config.json']), 'rendered injector config');
    expect(injector.quotaAddress).toBe(`${QUOTA}.${NS}.svc:50051`);
  });

  it('refuses postgres without the Secret, and with fewer than two replicas', () => {
    expect(renderError(['quota.store=postgres'])).toMatch(/quota\.store=postgres needs quota\.postgres\.existingSecret: .*the chart bundles no database/);
    expect(renderError([...POSTGRES, 'quota.replicas=1'])).toMatch(/quota\.replicas: Must be greater than or equal to 2/);
    expect(renderError(['quota.store=mysql'])).toMatch(/quota\.store must be one of the following: "sqlite", "postgres"/);
    // The template refuses too, where the schema is not applied.
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-chart-noschema-'));
    cpSync(CHART, join(dir, 'llm-gateway'), { recursive: true });
    rmSync(join(dir, 'llm-gateway/values.schema.json'));
    expect(renderError([...POSTGRES, 'quota.replicas=1'], join(dir, 'llm-gateway'))).toMatch(/quota\.store=postgres needs quota\.replicas of 2 or more \(got 1\)/);
    // A single replica stays possible with sqlite (replicas is not read there).
    expect(find(render(['quota.replicas=1']), 'Deployment', QUOTA).spec.replicas).toBe(1);
  });
});
