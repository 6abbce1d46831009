// What the image ships starts every role: the runtime tree that scripts/runtime-deps.mjs makes (the
// Dockerfile's runtime stage copies the same tree) is written to a temp directory outside the repository,
// where no module can resolve into the repository's node_modules, and each role runs from it with
// NODE_ENV=production, as the image runs it, and answers a request.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { reviewOf } from '../helpers/admission.js';
import { selfSigned } from '../helpers/certs.js';
import { stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

const REPO = join(import.meta.dirname, '../..');
const SCRIPT = join(REPO, 'scripts/runtime-deps.mjs');

let root: string;
/** The runtime tree: what the image holds under /app. */
let app: string;
/** Configs, databases and certificates the roles are given (mounted volumes in a pod). */
let work: string;
let selection: { packages: { name: string; version: string; path: string }[]; bytes: number };

beforeAll(() => {
  if (!existsSync(join(REPO, 'dist/llmgw/main.mjs'))) throw new Error('dist/llmgw is missing: run `npm run build` first (npm test does)');
  root = mkdtempSync(join(tmpdir(), 'llmgw-runtime-'));
  app = join(root, 'app');
  work = join(root, 'work');
  mkdirSync(work);
  selection = JSON.parse(execFileSync(process.execPath, [SCRIPT, app], { cwd: REPO, encoding: 'utf8' })) as typeof selection;
});

afterAll(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
});

/** The image's environment: nothing from this process (no NODE_PATH, NODE_OPTIONS, provider keys), HOME inside the temp tree. */
function productionEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, NODE_ENV: 'production', ...extra };
}

interface Role {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first stdout line matching `pattern`. */
  line(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exit: Promise<number | null>;
}

const running: Role[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.child.kill('SIGTERM');
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 5000);
    await r.exit;
    clearTimeout(timer);
  }
});

