// Global budgets end to end with the real executables: `llmgw quota-service` verifying the sidecars'
// service-account tokens (JWKS) and taking an operator token, two `llmgw sidecar`s, `llmgw budget` (the
// token in LLMGW_ADMIN_TOKEN), the fake provider counting what it bills, and the official SDKs as the apps.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { envWithoutKeys, killAll, runCli, startCli, type Running } from '../helpers/cli.js';
import { createTokenIssuer, type TokenIssuer } from '../helpers/sa-tokens.js';
import { stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

const ADMIN_TOKEN = 'e2e-operator-token-0123456789';
let fake: FakeProvider;
let dir: string;
let issuer: TokenIssuer;
let cliEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-e2e-'));
  issuer = createTokenIssuer();
  issuer.writeJwks(join(dir, 'jwks.json'));
  writeFileSync(join(dir, 'admin-tokens'), `# operators\n${ADMIN_TOKEN}\n`);
  cliEnv = { ...envWithoutKeys(), LLMGW_ADMIN_TOKEN: ADMIN_TOKEN };
});
afterAll(async () => {
  killAll();
  await fake.close();
});

const portOf = (line: string, key: 'listen'): number => (JSON.parse(line) as Record<string, { port: number }>)[key]!.port;

async function startQuotaService(db: string, port = 0): Promise<{ proc: Running; addr: string }> {
  const proc = startCli([
    'quota-service', '--listen', `127.0.0.1:${port}`, '--status-listen', '127.0.0.1:0', '--db', db, '--lease-ttl', '3s',
    '--auth', 'jwks', '--auth-jwks', join(dir, 'jwks.json'), '--auth-issuer', issuer.issuer, '--admin-token-file', join(dir, 'admin-tokens'),
  ]);
  const line = await proc.waitForLine(/quota service started/);
  return { proc, addr: `127.0.0.1:${portOf(line, 'listen')}` };
}

/** A sidecar of pod `name` in namespace demo, running as service account `service` (its projected token). */
async function startSidecar(name: string, quotaAddr: string, service: string): Promise<{ proc: Running; url: string }> {
  const tokenFile = join(dir, `${name}.token`);
  writeFileSync(tokenFile, await issuer.mint({ namespace: 'demo', serviceAccount: service, pod: name }));
  const config = { ...stackConfig(fake.url), storage: { path: join(dir, `${name}.db`) }, quota: { address: quotaAddr, tokenFile } };
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(config));
  const env = { ...envWithoutKeys(), POD_NAME: name };
  const proc = startCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], env);
  const line = await proc.waitForLine(/sidecar started/);
  return { proc, url: `http://127.0.0.1:${portOf(line, 'listen')}` };
}

async function budget(args: string[]): Promise<unknown> {
  const r = await runCli(['budget', ...args, '--output', 'json'], cliEnv);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** Today's and yesterday's usage (a run may straddle midnight UTC). */
async function usage(scope: string, addr: string): Promise<number> {
  const u = (await budget(['usage', scope, '--window', 'day', '--last', '2', '--quota-addr', addr])) as { windows: { used: number }[] };
  return u.windows.reduce((n, w) => n + w.used, 0);
}

/** One app call through a sidecar, rotating wire formats and streaming; resolves to its status. */
async function call(url: string, i: number): Promise<number> {
  const text = `request ${i}: tell me something about the number ${i * 7}`;
  try {
    switch (i % 4) {
      case 0: {
        const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'app-key', maxRetries: 0 });
        await openai.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: text }] });
        return 200;
      }
      case 1: {
        const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'app-key', maxRetries: 0 });
        const stream = await openai.chat.completions.create({ model: 'claude-haiku', max_tokens: 64, stream: true, messages: [{ role: 'user', content: text }] });
        for await (const _ of stream);
        return 200;
      }
      case 2: {
        const anthropic = new Anthropic({ baseURL: url, apiKey: 'app-key', maxRetries: 0 });
        await anthropic.messages.create({ model: 'gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: text }] });
        return 200;
      }
      default: {
        const anthropic = new Anthropic({ baseURL: url, apiKey: 'app-key', maxRetries: 0 });
        const stream = anthropic.messages.stream({ model: 'claude-haiku', max_tokens: 64, messages: [{ role: 'user', content: text }] });
        await stream.finalMessage();
        return 200;
      }
    }
  } catch (err) {
    const e = err as { status?: number; error?: { error?: { code?: string; type?: string } } };
    if (e.status === 429) lastRefusal = JSON.stringify(e.error);
    return e.status ?? 0;
  }
}
let lastRefusal = '';

