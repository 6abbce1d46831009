// The load generator: wrk when installed (µs latency resolution), autocannon otherwise (whole-ms latency
// resolution), run as its own process on the load core.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haveCommand, pinned } from './proc.js';

export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationSec: number;
  core?: number;
}

export interface LoadResult {
  tool: 'wrk' | 'autocannon';
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses that were not 2xx, plus socket errors and timeouts. */
  failures: number;
}

/** wrk when installed; `LLMGW_BENCH_LOAD_TOOL=autocannon` forces the fallback. */
export const loadTool = (): 'wrk' | 'autocannon' =>
  process.env.LLMGW_BENCH_LOAD_TOOL !== 'autocannon' && haveCommand('wrk') ? 'wrk' : 'autocannon';

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return loadTool() === 'wrk' ? runWrk(spec) : runAutocannon(spec);
}

const scratch = mkdtempSync(join(tmpdir(), 'llmgw-bench-load-'));
let scriptSeq = 0;

function luaString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  scriptSeq += 1;
  const bodyFile = join(scratch, `body-${scriptSeq}.json`);
  const script = join(scratch, `script-${scriptSeq}.lua`);
  writeFileSync(bodyFile, spec.body);
  const lines = [
    'wrk.method = "POST"',
    `local f = io.open(${luaString(bodyFile)}, "rb")`,
    'wrk.body = f:read("*a")',
    'f:close()',
    ...Object.entries(spec.headers).map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`),
  ];
  writeFileSync(script, `${lines.join('\n')}\n`);
  const args = ['-t1', `-c${spec.connections}`, `-d${spec.durationSec}s`, '--latency', '-s', script, spec.url];
  const out = await run(...pinned(spec.core, 'wrk', args));
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m === null ? 0 : Number(m[1]);
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0);
  return {
    tool: 'wrk',
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: duration(/^\s+50%\s+([\d.]+\w+)/m.exec(out)?.[1]),
    p99Ms: duration(/^\s+99%\s+([\d.]+\w+)/m.exec(out)?.[1]),
    failures: num(/Non-2xx or 3xx responses: (\d+)/) + socketErrors,
  };
}

/** wrk durations (`486.00us`, `3.30ms`, `1.02s`) in ms. */
function duration(s: string | undefined): number {
  if (s === undefined) return NaN;
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s);
  if (m === null) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const args = [bin, '--json', '-c', String(spec.connections), '-d', String(spec.durationSec), '-m', 'POST', '-b', spec.body];
  for (const [k, v] of Object.entries(spec.headers)) args.push('-H', `${k}=${v}`);
  args.push(spec.url);
  const out = await run(...pinned(spec.core, process.execPath, args));
  const r = JSON.parse(out.slice(out.indexOf('{'))) as {
    requests: { total: number; average: number };
    latency: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
  };
  return {
    tool: 'autocannon',
    requests: r.requests.total,
    rps: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    failures: r.non2xx + r.errors + r.timeouts,
  };
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err || out}`))));
  });
}