/** `llmgw ARGS` from the runtime tree as the image's wrapper runs it, in the tree's directory. */
function llmgw(args: string[], env: NodeJS.ProcessEnv = productionEnv()): Role {
  const child = spawn(process.execPath, ['--max-semi-space-size=4', join(app, 'dist/llmgw/main.mjs'), ...args], { cwd: app, env, stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const role: Role = {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    async line(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let exited = false;
      void exit.then(() => (exited = true));
      for (;;) {
        const found = out.split('\n').find((l) => pattern.test(l));
        if (found !== undefined) return found;
        if (exited || Date.now() > deadline) throw new Error(`llmgw ${args[0]}: no stdout line matched ${pattern}${exited ? ' (exited)' : ''}; stdout:\n${out}\nstderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  running.push(role);
  return role;
}

/** Runs to completion. */
async function llmgwRun(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = llmgw(args, env);
  const code = await r.exit;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

const portOf = (line: string, key: 'listen' | 'statusListen'): number => (JSON.parse(line) as Record<string, { port: number }>)[key]!.port;

async function ready(statusPort: number): Promise<number> {
  const res = await request(`http://127.0.0.1:${statusPort}/healthz/ready`);
  await res.body.dump();
  return res.statusCode;
}

async function chat(url: string, content: string): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 32, messages: [{ role: 'user', content }] }),
  });
  const json = (await res.body.json()) as { choices?: { message: { content: string } }[] };
  return { status: res.statusCode, headers: res.headers, text: json.choices?.[0]?.message.content ?? JSON.stringify(json) };
}

/** The fake upstream, from the tree too; its base URL. */
async function startFake(): Promise<string> {
  const fake = llmgw(['fake-provider', '--listen', '127.0.0.1:0', '--api-key', UPSTREAM_KEY]);
  return (JSON.parse(await fake.line(/"msg":"fake provider listening"/)) as { url: string }).url;
}

/** A sidecar from a YAML config (the yaml parser is a chunk of the bundle); its data URL, status port and process. */
async function startSidecar(name: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<{ url: string; statusPort: number; role: Role }> {
  const path = join(work, `${name}.yaml`);
  writeFileSync(path, stringify(config));
  const role = llmgw(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], productionEnv(env));
  const line = await role.line(/"msg":"sidecar started"/);
  return { url: `http://127.0.0.1:${portOf(line, 'listen')}`, statusPort: portOf(line, 'statusListen'), role };
}

describe('the runtime tree (scripts/runtime-deps.mjs)', () => {
  it('holds the bundle without source maps and only better-sqlite3 with what it loads, nothing resolvable outside it', () => {
    expect(relative(REPO, app).startsWith('..')).toBe(true);
    expect(readdirSync(app).sort()).toEqual(['dist', 'node_modules']);
    expect(readdirSync(join(app, 'dist'))).toEqual(['llmgw']);
    expect(selection.packages.map((p) => p.name).sort()).toEqual(['better-sqlite3', 'bindings', 'file-uri-to-path']);
    expect(readdirSync(join(app, 'node_modules')).sort()).toEqual(['better-sqlite3', 'bindings', 'file-uri-to-path']);
    const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(manifest.dependencies)).toContain('better-sqlite3');
    // The compiled addon and the JS that loads it; not SQLite's sources, the build's objects or the install-time downloader.
    expect(readdirSync(join(app, 'node_modules/better-sqlite3')).sort()).toEqual(['LICENSE', 'build', 'lib', 'package.json']);
    expect(readdirSync(join(app, 'node_modules/better-sqlite3/build/Release'))).toEqual(['better_sqlite3.node']);
    const files = readdirSync(join(app, 'dist/llmgw'), { recursive: true }) as string[];
    expect(files).toContain('quota-rpc-worker.mjs');
    expect(files).toContain(join('proto', 'quota', 'v1', 'quota.proto'));
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(selection.bytes).toBeLessThan(20 * 1024 * 1024);

    // Where a bare name resolves from the bundle, and every folder Node would look in: inside the tree or absent.
    const probe = `
      const { createRequire } = require('node:module');
      const fromBundle = createRequire(${JSON.stringify(join(app, 'dist/llmgw/chunks/x.mjs'))});
      const sqlite = fromBundle.resolve('better-sqlite3');
      const bindings = createRequire(sqlite).resolve('bindings');
      const uri = createRequire(bindings).resolve('file-uri-to-path');
      console.log(JSON.stringify({ resolved: [sqlite, bindings, uri], searched: fromBundle.resolve.paths('anything') }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: app, env: productionEnv(), encoding: 'utf8' })) as { resolved: string[]; searched: string[] };
    for (const file of out.resolved) expect(file.startsWith(app + sep)).toBe(true);
    const outside = out.searched.filter((dir) => !dir.startsWith(app + sep) && existsSync(dir));
    expect(outside).toEqual([]);
  });

  it('refuses a bundle that imports a package by name that it would not ship', () => {
    const checkout = join(root, 'checkout');
    mkdirSync(join(checkout, 'dist/llmgw/chunks'), { recursive: true });
    writeFileSync(join(checkout, 'dist/llmgw/main.mjs'), 'import Database from "better-sqlite3";\nimport { readFileSync } from "node:fs";\n');
    writeFileSync(join(checkout, 'dist/llmgw/chunks/pretty.mjs'), 'const { prettyFactory } = await import("pino-pretty");\n');
    let failure: { status: number; stderr: string } | undefined;
    try {
      execFileSync(process.execPath, [SCRIPT, join(root, 'refused'), '--from', checkout], { encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      failure = err as { status: number; stderr: string };
    }
    expect(failure?.status).toBe(1);
    expect(failure?.stderr).toContain(`the bundle imports "pino-pretty" (${join('dist', 'llmgw', 'chunks', 'pretty.mjs')}) by name`);
    expect(existsSync(join(root, 'refused'))).toBe(false);
  });

  it('is what the Dockerfile builds and ships, on one pinned base image', () => {
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const include = (JSON.parse(readFileSync(join(REPO, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;
    const copied = [...dockerfile.matchAll(/^COPY (\S+) \.\/\1$/gm)].map((m) => m[1]);
    expect(copied).toEqual(expect.arrayContaining([...include, 'scripts']));
    expect(dockerfile).toMatch(/^RUN npm run build \\\n && node scripts\/runtime-deps\.mjs \/runtime$/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/runtime \/app$/m);
    expect(dockerfile.match(/^COPY --from=build .*$/gm)).toHaveLength(1);
    expect(dockerfile).toMatch(/^ENV NODE_ENV=production$/m);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20\.\d+\.\d+-bookworm-slim@sha256:[0-9a-f]{64}$/m);
    expect(dockerfile.match(/^FROM .*$/gm)).toEqual(['FROM ${NODE_IMAGE} AS build', 'FROM ${NODE_IMAGE}']);
    expect(dockerfile).toContain('exec node --max-semi-space-size=4 /app/dist/llmgw/main.mjs "$@"');
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
  });
});

describe('every role from the runtime tree with NODE_ENV=production', () => {
  it('sidecar: starts, is ready, and answers a chat completion from the fake provider, then from its SQLite cache', async () => {
    const fakeUrl = await startFake();
    const sidecar = await startSidecar('plain', { ...stackConfig(fakeUrl), storage: { path: join(work, 'plain.db') }, cache: { ttlSeconds: 60 } });
    expect(await ready(sidecar.statusPort)).toBe(200);
    const answer = await chat(sidecar.url, 'hi');
    expect(answer).toMatchObject({ status: 200, text: 'Hello from the fake provider. You said: hi' });
    expect(answer.headers['x-llmgw-cache']).toBe('MISS');
    // The entry is written (better-sqlite3, the native addon) after the answer went out.
    let again = answer;
    for (let i = 0; i < 40 && again.headers['x-llmgw-cache'] !== 'HIT'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = await chat(sidecar.url, 'hi');
    }
    expect(again).toMatchObject({ status: 200, text: 'Hello from the fake provider. You said: hi', headers: { 'x-llmgw-cache': 'HIT' } });
    expect(existsSync(join(work, 'plain.db'))).toBe(true);
    expect(sidecar.role.stderr()).toBe('');
  });

  it('quota-service: starts on its SQLite file, is ready, takes a budget, and a sidecar spends from it through its gRPC worker thread', async () => {
    const quota = llmgw(['quota-service', '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--db', join(work, 'quota.db'), '--auth', 'none']);
    const started = await quota.line(/"msg":"quota service started"/);
    const addr = `127.0.0.1:${portOf(started, 'listen')}`;
    expect(await ready(portOf(started, 'statusListen'))).toBe(200);
    expect(existsSync(join(work, 'quota.db'))).toBe(true);

    const set = await llmgwRun(['budget', 'set', 'namespace/demo', '--tokens', '100000', '--window', 'day', '--quota-addr', addr, '--output', 'json']);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(set.stdout)).toMatchObject([{ scope: 'namespace/demo', window: 'day', tokens: 100000 }]);

    const fakeUrl = await startFake();
    writeFileSync(join(work, 'token'), 'not-verified-with-auth-none\n');
    const config = { ...stackConfig(fakeUrl), storage: { path: join(work, 'budgeted.db') }, quota: { address: addr, tokenFile: join(work, 'token') } };
    const sidecar = await startSidecar('budgeted', config, { POD_NAMESPACE: 'demo', POD_NAME: 'chat-1' });
    expect(await ready(sidecar.statusPort)).toBe(200);
    const answer = await chat(sidecar.url, 'budgeted');
    expect(answer).toMatchObject({ status: 200, text: 'Hello from the fake provider. You said: budgeted' });
    // Only a budgeted request, spending a lease from the quota service (gRPC, in the worker), carries this.
    const remaining = Number(answer.headers['x-ratelimit-remaining-tokens']);
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(100_000);
    expect(sidecar.role.stderr()).toBe('');
    expect(quota.stderr()).toBe('');
  });

  it('injector: starts over HTTPS from a YAML config, is ready, and answers an AdmissionReview with a patch', async () => {
    const cert = selfSigned('injector-production');
    const configFile = join(work, 'injector.yaml');
    writeFileSync(configFile, stringify({ image: 'ghcr.io/llm-gateway/llm-gateway:0.1.0', releaseNamespace: 'llm-gateway', nativeSidecar: { kubernetesVersion: 'v1.31.0' } }));
    const injector = llmgw(['injector', '--config', configFile, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0']);
    const started = await injector.line(/"msg":"injector started"/);
    expect(await ready(portOf(started, 'statusListen'))).toBe(200);
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'chat-', namespace: 'demo' }, spec: { containers: [{ name: 'chat', image: 'app:1' }] } };
    const dispatcher = new Agent({ connect: { ca: cert.cert } });
    try {
      const res = await request(`https://127.0.0.1:${portOf(started, 'listen')}/mutate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(reviewOf(pod, {}, 'production-uid')),
        dispatcher,
      });
      const body = (await res.body.json()) as { response: { uid: string; allowed: boolean; patchType?: string; patch?: string } };
      expect(res.statusCode).toBe(200);
      expect(body.response).toMatchObject({ uid: 'production-uid', allowed: true, patchType: 'JSONPatch' });
      expect(Buffer.from(body.response.patch!, 'base64').toString('utf8')).toContain('ghcr.io/llm-gateway/llm-gateway:0.1.0');
    } finally {
      await dispatcher.close();
    }
    expect(injector.stderr()).toBe('');
  });

  it('dev: starts the quota service, sidecar and fake provider in one process and answers the request it prints', async () => {
    const dev = llmgw(['dev', '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--quota-listen', '127.0.0.1:0', '--state-dir', join(work, 'dev')]);
    const line = await dev.line(/^curl /);
    const url = /curl -s (\S+)/.exec(line)![1]!;
    const body = /-d '([^']+)'/.exec(line)![1]!;
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.statusCode).toBe(200);
    const json = (await res.body.json()) as { choices: { message: { content: string } }[] };
    expect(json.choices[0]!.message.content).toBe('Hello from the fake provider. You said: Hello!');
    expect(existsSync(join(work, 'dev', 'quota.db'))).toBe(true);
  });
});
