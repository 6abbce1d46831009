// `node dist/bench/hostile-bodies.js [--sends N] [--idle-ms MS] [--baseline DIR]` (after `npm run build`):
// only the hostile-bodies scenario of `npm run bench` (bench/lib/hostile-bodies.ts), in a few seconds.
// With `--baseline DIR` the sidecar of another build (its `dist/`) is measured the same way first, so one run
// gives before and after. Prints the per-shape table and the issue 17 check (the sidecar's event-loop stall ≤ 50 ms).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureHostileBodies, STALL_TARGET_MS, worstShape, type HostileResult } from './lib/hostile-bodies.js';
import { pinSelf } from './lib/proc.js';
import { hostileTable } from './lib/report.js';
import { LOAD_CORE, startUpstreams } from './lib/targets.js';

async function main(): Promise<void> {
  const value = (flag: string): string | undefined => {
    const at = process.argv.indexOf(flag);
    return at === -1 ? undefined : process.argv[at + 1];
  };
  const plan = { sends: Number(value('--sends') ?? 3), idleMs: Number(value('--idle-ms') ?? 1000) };
  const baseline = value('--baseline');
  pinSelf(LOAD_CORE);
  const work = mkdtempSync(join(tmpdir(), 'llmgw-bench-hostile-'));
  const up = await startUpstreams(10);
  try {
    const runs: [string, HostileResult][] = [];
    if (baseline !== undefined) runs.push([`baseline (${baseline})`, await measureHostileBodies(up, work, plan, 'baseline-hostile', baseline)]);
    runs.push(['this build', await measureHostileBodies(up, work, plan)]);
    for (const [name, r] of runs) {
      const worst = worstShape(r)!;
      const met = worst.loopMaxMs <= STALL_TARGET_MS ? 'yes' : 'NO';
      const slowestProbe = Math.max(...r.shapes.map((s) => s.maxMs));
      process.stdout.write(
        `\n${name}:\n${hostileTable(r)}\nevent-loop stall ≤ ${STALL_TARGET_MS} ms: ${met} (worst: ${worst.shape}, ${worst.loopMaxMs.toFixed(1)} ms); slowest small request meanwhile ${slowestProbe.toFixed(1)} ms\n`,
      );
    }
  } finally {
    await Promise.all(up.procs.map((p) => p.stop()));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
