// The injector over real HTTPS with a generated certificate: the AdmissionReview contract, transport
// errors, certificate rotation without a restart, and namespace defaults read from a fake API server.
import { copyFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { apiNamespaceSource, noNamespaceSource, type NamespaceSource } from '../../injector-webhook/namespaces.js';
import { startInjector, type Injector } from '../../injector-webhook/server.js';
import { selfSigned, type Cert } from '../helpers/certs.js';
import { eventually } from '../helpers/stack.js';
import { configFor, reviewOf } from '../helpers/admission.js';

const open: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.stop();
});

const POD = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'chat-', namespace: 'demo', labels: { app: 'chat' } }, spec: { containers: [{ name: 'chat', image: 'app:1' }] } };

async function start(opts: { cert?: Cert; namespaces?: NamespaceSource } = {}): Promise<{ injector: Injector; cert: Cert; url: string; post: (body: unknown, headers?: Record<string, string>) => Promise<{ status: number; json: any }> }> {
  const cert = opts.cert ?? selfSigned('injector-a');
  const injector = await startInjector({
    config: configFor({}),
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    certFile: cert.certFile,
    keyFile: cert.keyFile,
    namespaces: opts.namespaces ?? noNamespaceSource,
    logger: pino({ level: 'silent' }),
    certPollMs: 50,
  });
  open.push(injector);
  const url = `https://127.0.0.1:${injector.address.port}`;
  const dispatcher = new Agent({ connect: { ca: cert.cert } });
  open.push({ stop: () => dispatcher.close() });
  const post = async (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
    const res = await request(`${url}/mutate`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body), dispatcher });
    const text = await res.body.text();
    return { status: res.statusCode, json: JSON.parse(text) };
  };
  return { injector, cert, url, post };
}

function fingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.once('error', reject);
  });
}

