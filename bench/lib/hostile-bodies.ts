// The stall that hostile request bodies cause for the other requests of a pod (issue 17: no request may
// stall the event loop for others by more than ~50 ms at the default 16 MiB body limit). A fresh sidecar
// (pinned like the others) is sent bodies of each hostile shape, one after another, while small requests
// run beside them on their own connections, from a process of their own; their latency is compared with
// the same probes against the idle sidecar. The probes are `GET /v1/models`, which the sidecar answers itself: a chat probe would also
// wait for a fake upstream that shares the load core with the one parsing the hostile 16 MB, and measure
// that instead of the sidecar's event loop.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Endpoint } from './probes.js';
import { startProc } from './proc.js';
import { median, percentile } from './stats.js';
import { sidecarSpec, type Upstreams } from './targets.js';

/** The most a small request may wait while a hostile body is processed (issue 17). */
export const STALL_TARGET_MS = 50;
/** The sidecar's default `server.maxBodyBytes`, the size every hostile body is built to. */
export const DEFAULT_BODY_LIMIT = 16 << 20;

export interface ProbeStats {
  probes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The sidecar's own longest event-loop delay meanwhile (loop-delay-preload.ts). */
  loopMaxMs: number;
}

export interface HostileShapeResult extends ProbeStats {
  shape: string;
  bytes: number;
  /** The sidecar's answer to each send (0: the connection failed before an answer). */
  statuses: number[];
  /** Median time from sending the body to its full answer. */
  answerMs: number;
}

export interface HostileResult {
  idle: ProbeStats;
  shapes: HostileShapeResult[];
}

export interface HostilePlan {
  /** Bodies sent per shape. */
  sends: number;
  /** How long the idle sidecar is probed (after as long a warm-up). */
  idleMs: number;
}

interface Shape {
  name: string;
  body: Buffer;
}

const HOSTILE_MODEL = 'paced-gpt-4o-mini';
/** Small requests in flight at once beside the hostile sends. */
const PROBE_CONNECTIONS = 2;

/** Bodies of just under `limit` bytes, each hostile in its own way; each is a well-formed JSON object. */
export function hostileShapes(limit: number): Shape[] {
  const room = limit - 1024;
  const head = `{"model":"${HOSTILE_MODEL}","messages":[{"role":"user","content":"hi"}],`;
  const fill = (unit: string, before: string, after: string): string =>
    before + unit.repeat(Math.floor((room - Buffer.byteLength(before + after)) / Buffer.byteLength(unit))) + after;
  const deep = Math.floor((room - head.length) / 2);
  const message = '{"role":"user","content":"x"},';
  const messages = fill(message, `{"model":"${HOSTILE_MODEL}","messages":[`, '{"role":"user","content":"x"}]}');
  return [
    { name: 'deep nesting', body: Buffer.from(`${head}"metadata":${'['.repeat(deep)}${']'.repeat(deep)}}`) },
    { name: `flat: ${Math.floor(messages.length / message.length)} messages`, body: Buffer.from(messages) },
    { name: 'flat: one array of numbers', body: Buffer.from(fill('0,', `${head}"metadata":{"ids":[`, '0]}}')) },
    { name: 'one huge string (ASCII)', body: Buffer.from(fill('x', `{"model":"${HOSTILE_MODEL}","messages":[{"role":"user","content":"`, '"}]}')) },
    { name: 'one huge string (non-ASCII)', body: Buffer.from(fill('漢', `{"model":"${HOSTILE_MODEL}","messages":[{"role":"user","content":"`, '"}]}')) },
  ];
}

