// The real `llmgw` executable: exit codes and messages, SIGTERM drain, `llmgw dev`, `llmgw await`.
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { envWithoutKeys, killAll, runCli, startCli } from '../helpers/cli.js';
import { stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

let fake: FakeProvider;
let dir: string;

beforeAll(async () => {
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  dir = mkdtempSync(join(tmpdir(), 'llmgw-cli-'));
});
afterAll(async () => {
  killAll();
  await fake.close();
});

function writeConfig(name: string, config: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof config === 'string' ? config : stringify(config));
  return path;
}

describe('llmgw exit codes', () => {
  it('exits 2 naming the config key at fault', async () => {
    const path = writeConfig('bad.yaml', 'providers: {}\nmodels:\n  m: { targets: [{ provider: opnai, model: x }] }\n');
    const r = await runCli(['sidecar', '--config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('llmgw: bad.yaml: models.m.targets[0].provider: unknown provider "opnai" (known: none)');
  });

  it('exits 2 naming a missing environment variable', async () => {
    const path = writeConfig('env.yaml', 'providers:\n  o: { type: openai, baseUrl: "https://api.openai.com/v1", apiKey: "${LLMGW_TEST_UNSET_KEY}" }\nmodels: {}\n');
    const r = await runCli(['sidecar', '--config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('providers.o.apiKey: environment variable LLMGW_TEST_UNSET_KEY is not set');
  });

  it('exits 1 naming the flag to change when a listener\'s address is taken, for every command that listens', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const busy = `127.0.0.1:${(holder.address() as { port: number }).port}`;
    try {
      const config = writeConfig('ok.yaml', stringify(stackConfig(fake.url)));
      const cases: [string[], string][] = [
        [['sidecar', '--config', config, '--listen', busy, '--status-listen', '127.0.0.1:0'], '--listen'],
        [['sidecar', '--config', config, '--listen', '127.0.0.1:0', '--status-listen', busy], '--status-listen'],
        [['quota-service', '--listen', busy, '--status-listen', '127.0.0.1:0', '--db', join(dir, 'q1.db'), '--auth', 'none'], '--listen'],
        [['quota-service', '--listen', '127.0.0.1:0', '--status-listen', busy, '--db', join(dir, 'q2.db'), '--auth', 'none'], '--status-listen'],
        [['dev', '--quota-listen', busy, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--state-dir', join(dir, 'dev-busy')], '--quota-listen'],
        [['fake-provider', '--listen', busy], '--listen'],
      ];
      for (const [args, flag] of cases) {
        const r = await runCli(args, envWithoutKeys());
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toContain(`llmgw: ${busy} is already in use by another process; choose another with ${flag} HOST:PORT`);
      }
    } finally {
      holder.close();
    }
  }, 60_000);

  it('says why the quota service cannot be reached, and which flag or variable points at it', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    await new Promise<void>((r) => holder.close(() => r())); // a port where nothing listens now
    const fix = 'start it (llmgw quota-service, or llmgw dev), or point the command at it with --quota-addr HOST:PORT or $LLMGW_QUOTA_ADDR';
    const refused = await runCli(['budget', 'list', '--quota-addr', `127.0.0.1:${port}`], envWithoutKeys());
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(`llmgw: cannot reach the quota service at 127.0.0.1:${port}: nothing listens there; ${fix}`);
    const unknown = await runCli(['budget', 'list'], { ...envWithoutKeys(), LLMGW_QUOTA_ADDR: 'nosuchhost.invalid:50051' });
    expect(unknown.stderr.trim()).toBe(`llmgw: cannot reach the quota service at nosuchhost.invalid:50051: the name does not resolve; ${fix}`);
  }, 30_000);

  it('exits 2 on a bad flag value or an unknown option, and 0 on --help', async () => {
    const path = writeConfig('ok.yaml', stackConfig(fake.url));
    const bad = await runCli(['sidecar', '--config', path, '--listen', 'nowhere']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('llmgw: --listen: expected HOST:PORT, got "nowhere"');
    expect((await runCli(['sidecar', '--bogus'])).code).toBe(2);
    const help = await runCli(['sidecar', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--status-listen');
  });
});

describe('llmgw sidecar', () => {
  it('drains an in-flight stream on SIGTERM, refuses new connections, and exits 0', async () => {
    const path = writeConfig('drain.yaml', stackConfig(fake.url));
    const proc = startCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0']);
    const started = JSON.parse(await proc.waitForLine(/"msg":"sidecar started"/)) as { listen: { port: number }; statusListen: { port: number } };
    const base = `http://127.0.0.1:${started.listen.port}`;
    const ready = await request(`http://127.0.0.1:${started.statusListen.port}/healthz/ready`);
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();

    fake.faults.add({ match: { path: '/v1/chat/completions' }, chunkDelayMs: 100 });
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'x', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'drain me' }] });
    let text = '';
    let signalled = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (!signalled) {
        signalled = true;
        proc.child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 100));
        await expect(request(`${base}/v1/models`)).rejects.toThrow();
      }
    }
    expect(text).toBe('Hello from the fake provider. You said: drain me');
    expect(await proc.exit).toBe(0);
    expect(proc.stdout()).toContain('"msg":"sidecar stopped"');
  });
});

