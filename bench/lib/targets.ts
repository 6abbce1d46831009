// The processes a benchmark run compares: the fake upstreams (instant and paced SSE), the minimal proxy,
// the sidecar (access log on, and silent), and Portkey's gateway when it installs.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalIssuer } from '../../quota-service/auth/local-issuer.js';
import type { Endpoint } from './probes.js';
import { freePort, startProc, type Proc, type ProcSpec } from './proc.js';

/** The system under test runs on this core; upstreams, load generator and probes on the other. */
export const SUT_CORE = 0;
export const LOAD_CORE = 1;

export const PORTKEY_VERSION = '1.15.2';

const dist = join(import.meta.dirname, '..', '..');
// The shipped executable: the bundle, not the per-file tsc output.
const cli = join(dist, 'llmgw', 'main.mjs');
const JSON_HEADERS = { 'content-type': 'application/json', authorization: 'Bearer bench' };
const CHAT = '/v1/chat/completions';

export interface Upstreams {
  instant: string;
  paced: string;
  procs: Proc[];
}

export async function startUpstreams(paceMs: number): Promise<Upstreams> {
  const start = async (name: string, delay: number): Promise<[string, Proc]> => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = await startProc({
      name,
      cmd: process.execPath,
      args: [cli, 'fake-provider', '--listen', `127.0.0.1:${port}`, '--chunk-delay-ms', String(delay)],
      core: LOAD_CORE,
      readyUrl: `${url}/_fake/stats`,
    });
    return [url, proc];
  };
  const [instant, a] = await start('fake-instant', 0);
  const [paced, b] = await start('fake-paced', paceMs);
  return { instant, paced, procs: [a, b] };
}

export const directEndpoint = (upstream: string): Endpoint => ({ url: `${upstream}${CHAT}`, headers: JSON_HEADERS });

/** The executable of another build: its bundle, or (builds from before bundling) its tsc output. */
function executableIn(distDir: string): string {
  const bundled = join(distDir, 'llmgw', 'main.mjs');
  return existsSync(bundled) ? bundled : join(distDir, 'cli', 'main.js');
}

/** Node flags from an executable's `#!/usr/bin/env -S node …` line, so it runs as `llmgw` would. */
export function shebangFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node (.*)$/.exec(first);
  return m === null ? [] : m[1]!.trim().split(/\s+/);
}

/** How to start one server process and reach it; built anew (fresh ports) for every start. */
export interface ServerSpec {
  spec: ProcSpec;
  endpoint: Endpoint;
  /** A sidecar's config file (it reloads on change) and status listener. */
  sidecar?: { configPath: string; statusUrl: string };
  /** The same server on fresh ports: a port probed free can be taken by another process before it binds. */
  again?: () => Promise<ServerSpec>;
}

export async function minimalProxySpec(upstream: string): Promise<ServerSpec> {
  const port = await freePort();
  return {
    spec: {
      name: 'minimal-proxy',
      cmd: process.execPath,
      args: [join(dist, 'bench', 'minimal-proxy.js'), String(port), upstream],
      core: SUT_CORE,
      readyUrl: `http://127.0.0.1:${port}/_fake/stats`,
    },
    endpoint: { url: `http://127.0.0.1:${port}${CHAT}`, headers: JSON_HEADERS },
    again: () => minimalProxySpec(upstream),
  };
}

export interface SidecarOptions {
  name: string;
  /** Another build's `dist/` (the `--baseline` of a before/after comparison); default this build. */
  distDir?: string;
  upstreams: Upstreams;
  logLevel: 'info' | 'silent';
  logFile: string;
  workDir: string;
  /** The sidecar's `quota` config; absent: no global quota. */
  quota?: Record<string, unknown>;
  /** The sidecar's `cache` config; absent: no response cache. */
  cache?: Record<string, unknown>;
  /** More providers and models, beside the two upstreams'. */
  extra?: { providers: Record<string, unknown>; models: Record<string, unknown> };
}

