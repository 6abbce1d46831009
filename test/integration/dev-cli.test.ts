// `llmgw dev` as the README sets it up (`npm ci && npm run build && npm link && llmgw dev`): the banner lists
// every address it listens on, and every command line it prints works as printed, split into words as a
// POSIX shell would and run through the PATH that `npm link` filled, from another folder.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, envWithoutKeys } from '../helpers/cli.js';

const REPO = join(import.meta.dirname, '../..');

/**
 * The words a POSIX shell makes of a line that uses nothing but spaces, single quotes and backslashes. A
 * character that would make the shell do more (expand, redirect, glob, chain, history) is refused: a printed
 * line must not depend on which shell runs it.
 */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '\\') {
      word = (word ?? '') + (line[++i] ?? '');
    } else if ('"$`|&;<>()*?[]{}~!#'.includes(c)) {
      throw new Error(`"${c}" outside quotes: the shell would not pass this line on as written: ${line}`);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv[0] as found on the PATH of `env` (as a shell would), in `cwd`. */
function run(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let prefix: string;
let env: NodeJS.ProcessEnv;
let elsewhere: string;
let dev: ChildProcessWithoutNullStreams;
let out = '';
let err = '';
let exited: Promise<number | null>;

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; stdout:\n${out}\nstderr:\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const bannerLines = (): string[] => out.split('\n');
const commandLines = (): string[] => bannerLines().filter((l) => l.startsWith('llmgw ') || l.startsWith('curl '));
const address = (name: string): string => {
  const line = bannerLines().find((l) => new RegExp(`^\\s+${name}\\s{2,}`).test(l));
  if (line === undefined) throw new Error(`the banner lists no ${name}:\n${out}`);
  return line.trim().slice(name.length).trim().split(/\s+/)[0]!;
};
const stderrJson = (): Record<string, unknown>[] =>
  err
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  // The README's setup step, into a global folder of the test's own (offline: it only links this clone).
  prefix = mkdtempSync(join(tmpdir(), 'llmgw-npm-prefix-'));
  await promisify(execFile)('npm', ['link', '--no-audit', '--no-fund'], { cwd: REPO, env: { ...process.env, npm_config_prefix: prefix, npm_config_offline: 'true' } });
  env = { ...envWithoutKeys(), PATH: `${join(prefix, 'bin')}${delimiter}${process.env.PATH ?? ''}` };
  delete env.LLMGW_QUOTA_ADDR;
  delete env.LLMGW_ADMIN_TOKEN;
  delete env.POD_NAMESPACE;
  const project = mkdtempSync(join(tmpdir(), 'llmgw-dev-project-'));
  elsewhere = mkdtempSync(join(tmpdir(), 'llmgw-operator-'));
  const ports = ['--listen', '--status-listen', '--quota-listen', '--quota-status-listen'].flatMap((f) => [f, '127.0.0.1:0']);
  dev = spawn('llmgw', ['dev', ...ports, '--state-dir', join(project, '.llmgw')], { env, cwd: project, stdio: 'pipe' });
  dev.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  dev.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  exited = new Promise((resolve) => dev.once('exit', (code) => resolve(code)));
  await until('the banner', () => (bannerLines().some((l) => l.startsWith('logs ')) ? true : undefined));
}, 30_000);

afterAll(() => {
  if (dev.exitCode === null) dev.kill('SIGKILL');
});