describe('injector over HTTPS', () => {
  it('echoes the uid and answers with a base64 JSON patch', async () => {
    const { post } = await start();
    const res = await post(reviewOf(POD, {}, 'uid-1234'));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-1234', allowed: true, patchType: 'JSONPatch' } });
    const ops = JSON.parse(Buffer.from(res.json.response.patch, 'base64').toString('utf8')) as { path: string; value: { name?: string } }[];
    expect(ops.find((o) => o.path === '/spec/initContainers/0')?.value.name).toBe('llm-gateway');
  });

  it('answers a denial and a skip in the AdmissionResponse shapes', async () => {
    const { post } = await start();
    const bad = { ...POD, metadata: { ...POD.metadata, annotations: { 'llm-gateway.dev/cpu-limit': 'x', 'llm-gateway.dev/inject': 'maybe' } } };
    const denied = await post(reviewOf(bad, {}, 'uid-deny'));
    expect(denied.status).toBe(200);
    expect(denied.json.response).toMatchObject({ uid: 'uid-deny', allowed: false, status: { code: 400, reason: 'BadRequest' } });
    expect(denied.json.response.status.message).toContain('llm-gateway.dev/cpu-limit');
    expect(denied.json.response.status.message).toContain('llm-gateway.dev/inject');
    const host = { ...POD, spec: { ...POD.spec, hostNetwork: true } };
    const skipped = await post(reviewOf(host, {}, 'uid-skip'));
    expect(skipped.json.response).toMatchObject({ uid: 'uid-skip', allowed: true, patchType: 'JSONPatch' });
    expect(skipped.json.response.warnings).toEqual(['llm-gateway: not injected (host-network): host-network pods are not injected (the sidecar would listen on the node)']);
  });

  it('refuses what is not a well-formed review: 415, 400, 413, 404, 405', async () => {
    const { post, url, cert } = await start();
    expect((await post(reviewOf(POD, {}), { 'content-type': 'text/plain' })).status).toBe(415);
    const notJson = await post('{"apiVersion":', { 'content-type': 'application/json' });
    expect(notJson.status).toBe(400);
    const noUid = await post({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' }, operation: 'CREATE' } });
    expect(noUid.status).toBe(400);
    expect(noUid.json.error).toContain('request.uid is missing');
    const v1beta1 = await post({ ...(reviewOf(POD, {}) as object), apiVersion: 'admission.k8s.io/v1beta1' });
    expect(v1beta1.status).toBe(400);
    const huge = await post({ ...(reviewOf(POD, {}) as object), padding: 'x'.repeat(5 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    const dispatcher = new Agent({ connect: { ca: cert.cert } });
    expect((await request(`${url}/other`, { method: 'POST', dispatcher })).statusCode).toBe(404);
    expect((await request(`${url}/mutate`, { method: 'GET', dispatcher })).statusCode).toBe(405);
    await dispatcher.close();
    // Still serving.
    expect((await post(reviewOf(POD, {}, 'after'))).json.response.uid).toBe('after');
  });

  it('serves a rotated certificate without a restart, and keeps the old one while the new pair is half-written', async () => {
    const a = selfSigned('injector-a');
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-rotate-'));
    const live = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), cert: a.cert, key: a.key };
    copyFileSync(a.certFile, live.certFile);
    copyFileSync(a.keyFile, live.keyFile);
    const { injector } = await start({ cert: live });
    const port = injector.address.port;
    const b = selfSigned('injector-b');
    const before = await fingerprint(port, a.cert);

    // Only the key changes first: the pair does not match, the old certificate stays.
    writeFileSync(join(dir, 'tls.key.tmp'), b.key);
    renameSync(join(dir, 'tls.key.tmp'), live.keyFile);
    await new Promise((r) => setTimeout(r, 300));
    expect(await fingerprint(port, a.cert)).toBe(before);

    writeFileSync(join(dir, 'tls.crt.tmp'), b.cert);
    renameSync(join(dir, 'tls.crt.tmp'), live.certFile);
    let after = before;
    await eventually(async () => {
      after = await fingerprint(port, b.cert);
      expect(after).not.toBe(before);
    }, 5000);
  });

  it('applies namespace defaults from the API, and injects without them when the API is down', async () => {
    let calls = 0;
    const api: Server = createServer((req, res) => {
      calls++;
      expect(req.headers.authorization).toBe('Bearer sa-token');
      if (req.url === '/api/v1/namespaces/demo') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Namespace', metadata: { name: 'demo', annotations: { 'llm-gateway.dev/cpu-limit': '3', 'llm-gateway.dev/team': 'payments', 'other.io/x': 'y' } } }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    open.push({ stop: () => new Promise<void>((r) => api.close(() => r())) });
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'llmgw-sa-')), 'token');
    writeFileSync(tokenFile, 'sa-token\n');
    const port = (api.address() as { port: number }).port;
    const { post } = await start({ namespaces: apiNamespaceSource({ baseUrl: `http://127.0.0.1:${port}`, tokenFile }) });

    const sidecar = (res: { json: any }) => {
      const ops = JSON.parse(Buffer.from(res.json.response.patch, 'base64').toString('utf8')) as { path: string; value: { env: { name: string }[]; resources: { limits: { cpu?: string } } } }[];
      return ops.find((o) => o.path === '/spec/initContainers/0')!.value;
    };
    const first = await post(reviewOf(POD, {}, 'ns-1'));
    expect(sidecar(first).resources.limits.cpu).toBe('3');
    // A team claimed by the namespace is ignored with a warning: team membership is operator data.
    expect(sidecar(first).env.some((e) => e.name === 'LLMGW_TEAM')).toBe(false);
    expect(first.json.response.warnings).toContainEqual(expect.stringMatching(/llm-gateway\.dev\/team is ignored: .*llmgw team set payments --namespaces demo/));
    await post(reviewOf(POD, {}, 'ns-2'));
    expect(calls).toBe(1); // cached

    const elsewhere = await post(reviewOf({ ...POD, metadata: { ...POD.metadata, namespace: 'other' } }, { namespace: 'other' }, 'ns-3'));
    expect(elsewhere.json.response.allowed).toBe(true);
    expect(elsewhere.json.response.warnings[0]).toMatch(/could not read namespace other's defaults \(HTTP 404\); injected without them/);
    expect(sidecar(elsewhere).resources.limits.cpu).toBe('1');
  });
});

describe('llmgw injector (the executable)', () => {
  it('starts from its config and certificate, answers a review, and exits 2 on a bad config', async () => {
    const { startCli, runCli, killAll } = await import('../helpers/cli.js');
    const cert = selfSigned('injector-cli');
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-injector-cli-'));
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ image: 'ghcr.io/llm-gateway/llm-gateway:0.1.0', releaseNamespace: 'llm-gateway', nativeSidecar: { kubernetesVersion: 'v1.31.0' } }));
    const proc = startCli(['injector', '--config', configFile, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0']);
    try {
      const line = await proc.waitForLine(/injector started/);
      const port = (JSON.parse(line) as { listen: { port: number } }).listen.port;
      const dispatcher = new Agent({ connect: { ca: cert.cert } });
      const res = await request(`https://127.0.0.1:${port}/mutate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(reviewOf(POD, {}, 'cli-uid')), dispatcher });
      const body = (await res.body.json()) as { response: { uid: string; allowed: boolean; patch: string } };
      expect(body.response).toMatchObject({ uid: 'cli-uid', allowed: true });
      await dispatcher.close();
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toBe(0);
    } finally {
      killAll();
    }
    writeFileSync(configFile, JSON.stringify({ image: '', releaseNamespace: 'x', nativeSidecar: { mode: 'sometimes' } }));
    const bad = await runCli(['injector', '--config', configFile, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('config.json: image:');
    expect(bad.stderr).toContain('config.json: nativeSidecar.mode:');
  });
});
