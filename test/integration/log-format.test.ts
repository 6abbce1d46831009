// `--log-format json|pretty` on the built executable: JSON off a terminal unless pretty is asked for, pretty
// (pino-pretty, bundled) with local times and colours on a terminal, the access log included.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { CLI, killAll, runCli, startCli } from '../helpers/cli.js';
import { stackConfig, UPSTREAM_KEY } from '../helpers/stack.js';

/** `[14:03:07.512] INFO: ` in the machine's local time. */
const PRETTY = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] (INFO|WARN|ERROR): /;
// eslint-disable-next-line no-control-regex
const ESC = /\u001b\[/;

let fake: FakeProvider;
let dir: string;

beforeAll(async () => {
  fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
  dir = mkdtempSync(join(tmpdir(), 'llmgw-log-format-'));
});
afterAll(async () => {
  killAll();
  await fake.close();
});

describe('--log-format', () => {
  it('writes JSON lines when stdout is not a terminal, and readable lines without colour codes with --log-format pretty', async () => {
    const json = startCli(['fake-provider', '--listen', '127.0.0.1:0']);
    const line = await json.waitForLine(/fake provider listening/);
    expect(JSON.parse(line)).toMatchObject({ level: 30, msg: 'fake provider listening' });
    expect(typeof (JSON.parse(line) as { time: unknown }).time).toBe('number');
    json.child.kill('SIGTERM');
    expect(await json.exit).toBe(0);

    const pretty = startCli(['fake-provider', '--listen', '127.0.0.1:0', '--log-format', 'pretty']);
    const prettyLine = await pretty.waitForLine(/fake provider listening/);
    expect(prettyLine).toMatch(PRETTY);
    expect(prettyLine).toMatch(/INFO: fake provider listening \{"url":"http:\/\/127\.0\.0\.1:\d+"\}$/);
    expect(prettyLine).not.toMatch(ESC);
    pretty.child.kill('SIGTERM');
    expect(await pretty.exit).toBe(0);
  });

  it('refuses a format it does not know (exit 2)', async () => {
    const r = await runCli(['fake-provider', '--log-format', 'yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("option '--log-format <format>' argument 'yaml' is invalid. Allowed choices are json, pretty.");
  });

  it('prints the sidecar\'s access log readably in pretty mode: method, path, status, model and latency first', async () => {
    const config = join(dir, 'sidecar.yaml');
    writeFileSync(config, stringify(stackConfig(fake.url)));
    const proc = startCli(['sidecar', '--config', config, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0', '--log-format', 'pretty']);
    const started = await proc.waitForLine(/INFO: sidecar started/);
    expect(started).toMatch(PRETTY);
    const port = /"listen":\{"host":"127\.0\.0\.1","port":(\d+)\}/.exec(started)![1];
    const res = await request(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const access = await proc.waitForLine(/POST \/v1\/chat\/completions/);
    expect(access).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: POST \/v1\/chat\/completions 200 gpt-4o-mini [\d.]+ ms \{"reqId":"[^"]+","stream":false,/);
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toBe(0);
    expect(proc.stdout()).toMatch(/INFO: sidecar stopped/);
  });

  // util-linux `script` gives the command a terminal; other platforms' `script` takes other flags.
  const script = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
  it.skipIf(process.platform !== 'linux' || script === undefined)('is pretty, in colour, by default on a terminal', async () => {
    const child = spawn(script!, ['-q', '-e', '-c', `'${process.execPath}' '${CLI}' fake-provider --listen 127.0.0.1:0`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const closed = new Promise((resolve) => child.once('close', resolve));
    try {
      for (let i = 0; i < 200 && !out.includes('fake provider listening'); i++) await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await closed;
    }
    const line = out.split(/\r?\n/).find((l) => l.includes('fake provider listening'));
    expect(line, out).toBeDefined();
    expect(line).toMatch(ESC);
    // Without the colour codes, the same readable line.
    // eslint-disable-next-line no-control-regex
    expect(line!.replace(/\u001b\[[0-9;]*m/g, '')).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: fake provider listening/);
  });
});
