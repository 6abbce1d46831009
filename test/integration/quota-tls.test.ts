// TLS and mutual TLS on the quota gRPC connection over a real grpc-js server serving the health service:
// who is let in, server names, and certificate and CA rotation on disk with calls in flight.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, status as grpcStatus, type Client, type ServerCredentials, type ServiceError } from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channelTlsCredentials, serverTlsCredentials, type ChannelTlsOptions, type ServerTlsOptions } from '../../common/tls/grpc-credentials.js';
import { loadQuotaProto } from '../../proto/load.js';
import { HealthService } from '../../quota-service/health.js';
import { createCa, issue, issueLocalServer, replaceFile, type Ca, type Issued } from '../helpers/pki.js';

const { Health } = loadQuotaProto();
const SERVER_NAME = 'quota.llm-gateway.svc';

let caA: Ca;
let caB: Ca;
let serverA: Issued;
let serverB: Issued;
let serverNamed: Issued;
let clientA: Issued;
let clientB: Issued;

beforeAll(() => {
  caA = createCa('quota-ca-a');
  caB = createCa('quota-ca-b');
  serverA = issueLocalServer(caA, 'quota-a');
  serverB = issueLocalServer(caB, 'quota-b');
  serverNamed = issue(caA, { cn: SERVER_NAME, dns: [SERVER_NAME] });
  clientA = issue(caA, { cn: 'sidecar-a', client: true });
  clientB = issue(caB, { cn: 'sidecar-b', client: true });
});

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Running {
  port: number;
  /** Calls that reached the Check handler. */
  handled: number;
  stop(): void;
}

async function startServer(credentials: ServerCredentials, port = 0): Promise<Running> {
  const server = new Server();
  const impl = new HealthService([]).implementation();
  const running: Running = { port, handled: 0, stop: () => server.forceShutdown() };
  server.addService(Health.service, {
    ...impl,
    Check: (call: unknown, cb: unknown) => {
      running.handled++;
      (impl.Check as (c: unknown, cb: unknown) => void)(call, cb);
    },
  });
  // A restart on the same port can race the release of the old listener: retry briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      running.port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, credentials, (err, p) => (err ? reject(err) : resolve(p))));
      break;
    } catch (err) {
      if (attempt >= 20) throw err;
      await sleep(50);
    }
  }
  cleanups.push(running.stop);
  return running;
}

function serverTls(opts: ServerTlsOptions): ServerCredentials {
  const tls = serverTlsCredentials(opts);
  cleanups.push(tls.close);
  return tls.credentials;
}

type Tls = ReturnType<typeof channelTlsCredentials>;

function clientTls(opts: ChannelTlsOptions): Tls {
  const tls = channelTlsCredentials(opts);
  cleanups.push(tls.close);
  return tls;
}

type HealthClient = Client & {
  Check(req: { service: string }, opts: { deadline: number }, cb: (err: ServiceError | null, res: { status: string }) => void): void;
};

/** A Health client on its own connection (no subchannel shared with other clients of the same credentials). */
function healthClient(port: number, tls: Tls): HealthClient {
  const client = new Health(`127.0.0.1:${port}`, tls.credentials, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 100,
    ...tls.channelOptions,
  }) as unknown as HealthClient;
  cleanups.push(() => client.close());
  return client;
}

type Outcome = { ok: true; status: string } | { ok: false; code: grpcStatus; details: string };

function check(client: HealthClient, timeoutMs = 3000): Promise<Outcome> {
  return new Promise((resolve) => {
    client.Check({ service: '' }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, status: res.status }),
    );
  });
}

