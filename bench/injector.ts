// `npm run bench:injector [-- --reviews N]`: admission latency of `llmgw injector` (DESIGN §8: p99 ≤ 10 ms).
// The injector runs as the built executable pinned to core 0 with a generated certificate; the client,
// on core 1, sends AdmissionReviews of a typical Deployment pod over one keep-alive HTTPS connection
// (concurrency 1), then over 8, and reports latency percentiles as the API server would see them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { freePort, pinSelf, startProc } from './lib/proc.js';
import { median, percentile } from './lib/stats.js';
import { LOAD_CORE, SUT_CORE } from './lib/targets.js';

const cli = join(import.meta.dirname, '..', 'llmgw', 'main.mjs');

function review(i: number): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `bench-${i}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'demo',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'chat-7d9f8-', namespace: 'demo', labels: { 'app.kubernetes.io/name': 'chat', 'pod-template-hash': '7d9f8' } },
        spec: {
          serviceAccountName: 'chat',
          containers: [
            { name: 'chat', image: 'registry.example/chat:1', ports: [{ containerPort: 8080 }], env: [{ name: 'MODE', value: 'prod' }] },
            { name: 'metrics', image: 'prom/statsd-exporter:v0.26' },
          ],
          volumes: [{ name: 'cache', emptyDir: {} }],
        },
      },
    },
  });
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--reviews');
  const n = at === -1 ? 3000 : Number(process.argv[at + 1]);
  pinSelf(LOAD_CORE);
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-bench-injector-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=injector', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ image: 'ghcr.io/llm-gateway/llm-gateway:0.1.0', releaseNamespace: 'llm-gateway', nativeSidecar: { kubernetesVersion: '1.30.0' }, quotaAddress: 'quota:50051' }));
  const [port, statusPort] = [await freePort(), await freePort()];
  const proc = await startProc({
    name: 'injector',
    cmd: process.execPath,
    args: [cli, 'injector', '--config', config, '--tls-cert', certFile, '--tls-key', keyFile, '--listen', `127.0.0.1:${port}`, '--status-listen', `127.0.0.1:${statusPort}`, '--log-level', 'warn'],
    core: SUT_CORE,
    readyUrl: `http://127.0.0.1:${statusPort}/healthz/ready`,
  });
  const dispatcher = new Agent({ connect: { ca: readFileSync(certFile) }, connections: 8 });
  const one = async (i: number): Promise<number> => {
    const t = performance.now();
    const res = await request(`https://127.0.0.1:${port}/mutate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: review(i), dispatcher });
    const body = (await res.body.json()) as { response?: { allowed?: boolean; patch?: string } };
    if (res.statusCode !== 200 || body.response?.allowed !== true || body.response.patch === undefined) throw new Error(`review ${i}: HTTP ${res.statusCode}`);
    return performance.now() - t;
  };
  try {
    for (let i = 0; i < 300; i++) await one(i); // warm-up
    const serial: number[] = [];
    for (let i = 0; i < n; i++) serial.push(await one(i));
    const concurrent: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = w; i < n; i += 8) concurrent.push(await one(i));
      }),
    );
    const rps = n / ((performance.now() - started) / 1000);
    const row = (name: string, xs: number[]) => `${name.padEnd(16)} p50 ${median(xs).toFixed(3)} ms  p99 ${percentile(xs, 99).toFixed(3)} ms  max ${Math.max(...xs).toFixed(3)} ms`;
    process.stdout.write(`${row('concurrency 1', serial)}\n${row('concurrency 8', concurrent)}  (${rps.toFixed(0)} reviews/s)\n`);
    const p99 = percentile(serial, 99);
    process.stdout.write(`DESIGN §8 injector p99 ≤ 10 ms at concurrency 1: ${p99.toFixed(3)} ms — ${p99 <= 10 ? 'met' : 'NOT met'}\n`);
  } finally {
    await dispatcher.close();
    await proc.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:injector: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
