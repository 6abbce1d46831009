// A sidecar config broken past the chart's checks (a ConfigMap edited by hand, a namespace without one): the
// injector judges it with the sidecar's own loader and, instead of injecting a sidecar that exits 2 at once,
// refuses the pod with the problems (onInvalidSidecarConfig deny, the chart's choice with failurePolicy
// Fail) or lets it start without the sidecar, with a warning (skip, with Ignore). Real AdmissionReviews, in
// process and over HTTPS against a fake API server.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonpatch from 'fast-json-patch';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { review } from '../../../injector-webhook/admission.js';
import { apiNamespaceSource } from '../../../injector-webhook/namespaces.js';
import { startInjector } from '../../../injector-webhook/server.js';
import { checkSidecarConfigData, type SidecarConfigState } from '../../../injector-webhook/sidecar-config-check.js';
import { configFor, reviewOf } from '../../helpers/admission.js';
import { selfSigned } from '../../helpers/certs.js';

const POD = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'chat-', namespace: 'demo', labels: { app: 'chat' } }, spec: { containers: [{ name: 'chat', image: 'app:1' }] } };

/** A config.yaml as the chart renders it (JSON). */
const GOOD = JSON.stringify({
  providers: { openai: { type: 'openai', baseUrl: 'https://api.openai.com/v1', apiKeyFile: '/var/run/secrets/llm-gateway/providers/openai' } },
  models: { 'gpt-4o-mini': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] } },
  storage: { path: '/var/lib/llm-gateway/llmgw.db' },
});
/** The case: a typo the sidecar refuses (exit 2). */
const TYPO = GOOD.replace('"storage"', '"cache":{"ttlSecond":5},"storage"');

const INVALID: SidecarConfigState = { status: 'invalid', problems: ['config.yaml: cache: unknown key "ttlSecond"'] };

function patchOf(answer: { response: { patch?: string } }): jsonpatch.Operation[] {
  return answer.response.patch === undefined ? [] : (JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as jsonpatch.Operation[]);
}
const hasSidecar = (ops: jsonpatch.Operation[]) => ops.some((o) => o.path === '/spec/initContainers/0' || o.path === '/spec/containers/0');

describe('judging the sidecar ConfigMap with the sidecar loader', () => {
  it('accepts what the sidecar accepts, without reading key files or judging ${VAR}s it cannot see', async () => {
    expect(await checkSidecarConfigData({ 'config.yaml': GOOD })).toEqual({ status: 'valid' });
    const withVariables = GOOD.replace('https://api.openai.com/v1', '${UPSTREAM_URL}').replace('"apiKeyFile":"/var/run/secrets/llm-gateway/providers/openai"', '"apiKey":"${OPENAI_API_KEY}"');
    expect(await checkSidecarConfigData({ 'config.yaml': withVariables })).toEqual({ status: 'valid' });
    const yaml = 'providers: {}\nmodels: {}\nlogging: { level: debug }\n';
    expect(await checkSidecarConfigData({ 'config.yaml': yaml })).toEqual({ status: 'valid' });
  });

  it('refuses what the sidecar refuses, with its messages naming the key', async () => {
    const typo = await checkSidecarConfigData({ 'config.yaml': TYPO });
    expect(typo.status).toBe('invalid');
    expect(typo.status === 'invalid' && typo.problems.join('\n')).toContain('config.yaml: cache: unknown key "ttlSecond"');
    const unknownProvider = await checkSidecarConfigData({ 'config.yaml': GOOD.replace('"provider":"openai"', '"provider":"opnai"') });
    expect(unknownProvider.status === 'invalid' && unknownProvider.problems.join('\n')).toContain('models.gpt-4o-mini.targets[0].provider: unknown provider "opnai"');
    const notYaml = await checkSidecarConfigData({ 'config.yaml': 'providers: [unclosed\n' });
    expect(notYaml.status).toBe('invalid');
    expect(await checkSidecarConfigData({ 'other.yaml': GOOD })).toEqual({ status: 'invalid', problems: ['the ConfigMap has no key config.yaml'] });
    expect(await checkSidecarConfigData(undefined)).toEqual({ status: 'invalid', problems: ['the ConfigMap has no key config.yaml'] });
  });
});

