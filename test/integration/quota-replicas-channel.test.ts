// The sidecar's quota client against several quota-service replicas over real gRPC: one channel to an
// address list (grpc-js's `ipv4:` target, the resolver path a `dns:///` headless Service takes with its
// A records), calls spread round robin, and a replica that stops, is killed or drops a call mid-flight
// costs the caller no failed call. Each replica has its own SQLite file here, so the calls are ReportUsage
// with nothing to report (every replica answers it alike); what a lease does across replicas waits for
// the shared store.
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { createGrpcQuotaClient, retriesOnUnavailable } from '../../sidecar/quota/quota-client.js';
import { QuotaRpcError, RpcStatus, type QuotaRpc } from '../../sidecar/quota/quota-rpc.js';
import { createQuotaClient } from '../../sidecar/quota/worker-quota-client.js';
import { killAll, startCli } from '../helpers/cli.js';

const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  killAll();
});

/** A replica as the test sees it: where it listens, and how many ReportUsage calls it answered OK. */
interface Replica {
  port: number;
  answered(): Promise<number>;
}

const answeredAt = (statusPort: number) => async (): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${statusPort}/metrics`)).text();
  const m = /^llmgw_quota_rpcs_total\{method="ReportUsage",code="OK"\} (\d+)$/m.exec(text);
  return m === null ? 0 : Number(m[1]);
};

async function inProcessReplica(): Promise<Replica & { service: QuotaService }> {
  const service = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(mkdtempSync(join(tmpdir(), 'llmgw-replica-')), 'quota.db'),
    logger: pino({ level: 'silent' }),
    auth: { mode: 'none' },
  });
  cleanup.push(() => service.stop());
  return { service, port: service.address.port, answered: answeredAt(service.statusAddress.port) };
}

/** A replica in a process of its own (the built executable), so it can be killed outright. */
async function processReplica(): Promise<Replica & { kill(): Promise<void> }> {
  const db = join(mkdtempSync(join(tmpdir(), 'llmgw-replica-')), 'quota.db');
  const proc = startCli(['quota-service', '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--db', db, '--auth', 'none']);
  const started = JSON.parse(await proc.waitForLine(/quota service started/)) as Record<string, { port: number }>;
  return {
    port: started.listen!.port,
    answered: answeredAt(started.statusListen!.port),
    kill: async () => {
      proc.child.kill('SIGKILL');
      await proc.exit;
    },
  };
}

/** A "replica" that takes each call and then drops its connection, as one that crashes mid-call does. */
async function crashingReplica(): Promise<{ port: number; calls: string[] }> {
  const calls: string[] = [];
  const server: Http2Server = createHttp2Server();
  server.on('stream', (stream, headers) => {
    calls.push(String(headers[':path']));
    stream.session?.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as { port: number }).port, calls };
}

/**
 * A TCP relay to `port` that can go silent: from `vanish()` on it forwards nothing either way and closes
 * nothing, as when a replica's node is gone (no FIN, no RST).
 */
async function vanishingRelay(port: number): Promise<{ port: number; vanish(): void }> {
  const open: Socket[] = [];
  let gone = false;
  const server = createTcpServer((downstream) => {
    open.push(downstream);
    if (gone) return;
    const upstream = connect(port, '127.0.0.1');
    open.push(upstream);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => {
    for (const s of open) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as { port: number }).port,
    vanish: () => {
      gone = true;
      for (const s of open) {
        s.unpipe();
        s.pause();
      }
    },
  };
}

function clientOf(ports: number[]): QuotaRpc {
  const rpc = createGrpcQuotaClient(`ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, { token: () => '' });
  cleanup.push(() => rpc.close());
  return rpc;
}

const report = (rpc: QuotaRpc, timeoutMs = 3000) =>
  rpc.report({ identity: { namespace: 'replicas', service: 'app', team: '', pod: 'app-1' }, incarnation: 'replicas-test-1', reports: [] }, timeoutMs);

const renew = (unusedTokens: number) => ({ leaseId: 'no-such-lease', needTokens: 0, demandTokensPerSecond: 0, reports: [], unusedTokens });

/** Every replica has a connection: round robin spreads only over the replicas that are up. */
async function warmUp(rpc: QuotaRpc, replicas: Replica[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    await report(rpc);
    const counts = await Promise.all(replicas.map((r) => r.answered()));
    if (counts.every((c) => c > 0)) return;
  }
  throw new Error('not every replica got a call');
}

/**
 * Calls from `lanes` concurrent callers until `stop()`: what failed (as the caller saw it), and when each
 * call ended.
 */
