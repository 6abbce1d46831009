// The quota service over TLS (and mutual TLS) with the real sidecar, and provider keys held centrally:
// handed to verified sidecars over TLS only, per the operator's namespace policy, picked up again when
// rotated, sent upstream, and found in no log line, metric, error body or SQLite file.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Metadata, credentials, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { pino } from 'pino';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadQuotaProto } from '../../proto/load.js';
import { createJwksVerifier } from '../../quota-service/auth/jwks-verifier.js';
import { startQuotaService, type QuotaService, type QuotaServiceOptions } from '../../quota-service/quota-service.js';
import { createCa, issue, issueLocalServer, replaceFile, type Ca } from '../helpers/pki.js';
import { createTokenIssuer, type TokenIssuer } from '../helpers/sa-tokens.js';
import { eventually, scrapeMetrics, startStack, type Stack } from '../helpers/stack.js';

const KEY = 'sk-proj-central-key-0123456789abcdef';
const ROTATED = 'sk-proj-rotated-key-fedcba9876543210';
const dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-tls-'));
const closing: (() => Promise<void> | void)[] = [];
let ca: Ca;
let issuer: TokenIssuer;
let jwksFile: string;
const quotaLogs: string[] = [];

beforeAll(() => {
  ca = createCa('quota-ca');
  issuer = createTokenIssuer();
  jwksFile = join(dir, 'jwks.json');
  issuer.writeJwks(jwksFile);
});
afterAll(async () => {
  for (const c of closing.splice(0).reverse()) await c();
});

function keysFile(keys: Record<string, string>, namespaces: Record<string, string[]> = { '*': Object.keys(keys) }): string {
  const path = join(dir, `keys-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, stringify({ keys, namespaces }));
  return path;
}

async function quota(opts: Partial<QuotaServiceOptions> & { dbName: string }): Promise<{ service: QuotaService; addr: string }> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      quotaLogs.push(chunk.toString('utf8'));
      done();
    },
  });
  const service = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, opts.dbName),
    logger: pino({ level: 'info' }, sink),
    auth: { mode: 'jwks', verifier: createJwksVerifier({ jwks: jwksFile, issuer: issuer.issuer, audience: 'llm-gateway' }) },
    ...opts,
  });
  closing.push(() => service.stop());
  return { service, addr: `127.0.0.1:${service.address.port}` };
}

async function sidecar(name: string, namespace: string, quotaConfig: Record<string, unknown>, keysFromQuota = true): Promise<Stack> {
  const tokenFile = join(dir, `${name}-token`);
  writeFileSync(tokenFile, await issuer.mint({ namespace, serviceAccount: 'app', pod: name }));
  const stack = await startStack({
    // The fake takes any key: what reached it is asserted instead.
    fake: { apiKey: undefined },
    config: (raw) => {
      const providers = raw.providers as Record<string, Record<string, unknown>>;
      if (keysFromQuota) {
        for (const id of ['openai', 'claude']) {
          delete providers[id]!.apiKey;
          providers[id]!.apiKeyFrom = 'quota';
        }
      }
      return { ...raw, storage: { path: join(dir, `${name}.db`) }, quota: { tokenFile, failMode: 'failClosed', ...quotaConfig } };
    },
  });
  closing.push(() => stack.close());
  return stack;
}

const client = (stack: Stack) => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'app-key', maxRetries: 0 });
const ask = (stack: Stack, model = 'gpt-4o-mini') => client(stack).chat.completions.create({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hello' }] });
const ready = async (stack: Stack): Promise<number> => (await request(`${stack.statusUrl}/healthz/ready`)).statusCode;
const lastAuthorization = (stack: Stack): unknown => stack.fake.requests.at(-1)?.headers.authorization;

describe('provider keys held by the quota service', () => {
  let stack: Stack;
  let keys: string;
  let service: QuotaService;

  beforeAll(async () => {
    const server = issueLocalServer(ca);
    keys = keysFile({ openai: KEY, claude: KEY }, { '*': ['openai'], lima: ['claude'] });
    const q = await quota({ dbName: 'keys.db', tls: { certFile: server.certFile, keyFile: server.keyFile, refreshMs: 100 }, providerKeysFile: keys });
    service = q.service;
    stack = await sidecar('lima-1', 'lima', { address: q.addr, tls: { caFile: ca.certFile } });
    await eventually(async () => expect(await ready(stack)).toBe(200), 8000);
  });

  it('sends the key the service handed over upstream, over TLS, with the sidecar holding no key of its own', async () => {
    const answer = await ask(stack);
    expect(answer.choices[0]!.message.content).toMatch(/fake provider/);
    expect(lastAuthorization(stack)).toBe(`Bearer ${KEY}`);
    await ask(stack, 'claude-haiku');
    expect(stack.fake.requests.at(-1)?.headers['x-api-key']).toBe(KEY);
  });

  it('picks up a rotated key at a lease renewal, without a restart', async () => {
    writeFileSync(keys, stringify({ keys: { openai: ROTATED, claude: ROTATED }, namespaces: { '*': ['openai'], lima: ['claude'] } }));
    await eventually(async () => {
      await ask(stack);
      expect(lastAuthorization(stack)).toBe(`Bearer ${ROTATED}`);
    }, 15_000);
  });

  it('gives a namespace only the keys the policy lets it use: without them the sidecar is not ready and says why', async () => {
    const other = await sidecar('mike-1', 'mike', { address: `127.0.0.1:${service.address.port}`, tls: { caFile: ca.certFile } });
    await eventually(async () => {
      expect(await ask(other)).toBeDefined(); // openai: allowed to every namespace
    }, 8000);
    expect(await ready(other)).toBe(503); // claude: not for mike
    const err = (await ask(other, 'claude-haiku').catch((e: unknown) => e)) as { status: number; error: { code: string; message: string } };
    expect(err.status).toBe(503);
    expect(err.error.code).toBe('llmgw_upstream_unavailable');
    expect(err.error.message).toMatch(/has not arrived from the quota service/);
  });

  it('leaves the key in no log line, metric, error body or SQLite file; a provider error quoting it arrives scrubbed', async () => {
    stack.fake.faults.add({
      match: { path: '/v1/chat/completions' },
      status: 401,
      body: { error: { message: `Incorrect API key provided: ${ROTATED}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', code: 'invalid_api_key', param: null } },
    });
    const err = (await ask(stack).catch((e: unknown) => e)) as { status: number; message: string; error: unknown };
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/Incorrect API key provided: \[redacted\]/);
    const seen = [JSON.stringify(err.error), err.message, stack.rawLogs.join('\n'), quotaLogs.join(''), await scrapeMetrics(stack)];
    seen.push(await (await request(`http://127.0.0.1:${service.statusAddress.port}/metrics`)).body.text());
    for (const file of readdirSync(dir).filter((f) => /\.db(-wal|-shm)?$/.test(f))) seen.push(readFileSync(join(dir, file)).toString('latin1'));
    for (const text of seen) {
      expect(text).not.toContain(KEY);
      expect(text).not.toContain(ROTATED);
    }
  });
});

