// Dollar budgets with the real executables: `llmgw quota-service` with a price file, `llmgw sidecar`, and
// `llmgw budget set --usd`, killed with SIGKILL mid-run (the service, then the sidecar): every dollar the
// provider billed is charged once. Every model is priced at $10 per million tokens of any kind, so what the
// budget records is exactly the fake provider's billed tokens × 10,000 nano-USD.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { envWithoutKeys, killAll, runCli, startCli, type Running } from '../helpers/cli.js';
import { stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

const ADMIN_TOKEN = 'usd-e2e-operator-token-0123456789';
const NANO_PER_TOKEN = 10_000;
const PRICES = `
default: { input: 10, output: 10 }
models:
  openai:
    gpt-4o-mini: { input: 10, output: 10 }
  anthropic:
    claude-haiku-4-5: { input: 10, output: 10 }
`;
let fake: FakeProvider;
let dir: string;
let cliEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  dir = mkdtempSync(join(tmpdir(), 'llmgw-usd-e2e-'));
  writeFileSync(join(dir, 'admin-tokens'), `${ADMIN_TOKEN}\n`);
  writeFileSync(join(dir, 'prices.yaml'), PRICES);
  cliEnv = { ...envWithoutKeys(), LLMGW_ADMIN_TOKEN: ADMIN_TOKEN };
});
afterAll(async () => {
  killAll();
  await fake.close();
});

const portOf = (line: string): number => (JSON.parse(line) as { listen: { port: number } }).listen.port;

async function startQuotaService(db: string, port = 0): Promise<{ proc: Running; addr: string }> {
  const proc = startCli([
    'quota-service', '--listen', `127.0.0.1:${port}`, '--status-listen', '127.0.0.1:0', '--db', db, '--lease-ttl', '3s',
    '--auth', 'none', '--admin-token-file', join(dir, 'admin-tokens'), '--prices', join(dir, 'prices.yaml'),
  ], envWithoutKeys());
  const line = await proc.waitForLine(/quota service started/);
  return { proc, addr: `127.0.0.1:${portOf(line)}` };
}

async function startSidecar(name: string, quotaAddr: string): Promise<{ proc: Running; url: string }> {
  const config = { ...stackConfig(fake.url), storage: { path: join(dir, `${name}.db`) }, quota: { address: quotaAddr, tokenFile: join(dir, 'no-token') } };
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(config));
  const proc = startCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], { ...envWithoutKeys(), POD_NAMESPACE: 'usd', POD_NAME: name });
  const line = await proc.waitForLine(/sidecar started/);
  return { proc, url: `http://127.0.0.1:${portOf(line)}` };
}

async function budget(args: string[]): Promise<unknown> {
  const r = await runCli(['budget', ...args, '--output', 'json'], cliEnv);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

interface UsdBudgetJson {
  unit: string;
  usd: number;
  used: number;
  usedTokens: number;
}

describe('dollar budgets with the real executables', () => {
  it('budget set --usd beside --tokens, list shows both units, delete --usd removes only the dollar one', async () => {
    const quota = await startQuotaService(join(dir, 'cli.db'));
    const at = ['--quota-addr', quota.addr];
    expect(await budget(['set', 'namespace/cli', '--usd', '250', '--window', 'month', ...at])).toMatchObject([{ scope: 'namespace/cli', window: 'month', unit: 'usd', usd: 250, used: 0 }]);
    expect(await budget(['set', 'namespace/cli', '--tokens', '5000', '--window', 'month', ...at])).toMatchObject([{ unit: 'tokens', tokens: 5000 }]);
    const both = await runCli(['budget', 'set', 'namespace/cli', '--tokens', '5', '--usd', '1', '--window', 'day', ...at], cliEnv);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--tokens and --usd: give one of them');
    const bad = await runCli(['budget', 'set', 'namespace/cli', '--usd', '1.0000000001', '--window', 'day', ...at], cliEnv);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--usd: expected a positive amount of dollars');
    const table = (await runCli(['budget', 'get', 'namespace/cli', ...at], cliEnv)).stdout;
    expect(table).toMatch(/^SCOPE\s+WINDOW\s+LIMIT\s+USED\s+OUTSTANDING\s+REMAINING\s+RESETS \(UTC\)\s+FLOORS batch\/background\s+UNIT$/m);
    expect(table).toMatch(/^namespace\/cli\s+month\s+5000\s+0\s+0\s+5000\s+\S+\s+0\.5\/0\.2\s+tokens$/m);
    expect(table).toMatch(/^namespace\/cli\s+month\s+\$250\.00\s+\$0\.00\s+\$0\.00\s+\$250\.00\s+\S+\s+0\.5\/0\.2\s+usd$/m);
    expect(await budget(['delete', 'namespace/cli', '--usd', ...at])).toEqual({ deleted: 1 });
    expect(((await budget(['list', ...at])) as { unit: string }[]).map((b) => b.unit)).toEqual(['tokens']);
    const none = await runCli(['budget', 'delete', 'namespace/cli', '--usd', ...at], cliEnv);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no USD budget for namespace/cli');
    quota.proc.child.kill('SIGTERM');
    expect(await quota.proc.exit).toBe(0);
  }, 30_000);

  it('loses and double-counts no dollar when the quota service and then the sidecar are killed mid-run', async () => {
    const before = fake.stats.billedTokens;
    const db = join(dir, 'kill.db');
    let quota = await startQuotaService(db);
    const port = Number(quota.addr.split(':')[1]);
    await budget(['set', 'namespace/usd', '--usd', '1000', '--window', 'day', '--quota-addr', quota.addr]);
    let sidecar = await startSidecar('pod-k', quota.addr);
    let i = 0;
    const traffic = async (n: number): Promise<void> => {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let k = 0; k < n / 4; k++) {
            const openai = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: 'app-key', maxRetries: 0 });
            const model = i % 2 === 0 ? 'gpt-4o-mini' : 'claude-haiku';
            await openai.chat.completions.create({ model, max_tokens: 64, messages: [{ role: 'user', content: `request ${i++}: say something about ${i * 7}` }] });
          }
        }),
      );
    };
    await traffic(40);
    const during = traffic(40);
    await sleep(50);
    quota.proc.child.kill('SIGKILL');
    await quota.proc.exit;
    await during;
    await traffic(20);
    quota = await startQuotaService(db, port);
    await traffic(20);
    await sleep(300); // the last answers' settles reach the sidecar's file
    sidecar.proc.child.kill('SIGKILL');
    await sidecar.proc.exit;
    sidecar = await startSidecar('pod-k', quota.addr);
    await traffic(20);
    sidecar.proc.child.kill('SIGTERM');
    expect(await sidecar.proc.exit).toBe(0);

    const billed = fake.stats.billedTokens - before;
    expect(billed).toBeGreaterThan(0);
    let b: UsdBudgetJson | undefined;
    for (let k = 0; k < 40; k++) {
      [b] = (await budget(['get', 'namespace/usd', '--quota-addr', quota.addr])) as UsdBudgetJson[];
      if (b!.usedTokens === billed) break;
      await sleep(250);
    }
    expect(b!.unit).toBe('usd');
    expect(b!.usedTokens).toBe(billed);
    expect(Math.round(b!.used * 1e9)).toBe(billed * NANO_PER_TOKEN);
    quota.proc.child.kill('SIGTERM');
    expect(await quota.proc.exit).toBe(0);
  }, 90_000);
});