/** Polls until the service's count settles on `want` (delivery is asynchronous), then returns it. */
async function settledUsage(scope: string, addr: string, want: () => number): Promise<number> {
  let got = -1;
  for (let i = 0; i < 60; i++) {
    got = await usage(scope, addr);
    if (got === want()) return got;
    await sleep(250);
  }
  return got;
}

describe('global budgets end to end', () => {
  it('two sidecars spend one namespace budget until 429 llmgw_quota_exhausted, and the usage matches what the provider billed', async () => {
    const before = fake.stats.billedTokens;
    const quota = await startQuotaService(join(dir, 'e2e-quota.db'));
    const set = (await budget(['set', 'namespace/demo', '--tokens', '6000', '--window', 'day', '--quota-addr', quota.addr])) as { tokens: number }[];
    expect(set[0]!.tokens).toBe(6000);
    const a = await startSidecar('pod-a', quota.addr, 'chat-a');
    const b = await startSidecar('pod-b', quota.addr, 'chat-b');

    const refused = new Set<string>();
    let served = 0;
    for (let i = 0; i < 400 && refused.size < 2; i++) {
      const [name, url] = i % 2 === 0 ? ['a', a.url] : ['b', b.url];
      const status = await call(url, i);
      if (status === 200) served++;
      else {
        expect(status).toBe(429);
        refused.add(name);
      }
    }
    expect(refused.size).toBe(2);
    expect(lastRefusal).toContain('llmgw_quota_exhausted');
    expect(served).toBeGreaterThan(20);

    const billed = fake.stats.billedTokens - before;
    const used = await settledUsage('namespace/demo', quota.addr, () => billed);
    expect(used).toBe(billed);
    expect(used).toBeGreaterThanOrEqual(6000 * 0.9);
    expect(used).toBeLessThanOrEqual(6000 * 1.03);
    // Each sidecar's service scope got its own share of it.
    const perService = (await usage('namespace/demo/service/chat-a', quota.addr)) + (await usage('namespace/demo/service/chat-b', quota.addr));
    expect(perService).toBe(billed);
    const table = await runCli(['budget', 'get', 'namespace/demo', '--quota-addr', quota.addr], cliEnv);
    expect(table.stdout).toMatch(new RegExp(`namespace/demo\\s+day\\s+6000\\s+${used}\\s`));

    for (const p of [a.proc, b.proc, quota.proc]) p.child.kill('SIGTERM');
    expect(await a.proc.exit).toBe(0);
    expect(await b.proc.exit).toBe(0);
    expect(await quota.proc.exit).toBe(0);
  }, 90_000);

  it('carries x-llmgw-tags into the usage records: `budget usage --by-tag` splits what the provider billed', async () => {
    const quota = await startQuotaService(join(dir, 'tags-quota.db'));
    const sc = await startSidecar('pod-tags', quota.addr, 'tagged');
    const openai = new OpenAI({ baseURL: `${sc.url}/v1`, apiKey: 'app-key', maxRetries: 0 });
    const billed = new Map<string, number>();
    const tagsOf = ['feature=search,team=core', 'feature=chat', 'team=core,feature=search', undefined, 'feature=chat,user=ann'];
    for (let i = 0; i < 10; i++) {
      const tags = tagsOf[i % tagsOf.length];
      const before = fake.stats.billedTokens;
      const body = { model: i % 2 === 0 ? 'gpt-4o-mini' : 'claude-haiku', max_tokens: 32, messages: [{ role: 'user' as const, content: `tagged request ${i}: ${'more words '.repeat(i)}` }] };
      const headers = tags === undefined ? {} : { 'x-llmgw-tags': tags };
      if (i % 3 === 0) {
        for await (const _ of await openai.chat.completions.create({ ...body, stream: true }, { headers }));
      } else {
        await openai.chat.completions.create(body, { headers });
      }
      const feature = tags === undefined ? '(untagged)' : /feature=(\w+)/.exec(tags)![1]!;
      billed.set(feature, (billed.get(feature) ?? 0) + fake.stats.billedTokens - before);
    }
    const total = [...billed.values()].reduce((a, b) => a + b, 0);
    const scope = 'namespace/demo/service/tagged';
    await settledUsage(scope, quota.addr, () => total);
    // This month's and last month's (a run may straddle the 1st, UTC), added up.
    const byTag = async (key: string) => {
      const u = (await budget(['usage', scope, '--window', 'month', '--last', '2', '--by-tag', key, '--quota-addr', quota.addr])) as {
        tag: string;
        windows: { used: number; byTag: { value: string; used: number }[]; untagged: number }[];
      };
      expect(u.tag).toBe(key);
      for (const w of u.windows) expect(w.byTag.map((t) => t.used)).toEqual(w.byTag.map((t) => t.used).sort((a, b) => b - a)); // most first
      const values: Record<string, number> = {};
      for (const w of u.windows) for (const t of w.byTag) values[t.value] = (values[t.value] ?? 0) + t.used;
      return { values, used: u.windows.reduce((n, w) => n + w.used, 0), untagged: u.windows.reduce((n, w) => n + w.untagged, 0) };
    };
    const feature = await byTag('feature');
    expect(feature).toEqual({ used: total, values: { search: billed.get('search'), chat: billed.get('chat') }, untagged: billed.get('(untagged)') });
    expect(billed.get('search')).not.toBe(billed.get('chat'));
    expect((await byTag('team')).values).toEqual({ core: billed.get('search') });
    // The table for people shows the same numbers: per window its total, then a row per value.
    const args = ['budget', 'usage', scope, '--window', 'month', '--last', '2', '--by-tag', 'feature', '--quota-addr', quota.addr];
    const json = JSON.parse((await runCli([...args, '--output', 'json'], cliEnv)).stdout) as { windows: { windowStart: string; used: number; byTag: { value: string; used: number }[]; untagged: number }[] };
    const table = (await runCli(args, cliEnv)).stdout;
    expect(table).toMatch(/^WINDOW START \(UTC\)\s+WINDOW END \(UTC\)\s+FEATURE\s+USED\s+COST \(USD\)\n/);
    for (const w of json.windows) {
      expect(table).toMatch(new RegExp(`^${w.windowStart}\\s+\\S+\\s+\\(all\\)\\s+${w.used}\\s+[\\d.]+$`, 'm'));
      for (const t of w.byTag) expect(table).toMatch(new RegExp(`^\\s+${t.value}\\s+${t.used}\\s+[\\d.]+$`, 'm'));
      if (w.untagged > 0 && w.byTag.length > 0) expect(table).toMatch(new RegExp(`^\\s+\\(untagged\\)\\s+${w.untagged}\\s+[\\d.]+$`, 'm'));
    }
    expect(table).toContain('(untagged)');
    const bad = await runCli(['budget', 'usage', scope, '--by-tag', 'not a key', '--quota-addr', quota.addr], cliEnv);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--by-tag');
    for (const p of [sc.proc, quota.proc]) p.child.kill('SIGTERM');
    expect(await sc.proc.exit).toBe(0);
    expect(await quota.proc.exit).toBe(0);
  }, 60_000);

  it('the budget and team commands take the operator token from --token, --token-file or LLMGW_ADMIN_TOKEN, and say which credential is missing', async () => {
    const quota = await startQuotaService(join(dir, 'cli-quota.db'));
    const env = envWithoutKeys();
    const at = ['--quota-addr', quota.addr];
    const none = await runCli(['budget', 'set', 'namespace/cli', '--tokens', '5', '--window', 'day', ...at], env);
    expect(none.code).toBe(1);
    expect(none.stderr.trim()).toBe(
      'llmgw: the quota service refused the call (UNAUTHENTICATED): the admin API needs an operator credential: pass --token, --token-file or set LLMGW_ADMIN_TOKEN',
    );
    const wrong = await runCli(['budget', 'list', ...at, '--token', 'not-the-operator-token'], env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('not an operator token');
    // A tenant's own service-account token is no operator credential either.
    const tenant = await runCli(['budget', 'list', ...at, '--token', await issuer.mint({ namespace: 'demo', serviceAccount: 'chat-a' })], env);
    expect(tenant.stderr).toContain('PERMISSION_DENIED');
    writeFileSync(join(dir, 'my-token'), `${ADMIN_TOKEN}\n`);
    const ways: [string[], NodeJS.ProcessEnv][] = [
      [['--token', ADMIN_TOKEN], env],
      [['--token-file', join(dir, 'my-token')], env],
      [[], { ...env, LLMGW_ADMIN_TOKEN: ADMIN_TOKEN }],
    ];
    for (const [i, [flags, e]] of ways.entries()) {
      const r = await runCli(['budget', 'set', 'namespace/cli', '--tokens', String(10 + i), '--window', 'day', ...at, ...flags, '--output', 'json'], e);
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toMatchObject([{ scope: 'namespace/cli', tokens: 10 + i }]);
    }
    const team = await runCli(['team', 'set', 'core', '--namespaces', 'cli,demo', ...at, '--output', 'json'], cliEnv);
    expect(JSON.parse(team.stdout)).toEqual([{ team: 'core', namespaces: ['cli', 'demo'] }]);
    expect((await runCli(['team', 'list', ...at], cliEnv)).stdout).toMatch(/^TEAM\s+NAMESPACES\ncore\s+cli,demo\n$/);
    expect((await runCli(['team', 'delete', 'core', ...at], cliEnv)).stdout).toBe('deleted team core\n');
    const badNs = await runCli(['team', 'set', 'core', '--namespaces', 'Not_A_Namespace', ...at], cliEnv);
    expect(badNs.code).toBe(2);
    expect(badNs.stderr).toContain('--namespaces: "Not_A_Namespace" is not a valid namespace name');
    quota.proc.child.kill('SIGTERM');
    expect(await quota.proc.exit).toBe(0);
  });

  it('loses and double-counts nothing when the quota service and then the sidecar are killed mid-run', async () => {
    const before = fake.stats.billedTokens;
    const db = join(dir, 'kill-quota.db');
    let quota = await startQuotaService(db);
    const port = Number(quota.addr.split(':')[1]);
    await budget(['set', 'namespace/demo', '--tokens', '10000000', '--window', 'day', '--quota-addr', quota.addr]);
    let sidecar = await startSidecar('pod-k', quota.addr, 'kill');
    let i = 1000;
    const traffic = async (n: number): Promise<void> => {
      await Promise.all(Array.from({ length: 4 }, async () => {
        for (let k = 0; k < n / 4; k++) expect(await call(sidecar.url, i++)).toBe(200);
      }));
    };

    await traffic(40);
    // The service dies with requests in flight; the sidecar keeps serving from its lease and its outbox.
    const during = traffic(40);
    await sleep(50);
    quota.proc.child.kill('SIGKILL');
    await quota.proc.exit;
    await during;
    await traffic(20);
    quota = await startQuotaService(db, port);

    // The sidecar dies once its answers are out and settled into its SQLite outbox: a settle reaches the
    // file at the end of the event-loop turn after its answer, a moment the test gives it. (Requests still
    // in flight at a SIGKILL are settled at their prompt and checkpointed output, not at what the provider
    // billed: the next test.)
    await traffic(20);
    await sleep(300);
    sidecar.proc.child.kill('SIGKILL');
    await sidecar.proc.exit;
    sidecar = await startSidecar('pod-k', quota.addr, 'kill');
    await traffic(20);

    const billed = fake.stats.billedTokens - before;
    expect(billed).toBeGreaterThan(0);
    expect(await settledUsage('namespace/demo/service/kill', quota.addr, () => billed)).toBe(billed);
    sidecar.proc.child.kill('SIGTERM');
    expect(await sidecar.proc.exit).toBe(0);
    // Releasing the lease delivered nothing twice.
    expect(await usage('namespace/demo/service/kill', quota.addr)).toBe(billed);
    quota.proc.child.kill('SIGTERM');
    expect(await quota.proc.exit).toBe(0);
  }, 90_000);

  it('settles the requests a SIGKILL interrupted at their prompt and checkpointed output at the next start', async () => {
    const quota = await startQuotaService(join(dir, 'inflight-quota.db'));
    await budget(['set', 'namespace/demo', '--tokens', '10000000', '--window', 'day', '--quota-addr', quota.addr]);
    let sidecar = await startSidecar('pod-i', quota.addr, 'inflight');
    // Streams of ~40 words at 150 ms a chunk: ~6 s each, killed after ~2.5 s.
    fake.faults.add({ match: { model: 'gpt-4o-mini' }, times: 0, chunkDelayMs: 150 });
    const openai = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: 'app-key', maxRetries: 0 });
    const texts = Array.from({ length: 20 }, (_, i) => `stream ${i} ` + 'one two three four five six seven eight nine ten '.repeat(4));
    const chunks = texts.map(() => [] as number[]);
    const streams = texts.map(async (text, i) => {
      const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 200, stream: true, messages: [{ role: 'user', content: text }] });
      try {
        for await (const _ of stream) chunks[i]!.push(Date.now());
      } catch {
        // the sidecar was killed
      }
    });
    // Killed once every stream is under way (a loaded machine may start them late) and more than a
    // checkpoint period later.
    const deadline = Date.now() + 20_000;
    while (chunks.some((c) => c.length < 3) && Date.now() < deadline) await sleep(50);
    await sleep(1500);
    const killedAt = Date.now();
    sidecar.proc.child.kill('SIGKILL');
    await sidecar.proc.exit;
    await Promise.all(streams);
    fake.faults.clear();
    expect(chunks.every((c) => c.length > 2)).toBe(true);
    expect(chunks.every((c) => c.length < 40)).toBe(true); // none had finished

    sidecar = await startSidecar('pod-i', quota.addr, 'inflight');
    const recovered = JSON.parse(await sidecar.proc.waitForLine(/in flight when the sidecar last stopped/)) as { requests: number; tokens: number };
    expect(recovered.requests).toBe(20);
    // The promise: every interrupted request at no less than its prompt (~4 characters a token) plus the
    // output checkpointed, which is at least what had gone out a checkpoint period (1 s) before the kill.
    const prompts = texts.reduce((n, t) => n + Math.ceil(t.length / 4), 0);
    const sentBeforeLastCheckpoint = chunks.reduce((n, c) => n + c.filter((t) => t <= killedAt - 1100).length, 0);
    expect(sentBeforeLastCheckpoint).toBeGreaterThan(20);
    expect(recovered.tokens).toBeGreaterThanOrEqual(prompts + sentBeforeLastCheckpoint);
    // …and no more than the requests were reserved at (prompt plus max_tokens).
    expect(recovered.tokens).toBeLessThanOrEqual(prompts + 20 * 200);
    expect(await settledUsage('namespace/demo/service/inflight', quota.addr, () => recovered.tokens)).toBe(recovered.tokens);

    // Recovered once: a clean restart settles nothing again.
    sidecar.proc.child.kill('SIGTERM');
    expect(await sidecar.proc.exit).toBe(0);
    sidecar = await startSidecar('pod-i', quota.addr, 'inflight');
    await sleep(500);
    expect(sidecar.proc.stdout()).not.toContain('in flight when the sidecar last stopped');
    expect(await usage('namespace/demo/service/inflight', quota.addr)).toBe(recovered.tokens);
    for (const p of [sidecar.proc, quota.proc]) p.child.kill('SIGTERM');
    expect(await sidecar.proc.exit).toBe(0);
    expect(await quota.proc.exit).toBe(0);
  }, 60_000);
});
