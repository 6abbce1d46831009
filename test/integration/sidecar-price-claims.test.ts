// "A sidecar whose config claims zero prices is still charged by the service." Two ways a sidecar could
// claim prices: its config file (which has no price section: every such key is refused, naming it, by
// `llmgw config check` and by `llmgw sidecar` at start), and the price table it gets with its lease answers
// (here rewritten to all zeros by a gRPC man in the middle between a real sidecar and the real quota
// service): the sidecar then shows $0 for its requests, and the service charges the full shipped price of
// the tokens anyway, because it prices reports by its own table and reports carry no cost.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Server, ServerCredentials, type Client, type Metadata, type ServerUnaryCall, type ServiceError, type sendUnaryData } from '@grpc/grpc-js';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadQuotaProto } from '../../proto/load.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { envWithoutKeys, killAll, runCli } from '../helpers/cli.js';
import { APP_KEY, stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmgw-price-claims-'));
});
afterAll(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('a sidecar config that claims prices', () => {
  const claims = `providers:
  openai:
    type: openai
    baseUrl: "https://api.openai.com/v1"
    apiKey: sk-test
    prices: { input: 0, output: 0 }
models:
  gpt-5-mini:
    targets: [{ provider: openai, model: gpt-5-mini }]
    pricing: { input: 0, output: 0 }
prices:
  openai:
    gpt-5-mini: { input: 0, cachedInput: 0, output: 0 }
pricing:
  default: { input: 0, output: 0 }
quota:
  address: "127.0.0.1:50051"
  prices: free
`;

  it('is refused by llmgw config check and by llmgw sidecar at start, naming every price key', async () => {
    const path = join(dir, 'zero-prices.yaml');
    writeFileSync(path, claims);
    const check = await runCli(['config', 'check', path], envWithoutKeys());
    expect(check.code).toBe(2);
    expect(check.stdout).toBe('');
    const lines = check.stderr.trim().split('\n');
    const expected = [
      /^llmgw: zero-prices\.yaml: \(top level\): unknown key "prices"/,
      /^llmgw: zero-prices\.yaml: \(top level\): unknown key "pricing"/,
      /^llmgw: zero-prices\.yaml: providers\.openai: unknown key "prices"/,
      /^llmgw: zero-prices\.yaml: models\.gpt-5-mini: unknown key "pricing"/,
      /^llmgw: zero-prices\.yaml: quota: unknown key "prices"/,
    ];
    for (const e of expected) expect(lines.some((l) => e.test(l)), `${e} in\n${check.stderr}`).toBe(true);
    expect(lines).toHaveLength(expected.length);

    const sidecar = await runCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], envWithoutKeys());
    expect(sidecar.code).toBe(2);
    expect(sidecar.stderr).toBe(check.stderr);
  });
});

describe('a sidecar that believes every price is zero', () => {
  let quota: QuotaService;
  let fake: FakeProvider;
  let mitm: Server;
  const toClose: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of toClose.reverse()) await c();
  });

  it('shows $0 for its requests, and the service charges the shipped price of the tokens all the same', async () => {
    quota = await startQuotaService({
      listen: { host: '127.0.0.1', port: 0 },
      statusListen: { host: '127.0.0.1', port: 0 },
      dbPath: join(dir, 'quota.db'),
      logger: pino({ level: 'silent' }),
      auth: { mode: 'none' },
    });
    toClose.push(() => quota.stop());
    await quota.allocator.setBudget('namespace/claims', 'day', 5_000_000_000, undefined, 'usd');

    // The man in the middle: forwards every QuotaService call, and zeroes every price of the table the
    // service sends with its lease answers.
    const { QuotaService: Svc } = loadQuotaProto();
    const upstream = new Svc(`127.0.0.1:${quota.address.port}`, credentials.createInsecure()) as Client & Record<string, Function>;
    toClose.push(() => upstream.close());
    let tablesRewritten = 0;
    const zero = { input: 0, cachedInput: 0, cacheWrite: 0, output: 0, reasoning: 0 };
    const forward =
      (method: string) =>
      (call: ServerUnaryCall<unknown, Record<string, any>>, cb: sendUnaryData<unknown>): void => {
        upstream[method]!(call.request, call.metadata as Metadata, (err: ServiceError | null, res: Record<string, any>) => {
          if (err) return cb(err);
          if (res?.prices) {
            res.prices = { ...res.prices, defaultPrices: zero, models: res.prices.models.map((m: Record<string, unknown>) => ({ ...m, prices: zero })) };
            tablesRewritten++;
          }
          cb(null, res);
        });
      };
    mitm = new Server();
    const methods = Object.keys(Svc.service);
    mitm.addService(Svc.service, Object.fromEntries(methods.map((m) => [m, forward(Svc.service[m]!.originalName ?? m)])));
    const mitmPort = await new Promise<number>((resolve, reject) => mitm.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    toClose.push(() => new Promise<void>((resolve) => mitm.tryShutdown(() => resolve())));

    fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
    toClose.push(() => fake.close());
    const raw = {
      providers: stackConfig(fake.url).providers,
      models: { 'gpt-5-mini': { targets: [{ provider: 'openai', model: 'gpt-5-mini' }] } },
      storage: { path: join(dir, 'sidecar.db') },
      quota: { address: `127.0.0.1:${mitmPort}`, tokenFile: join(dir, 'no-token') },
      logging: { level: 'silent' },
    };
    const sc = await startSidecar({
      config: validateConfig(raw, 'test config'),
      listen: { host: '127.0.0.1', port: 0 },
      statusListen: { host: '127.0.0.1', port: 0 },
      logger: pino({ level: 'silent' }),
      env: { POD_NAMESPACE: 'claims', LLMGW_SERVICE: 'cheap', POD_NAME: 'cheap-1' },
    });
    toClose.push(() => sc.stop());

    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${sc.address.port}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    let full = 0;
    let tokens = 0;
    for (let i = 0; i < 5; i++) {
      const { data, response } = await openai.chat.completions
        .create({ model: 'gpt-5-mini', max_tokens: 32, messages: [{ role: 'user', content: `question ${i} about what this costs ${'really '.repeat(i)}[fake:cached]` }] })
        .withResponse();
      const u = data.usage!;
      const cached = u.prompt_tokens_details!.cached_tokens!;
      // The sidecar prices by the table it was given: nothing.
      expect(response.headers.get('x-llmgw-cost-usd')).toBe('0');
      // gpt-5-mini in the shipped table: $0.25 input, $0.025 cached input, $2 output per million tokens.
      full += (u.prompt_tokens - cached) * 250 + cached * 25 + u.completion_tokens * 2000;
      tokens += u.total_tokens;
    }
    expect(tablesRewritten).toBeGreaterThan(0);
    await sc.stop(); // delivers the last usage through the man in the middle

    const b = (await quota.allocator.getBudgets('namespace/claims')).find((x) => x.unit === 'usd')!;
    expect(b.usedTokens).toBe(tokens);
    expect(b.used).toBe(full);
    const [day] = await quota.allocator.usage('namespace/claims/service/cheap', 'day', 1);
    expect(day!.costNano).toBe(full);
  }, 30_000);
});