describe('llmgw dev', () => {
  it('starts with the fake provider and the quota service, and the commands it prints work', async () => {
    const state = join(dir, 'state');
    const proc = startCli(['dev', '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--quota-listen', '127.0.0.1:0', '--quota-status-listen', '127.0.0.1:0', '--state-dir', state], envWithoutKeys());
    const line = await proc.waitForLine(/^curl /);
    const url = /curl -s (\S+)/.exec(line)![1]!;
    const body = /-d '([^']+)'/.exec(line)![1]!;
    expect(line).toContain("-H 'content-type: application/json'");
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.statusCode).toBe(200);
    const json = (await res.body.json()) as { choices: { message: { content: string } }[] };
    expect(json.choices[0]!.message.content).toBe('Hello from the fake provider. You said: Hello!');
    expect(res.headers['x-llmgw-cache']).toBe('MISS');
    expect(existsSync(join(state, 'quota.db'))).toBe(true);
    // Answers are cached in the state directory: the same request again is served from there.
    let again;
    for (let i = 0; i < 20 && again?.headers['x-llmgw-cache'] !== 'HIT'; i++) {
      await new Promise((r) => setTimeout(r, 50)); // the entry is written after the answer went out
      again = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await again.body.text();
    }
    expect(again?.headers['x-llmgw-cache']).toBe('HIT');

    // The budget line it prints works, and the request above shows up in the namespace's usage.
    const budgetLine = await proc.waitForLine(/^llmgw budget set /);
    const args = budgetLine.split(' ').slice(1);
    const set = await runCli([...args, '--output', 'json']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject([{ scope: 'namespace/default', window: 'day', tokens: 100000 }]);
    const addr = args[args.indexOf('--quota-addr') + 1]!;
    const tokenFile = args[args.indexOf('--token-file') + 1]!;
    // The admin API is protected: without the operator token the same command is refused, saying what is missing.
    const anonymous = await runCli(['budget', 'list', '--quota-addr', addr], envWithoutKeys());
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain('UNAUTHENTICATED');
    expect(anonymous.stderr).toContain('pass --token, --token-file or set LLMGW_ADMIN_TOKEN');
    let used = 0;
    for (let i = 0; i < 40 && used === 0; i++) {
      const u = await runCli(['budget', 'usage', 'namespace/default', '--quota-addr', addr, '--token-file', tokenFile, '--output', 'json']);
      used = (JSON.parse(u.stdout) as { windows: { used: number }[] }).windows[0]!.used;
      if (used === 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(used).toBeGreaterThan(0);
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toBe(0);
  });
});

describe('llmgw await', () => {
  it('exits 0 once the URL answers 200, and 1 when it never does', async () => {
    let calls = 0;
    const server = createServer((_req, res) => {
      calls += 1;
      res.writeHead(calls < 3 ? 503 : 200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const ok = await runCli(['await', '--url', `http://127.0.0.1:${port}/healthz/ready`, '--timeout', '10s']);
    server.close();
    expect(ok.code).toBe(0);
    expect(calls).toBe(3);
    const never = await runCli(['await', '--url', `http://127.0.0.1:${port}/`, '--timeout', '600ms']);
    expect(never.code).toBe(1);
    expect(never.stderr).toContain('did not answer 200 within 600ms');
  });
});