describe('provider keys are handed out over TLS to verified sidecars only', () => {
  const rawCall = (addr: string, token: string) => {
    const { QuotaService } = loadQuotaProto();
    const c = new QuotaService(addr, credentials.createInsecure()) as Client & Record<string, Function>;
    closing.push(() => c.close());
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    return new Promise<ServiceError | null>((resolve) => c.GetProviderKeys!({ names: ['openai'] }, md, (err: ServiceError | null) => resolve(err)));
  };

  it('refuses them without TLS (FAILED_PRECONDITION), and a service that verifies nobody (--auth none) hands none out', async () => {
    const plain = await quota({ dbName: 'plain.db', providerKeysFile: keysFile({ openai: KEY }) });
    const token = await issuer.mint({ namespace: 'lima', serviceAccount: 'app' });
    const err = await rawCall(plain.addr, token);
    expect(err?.code).toBe(grpcStatus.FAILED_PRECONDITION);
    expect(err?.details).toMatch(/over TLS only/);
    const server = issueLocalServer(ca);
    const open = await quota({ dbName: 'open.db', auth: { mode: 'none' }, tls: { certFile: server.certFile, keyFile: server.keyFile }, providerKeysFile: keysFile({ openai: KEY }) });
    const stack = await sidecar('november-1', 'november', { address: open.addr, tls: { caFile: ca.certFile } });
    await new Promise((r) => setTimeout(r, 500));
    expect(await ready(stack)).toBe(503);
    expect(stack.fake.requests.length).toBe(0);
  });
});

describe('TLS to the quota service', () => {
  it('keeps serving, with no failed request, while the service certificate is replaced on disk', async () => {
    const server = issueLocalServer(ca);
    const q = await quota({ dbName: 'rotate.db', tls: { certFile: server.certFile, keyFile: server.keyFile, refreshMs: 100 } });
    await q.service.allocator.setBudget('namespace/oscar', 'day', 1_000_000);
    const stack = await sidecar('oscar-1', 'oscar', { address: q.addr, tls: { caFile: ca.certFile } }, false);
    await eventually(async () => expect((await ask(stack)).choices).toHaveLength(1), 8000);
    const next = issueLocalServer(ca, 'quota-next');
    let failures = 0;
    let served = 0;
    const load = (async () => {
      for (let i = 0; i < 40; i++) {
        await ask(stack).then(
          () => served++,
          () => failures++,
        );
      }
    })();
    replaceFile(server.certFile, next.cert);
    replaceFile(server.keyFile, next.key);
    await load;
    expect(failures).toBe(0);
    expect(served).toBe(40);
    expect((await q.service.allocator.getBudgets('namespace/oscar'))[0]!.used).toBeGreaterThan(0);
  });

  it('refuses a sidecar that trusts another CA, and with mutual TLS one without a client certificate or with one of another CA', async () => {
    const server = issueLocalServer(ca);
    const clientCa = createCa('client-ca');
    const q = await quota({ dbName: 'mtls.db', tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: clientCa.certFile } });
    await q.service.allocator.setBudget('namespace/papa', 'day', 1_000_000);
    const good = issue(clientCa, { cn: 'papa-1', client: true });
    const foreign = issue(createCa('other-client-ca'), { cn: 'papa-3', client: true });
    const cases: [string, Record<string, unknown>, boolean][] = [
      ['papa-1', { caFile: ca.certFile, certFile: good.certFile, keyFile: good.keyFile }, true],
      ['papa-2', { caFile: ca.certFile }, false],
      ['papa-3', { caFile: ca.certFile, certFile: foreign.certFile, keyFile: foreign.keyFile }, false],
      ['papa-4', { caFile: createCa('wrong-ca').certFile, certFile: good.certFile, keyFile: good.keyFile }, false],
    ];
    for (const [name, tls, works] of cases) {
      const stack = await sidecar(name, 'papa', { address: q.addr, tls, acquireTimeoutMs: 500 }, false);
      if (works) {
        await eventually(async () => expect((await ask(stack)).choices).toHaveLength(1), 8000);
      } else {
        const err = (await ask(stack).catch((e: unknown) => e)) as { status?: number; error?: { code?: string } };
        expect(err.status, name).toBe(503);
        expect(err.error?.code).toBe('llmgw_quota_unavailable');
      }
    }
  });
});