describe('llmgw dev, set up as the README says', () => {
  it('lists every address it listens on, and each answers', async () => {
    const sidecar = address('sidecar');
    const models = await request(`${sidecar}/v1/models`);
    expect(models.statusCode).toBe(200);
    expect(((await models.body.json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual(['gpt-4o-mini', 'claude-haiku-4-5', 'text-embedding-3-small']);
    for (const status of ['sidecar status', 'quota status']) {
      const ready = await request(`${address(status)}/healthz/ready`);
      expect(ready.statusCode, status).toBe(200);
      await ready.body.dump();
    }
    const quotaMetrics = await request(`${address('quota status')}/metrics`);
    expect(await quotaMetrics.body.text()).toContain('llmgw_quota_');
    // The usage page the banner points at: the page for anyone, its data for the admin token it names.
    const page = await request(`${address('quota status')}/ui`);
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toContain('<html');
    const tokenFile = /sign in with the token in (\S+)\)/.exec(out)![1]!;
    const summary = await request(`${address('quota status')}/ui/api/summary`, { headers: { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` } });
    expect(summary.statusCode).toBe(200);
    expect(((await summary.body.json()) as { budgets: { rows: unknown[] } }).budgets.rows).toBeInstanceOf(Array);
    const anonymous = await request(`${address('quota status')}/ui/api/summary`);
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
    const fake = await request(`${address('fake provider')}/_fake/stats`);
    expect(fake.statusCode).toBe(200);
    await fake.body.dump();
    // The quota service's gRPC address is the one the printed CLI lines use.
    const quota = address('quota service');
    expect(quota).toMatch(/^127\.0\.0\.1:\d+$/);
    for (const line of commandLines().filter((l) => l.startsWith('llmgw '))) expect(shellWords(line)).toContain(quota);
  });

  it('prints a curl line that works as printed', async () => {
    const curl = commandLines().filter((l) => l.startsWith('curl '));
    expect(curl).toHaveLength(1);
    const r = await run(shellWords(curl[0]!), env, elsewhere);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { choices: { message: { content: string } }[] };
    expect(json.choices[0]!.message.content).toBe('Hello from the fake provider. You said: Hello!');
  });

  it('prints llmgw lines that work as printed from any folder: set, read, and see what the namespace used', async () => {
    const lines = commandLines().filter((l) => l.startsWith('llmgw '));
    expect(lines.map((l) => shellWords(l).slice(1, 3).join(' '))).toEqual(['budget set', 'budget get', 'budget usage']);
    for (const line of lines) {
      const r = await run(shellWords(line), env, elsewhere);
      expect(r.code, `${line}\n${r.stderr}`).toBe(0);
      if (line.startsWith('llmgw budget usage')) expect(r.stdout).toMatch(/^WINDOW START \(UTC\)\s+WINDOW END \(UTC\)\s+USED/);
      else expect(r.stdout).toMatch(/namespace\/default\s+day\s+100000\s/);
    }
    // The curl request above reaches the namespace's usage (sidecars report within seconds).
    const usage = lines.find((l) => l.startsWith('llmgw budget usage'))!;
    let used = 0;
    for (let i = 0; i < 60 && used === 0; i++) {
      const r = await run(shellWords(usage), env, elsewhere);
      used = Number(r.stdout.split('\n')[1]?.split(/\s{2,}/)[2] ?? 0);
      if (used === 0) await new Promise((res) => setTimeout(res, 250));
    }
    expect(used).toBeGreaterThan(0);
  }, 30_000);

  it('logs JSON lines on stderr when stderr is not a terminal', () => {
    const logs = stderrJson();
    expect(logs.map((l) => l.msg)).toContain('sidecar started');
    expect(logs.every((l) => typeof l.time === 'number' && typeof l.level === 'number')).toBe(true);
  });

  it('logs a 502 that the upstream caused and the app got as a warning', async () => {
    const fake = address('fake provider');
    const fault = await request(`${fake}/_fake/faults`, { method: 'POST', body: JSON.stringify({ match: { path: '/v1/chat/completions' }, status: 502, times: 0 }) });
    await fault.body.dump();
    try {
      const res = await request(`${address('sidecar')}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a failing upstream' }] }),
      });
      expect(res.statusCode).toBeGreaterThanOrEqual(500);
      const reqId = res.headers['x-request-id'];
      await res.body.dump();
      const line = await until('the access line', () => stderrJson().find((l) => l.msg === 'request' && l.reqId === reqId));
      expect(line).toMatchObject({ level: 40, status: res.statusCode });
      expect(String(line.error)).toMatch(/^(llmgw_upstream_|provider_5)/);
    } finally {
      await (await request(`${fake}/_fake/faults`, { method: 'DELETE' })).body.dump();
    }
  }, 30_000);

  it('stops on SIGTERM, exiting 0', async () => {
    dev.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderrJson().map((l) => l.msg)).toContain('sidecar stopped');
  });
});

describe('shell word split', () => {
  it('reads quotes and escapes as a POSIX shell does, and refuses what a shell would change', () => {
    expect(shellWords(`curl -s http://x -d '{"a": "it'\\''s"}'`)).toEqual(['curl', '-s', 'http://x', '-d', `{"a": "it's"}`]);
    expect(shellWords(`llmgw  budget get '/tmp/with space'`)).toEqual(['llmgw', 'budget', 'get', '/tmp/with space']);
    expect(() => shellWords('llmgw budget get $HOME')).toThrow('"$" outside quotes');
    expect(() => shellWords('llmgw --quota-addr [::1]:50051')).toThrow('"[" outside quotes');
  });
});