/** The sidecar routes `gpt-4o-mini` to the instant upstream and `paced-gpt-4o-mini` to the paced one. */
export async function sidecarSpec(opts: SidecarOptions): Promise<ServerSpec> {
  const port = await freePort();
  const statusPort = await freePort();
  const config = {
    providers: {
      instant: { type: 'openai', baseUrl: `${opts.upstreams.instant}/v1`, apiKey: 'bench' },
      paced: { type: 'openai', baseUrl: `${opts.upstreams.paced}/v1`, apiKey: 'bench' },
      ...opts.extra?.providers,
    },
    models: {
      'gpt-4o-mini': { targets: [{ provider: 'instant', model: 'gpt-4o-mini' }] },
      'paced-gpt-4o-mini': { targets: [{ provider: 'paced', model: 'gpt-4o-mini' }] },
      ...opts.extra?.models,
    },
    logging: { level: opts.logLevel },
    // As in a pod: the data in a folder of its own, apart from the config's (which the sidecar watches).
    storage: { path: join(opts.workDir, `${opts.name}-data`, 'llmgw.db') },
    ...(opts.quota === undefined ? {} : { quota: opts.quota }),
    ...(opts.cache === undefined ? {} : { cache: opts.cache }),
  };
  const configDir = join(opts.workDir, `${opts.name}-config`);
  mkdirSync(configDir, { recursive: true });
  const configPath = join(configDir, 'config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const exe = opts.distDir === undefined ? cli : executableIn(opts.distDir);
  return {
    spec: {
      name: opts.name,
      cmd: process.execPath,
      args: [...shebangFlags(exe), exe, 'sidecar', '--config', configPath, '--listen', `127.0.0.1:${port}`, '--status-listen', `127.0.0.1:${statusPort}`],
      core: SUT_CORE,
      logFile: opts.logFile,
      readyUrl: `http://127.0.0.1:${statusPort}/healthz/ready`,
    },
    endpoint: { url: `http://127.0.0.1:${port}${CHAT}`, headers: JSON_HEADERS },
    sidecar: { configPath, statusUrl: `http://127.0.0.1:${statusPort}` },
    again: () => sidecarSpec(opts),
  };
}

/** Sets a running sidecar's `logging.level` through its config file; resolves once the reload applied. */
export async function setLogLevel(s: ServerSpec, level: 'info' | 'silent'): Promise<void> {
  await reloadConfig(s, (config) => {
    (config.logging as { level: string }).level = level;
  });
}

/**
 * Changes a running sidecar's config file with `change`; resolves once the sidecar applied it (at once
 * when the change leaves the file as it was: the sidecar would not reload).
 */
export async function reloadConfig(s: ServerSpec, change: (config: Record<string, unknown>) => void): Promise<void> {
  if (s.sidecar === undefined) throw new Error('not a sidecar');
  const { configPath, statusUrl } = s.sidecar;
  const before = readFileSync(configPath, 'utf8');
  const config = JSON.parse(before) as Record<string, unknown>;
  change(config);
  const after = JSON.stringify(config, null, 2);
  if (after === before) return;
  const applied = (): Promise<number> => counterTotal(statusUrl, 'llmgw_config_reloads_total', 'result="applied"');
  const count = await applied();
  writeFileSync(configPath, after);
  const deadline = performance.now() + 10_000;
  while ((await applied()) === count) {
    if (performance.now() > deadline) throw new Error(`${configPath}: the sidecar did not reload within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A sidecar's `quota` section as the benches give it: `section` with a fail-open allowance no bench load
 * reaches, so a service out of reach (or being switched) never refuses a measured request.
 */
export const benchQuota = (section: Record<string, unknown>): Record<string, unknown> => ({ ...section, failOpenTokensPerMinute: 1_000_000_000 });

/** A quota service of the run, with what a sidecar's `quota` config needs to use it. */
export interface BenchQuotaService {
  address: string;
  statusUrl: string;
  proc: Proc;
  /** `quota.address`, and `quota.tokenFile` when the service verifies tokens. */
  sidecarQuota: Record<string, unknown>;
}

/**
 * `llmgw quota-service` with a budget that the run cannot spend, so sidecars hold real (limited) leases.
 * `verified`: as deployed, verifying each sidecar's service-account token (minted here against a JWKS file)
 * and requiring the operator token; `unverified`: `--auth none`, the baseline verification is measured against.
 */
export async function startQuotaService(workDir: string, name: string, auth: 'verified' | 'unverified'): Promise<BenchQuotaService> {
  const port = await freePort();
  const statusPort = await freePort();
  const address = `127.0.0.1:${port}`;
  const authArgs: string[] = ['--auth', 'none'];
  const sidecarQuota: Record<string, unknown> = { address };
  const adminArgs: string[] = [];
  if (auth === 'verified') {
    const issuer = createLocalIssuer();
    const files = { jwks: join(workDir, `${name}-jwks.json`), admin: join(workDir, `${name}-admin-token`), token: join(workDir, `${name}-sidecar-token`) };
    writeFileSync(files.jwks, JSON.stringify(issuer.jwks));
    writeFileSync(files.admin, randomBytes(24).toString('base64url'));
    writeFileSync(files.token, await issuer.mint({ namespace: 'default', serviceAccount: 'bench', pod: 'bench-pod', audience: 'llm-gateway', expiresInSeconds: 86_400 }));
    authArgs.splice(0, 2, '--auth', 'jwks', '--auth-jwks', files.jwks, '--auth-issuer', issuer.issuer, '--admin-token-file', files.admin);
    adminArgs.push('--token-file', files.admin);
    sidecarQuota.tokenFile = files.token;
  }
  const proc = await startProc({
    name,
    cmd: process.execPath,
    args: [...shebangFlags(cli), cli, 'quota-service', '--listen', address, '--status-listen', `127.0.0.1:${statusPort}`, '--db', join(workDir, `${name}.db`), '--log-level', 'warn', ...authArgs],
    core: LOAD_CORE,
    readyUrl: `http://127.0.0.1:${statusPort}/healthz/ready`,
  });
  const set = spawnSync(process.execPath, [cli, 'budget', 'set', 'namespace/default', '--tokens', '1000000000000', '--window', 'day', '--quota-addr', address, ...adminArgs], { encoding: 'utf8' });
  if (set.status !== 0) throw new Error(`llmgw budget set failed: ${set.stderr}`);
  return { address, statusUrl: `http://127.0.0.1:${statusPort}`, proc, sidecarQuota };
}

/** The sum of a Prometheus counter's series on a status page (`/metrics`), of those with `label` (`key="value"`) if given. */
export async function counterTotal(statusUrl: string, name: string, label?: string): Promise<number> {
  const text = await (await fetch(`${statusUrl}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if (label === undefined || (m[1] ?? '').includes(label)) total += Number(m[2]);
  return total;
}

/** Installs Portkey's gateway into a scratch folder (kept between runs); undefined with a reason if it cannot. */
export function installPortkey(): { entry: string } | { skipped: string } {
  const dir = join(tmpdir(), `llmgw-bench-portkey-${PORTKEY_VERSION}`);
  const entry = join(dir, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  if (existsSync(entry)) return { entry };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"name":"portkey-scratch","private":true}');
  const r = spawnSync('npm', ['install', `@portkey-ai/gateway@${PORTKEY_VERSION}`, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0 || !existsSync(entry)) return { skipped: `npm install @portkey-ai/gateway@${PORTKEY_VERSION} failed: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}` };
  return { entry };
}

export async function portkeySpec(entry: string, upstream: string): Promise<ServerSpec> {
  const port = await freePort();
  return {
    spec: {
      name: 'portkey',
      cmd: process.execPath,
      args: [entry, `--port=${port}`, '--headless'],
      core: SUT_CORE,
      env: { ...process.env, NODE_ENV: 'production' },
      readyUrl: `http://127.0.0.1:${port}/`,
    },
    endpoint: {
      url: `http://127.0.0.1:${port}${CHAT}`,
      headers: { ...JSON_HEADERS, 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream}/v1` },
    },
  };
}