/** Starts a fresh sidecar (this build, or `distDir`'s), measures every shape against it, and stops it. */
export async function measureHostileBodies(up: Upstreams, workDir: string, plan: HostilePlan, name = 'sidecar-hostile', distDir?: string): Promise<HostileResult> {
  const spec = await sidecarSpec({ name, upstreams: up, logLevel: 'info', logFile: `${workDir}/${name}.log`, workDir, ...(distDir === undefined ? {} : { distDir }) });
  const delayFile = join(workDir, `${name}-loop-delay.txt`);
  const preload = pathToFileURL(fileURLToPath(new URL('./loop-delay-preload.js', import.meta.url))).href;
  spec.spec.env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim(), LLMGW_BENCH_LOOP_DELAY_FILE: delayFile };
  const proc = await startProc(spec.spec);
  let prober: Prober | undefined;
  /** Each probing window's wall-clock span, to find the sidecar's own delay samples in. */
  const windows: { startMs: number; endMs: number }[] = [];
  const during = async (work: () => Promise<unknown>): Promise<Omit<ProbeStats, 'loopMaxMs'>> => {
    const startMs = Date.now();
    const stats = await prober!.during(work);
    windows.push({ startMs, endMs: Date.now() });
    return stats;
  };
  let idle: Omit<ProbeStats, 'loopMaxMs'>;
  const shapes: (Omit<HostileShapeResult, 'loopMaxMs'> & { window: number })[] = [];
  try {
    const ep = spec.endpoint;
    prober = await Prober.start(ep);
    await during(() => sleep(plan.idleMs));
    idle = await during(() => sleep(plan.idleMs));
    for (const shape of hostileShapes(DEFAULT_BODY_LIMIT)) {
      // Apart from the window before (a delay sample counts for the window it lands in, up to 100 ms late),
      // and the sidecar has collected what the last body left.
      await sleep(300);
      const answers: { status: number; ms: number }[] = [];
      const stats = await during(async () => {
        for (let i = 0; i < plan.sends; i++) answers.push(await send(ep, shape.body));
      });
      shapes.push({ shape: shape.name, bytes: shape.body.length, statuses: answers.map((a) => a.status), answerMs: median(answers.map((a) => a.ms)), ...stats, window: windows.length - 1 });
    }
  } finally {
    await prober?.close();
    await proc.stop();
  }
  // A sample covers the 20 ms before it, and comes late when the loop stalled: those up to 100 ms after a window count for it.
  const samples = readFileSync(delayFile, 'utf8').trim().split('\n').map((line) => line.split(' ').map(Number) as [number, number]);
  const loopMax = (i: number): number => Math.max(0, ...samples.filter(([t]) => t > windows[i]!.startMs && t <= windows[i]!.endMs + 100).map(([, ms]) => ms));
  return {
    idle: { ...idle, loopMaxMs: loopMax(1) },
    shapes: shapes.map(({ window, ...s }) => ({ ...s, loopMaxMs: loopMax(window) })),
  };
}

/** Small requests sent to the sidecar back to back, from a process of their own (probe-loop.ts). */
class Prober {
  private readonly messages: unknown[] = [];
  private waiter: { resolve: (m: unknown) => void; reject: (err: Error) => void } | undefined;
  /** Set once the child exited (a failed probe ends it). */
  private exited: Error | undefined;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m) => {
      if (this.waiter === undefined) this.messages.push(m);
      else this.waiter.resolve(m);
    });
    child.on('exit', (code) => {
      this.exited = new Error(`the probe process exited with code ${String(code)}`);
      this.waiter?.reject(this.exited);
    });
    // Sending to a child that is gone: the exit says why.
    child.on('error', () => undefined);
  }

  static async start(ep: Endpoint): Promise<Prober> {
    const target = { origin: new URL(ep.url).origin, headers: ep.headers, connections: PROBE_CONNECTIONS };
    // The child inherits this process's core (the load core).
    const child = fork(fileURLToPath(new URL('./probe-loop.js', import.meta.url)), [JSON.stringify(target)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const p = new Prober(child);
    await p.next();
    return p;
  }

  /** Runs `work` while the probes run (from their first answer on); their latencies meanwhile. */
  async during(work: () => Promise<unknown>): Promise<Omit<ProbeStats, 'loopMaxMs'>> {
    this.child.send('start');
    await this.next();
    try {
      await work();
    } finally {
      this.child.send('stop');
    }
    const ms = (await this.next()) as number[];
    return { probes: ms.length, p50Ms: median(ms), p99Ms: percentile(ms, 99), maxMs: Math.max(...ms) };
  }

  async close(): Promise<void> {
    if (this.exited !== undefined) return;
    const exited = once(this.child, 'exit');
    this.child.send('exit');
    await exited;
  }

  /** The child's next message; rejects if it exits first. */
  private next(): Promise<unknown> {
    const queued = this.messages.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.exited !== undefined) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      const done = (): void => void (this.waiter = undefined);
      this.waiter = {
        resolve: (m) => (done(), resolve(m)),
        reject: (err) => (done(), reject(err)),
      };
    });
  }
}

/** One hostile body on a connection of its own (a refused body closes it); status 0 if no answer came. */
async function send(ep: Endpoint, body: Buffer): Promise<{ status: number; ms: number }> {
  const url = new URL(ep.url);
  const pool = new Pool(url.origin, { connections: 1 });
  const t0 = performance.now();
  try {
    const res = await pool.request({ path: url.pathname, method: 'POST', headers: ep.headers, body });
    await res.body.dump();
    return { status: res.statusCode, ms: performance.now() - t0 };
  } catch {
    return { status: 0, ms: performance.now() - t0 };
  } finally {
    await pool.destroy();
  }
}

/** The worst shape: the one that stalled the sidecar's event loop longest. */
export const worstShape = (r: HostileResult): HostileShapeResult | undefined =>
  r.shapes.reduce<HostileShapeResult | undefined>((w, s) => (w === undefined || s.loopMaxMs > w.loopMaxMs ? s : w), undefined);
