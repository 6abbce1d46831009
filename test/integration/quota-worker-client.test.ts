// The sidecar's quota client runs grpc-js in a worker thread (sidecar/quota/worker-quota-client.ts): calls
// and answers cross as messages, the main thread never loads grpc-js, and a worker that dies fails what
// waited for it and is replaced by the next call. Against a real quota service over gRPC on port 0.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { QuotaRpcError, RpcStatus } from '../../sidecar/quota/quota-rpc.js';
import { createQuotaClient } from '../../sidecar/quota/worker-quota-client.js';
import { createCa, issueLocalServer, replaceFile } from '../helpers/pki.js';

const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function service(tls?: { certFile: string; keyFile: string }): Promise<QuotaService> {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-worker-'));
  const q = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: pino({ level: 'silent' }),
    auth: { mode: 'none' },
    ...(tls ? { tls } : {}),
  });
  cleanup.push(() => q.stop());
  await q.allocator.setBudget('namespace/worker-test', 'day', 10_000);
  return q;
}

const acquire = {
  identity: { namespace: 'worker-test', service: 'app', team: '', pod: 'app-1' },
  priority: 'PRIORITY_INTERACTIVE' as const,
  incarnation: 'worker-test-1',
  needTokens: 100,
  demandTokensPerSecond: 0,
};

describe('the quota client in a worker thread', () => {
  it('carries calls, answers and the service\'s errors across the thread', async () => {
    const q = await service();
    const rpc = createQuotaClient(`127.0.0.1:${q.address.port}`, { token: () => '' });
    cleanup.push(() => rpc.close());
    const lease = await rpc.acquire(acquire, 5000);
    expect(lease.leaseId).not.toBe('');
    expect(lease.grantedTokens).toBeGreaterThanOrEqual(100);
    const released = await rpc.release({ leaseId: lease.leaseId, reports: [{ sequence: 1, tokens: 42, startedAtMs: Date.now() }] }, 5000);
    expect(released.ackedSequence).toBe(1);
    expect((await q.allocator.usage('namespace/worker-test', 'day', 1))[0]!.used).toBe(42);
    const err = await rpc.providerKeys(['openai'], 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaRpcError);
    expect((err as QuotaRpcError).code).toBe(RpcStatus.FAILED_PRECONDITION);
    expect((err as QuotaRpcError).message).toMatch(/^GetProviderKeys: FAILED_PRECONDITION: /);
    rpc.close();
    const closed = await rpc.acquire(acquire, 5000).catch((e: unknown) => e);
    expect((closed as QuotaRpcError).code).toBe(RpcStatus.CANCELLED);
  });

  it('never loads grpc-js in the calling thread', async () => {
    const q = await service();
    // The compiled client, in a process of its own: what it loaded is in its CommonJS cache (grpc-js is CommonJS).
    const script = `
      import { createRequire } from 'node:module';
      const { createQuotaClient } = await import(${JSON.stringify(new URL('../../dist/sidecar/quota/worker-quota-client.js', import.meta.url).href)});
      const rpc = createQuotaClient('127.0.0.1:${q.address.port}', { token: () => '' });
      const lease = await rpc.acquire(${JSON.stringify(acquire)}, 5000);
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@grpc'));
      rpc.close();
      console.log(JSON.stringify({ leaseId: lease.leaseId, loaded }));`;
    // Not execFileSync: the service answers from this process's event loop.
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    const out = JSON.parse(stdout) as { leaseId: string; loaded: string[] };
    expect(out.leaseId).not.toBe('');
    expect(out.loaded).toEqual([]);
  });

  it('fails the calls of a worker that could not start, and starts another for the next call', async () => {
    const ca = createCa('worker-test-ca');
    const server = issueLocalServer(ca);
    const q = await service({ certFile: server.certFile, keyFile: server.keyFile });
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-worker-ca-'));
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, ca.cert);
    const reloads: string[] = [];
    const rpc = createQuotaClient(`127.0.0.1:${q.address.port}`, { token: () => '', tls: { caFile }, onTlsReload: (r) => reloads.push(r) });
    cleanup.push(() => rpc.close());
    // Checked when the client was made (in this thread); broken before the worker reads it.
    replaceFile(caFile, 'not a certificate');
    const err = await rpc.acquire(acquire, 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaRpcError);
    expect((err as QuotaRpcError).code).toBe(RpcStatus.UNAVAILABLE);
    expect((err as QuotaRpcError).message).toContain("the quota client's worker stopped");
    expect((err as QuotaRpcError).message).toContain(caFile);
    replaceFile(caFile, ca.cert);
    const lease = await rpc.acquire(acquire, 5000);
    expect(lease.leaseId).not.toBe('');
  });

  it('refuses unusable TLS files when it is made, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-worker-bad-'));
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, 'not a certificate');
    expect(() => createQuotaClient('127.0.0.1:1', { token: () => '', tls: { caFile } })).toThrow(caFile);
  });
});
