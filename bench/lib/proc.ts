// Processes for the benchmark: pinning to a core, CPU time and RSS from /proc, readiness polling.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'undici';

export function haveCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

const hasTaskset = haveCommand('taskset');

/** Prefixes a command with `taskset -c CORE` where taskset exists. */
export function pinned(core: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return core === undefined || !hasTaskset ? [cmd, args] : ['taskset', ['-c', String(core), cmd, ...args]];
}

export const pinningAvailable = (): boolean => hasTaskset;

/** Pins this process (the harness and its probes) to a core. */
export function pinSelf(core: number): void {
  if (hasTaskset) spawnSync('taskset', ['-pc', String(core), String(process.pid)], { stdio: 'ignore' });
}

const CLK_TCK = 100;

/** User + system CPU seconds the process has used. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m === null ? NaN : Number(m[1]) * 1024;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface ProcSpec {
  name: string;
  cmd: string;
  args: string[];
  core?: number;
  env?: NodeJS.ProcessEnv;
  logFile?: string;
  readyUrl: string;
  timeoutMs?: number;
}

/** Starts a server process (stdout/stderr to `logFile` or discarded) and waits until `readyUrl` answers. */
export async function startProc(opts: ProcSpec): Promise<Proc> {
  const proc = spawnProc(opts);
  try {
    await waitForHttp(opts.readyUrl, opts.timeoutMs ?? 20_000, () => proc.child.exitCode !== null);
  } catch (err) {
    await proc.stop();
    throw new Error(`${opts.name} did not start: ${(err as Error).message}`);
  }
  return proc;
}

/** Starts a process without waiting for it (start-up timing does its own polling). */
export function spawnProc(opts: ProcSpec): Proc {
  const [cmd, args] = pinned(opts.core, opts.cmd, opts.args);
  const out = opts.logFile === undefined ? 'ignore' : openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', out, out] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name: opts.name,
    pid: child.pid!,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

export async function waitForHttp(url: string, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gaveUp()) throw new Error('process exited');
    try {
      const res = await request(url);
      await res.body.dump();
      if (res.statusCode < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs `fn` with `procs` stopped (SIGSTOP) and continues them after, whatever happens: servers sharing the
 * core with the one measured are idle but not silent (timers, the GC's work after their load), and a
 * measurement of another process's worst pauses would count theirs.
 */
export async function withPaused<T>(procs: readonly Proc[], fn: () => Promise<T>): Promise<T> {
  const stopped: Proc[] = [];
  try {
    for (const p of procs) {
      if (p.child.exitCode !== null) continue;
      process.kill(p.pid, 'SIGSTOP');
      stopped.push(p);
    }
    return await fn();
  } finally {
    for (const p of stopped) process.kill(p.pid, 'SIGCONT');
  }
}