/** One call on a fresh client (fresh connection), closed afterwards. */
async function checkOnce(port: number, tls: Tls): Promise<Outcome> {
  const client = healthClient(port, tls);
  try {
    return await check(client);
  } finally {
    client.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

/** Files a test may replace: copies of `files` in a fresh directory under the names Kubernetes mounts. */
function mutable(files: { cert?: string; key?: string; ca?: string }): { certFile: string; keyFile: string; caFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-tls-'));
  const out = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt') };
  if (files.cert !== undefined) writeFileSync(out.certFile, files.cert);
  if (files.key !== undefined) writeFileSync(out.keyFile, files.key);
  if (files.ca !== undefined) writeFileSync(out.caFile, files.ca);
  return out;
}

function reloadLog(): { entries: { result: 'ok' | 'failed'; detail: string }[]; onReload: (result: 'ok' | 'failed', detail: string) => void } {
  const entries: { result: 'ok' | 'failed'; detail: string }[] = [];
  return { entries, onReload: (result, detail) => entries.push({ result, detail }) };
}

const refused = { ok: false, code: grpcStatus.UNAVAILABLE };

describe('quota gRPC over TLS', () => {
  it('serves a client that trusts its CA and refuses one that trusts another CA before any call is handled', async () => {
    const server = await startServer(serverTls({ certFile: serverA.certFile, keyFile: serverA.keyFile }));
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile }))).toEqual({ ok: true, status: 'SERVING' });
    expect(server.handled).toBe(1);

    const wrong = await checkOnce(server.port, clientTls({ caFile: caB.certFile }));
    expect(wrong).toMatchObject(refused);
    expect(wrong.ok ? '' : wrong.details).toMatch(/certificate/i);
    expect(server.handled).toBe(1);
  });

  it('with a client CA, refuses clients without a certificate or with one from another CA, and serves a good one', async () => {
    const server = await startServer(serverTls({ certFile: serverA.certFile, keyFile: serverA.keyFile, clientCaFile: caA.certFile }));
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile }))).toMatchObject(refused);
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile, certFile: clientB.certFile, keyFile: clientB.keyFile }))).toMatchObject(refused);
    expect(server.handled).toBe(0);
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile, certFile: clientA.certFile, keyFile: clientA.keyFile }))).toEqual({ ok: true, status: 'SERVING' });
    expect(server.handled).toBe(1);
  });

  it('refuses a client certificate without its key, naming the file', () => {
    expect(() => channelTlsCredentials({ caFile: caA.certFile, certFile: clientA.certFile })).toThrow(`a client certificate file (${clientA.certFile}) needs its key file too`);
    expect(() => channelTlsCredentials({ caFile: caA.certFile, keyFile: clientA.keyFile })).toThrow(`a client key file (${clientA.keyFile}) needs its certificate file too`);
  });

  it('verifies the server against serverName when dialling an address its certificate does not name', async () => {
    const server = await startServer(serverTls({ certFile: serverNamed.certFile, keyFile: serverNamed.keyFile }));
    const withoutName = await checkOnce(server.port, clientTls({ caFile: caA.certFile }));
    expect(withoutName).toMatchObject(refused);
    expect(withoutName.ok ? '' : withoutName.details).toContain('127.0.0.1');
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile, serverName: SERVER_NAME }))).toEqual({ ok: true, status: 'SERVING' });
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile, serverName: 'other.llm-gateway.svc' }))).toMatchObject(refused);
  });
});

