// "Spend you can see", end to end with the real executables: `llmgw quota-service` on 127.0.0.1 port 0 with
// the shipped price table (no --prices), two `llmgw sidecar`s of one namespace under different services
// (identity from POD_NAMESPACE / LLMGW_SERVICE, which a service run with --auth none takes), the fake
// provider, the official OpenAI and Anthropic SDKs as the apps, sending `x-llmgw-tags` and
// `x-llmgw-priority`. What the service charges is checked against prices worked out here by hand from
// common/pricing/shipped-prices.json, for the tokens by kind the fake reported to the apps:
//   openai/gpt-5-mini:          $0.25 input, $0.025 cached input, $2 output per million tokens
//   anthropic/claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 cache write, $5 output per million tokens
// Then a per-minute dollar budget, driven past its limit by both sidecars with both priorities: batch is
// refused from its floor (50% of the window left) on, interactive only from 98% of the budget on, always
// 429 llmgw_quota_exhausted with a Retry-After, and the recorded spend stays within 103% of the budget.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { envWithoutKeys, killAll, runCli, startCli, type Running } from '../helpers/cli.js';
import { stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

const ADMIN_TOKEN = 'two-sidecars-operator-token-0123456789';

/** Shipped prices in nano-USD per token (USD per million × 1000), written out by hand from the table. */
const GPT5_MINI = { input: 250, cachedInput: 25, output: 2000 };
const HAIKU_45 = { input: 1000, cachedInput: 100, cacheWrite: 1250, output: 5000 };

let fake: FakeProvider;
let dir: string;
let cliEnv: NodeJS.ProcessEnv;
let quota: { proc: Running; addr: string };
const procs: Running[] = [];

const portOf = (line: string): number => (JSON.parse(line) as { listen: { port: number } }).listen.port;

beforeAll(async () => {
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  dir = mkdtempSync(join(tmpdir(), 'llmgw-usage-two-'));
  writeFileSync(join(dir, 'admin-tokens'), `${ADMIN_TOKEN}\n`);
  cliEnv = { ...envWithoutKeys(), LLMGW_ADMIN_TOKEN: ADMIN_TOKEN };
  // The shipped table (no --prices), the default lease TTL (30 s).
  const proc = startCli(
    ['quota-service', '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--db', join(dir, 'quota.db'), '--auth', 'none', '--admin-token-file', join(dir, 'admin-tokens')],
    envWithoutKeys(),
  );
  procs.push(proc);
  quota = { proc, addr: `127.0.0.1:${portOf(await proc.waitForLine(/quota service started/))}` };
}, 30_000);

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await Promise.race([Promise.all(procs.map((p) => p.exit)), sleep(10_000)]);
  killAll();
  await fake?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}, 30_000);

interface SidecarProc {
  proc: Running;
  url: string;
}

/** A sidecar of pod `pod` in namespace `ns`, service `service`: no token, so the names come from its environment. */
async function startSidecar(ns: string, service: string, pod: string): Promise<SidecarProc> {
  const base = stackConfig(fake.url);
  const config = {
    providers: base.providers,
    models: {
      'gpt-5-mini': { targets: [{ provider: 'openai', model: 'gpt-5-mini' }] },
      'claude-haiku': { targets: [{ provider: 'claude', model: 'claude-haiku-4-5' }] },
    },
    storage: { path: join(dir, `${pod}.db`) },
    quota: { address: quota.addr, tokenFile: join(dir, 'no-token') },
  };
  const path = join(dir, `${pod}.yaml`);
  writeFileSync(path, stringify(config));
  const proc = startCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], {
    ...envWithoutKeys(),
    POD_NAMESPACE: ns,
    LLMGW_SERVICE: service,
    POD_NAME: pod,
  });
  procs.push(proc);
  const line = await proc.waitForLine(/sidecar started/);
  return { proc, url: `http://127.0.0.1:${portOf(line)}` };
}

async function stopSidecar(s: SidecarProc): Promise<void> {
  s.proc.child.kill('SIGTERM');
  // The drain delivers the last usage and gives the leases back before exit 0.
  expect(await s.proc.exit).toBe(0);
}

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli([...args, '--quota-addr', quota.addr], cliEnv);
}