function callContinuously(rpc: QuotaRpc, lanes: number) {
  const failures: string[] = [];
  const ends: number[] = [];
  let running = true;
  const done = Promise.all(
    Array.from({ length: lanes }, async () => {
      while (running) {
        try {
          await report(rpc);
          ends.push(Date.now());
        } catch (err) {
          failures.push(String(err));
        }
      }
    }),
  );
  return {
    failures,
    ends,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe('the quota client over several replicas', () => {
  it('spreads calls round robin over every replica of the address list', async () => {
    const replicas = await Promise.all([inProcessReplica(), inProcessReplica(), inProcessReplica()]);
    const rpc = clientOf(replicas.map((r) => r.port));
    await warmUp(rpc, replicas);
    const before = await Promise.all(replicas.map((r) => r.answered()));
    for (let i = 0; i < 30; i++) await report(rpc);
    const got = (await Promise.all(replicas.map((r) => r.answered()))).map((n, i) => n - before[i]!);
    expect(got.reduce((a, b) => a + b)).toBe(30);
    // Round robin over three connections that are all up: ten each, give or take the rotation's start.
    for (const n of got) expect(n).toBeGreaterThanOrEqual(9);
  });

  it('spreads the calls of the sidecar\'s own client (its worker thread) over every replica too', async () => {
    const replicas = await Promise.all([inProcessReplica(), inProcessReplica()]);
    const rpc = createQuotaClient(`ipv4:${replicas.map((r) => `127.0.0.1:${r.port}`).join(',')}`, { token: () => '' });
    cleanup.push(() => rpc.close());
    await warmUp(rpc, replicas);
    const before = await Promise.all(replicas.map((r) => r.answered()));
    for (let i = 0; i < 20; i++) await report(rpc);
    const got = (await Promise.all(replicas.map((r) => r.answered()))).map((n, i) => n - before[i]!);
    expect(got.reduce((a, b) => a + b)).toBe(20);
    for (const n of got) expect(n).toBeGreaterThanOrEqual(9);
  });

  it('fails no call while a replica shuts down mid-run, and moves its share to the others', async () => {
    const replicas = await Promise.all([inProcessReplica(), inProcessReplica(), inProcessReplica()]);
    const rpc = clientOf(replicas.map((r) => r.port));
    await warmUp(rpc, replicas);
    const run = callContinuously(rpc, 8);
    await new Promise((r) => setTimeout(r, 300));
    const stoppedAt = Date.now();
    await replicas[0]!.service.stop();
    const afterStop = await Promise.all(replicas.slice(1).map((r) => r.answered()));
    await new Promise((r) => setTimeout(r, 500));
    await run.stop();
    expect(run.failures).toEqual([]);
    expect(run.ends.filter((t) => t > stoppedAt).length).toBeGreaterThan(20);
    // The live replicas took the calls after the stop.
    const later = await Promise.all(replicas.slice(1).map((r) => r.answered()));
    for (const [i, n] of later.entries()) expect(n).toBeGreaterThan(afterStop[i]!);
  });

  it('fails no call when a replica is killed with calls in flight, and the next call lands on a live one within a second', async () => {
    const replicas = await Promise.all([processReplica(), processReplica()]);
    const rpc = clientOf(replicas.map((r) => r.port));
    await warmUp(rpc, replicas);
    const run = callContinuously(rpc, 16);
    await new Promise((r) => setTimeout(r, 300));
    const [doomed, live] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    const killedAt = Date.now();
    await doomed.kill();
    const liveBefore = await live.answered();
    await new Promise((r) => setTimeout(r, 500));
    await run.stop();
    expect(run.failures).toEqual([]);
    const firstAfter = Math.min(...run.ends.filter((t) => t > killedAt));
    expect(firstAfter - killedAt).toBeLessThan(1000);
    // Every call after the kill was answered by the live replica.
    expect(await live.answered()).toBeGreaterThan(liveBefore);
    const again = await live.answered();
    for (let i = 0; i < 10; i++) await report(rpc);
    expect(await live.answered()).toBe(again + 10);
  });

  it('drops a replica whose node vanished (no FIN, no RST) within seconds, by keepalive', async () => {
    const [far, near] = await Promise.all([inProcessReplica(), inProcessReplica()]);
    const relay = await vanishingRelay(far.port);
    const rpc = clientOf([relay.port, near.port]);
    await warmUp(rpc, [far, near]);
    relay.vanish();
    const vanishedAt = Date.now();
    // Calls that meet the silent connection before keepalive gives up on it wait out their deadline; once
    // it has, every call goes to the replica that is left.
    let streak = 0;
    while (streak < 10) {
      expect(Date.now() - vanishedAt, 'the vanished replica was still picked').toBeLessThan(12_000);
      streak = (await report(rpc, 300).then(() => true, () => false)) ? streak + 1 : 0;
    }
    const before = await near.answered();
    for (let i = 0; i < 10; i++) await report(rpc, 300);
    expect(await near.answered()).toBe(before + 10);
  }, 20_000);

  it('sends a call whose connection broke once more, to another replica', async () => {
    const crashing = await crashingReplica();
    const good = await inProcessReplica();
    const rpc = clientOf([crashing.port, good.port]);
    for (let i = 0; i < 20; i++) await report(rpc);
    // Round robin took some calls to the crashing replica, and each was answered by the good one.
    expect(crashing.calls.length).toBeGreaterThan(0);
    expect(crashing.calls.every((p) => p === '/llmgw.quota.v1.QuotaService/ReportUsage')).toBe(true);
  });

  it('does not send again a renew that gives tokens back (twice, the service would take them off twice)', async () => {
    const crashing = await crashingReplica();
    const rpc = clientOf([crashing.port]);
    const err = await rpc.renew(renew(500), 3000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaRpcError);
    expect((err as QuotaRpcError).code).toBe(RpcStatus.UNAVAILABLE);
    expect(crashing.calls).toHaveLength(1);
    // One that gives nothing back is sent again (here to the same replica, the only one).
    await rpc.renew(renew(0), 3000).catch(() => undefined);
    expect(crashing.calls).toHaveLength(3);
  });

  it('names the calls that are safe to send again', () => {
    for (const m of ['AcquireLease', 'ReleaseLease', 'ReportUsage', 'GetProviderKeys'] as const) expect(retriesOnUnavailable(m, {})).toBe(true);
    expect(retriesOnUnavailable('RenewLease', renew(0))).toBe(true);
    expect(retriesOnUnavailable('RenewLease', renew(1))).toBe(false);
    expect(retriesOnUnavailable('RenewLease', { ...renew(0), unusedNanoUsd: 5 })).toBe(false);
  });
});