describe('admission of a pod whose sidecar config is bad', () => {
  it('denies it (deny, the default) with the ConfigMap, the problems and the way out', () => {
    const { answer, outcome } = review(reviewOf(POD, {}, 'uid-bad'), configFor({}), {}, [], INVALID);
    expect(outcome).toEqual({ result: 'denied', reason: 'invalid-sidecar-config' });
    expect(answer.response).toMatchObject({ uid: 'uid-bad', allowed: false, status: { code: 400, reason: 'BadRequest' } });
    expect(answer.response.status!.message).toBe(
      'llm-gateway: pod refused: the sidecar config in ConfigMap demo/llm-gateway-sidecar is invalid, so an injected sidecar would exit at start: config.yaml: cache: unknown key "ttlSecond". Fix the ConfigMap (e.g. helm upgrade with valid sidecar values), or opt the pod out with the label llm-gateway.dev/inject: "false"',
    );
    expect(answer.response.patch).toBeUndefined();
  });

  it('starts it without the sidecar (skip), with a warning and the reason recorded on the pod', () => {
    const { answer, outcome } = review(reviewOf(POD, {}, 'uid-skip'), configFor({ config: { onInvalidSidecarConfig: 'skip' } }), {}, [], INVALID);
    expect(outcome).toEqual({ result: 'skipped', reason: 'invalid-sidecar-config' });
    expect(answer.response.allowed).toBe(true);
    expect(answer.response.warnings).toEqual([
      'llm-gateway: not injected (invalid-sidecar-config): the sidecar config in ConfigMap demo/llm-gateway-sidecar is invalid, so an injected sidecar would exit at start: config.yaml: cache: unknown key "ttlSecond"',
    ]);
    const patched = jsonpatch.applyPatch(structuredClone(POD), patchOf(answer), true, false).newDocument as typeof POD & { metadata: { annotations?: Record<string, string> } };
    expect(patched.metadata.annotations).toEqual({ 'llm-gateway.dev/skip-reason': 'invalid-sidecar-config' });
    expect(patched.spec.containers).toEqual(POD.spec.containers);
    // Admitted again (a retried create), the recorded pod needs no change.
    expect(review(reviewOf(patched, {}), configFor({ config: { onInvalidSidecarConfig: 'skip' } }), {}, [], INVALID).answer.response.patch).toBeUndefined();
  });

  it('says so when the namespace has no sidecar ConfigMap, and bounds a long list of problems', () => {
    const missing = review(reviewOf(POD, {}), configFor({}), {}, [], { status: 'missing' });
    expect(missing.outcome).toEqual({ result: 'denied', reason: 'missing-sidecar-config' });
    expect(missing.answer.response.status!.message).toContain("the sidecar config ConfigMap demo/llm-gateway-sidecar does not exist, so an injected sidecar could not start (add demo to the chart's sidecar.namespaces)");
    const many = review(reviewOf(POD, {}), configFor({}), {}, [], { status: 'invalid', problems: Array.from({ length: 8 }, (_, i) => `config.yaml: p${i}: bad`) });
    expect(many.answer.response.status!.message).toContain('config.yaml: p4: bad; and 3 more.');
    expect(many.answer.response.status!.message).not.toContain('p5');
  });

  it('injects as before when the config is valid or could not be checked, and leaves alone pods it would not inject anyway', () => {
    for (const state of [{ status: 'valid' }, { status: 'unchecked', reason: 'HTTP 403' }] as SidecarConfigState[]) {
      const { answer, outcome } = review(reviewOf(POD, {}), configFor({}), {}, [], state);
      expect(outcome.result).toBe('injected');
      expect(hasSidecar(patchOf(answer))).toBe(true);
      expect(answer.response.warnings).toBeUndefined();
    }
    const optedOut = { ...POD, metadata: { ...POD.metadata, annotations: { 'llm-gateway.dev/inject': 'false' } } };
    expect(review(reviewOf(optedOut, {}), configFor({}), {}, [], INVALID).outcome).toEqual({ result: 'skipped', reason: 'opted-out' });
    const injected = { ...POD, metadata: { ...POD.metadata, annotations: { 'llm-gateway.dev/status': '{"version":1}' } } };
    expect(review(reviewOf(injected, {}), configFor({}), {}, [], INVALID).outcome).toEqual({ result: 'skipped', reason: 'already-injected' });
    const hostNetwork = { ...POD, spec: { ...POD.spec, hostNetwork: true } };
    expect(review(reviewOf(hostNetwork, {}), configFor({}), {}, [], INVALID).outcome).toEqual({ result: 'skipped', reason: 'host-network' });
  });
});

