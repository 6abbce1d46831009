// Quota on vs off in one process (issue 18's "within 2%"): each sidecar's `quota` section is taken out of
// its config and put back (the sidecar reloads it) between measurements, so both sides of every pair run in
// the same process. "Off" may also be another `quota` section: the service out of reach, or one that
// verifies nobody (DESIGN §8's other quota comparisons). Comparing separate processes measures mostly which process got the faster JIT and heap
// layout: two processes of one build, one config, differ by up to ~10% here, more than the question.
import { readFileSync } from 'node:fs';
import { measureRound, measureThroughput, type RoundResult, type Timed } from './measure.js';
import { median } from './stats.js';
import { reloadConfig, type ServerSpec } from './targets.js';

/** Delay each way between a sidecar and its quota service in these comparisons (issue 18: "a few ms"). */
export const QUOTA_DELAY_MS = 3;

export interface QuotaToggleResult {
  /** Pairwise medians (quota on against off, same process, same round), in percent. */
  throughputPct: number;
  cpuPct: number;
  /** Medians of the pairs' differences at concurrency 1 (ms). */
  c1P50AddedMs: number;
  c1P99AddedMs: number;
  pairs: number;
  /** Medians of each side: requests per second at 32 connections, CPU µs per request. */
  on: { rps: number; cpuUs: number; c1P50Ms: number; c1P99Ms: number };
  off: { rps: number; cpuUs: number; c1P50Ms: number; c1P99Ms: number };
}

export interface ToggleOptions {
  /** The sidecars, configured with quota ("on"); each is left with it. */
  sidecars: { spec: ServerSpec; pid: number }[];
  /** What "off" is: the `quota` section a sidecar gets instead of its own (default none). */
  off?: (on: Record<string, unknown>) => Record<string, unknown> | undefined;
  body: string;
  rounds: number;
  warmSec: number;
  c1Sec: number;
  c32Sec: number;
}

export async function measureQuotaToggled(opts: ToggleOptions): Promise<QuotaToggleResult> {
  const on: RoundResult[] = [];
  const off: RoundResult[] = [];
  const quotas = opts.sidecars.map(({ spec }) => {
    const quota = spec.sidecar === undefined ? undefined : (readConfig(spec).quota as Record<string, unknown> | undefined);
    if (quota === undefined) throw new Error('measureQuotaToggled: sidecars configured with quota are needed');
    return { on: quota, off: opts.off?.(quota) };
  });
  for (let round = 0; round < opts.rounds; round++) {
    for (const [i, { spec, pid }] of opts.sidecars.entries()) {
      const quota = quotas[i]!;
      const t: Timed = { name: 'toggled', endpoint: spec.endpoint, body: opts.body, pid };
      for (const withQuota of round % 2 === 0 ? [true, false] : [false, true]) {
        await reloadConfig(spec, (c) => {
          const section = withQuota ? quota.on : quota.off;
          if (section === undefined) delete c.quota;
          else c.quota = section;
        });
        // The switch builds or closes the quota stack; the first requests after it take the lease.
        if (opts.warmSec > 0) await measureThroughput(t, opts.warmSec);
        const r = await measureRound(t, opts.c1Sec, opts.c32Sec);
        if (r.failures > 0) throw new Error(`quota ${withQuota ? 'on' : 'off'}: ${r.failures} failed requests`);
        (withQuota ? on : off).push(r);
      }
      await reloadConfig(spec, (c) => {
        c.quota = quota.on;
      });
    }
  }
  const cpuUs = (r: RoundResult): number => (r.cpuPer1k ?? NaN) * 1000;
  const pair = (f: (a: RoundResult, b: RoundResult) => number): number => median(on.map((a, i) => f(a, off[i]!)));
  const side = (rs: RoundResult[]): QuotaToggleResult['on'] => ({
    rps: median(rs.map((r) => r.rps)),
    cpuUs: median(rs.map(cpuUs)),
    c1P50Ms: median(rs.map((r) => r.c1P50Ms)),
    c1P99Ms: median(rs.map((r) => r.c1P99Ms)),
  });
  return {
    throughputPct: (pair((a, b) => a.rps / b.rps) - 1) * 100,
    cpuPct: (pair((a, b) => cpuUs(a) / cpuUs(b)) - 1) * 100,
    c1P50AddedMs: pair((a, b) => a.c1P50Ms - b.c1P50Ms),
    c1P99AddedMs: pair((a, b) => a.c1P99Ms - b.c1P99Ms),
    pairs: on.length,
    on: side(on),
    off: side(off),
  };
}

function readConfig(spec: ServerSpec): Record<string, unknown> {
  return JSON.parse(readFileSync(spec.sidecar!.configPath, 'utf8')) as Record<string, unknown>;
}
