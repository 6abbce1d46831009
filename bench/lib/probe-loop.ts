// The probes of the hostile-bodies scenario (hostile-bodies.ts), in a process of their own: the harness
// that builds and sends 16 MB bodies (and holds a whole run's results) pauses for its own garbage
// collection now and then, and a probe timed in that process would count those pauses as the sidecar's.
// Forked with the endpoint as JSON in argv[2]. Each 'start' message begins a window: 'started' is sent once
// its first probe answered; 'stop' ends it and sends its latencies (ms). 'exit' ends the process.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

interface ProbeTarget {
  origin: string;
  headers: Record<string, string>;
  connections: number;
}

const target = JSON.parse(process.argv[2]!) as ProbeTarget;
const pool = new Pool(target.origin, { connections: target.connections });
let running: { ms: number[]; done: boolean; loops: Promise<void>[] } | undefined;

async function probe(): Promise<number> {
  const t0 = performance.now();
  const res = await pool.request({ path: '/v1/models', method: 'GET', headers: target.headers });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`a probe request got status ${res.statusCode}`);
  return performance.now() - t0;
}

async function start(): Promise<void> {
  const w: NonNullable<typeof running> = { ms: [], done: false, loops: [] };
  running = w;
  w.ms.push(await probe());
  process.send!('started');
  const loop = async (): Promise<void> => {
    while (!w.done) w.ms.push(await probe());
  };
  w.loops = Array.from({ length: target.connections }, loop);
}

async function stop(): Promise<void> {
  const w = running!;
  w.done = true;
  await Promise.all(w.loops);
  running = undefined;
  process.send!(w.ms);
}

const fail = (err: unknown): void => {
  process.stderr.write(`probe: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
};

process.on('message', (m) => {
  if (m === 'start') start().catch(fail);
  else if (m === 'stop') stop().catch(fail);
  else if (m === 'exit') void pool.close().then(() => process.exit(0), fail);
});
process.send!('ready');