describe('the injector over HTTPS, reading the ConfigMap from the API', () => {
  const open: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.stop();
  });

  it('refuses pods while the ConfigMap is broken or missing, injects again once fixed, and counts and logs it', async () => {
    const maps: Record<string, string | undefined> = { demo: GOOD };
    const requests: string[] = [];
    const api: Server = createServer((req, res) => {
      requests.push(req.url!);
      expect(req.headers.authorization).toBe('Bearer sa-token');
      const m = /^\/api\/v1\/namespaces\/([^/]+)(\/configmaps\/llm-gateway-sidecar)?$/.exec(req.url!);
      if (m?.[1] === 'locked' && m[2]) return void res.writeHead(403).end();
      if (m === null || (m[2] !== undefined && maps[m[1]!] === undefined)) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      if (m[2] === undefined) res.end(JSON.stringify({ kind: 'Namespace', metadata: { name: m[1] } }));
      else res.end(JSON.stringify({ kind: 'ConfigMap', metadata: { name: 'llm-gateway-sidecar', namespace: m[1] }, data: { 'config.yaml': maps[m[1]!] } }));
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    open.push({ stop: () => new Promise<void>((r) => api.close(() => r())) });
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'llmgw-sa-')), 'token');
    writeFileSync(tokenFile, 'sa-token\n');
    let clock = 0;
    const namespaces = apiNamespaceSource({ baseUrl: `http://127.0.0.1:${(api.address() as { port: number }).port}`, tokenFile, checkSidecarConfig: true, now: () => clock });
    const logs: { msg: string; [k: string]: unknown }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { msg: string }) });
    const cert = selfSigned('injector-config');
    const injector = await startInjector({ config: configFor({}), listen: { host: '127.0.0.1', port: 0 }, statusListen: { host: '127.0.0.1', port: 0 }, certFile: cert.certFile, keyFile: cert.keyFile, namespaces, logger });
    open.push(injector);
    const dispatcher = new Agent({ connect: { ca: cert.cert } });
    open.push({ stop: () => dispatcher.close() });
    const post = async (namespace: string, uid: string) => {
      const pod = { ...POD, metadata: { ...POD.metadata, namespace } };
      const res = await request(`https://127.0.0.1:${injector.address.port}/mutate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(reviewOf(pod, { namespace }, uid)), dispatcher });
      expect(res.statusCode).toBe(200);
      return ((await res.body.json()) as { response: { uid: string; allowed: boolean; patch?: string; warnings?: string[]; status?: { message: string } } }).response;
    };

    const first = await post('demo', 'ok-1');
    expect(first).toMatchObject({ uid: 'ok-1', allowed: true });
    expect(hasSidecar(patchOf({ response: first }))).toBe(true);
    // Someone edits the ConfigMap by hand; within the cache time nothing changes, after it pods are refused.
    maps.demo = TYPO;
    expect((await post('demo', 'ok-2')).allowed).toBe(true);
    clock += 30_000;
    const refused = await post('demo', 'bad-1');
    expect(refused.allowed).toBe(false);
    expect(refused.status!.message).toContain('ConfigMap demo/llm-gateway-sidecar is invalid, so an injected sidecar would exit at start: config.yaml: cache: unknown key "ttlSecond"');
    // Fixed: a broken verdict is kept 5 s at most.
    maps.demo = GOOD;
    clock += 5_000;
    expect((await post('demo', 'ok-3')).allowed).toBe(true);
    // No ConfigMap in the namespace; a ConfigMap the injector may not read is not judged.
    expect((await post('elsewhere', 'missing-1')).status!.message).toContain('ConfigMap elsewhere/llm-gateway-sidecar does not exist');
    const locked = await post('locked', 'locked-1');
    expect(locked.allowed).toBe(true);
    expect(hasSidecar(patchOf({ response: locked }))).toBe(true);
    expect(requests.filter((u) => u.endsWith('/configmaps/llm-gateway-sidecar'))).toEqual([
      '/api/v1/namespaces/demo/configmaps/llm-gateway-sidecar',
      '/api/v1/namespaces/demo/configmaps/llm-gateway-sidecar',
      '/api/v1/namespaces/demo/configmaps/llm-gateway-sidecar',
      '/api/v1/namespaces/elsewhere/configmaps/llm-gateway-sidecar',
      '/api/v1/namespaces/locked/configmaps/llm-gateway-sidecar',
    ]);

    const metrics = await (await request(`http://127.0.0.1:${injector.statusAddress.port}/metrics`)).body.text();
    expect(metrics).toContain('llmgw_injector_reviews_total{result="denied",reason="invalid-sidecar-config"} 1');
    expect(metrics).toContain('llmgw_injector_reviews_total{result="denied",reason="missing-sidecar-config"} 1');
    const warned = logs.filter((l) => l.level === 40);
    expect(warned.map((l) => [l.uid, l.namespace, l.reason])).toEqual([
      ['bad-1', 'demo', 'invalid-sidecar-config'],
      ['missing-1', 'elsewhere', 'missing-sidecar-config'],
    ]);
    expect((warned[0]!.problems as string[]).join('\n')).toContain('config.yaml: cache: unknown key "ttlSecond"');
    expect(logs.find((l) => l.uid === 'locked-1')?.sidecarConfig).toBe('not checked: could not read ConfigMap locked/llm-gateway-sidecar (HTTP 403)');
  });
});