async function cliJson<T>(args: string[]): Promise<T> {
  const r = await cli([...args, '--output', 'json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** Tokens by kind as the service keeps them (`input` counts every prompt token, cache reads and writes included) and their cost. */
interface Spend {
  used: number;
  input: number;
  cachedInput: number;
  cacheWrite: number;
  output: number;
  nano: number;
}
const noSpend = (): Spend => ({ used: 0, input: 0, cachedInput: 0, cacheWrite: 0, output: 0, nano: 0 });
const add = (a: Spend, b: Spend): void => {
  for (const k of Object.keys(a) as (keyof Spend)[]) a[k] += b[k];
};

/** An OpenAI-format usage of gpt-5-mini, priced by hand. */
function gptSpend(u: OpenAI.CompletionUsage): Spend {
  const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
  return {
    used: u.prompt_tokens + u.completion_tokens,
    input: u.prompt_tokens,
    cachedInput: cached,
    cacheWrite: 0,
    output: u.completion_tokens,
    nano: (u.prompt_tokens - cached) * GPT5_MINI.input + cached * GPT5_MINI.cachedInput + u.completion_tokens * GPT5_MINI.output,
  };
}

/** An Anthropic-format usage of claude-haiku-4-5 (input_tokens excludes cache reads and writes), priced by hand. */
function haikuSpend(u: Anthropic.Usage): Spend {
  const read = u.cache_read_input_tokens ?? 0;
  const write = u.cache_creation_input_tokens ?? 0;
  return {
    used: u.input_tokens + read + write + u.output_tokens,
    input: u.input_tokens + read + write,
    cachedInput: read,
    cacheWrite: write,
    output: u.output_tokens,
    nano: u.input_tokens * HAIKU_45.input + read * HAIKU_45.cachedInput + write * HAIKU_45.cacheWrite + u.output_tokens * HAIKU_45.output,
  };
}

/** The same from OpenAI-format usage (an OpenAI app calling the Anthropic model, no prompt caching). */
function haikuSpendFromOpenAI(u: OpenAI.CompletionUsage): Spend {
  expect(u.prompt_tokens_details?.cached_tokens ?? 0).toBe(0);
  return { used: u.prompt_tokens + u.completion_tokens, input: u.prompt_tokens, cachedInput: 0, cacheWrite: 0, output: u.completion_tokens, nano: u.prompt_tokens * HAIKU_45.input + u.completion_tokens * HAIKU_45.output };
}

/** The same from Anthropic-format usage (an Anthropic app calling the OpenAI model, no prompt caching). */
function gptSpendFromAnthropic(u: Anthropic.Usage): Spend {
  expect(u.cache_read_input_tokens ?? 0).toBe(0);
  return { used: u.input_tokens + u.output_tokens, input: u.input_tokens, cachedInput: 0, cacheWrite: 0, output: u.output_tokens, nano: u.input_tokens * GPT5_MINI.input + u.output_tokens * GPT5_MINI.output };
}

const headers = (tags: string | undefined, priority: 'interactive' | 'batch'): Record<string, string> => ({
  'x-llmgw-priority': priority,
  ...(tags === undefined ? {} : { 'x-llmgw-tags': tags }),
});
const openaiAt = (s: SidecarProc, tags: string | undefined, priority: 'interactive' | 'batch'): OpenAI =>
  new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'app-key', maxRetries: 0, defaultHeaders: headers(tags, priority) });
const anthropicAt = (s: SidecarProc, tags: string | undefined, priority: 'interactive' | 'batch'): Anthropic =>
  new Anthropic({ baseURL: s.url, apiKey: 'app-key', maxRetries: 0, defaultHeaders: headers(tags, priority) });

const nanoOf = (usd: number): number => Math.round(usd * 1e9);

interface UsageWindow {
  windowStart: string;
  windowEnd: string;
  used: number;
  input: number;
  cachedInput: number;
  cacheWrite: number;
  output: number;
  costUsd: number;
  byModel?: ({ provider: string; model: string; used: number; costUsd: number } & Record<string, number | string>)[];
  byTag?: { value: string; used: number; costUsd: number }[];
  untagged?: number;
  untaggedCostUsd?: number;
  byScope?: { scope: string; used: number; costUsd: number }[];
}
interface UsageJson {
  scope: string;
  window: string;
  by?: string;
  tag?: string;
  windows: UsageWindow[];
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const usdText = (nano: number): string => {
  // What the CLI prints: formatUsd (up to 9 decimals, no trailing zeros; '0' for nothing).
  if (nano === 0) return '0';
  return (nano / 1e9).toFixed(9).replace(/0+$/, '').replace(/\.$/, '');
};

describe('spend you can see: two sidecars, tags and priorities, token and dollar budgets', () => {
  it('budget usage --by model / --by tag / --by scope show the exact tokens and dollars; both budgets count every request', async () => {
    // Both kinds of budget on the scope the two sidecars share.
    expect(await cliJson(['budget', 'set', 'namespace/team-a', '--tokens', '1000000', '--window', 'day'])).toMatchObject([{ scope: 'namespace/team-a', unit: 'tokens', tokens: 1_000_000 }]);
    expect(await cliJson(['budget', 'set', 'namespace/team-a', '--usd', '5', '--window', 'day'])).toMatchObject([{ scope: 'namespace/team-a', unit: 'usd', usd: 5 }]);
    const chat = await startSidecar('team-a', 'chat', 'chat-1');
    const search = await startSidecar('team-a', 'search', 'search-1');

    const byModel: Record<string, Spend> = { 'openai/gpt-5-mini': noSpend(), 'anthropic/claude-haiku-4-5': noSpend() };
    const byFeature: Record<string, Spend> = { chat: noSpend(), search: noSpend(), '(untagged)': noSpend() };
    const byService: Record<string, Spend> = { chat: noSpend(), search: noSpend() };
    const total = noSpend();
    let calls = 0;
    /** Runs one call (one at a time), books what it cost, and checks the fake billed the tokens the app was told of. */
    const book = async (service: 'chat' | 'search', model: string, feature: string, run: () => Promise<Spend>): Promise<void> => {
      const before = fake.stats.billedTokens;
      const s = await run();
      // The fake counts an answer billed once it is completely sent.
      for (let i = 0; i < 100 && fake.stats.billedTokens - before !== s.used; i++) await sleep(10);
      expect(fake.stats.billedTokens - before).toBe(s.used);
      expect(s.nano).toBeGreaterThan(0);
      add(byModel[model]!, s);
      add(byFeature[feature]!, s);
      add(byService[service]!, s);
      add(total, s);
      calls++;
    };

    const sentence = (i: number, extra = ''): string => `request ${i} about the spend you can see ${extra}${'and more words '.repeat(i % 5)}`;
    // Sidecar team-a/chat, feature=chat: both wire formats, both models, streams, prompt cache reads and writes, both priorities.
    await book('chat', 'openai/gpt-5-mini', 'chat', async () => {
      const r = await openaiAt(chat, 'feature=chat', 'interactive').chat.completions.create({ model: 'gpt-5-mini', max_tokens: 24, messages: [{ role: 'user', content: sentence(1, 'with a long shared context [fake:cached] ') }] });
      expect(r.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
      return gptSpend(r.usage!);
    });
    await book('chat', 'openai/gpt-5-mini', 'chat', async () => {
      const stream = await openaiAt(chat, 'feature=chat', 'batch').chat.completions.create({ model: 'gpt-5-mini', max_tokens: 40, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: sentence(2) }] });
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) usage = chunk.usage ?? usage;
      return gptSpend(usage!);
    });
    await book('chat', 'anthropic/claude-haiku-4-5', 'chat', async () => {
      const m = await anthropicAt(chat, 'feature=chat', 'interactive').messages.create({ model: 'claude-haiku', max_tokens: 30, messages: [{ role: 'user', content: sentence(3, '[fake:cached] and [fake:cache-write] ') }] });
      expect(m.usage.cache_read_input_tokens).toBeGreaterThan(0);
      expect(m.usage.cache_creation_input_tokens).toBeGreaterThan(0);
      return haikuSpend(m.usage);
    });
    await book('chat', 'anthropic/claude-haiku-4-5', 'chat', async () => {
      const m = await anthropicAt(chat, 'feature=chat', 'batch').messages.stream({ model: 'claude-haiku', max_tokens: 12, messages: [{ role: 'user', content: sentence(4) }] }).finalMessage();
      return haikuSpend(m.usage);
    });
    await book('chat', 'anthropic/claude-haiku-4-5', '(untagged)', async () => {
      // An OpenAI app calling the Anthropic model (translated both ways), without tags.
      const r = await openaiAt(chat, undefined, 'interactive').chat.completions.create({ model: 'claude-haiku', max_tokens: 20, messages: [{ role: 'user', content: sentence(5) }] });
      return haikuSpendFromOpenAI(r.usage!);
    });
    // Sidecar team-a/search, feature=search (one call with a second tag key).
    await book('search', 'openai/gpt-5-mini', 'search', async () => {
      const r = await openaiAt(search, 'feature=search', 'batch').chat.completions.create({ model: 'gpt-5-mini', max_tokens: 50, messages: [{ role: 'user', content: sentence(6, '[fake:cached] ') }] });
      return gptSpend(r.usage!);
    });
    await book('search', 'anthropic/claude-haiku-4-5', 'search', async () => {
      const m = await anthropicAt(search, 'feature=search,team=core', 'interactive').messages.create({ model: 'claude-haiku', max_tokens: 64, messages: [{ role: 'user', content: sentence(7, '[fake:cache-write] ') }] });
      expect(m.usage.cache_creation_input_tokens).toBeGreaterThan(0);
      return haikuSpend(m.usage);
    });
    await book('search', 'openai/gpt-5-mini', 'search', async () => {
      // An Anthropic app calling the OpenAI model.
      const m = await anthropicAt(search, 'feature=search', 'batch').messages.create({ model: 'gpt-5-mini', max_tokens: 16, messages: [{ role: 'user', content: sentence(8) }] });
      return gptSpendFromAnthropic(m.usage);
    });
    await book('search', 'anthropic/claude-haiku-4-5', 'search', async () => {
      const stream = await openaiAt(search, 'feature=search', 'interactive').chat.completions.create({ model: 'claude-haiku', max_tokens: 33, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: sentence(9) }] });
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) usage = chunk.usage ?? usage;
      return haikuSpendFromOpenAI(usage!);
    });
    await book('search', 'openai/gpt-5-mini', '(untagged)', async () => {
      const r = await openaiAt(search, 'team=core', 'batch').chat.completions.create({ model: 'gpt-5-mini', max_tokens: 10, messages: [{ role: 'user', content: sentence(10) }] });
      return gptSpend(r.usage!);
    });
    expect(calls).toBe(10);
    // Every value differs, so no breakdown can pass by swapping two rows.
    expect(byFeature.chat!.nano).not.toBe(byFeature.search!.nano);
    expect(byModel['openai/gpt-5-mini']!.nano).not.toBe(byModel['anthropic/claude-haiku-4-5']!.nano);

    // The drain hands over the last usage: from here on the service knows everything.
    await stopSidecar(chat);
    await stopSidecar(search);

    // Today's and yesterday's windows (a run may straddle midnight UTC), added up per row.
    const base = ['budget', 'usage', 'namespace/team-a', '--window', 'day', '--last', '2'];
    const models = await cliJson<UsageJson>([...base, '--by', 'model']);
    expect(models).toMatchObject({ scope: 'namespace/team-a', window: 'day', by: 'model' });
    const sum = (rows: (Spend & { key: string })[]): Record<string, Spend> => {
      const out: Record<string, Spend> = {};
      for (const r of rows) add((out[r.key] ??= noSpend()), r);
      return out;
    };
    const spendOf = (w: { used: number; costUsd: number; input?: unknown; cachedInput?: unknown; cacheWrite?: unknown; output?: unknown }): Spend => ({
      used: w.used,
      input: Number(w.input),
      cachedInput: Number(w.cachedInput),
      cacheWrite: Number(w.cacheWrite),
      output: Number(w.output),
      nano: nanoOf(w.costUsd),
    });
    const modelRows = sum(models.windows.flatMap((w) => w.byModel!.map((m) => ({ key: `${m.provider}/${m.model}`, ...spendOf(m) }))));
    expect(modelRows).toEqual(byModel);
    const windowTotal = sum(models.windows.map((w) => ({ key: 'all', ...spendOf(w) })));
    expect(windowTotal.all).toEqual(total);
    // The scope's total is the sum of its rows, in each window.
    for (const w of models.windows) {
      expect(w.byModel!.reduce((n, m) => n + m.used, 0)).toBe(w.used);
      expect(w.byModel!.reduce((n, m) => n + nanoOf(m.costUsd), 0)).toBe(nanoOf(w.costUsd));
    }
    // The same figures in the table for people.
    const modelTable = await cli([...base, '--by', 'model']);
    expect(modelTable.code).toBe(0);
    expect(modelTable.stdout).toMatch(/^WINDOW START \(UTC\)\s+WINDOW END \(UTC\)\s+PROVIDER\s+MODEL\s+USED\s+INPUT\s+CACHED INPUT\s+CACHE WRITE\s+OUTPUT\s+COST \(USD\)$/m);
    for (const w of models.windows) {
      expect(modelTable.stdout).toMatch(new RegExp(`^${escape(w.windowStart)}\\s+${escape(w.windowEnd)}\\s+\\(all\\)\\s+${w.used}\\s+${w.input}\\s+${w.cachedInput}\\s+${w.cacheWrite}\\s+${w.output}\\s+${escape(usdText(nanoOf(w.costUsd)))}$`, 'm'));
      for (const m of w.byModel!) {
        expect(modelTable.stdout).toMatch(new RegExp(`^\\s+${escape(m.provider)}\\s+${escape(m.model)}\\s+${m.used}\\s+${m.input}\\s+${m.cachedInput}\\s+${m.cacheWrite}\\s+${m.output}\\s+${escape(usdText(nanoOf(m.costUsd)))}$`, 'm'));
      }
    }
    if (models.windows.filter((w) => w.used > 0).length === 1) {
      // The usual case (no midnight inside the run): the hand-priced figures themselves are in the table.
      for (const [key, s] of Object.entries(byModel)) {
        const [provider, model] = key.split('/');
        expect(modelTable.stdout).toMatch(new RegExp(`^\\s+${escape(provider!)}\\s+${escape(model!)}\\s+${s.used}\\s+${s.input}\\s+${s.cachedInput}\\s+${s.cacheWrite}\\s+${s.output}\\s+${escape(usdText(s.nano))}$`, 'm'));
      }
    }

    // --by tag feature: per value and what carried no feature, in tokens and dollars.
    const tags = await cliJson<UsageJson>([...base, '--by', 'tag', 'feature']);
    expect(tags.tag).toBe('feature');
    const tagRows = sum(tags.windows.flatMap((w) => w.byTag!.map((t) => ({ key: t.value, ...noSpend(), used: t.used, nano: nanoOf(t.costUsd) }))));
    const untagged = tags.windows.reduce((n, w) => ({ used: n.used + w.untagged!, nano: n.nano + nanoOf(w.untaggedCostUsd!) }), { used: 0, nano: 0 });
    const want = (s: Spend): Spend => ({ ...noSpend(), used: s.used, nano: s.nano });
    expect(tagRows).toEqual({ chat: want(byFeature.chat!), search: want(byFeature.search!) });
    expect(untagged).toEqual({ used: byFeature['(untagged)']!.used, nano: byFeature['(untagged)']!.nano });
    for (const w of tags.windows) {
      expect(w.byTag!.reduce((n, t) => n + t.used, 0) + w.untagged!).toBe(w.used);
      expect(w.byTag!.reduce((n, t) => n + nanoOf(t.costUsd), 0) + nanoOf(w.untaggedCostUsd!)).toBe(nanoOf(w.costUsd));
    }
    const tagTable = await cli([...base, '--by', 'tag', 'feature']);
    expect(tagTable.code).toBe(0);
    expect(tagTable.stdout).toMatch(/^WINDOW START \(UTC\)\s+WINDOW END \(UTC\)\s+FEATURE\s+USED\s+COST \(USD\)$/m);
    for (const w of tags.windows) {
      expect(tagTable.stdout).toMatch(new RegExp(`^${escape(w.windowStart)}\\s+${escape(w.windowEnd)}\\s+\\(all\\)\\s+${w.used}\\s+${escape(usdText(nanoOf(w.costUsd)))}$`, 'm'));
      for (const t of w.byTag!) expect(tagTable.stdout).toMatch(new RegExp(`^\\s+${escape(t.value)}\\s+${t.used}\\s+${escape(usdText(nanoOf(t.costUsd)))}$`, 'm'));
      if (w.untagged! > 0) expect(tagTable.stdout).toMatch(new RegExp(`^\\s+\\(untagged\\)\\s+${w.untagged}\\s+${escape(usdText(nanoOf(w.untaggedCostUsd!)))}$`, 'm'));
    }
    if (tags.windows.filter((w) => w.used > 0).length === 1) {
      for (const [value, s] of Object.entries(byFeature)) expect(tagTable.stdout).toMatch(new RegExp(`^\\s+${escape(value)}\\s+${s.used}\\s+${escape(usdText(s.nano))}$`, 'm'));
    }
    // A second tag key is kept apart: only the calls that carried team=core.
    const team = await cliJson<UsageJson>([...base, '--by', 'tag', 'team']);
    expect(team.windows.flatMap((w) => w.byTag!.map((t) => t.value))).toEqual(['core']);

    // --by scope: the namespace and each sidecar's service under it.
    const scopes = await cliJson<UsageJson>([...base, '--by', 'scope']);
    const scopeRows = sum(scopes.windows.flatMap((w) => w.byScope!.map((s) => ({ key: s.scope, ...noSpend(), used: s.used, nano: nanoOf(s.costUsd) }))));
    expect(scopeRows).toEqual({
      'namespace/team-a': want(total),
      'namespace/team-a/service/chat': want(byService.chat!),
      'namespace/team-a/service/search': want(byService.search!),
    });

    // Both budgets of the scope counted every request: the token one in tokens, the dollar one in dollars (and its tokens).
    const budgets = await cliJson<{ unit: string; used: number; usedTokens?: number; usedUsd?: number }[]>(['budget', 'get', 'namespace/team-a']);
    const current = models.windows[0]!; // the budgets' window is today's
    const tokens = budgets.find((b) => b.unit === 'tokens')!;
    const dollars = budgets.find((b) => b.unit === 'usd')!;
    expect(tokens.used).toBe(current.used);
    expect(nanoOf(tokens.usedUsd!)).toBe(nanoOf(current.costUsd));
    expect(nanoOf(dollars.used)).toBe(nanoOf(current.costUsd));
    expect(dollars.usedTokens).toBe(current.used);
    if (models.windows.length === 1 || models.windows[1]!.used === 0) {
      expect(tokens.used).toBe(total.used);
      expect(nanoOf(dollars.used)).toBe(total.nano);
    }
  }, 60_000);

  it('a per-minute dollar budget: batch refused from its floor, interactive only from 98% on, 429 with Retry-After, spend within 103%', async () => {
    const BUDGET_USD = 0.06;
    const budget = nanoOf(BUDGET_USD);
    expect(await cliJson(['budget', 'set', 'namespace/team-b', '--usd', String(BUDGET_USD), '--window', 'minute'])).toMatchObject([
      { scope: 'namespace/team-b', window: 'minute', unit: 'usd', usd: BUDGET_USD, priorityFloors: { batch: 0.5, background: 0.2 } },
    ]);
    const sidecars = { chat: await startSidecar('team-b', 'chat', 'b-chat-1'), search: await startSidecar('team-b', 'search', 'b-search-1') };

    // The whole run inside one minute window. The budget is spent in 4-10 s; what another pod's lease still
    // holds then is given back at its next renewal, within 13 s, after which the last refusals send the apps
    // to the window's end. So the run may take 23 s: it starts at the beginning of the next minute when less
    // than 30 s are left of this one.
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 30_000) await sleep(left + 200);
    const windowStartMs = Date.now() - (Date.now() % 60_000);
    const windowEndMs = windowStartMs + 60_000;
    const deadline = Math.min(Date.now() + 23_000, windowEndMs - 4000);

    interface Done {
      sidecar: string;
      priority: 'interactive' | 'batch';
      startedAt: number;
      endedAt: number;
      status: number;
      nano: number;
      code?: string;
      retryAfter?: number | null;
      message?: string;
    }
    const done: Done[] = [];
    let i = 0;
    /**
     * One app loop: calls until it is told the window is spent (a Retry-After to the window's end). A shorter
     * Retry-After (what is left is held by other leases until their next renewal, within 13 s with the default
     * 30 s lease TTL) it tries again a second later, until the run's deadline.
     */
    const app = async (sidecar: keyof typeof sidecars, priority: 'interactive' | 'batch', format: 'openai' | 'anthropic'): Promise<void> => {
      const s = sidecars[sidecar];
      const tags = `feature=${sidecar}`;
      const openai = openaiAt(s, tags, priority);
      const anthropic = anthropicAt(s, tags, priority);
      while (Date.now() < deadline) {
        const n = i++;
        const content = `minute request ${n} from ${sidecar} ${priority} about twelve words of prompt text here`;
        const startedAt = Date.now();
        try {
          let spend: Spend;
          if (format === 'openai') {
            const model = n % 2 === 0 ? 'gpt-5-mini' : 'claude-haiku';
            const r = await openai.chat.completions.create({ model, max_tokens: 16, messages: [{ role: 'user', content }] });
            spend = model === 'gpt-5-mini' ? gptSpend(r.usage!) : haikuSpendFromOpenAI(r.usage!);
          } else {
            const model = n % 2 === 0 ? 'claude-haiku' : 'gpt-5-mini';
            const m = await anthropic.messages.create({ model, max_tokens: 16, messages: [{ role: 'user', content }] });
            spend = model === 'claude-haiku' ? haikuSpend(m.usage) : gptSpendFromAnthropic(m.usage);
          }
          done.push({ sidecar, priority, startedAt, endedAt: Date.now(), status: 200, nano: spend.nano });
        } catch (err) {
          // OpenAI SDK: error = the body's `error`; Anthropic SDK: error = the whole body, `{ type: 'error', error }`.
          type Body = { code?: string; type?: string; message?: string; error?: Body };
          const e = err as { status?: number; headers?: Headers; error?: Body; message?: string };
          const body = e.error?.error ?? e.error;
          const ra = e.headers?.get('retry-after');
          const retryAfter = ra === null || ra === undefined ? null : Number(ra);
          done.push({ sidecar, priority, startedAt, endedAt: Date.now(), status: e.status ?? 0, nano: 0, code: body?.code ?? body?.type, retryAfter, message: body?.message ?? e.message });
          if (e.status !== 429 || retryAfter === null) return;
          // Spent until the window's end: this app is done for the window.
          if (Date.now() + retryAfter * 1000 >= windowEndMs - 2000) return;
          await sleep(Math.min(retryAfter, 1) * 1000);
        }
      }
    };
    const started = Date.now();
    const loops: Promise<void>[] = [];
    for (const sc of ['chat', 'search'] as const) {
      for (const priority of ['interactive', 'batch'] as const) {
        loops.push(app(sc, priority, 'openai'), app(sc, priority, 'anthropic'), app(sc, priority, 'openai'));
      }
    }
    await Promise.all(loops);
    const elapsed = Date.now() - started;
    await stopSidecar(sidecars.chat);
    await stopSidecar(sidecars.search);

    const ok = done.filter((d) => d.status === 200);
    const refused = done.filter((d) => d.status !== 200);
    const spent = ok.reduce((n, d) => n + d.nano, 0);
    // Admitted by the time a refusal was answered: what had started by then (requests in flight included, as a budget counts them).
    const spentBy = (t: number): number => ok.filter((d) => d.startedAt < t).reduce((n, d) => n + d.nano, 0);
    const firstRefusal = (p: 'interactive' | 'batch'): Done => refused.filter((d) => d.priority === p).sort((a, b) => a.endedAt - b.endedAt)[0]!;
    const summary = {
      elapsedMs: elapsed,
      served: ok.length,
      refused: refused.length,
      spentPct: (100 * spent) / budget,
      firstBatchRefusalAtPct: firstRefusal('batch') && (100 * spentBy(firstRefusal('batch').endedAt)) / budget,
      firstInteractiveRefusalAtPct: firstRefusal('interactive') && (100 * spentBy(firstRefusal('interactive').endedAt)) / budget,
      lastBatchAdmittedAtPct: (100 * Math.max(...ok.filter((d) => d.priority === 'batch').map((d) => spentBy(d.startedAt + 1)))) / budget,
      completedBeforeFirstInteractiveRefusalPct:
        firstRefusal('interactive') && (100 * ok.filter((d) => d.endedAt <= firstRefusal('interactive').startedAt).reduce((n, d) => n + d.nano, 0)) / budget,
    };
    console.log('per-minute dollar budget run', JSON.stringify(summary));
    if (process.env.DEBUG_RUN) for (const r of refused) console.log(r.sidecar, r.priority, r.startedAt - started, r.endedAt - started, r.retryAfter, (100 * spentBy(r.endedAt)) / budget, r.message);

    // The run stayed inside its minute, and every answer was a success or the documented refusal.
    expect(Math.max(...done.map((d) => d.endedAt))).toBeLessThan(windowEndMs - 1000);
    for (const r of refused) {
      expect(r, JSON.stringify(r)).toMatchObject({ status: 429, code: 'llmgw_quota_exhausted' });
      expect(Number.isInteger(r.retryAfter)).toBe(true);
      expect(r.retryAfter!).toBeGreaterThanOrEqual(1);
      expect(r.retryAfter!).toBeLessThanOrEqual(Math.ceil((windowEndMs - r.startedAt) / 1000) + 1);
      expect(r.message).toContain('budget namespace/team-b ($0.06 a minute');
    }
    // Both sidecars and both classes were driven to refusals.
    for (const sc of ['chat', 'search']) for (const p of ['interactive', 'batch']) expect(refused.some((r) => r.sidecar === sc && r.priority === p), `${sc} ${p} refused`).toBe(true);
    // Batch first: refused from its floor on (batch may use half of the budget), before interactive, and never
    // admitted past the floor. The floor counts what higher classes' leases hold as not left for batch, and early
    // in a burst those are large (10 s of a demand whose moving average, time constant 10 s, is still rising):
    // in these runs interactive leases held 3-18% of the budget when batch was first refused, with 32-50% of it
    // consumed. So the lower bound here is loose: batch is not refused before a fifth of the budget is used.
    const batchRefusals = refused.filter((r) => r.priority === 'batch');
    for (const r of batchRefusals) expect(r.message).toContain('budget namespace/team-b ($0.06 a minute, of which batch requests may use $0.03)');
    expect(spentBy(firstRefusal('batch').endedAt)).toBeGreaterThanOrEqual(budget * 0.2);
    expect(firstRefusal('batch').endedAt).toBeLessThan(firstRefusal('interactive').endedAt);
    // What batch requests spent in all stays within the half batch may use (+3%). (The budget as a whole may be
    // past half when a batch request is admitted: its lease was granted while half was left, and interactive
    // requests spent meanwhile.)
    const batchSpent = ok.filter((d) => d.priority === 'batch').reduce((n, d) => n + d.nano, 0);
    expect(batchSpent).toBeLessThanOrEqual(budget * 0.5 * 1.03);
    // Interactive: nothing refused before 98% of the budget was used.
    expect(spentBy(firstRefusal('interactive').endedAt)).toBeGreaterThanOrEqual(budget * 0.98);
    // The last refusals send the app to the window's end.
    const last = refused.filter((r) => r.priority === 'interactive').at(-1)!;
    expect(Math.abs(last.retryAfter! - (windowEndMs - last.endedAt) / 1000)).toBeLessThanOrEqual(2);

    // What the service recorded is what the apps were told, priced by hand, and within the overshoot target.
    const usage = await cliJson<UsageJson>(['budget', 'usage', 'namespace/team-b', '--window', 'minute', '--last', '3']);
    const withUsage = usage.windows.filter((w) => w.used > 0);
    expect(withUsage.map((w) => w.windowStart)).toEqual([new Date(windowStartMs).toISOString().replace('.000Z', 'Z')]);
    expect(nanoOf(withUsage[0]!.costUsd)).toBe(spent);
    expect(spent).toBeLessThanOrEqual(budget * 1.03);
    expect(spent).toBeGreaterThanOrEqual(budget * 0.98);
    // `budget get` shows the current window: the same figure while the run's minute lasts.
    const [b] = await cliJson<{ unit: string; used: number; usd: number; windowStart: string }[]>(['budget', 'get', 'namespace/team-b']);
    expect(b!.unit).toBe('usd');
    if (b!.windowStart === withUsage[0]!.windowStart) expect(nanoOf(b!.used)).toBe(spent);
  }, 120_000);
});
