// One round of one target: latency at concurrency 1, then throughput at 32 connections with the CPU time
// and resident memory of the process under test read from /proc around and during the run.
import { runLoad } from './load.js';
import type { Endpoint } from './probes.js';
import { cpuSeconds, rssBytes } from './proc.js';
import { LOAD_CORE, SUT_CORE } from './targets.js';

export interface Timed {
  name: string;
  endpoint: Endpoint;
  body: string;
  /** The process under test, when there is one (not for `direct`). */
  pid?: number;
}

export interface RoundResult {
  c1P50Ms: number;
  c1P99Ms: number;
  rps: number;
  c32P50Ms: number;
  c32P99Ms: number;
  /** CPU seconds per 1,000 requests (= vCPU at 1,000 req/s). */
  cpuPer1k: number | undefined;
  rssPeakMB: number | undefined;
  failures: number;
}

export const MB = 1024 * 1024;

export async function measureRound(t: Timed, c1Sec: number, c32Sec: number): Promise<RoundResult> {
  const base = { url: t.endpoint.url, headers: t.endpoint.headers, body: t.body };
  // At concurrency 1 only one process runs at a time, so the client shares the SUT's core: direct and
  // proxied paths then cross between cores equally often (twice), and the difference is the proxy's work.
  const c1 = await runLoad({ ...base, core: SUT_CORE, connections: 1, durationSec: c1Sec });
  let peak = 0;
  const sample = (): void => {
    if (t.pid !== undefined) peak = Math.max(peak, rssBytes(t.pid));
  };
  const cpu0 = t.pid === undefined ? 0 : cpuSeconds(t.pid);
  const timer = setInterval(sample, 200);
  let c32;
  try {
    c32 = await runLoad({ ...base, core: LOAD_CORE, connections: 32, durationSec: c32Sec });
  } finally {
    clearInterval(timer);
  }
  sample();
  const cpu = t.pid === undefined ? undefined : cpuSeconds(t.pid) - cpu0;
  return {
    c1P50Ms: c1.p50Ms,
    c1P99Ms: c1.p99Ms,
    rps: c32.rps,
    c32P50Ms: c32.p50Ms,
    c32P99Ms: c32.p99Ms,
    cpuPer1k: cpu === undefined || c32.requests === 0 ? undefined : (cpu / c32.requests) * 1000,
    rssPeakMB: t.pid === undefined ? undefined : peak / MB,
    failures: c1.failures + c32.failures,
  };
}

/** Throughput only (the logging comparison). */
export async function measureThroughput(t: Timed, sec: number): Promise<number> {
  const r = await runLoad({ url: t.endpoint.url, headers: t.endpoint.headers, body: t.body, core: LOAD_CORE, connections: 32, durationSec: sec });
  if (r.failures > 0) throw new Error(`${t.name}: ${r.failures} failed requests under load`);
  return r.rps;
}
