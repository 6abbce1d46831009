// `npm run bench:quota-cost [-- --rounds N --instances N --warm SECONDS]` (after `npm run build`): what
// global budgets cost a request (issue 18: quota on vs off within 2%), without the whole bench. Sidecars
// spend leases from a quota service QUOTA_DELAY_MS away each way; each has its quota switched off and on
// between measurements (bench/lib/quota-toggle.ts), so both sides of a pair run in one process: 2 s at 32
// connections (req/s, CPU per request) and 1 s at concurrency 1 (p50, p99) each, after a warm-up (1 s by
// default).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latencyProxy } from './lib/latency-proxy.js';
import { pinSelf, startProc, type Proc } from './lib/proc.js';
import { measureQuotaToggled, QUOTA_DELAY_MS } from './lib/quota-toggle.js';
import { signed } from './lib/report.js';
import { benchQuota, LOAD_CORE, sidecarSpec, startQuotaService, startUpstreams, type ServerSpec } from './lib/targets.js';

async function main(): Promise<void> {
  const value = (flag: string, fallback: number): number => {
    const at = process.argv.indexOf(flag);
    const v = at === -1 ? fallback : Number(process.argv[at + 1]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} takes a whole number of at least 1`);
    return v;
  };
  const rounds = value('--rounds', 6);
  const count = value('--instances', 2);
  const warmSec = value('--warm', 1);
  pinSelf(LOAD_CORE);
  const work = mkdtempSync(join(tmpdir(), 'llmgw-bench-quota-cost-'));
  const up = await startUpstreams(0);
  const quota = await startQuotaService(work, 'quota-service', 'verified');
  const procs: Proc[] = [quota.proc, ...up.procs];
  const slowPath = await latencyProxy(Number(quota.address.split(':')[1]), QUOTA_DELAY_MS);
  try {
    const sidecars: { spec: ServerSpec; pid: number }[] = [];
    for (let i = 0; i < count; i++) {
      const name = `sidecar-${i + 1}`;
      const spec = await sidecarSpec({
        name,
        upstreams: up,
        logLevel: 'info',
        logFile: join(work, `${name}.log`),
        workDir: work,
        quota: benchQuota({ ...quota.sidecarQuota, address: `127.0.0.1:${slowPath.port}` }),
      });
      const p = await startProc(spec.spec);
      procs.push(p);
      sidecars.push({ spec, pid: p.pid });
    }
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello there, this is the benchmark speaking' }] });
    const r = await measureQuotaToggled({ sidecars, body, rounds, warmSec, c1Sec: 1, c32Sec: 2 });
    process.stdout.write(
      `quota on vs off, same process, ${r.pairs} pairs (pairwise medians; target within 2%):\n` +
        `  throughput at c=32   ${signed(r.throughputPct, 1)}%  (${r.on.rps.toFixed(0)} vs ${r.off.rps.toFixed(0)} req/s)\n` +
        `  CPU per request      ${signed(r.cpuPct, 1)}%  (${r.on.cpuUs.toFixed(1)} vs ${r.off.cpuUs.toFixed(1)} µs)\n` +
        `  p50 at c=1           ${signed(r.c1P50AddedMs, 3)} ms  (${r.on.c1P50Ms.toFixed(3)} vs ${r.off.c1P50Ms.toFixed(3)} ms)\n` +
        `  p99 at c=1           ${signed(r.c1P99AddedMs, 3)} ms  (${r.on.c1P99Ms.toFixed(3)} vs ${r.off.c1P99Ms.toFixed(3)} ms)\n`,
    );
  } finally {
    // Sidecars first, so that they give their leases back.
    for (const p of procs.reverse()) await p.stop();
    await slowPath.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
