// `node dist/bench/inflight-cost.js --without DIR [--rounds N]` (after `npm run build`): what the durable
// in-flight line costs (DESIGN §8: ≤ 3% throughput, ≤ 0.05 ms p50 at c=1). DIR is the `dist/` of the same
// commit built with only the line's write taken out of `InflightLog.begin()` (bench/README.md says how).
// Both sidecars spend leases from one quota service; in alternating rounds each gets 3 s at c=32 (CPU per
// request from /proc) and 1 s at c=1. The figures are medians over rounds of each round's pair, so a
// minute in which the machine runs slower counts against both.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad } from './lib/load.js';
import { cpuSeconds, pinSelf, startProc, type Proc } from './lib/proc.js';
import { signed } from './lib/report.js';
import { median } from './lib/stats.js';
import { benchQuota, LOAD_CORE, sidecarSpec, startQuotaService, startUpstreams, type ServerSpec } from './lib/targets.js';

/** What each process of a round gave: CPU per request (µs), requests per second at c=32, p50 at c=1 (ms). */
interface Round {
  cpuUs: number;
  rps: number;
  p50Ms: number;
}

async function main(): Promise<void> {
  const value = (flag: string): string | undefined => {
    const at = process.argv.indexOf(flag);
    return at === -1 ? undefined : process.argv[at + 1];
  };
  const without = value('--without');
  if (without === undefined) throw new Error('--without DIR is required: the dist/ of this commit built without the in-flight write');
  const rounds = Number(value('--rounds') ?? 12);
  pinSelf(LOAD_CORE);
  const work = mkdtempSync(join(tmpdir(), 'llmgw-bench-inflight-'));
  const up = await startUpstreams(0);
  const quota = await startQuotaService(work, 'quota-service', 'verified');
  const procs: Proc[] = [quota.proc, ...up.procs];
  try {
    const spec = (name: string, distDir?: string): Promise<ServerSpec> =>
      sidecarSpec({ name, upstreams: up, logLevel: 'info', logFile: join(work, `${name}.log`), workDir: work, ...(distDir === undefined ? {} : { distDir }), quota: benchQuota(quota.sidecarQuota) });
    const sides = { with: await spec('with-line'), without: await spec('without-line', without) };
    const pids = { with: 0, without: 0 };
    for (const k of ['with', 'without'] as const) {
      const p = await startProc(sides[k].spec);
      procs.push(p);
      pids[k] = p.pid;
    }
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello in five words, please.' }], max_tokens: 64 });
    const measured: Record<'with' | 'without', Round[]> = { with: [], without: [] };
    // Round 0 warms both up and is not counted.
    for (let r = 0; r <= rounds; r++) {
      for (const k of r % 2 === 0 ? (['with', 'without'] as const) : (['without', 'with'] as const)) {
        const ep = sides[k].endpoint;
        const cpu0 = cpuSeconds(pids[k]);
        const busy = await runLoad({ url: ep.url, headers: ep.headers, body, connections: 32, durationSec: 3, core: LOAD_CORE });
        const cpuUs = ((cpuSeconds(pids[k]) - cpu0) / busy.requests) * 1e6;
        const one = await runLoad({ url: ep.url, headers: ep.headers, body, connections: 1, durationSec: 1, core: LOAD_CORE });
        if (busy.failures + one.failures > 0) throw new Error(`${k} the line: ${busy.failures + one.failures} failed requests`);
        if (r > 0) measured[k].push({ cpuUs, rps: busy.rps, p50Ms: one.p50Ms });
      }
    }
    const pair = (f: (a: Round, b: Round) => number): number => median(measured.with.map((a, i) => f(a, measured.without[i]!)));
    const cpuPct = pair((a, b) => (a.cpuUs / b.cpuUs - 1) * 100);
    const rpsPct = pair((a, b) => (a.rps / b.rps - 1) * 100);
    const p50Ms = pair((a, b) => a.p50Ms - b.p50Ms);
    for (const k of ['with', 'without'] as const) {
      const m = measured[k];
      process.stdout.write(`${k} the line: req/s ${m.map((x) => x.rps.toFixed(0)).join(' ')}; CPU µs/request ${m.map((x) => x.cpuUs.toFixed(0)).join(' ')}\n`);
    }
    process.stdout.write(
      `\nthe in-flight line, pairwise medians over ${rounds} rounds: CPU per request ${cpuPct.toFixed(1)}%, throughput ${rpsPct.toFixed(1)}% (target ≥ -3%), ` +
        `p50 at c=1 ${signed(p50Ms, 3)} ms (target ≤ 0.05 ms)\n`,
    );
  } finally {
    // Sidecars first, so that they give their leases back.
    for (const p of procs.reverse()) await p.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