describe('rotation on disk', () => {
  it('rotates the server certificate under load with no failed call: open connections stay, new ones get the new certificate', async () => {
    const files = mutable({ cert: serverA.cert, key: serverA.key });
    const reloads = reloadLog();
    const server = await startServer(serverTls({ certFile: files.certFile, keyFile: files.keyFile, refreshMs: 100, onReload: reloads.onReload }));
    // Trusts only the old CA: it can only keep succeeding after the rotation on the connection it already has.
    const persistent = healthClient(server.port, clientTls({ caFile: caA.certFile }));
    const bothCas = mutable({ ca: caA.cert + caB.cert });
    const fresh = clientTls({ caFile: bothCas.caFile });

    const tally = { persistent: 0, fresh: 0, failures: [] as Outcome[] };
    let running = true;
    const persistentLoop = (async () => {
      while (running) {
        const o = await check(persistent);
        if (o.ok) tally.persistent++;
        else tally.failures.push(o);
        await sleep(3);
      }
    })();
    // A new connection every ~20 ms: would catch a server without a usable certificate for a moment.
    const freshLoop = (async () => {
      while (running) {
        const o = await checkOnce(server.port, fresh);
        if (o.ok) tally.fresh++;
        else tally.failures.push(o);
        await sleep(15);
      }
    })();

    await sleep(300);
    replaceFile(files.certFile, serverB.cert);
    // Several polls see the new certificate with the old key.
    await sleep(350);
    expect(reloads.entries).toEqual([{ result: 'failed', detail: expect.stringContaining('does not match') }]);
    replaceFile(files.keyFile, serverB.key);
    await waitFor(() => reloads.entries.some((e) => e.result === 'ok'));
    await sleep(300);
    running = false;
    await Promise.all([persistentLoop, freshLoop]);

    expect(tally.failures).toEqual([]);
    expect(tally.persistent).toBeGreaterThan(50);
    expect(tally.fresh).toBeGreaterThan(10);
    expect(reloads.entries.map((e) => e.result)).toEqual(['failed', 'ok']);
    expect(reloads.entries[1]!.detail).toContain('CN=quota-b');
    // New connections are handed the new certificate.
    expect(await checkOnce(server.port, clientTls({ caFile: caB.certFile }))).toEqual({ ok: true, status: 'SERVING' });
    expect(await checkOnce(server.port, clientTls({ caFile: caA.certFile }))).toMatchObject(refused);
    expect(await check(persistent)).toEqual({ ok: true, status: 'SERVING' });
  }, 15_000);

  it('rotates the client CA on the server: new connections are verified against the new CA, open ones are not re-verified', async () => {
    const files = mutable({ ca: caA.cert });
    const reloads = reloadLog();
    const server = await startServer(serverTls({ certFile: serverA.certFile, keyFile: serverA.keyFile, clientCaFile: files.caFile, refreshMs: 100, onReload: reloads.onReload }));
    const asA = clientTls({ caFile: caA.certFile, certFile: clientA.certFile, keyFile: clientA.keyFile });
    const asB = clientTls({ caFile: caA.certFile, certFile: clientB.certFile, keyFile: clientB.keyFile });
    const connectedA = healthClient(server.port, asA);
    expect(await check(connectedA)).toEqual({ ok: true, status: 'SERVING' });
    expect(await checkOnce(server.port, asB)).toMatchObject(refused);

    replaceFile(files.caFile, caB.cert);
    await waitFor(() => reloads.entries.length > 0);
    expect(reloads.entries).toEqual([{ result: 'ok', detail: expect.stringContaining('CN=quota-ca-b') }]);

    expect(await checkOnce(server.port, asB)).toEqual({ ok: true, status: 'SERVING' });
    expect(await checkOnce(server.port, asA)).toMatchObject(refused);
    // The connection made under the old client CA keeps working until it reconnects.
    expect(await check(connectedA)).toEqual({ ok: true, status: 'SERVING' });
  }, 15_000);

  it('rotates the CA on the client: a channel that reconnects verifies the server with the new CA file', async () => {
    const first = await startServer(serverTls({ certFile: serverA.certFile, keyFile: serverA.keyFile }));
    const files = mutable({ ca: caA.cert });
    const reloads = reloadLog();
    const rotating = healthClient(first.port, clientTls({ caFile: files.caFile, refreshMs: 100, onReload: reloads.onReload }));
    const pinnedToA = healthClient(first.port, clientTls({ caFile: caA.certFile }));
    expect(await check(rotating)).toEqual({ ok: true, status: 'SERVING' });
    expect(await check(pinnedToA)).toEqual({ ok: true, status: 'SERVING' });

    replaceFile(files.caFile, caB.cert);
    await waitFor(() => reloads.entries.length > 0);
    expect(reloads.entries).toEqual([{ result: 'ok', detail: expect.stringContaining('CN=quota-ca-b') }]);
    // The open connection is not re-verified against the new CA.
    expect(await check(rotating)).toEqual({ ok: true, status: 'SERVING' });

    // The quota service restarts on the same port with a certificate from the new CA.
    first.stop();
    const second = await startServer(serverTls({ certFile: serverB.certFile, keyFile: serverB.keyFile }), first.port);
    let last: Outcome = { ok: false, code: grpcStatus.UNKNOWN, details: 'not called' };
    const deadline = Date.now() + 5000;
    while (!last.ok && Date.now() < deadline) {
      last = await check(rotating);
      if (!last.ok) await sleep(50);
    }
    expect(last).toEqual({ ok: true, status: 'SERVING' });
    expect(await check(pinnedToA)).toMatchObject(refused);
    // Only the successful call reached the new server.
    expect(second.handled).toBe(1);
  }, 15_000);
});
