// `npm run bench:quota-alloc` (after `npm run build`): what one lease renewal costs the quota service in
// itself, without gRPC or a load generator: the real allocator over a SQLite file with group commits, as
// one replica runs it, renewing 1,000 leases in 100 namespaces in turn, each renewal with a usage report,
// four per turn of the event loop. Reported: CPU per renewal, and what survives V8's young-generation
// collections (bytes promoted to the old generation per renewal, mark-compacts and their longest pause),
// read from the V8 trace of a child process running the workload: objects that outlive a call are what
// turn into the full collections that stall a replica's event loop.
//
//   npm run bench:quota-alloc [-- --renewals N]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../common/clock.js';
import { sqliteBackend } from '../quota-service/store-backend.js';

const LEASES = 1000;
const NAMESPACES = 100;
const PER_TURN = 4;
const at = process.argv.indexOf('--renewals');
const renewals = at === -1 ? 40_000 : Number(process.argv[at + 1]);
if (!Number.isInteger(renewals) || renewals < PER_TURN) throw new Error(`--renewals takes a whole number of at least ${PER_TURN}`);

/** The workload (in the child): a warm-up of half the renewals, then the measured ones; prints its CPU per renewal. */
async function workload(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'llmgw-bench-quota-alloc-'));
  const backend = sqliteBackend(join(work, 'quota.db'), { clock: systemClock }, systemClock);
  try {
    const alloc = backend.allocator;
    for (let i = 0; i < NAMESPACES; i++) await alloc.setBudget(`namespace/ns-${i}`, 'day', 1e12);
    const leases: { id: string; sequence: number }[] = [];
    for (let i = 0; i < LEASES; i++) {
      const identity = { namespace: `ns-${i % NAMESPACES}`, service: 'app', pod: `pod-${i}` };
      const g = await alloc.acquire({ identity, owner: '', priority: 'interactive', incarnation: `inc-${i}`, need: 1000, demand: 100 });
      leases.push({ id: g.leaseId, sequence: 0 });
    }
    let next = 0;
    const renew = (): unknown => {
      const l = leases[next++ % LEASES]!;
      l.sequence++;
      const report = { sequence: l.sequence, tokens: 100, startedAtMs: Date.now(), model: 'gpt-4o-mini', providerType: 'openai' };
      return alloc.renew({ leaseId: l.id, owner: '', need: 0, demand: 100, unused: 0, renewal: l.sequence, reports: [report] });
    };
    const run = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i += PER_TURN) await Promise.all(Array.from({ length: PER_TURN }, renew));
    };
    await run(renewals / 2);
    console.log('measured: start');
    const cpu0 = process.cpuUsage();
    await run(renewals);
    const cpu = process.cpuUsage(cpu0);
    console.log(`measured: ${JSON.stringify({ cpuUsPerRenewal: (cpu.user + cpu.system) / renewals })}`);
  } finally {
    await backend.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Runs the workload in a child with V8's GC trace and sums the collections made while it was measured. */
function measure(): void {
  const r = spawnSync(process.execPath, ['--trace-gc-nvp', fileURLToPath(import.meta.url), '--child', '--renewals', String(renewals)], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`the workload failed (${r.status}): ${r.stderr}`);
  const lines = r.stdout.split('\n');
  const start = lines.findIndex((l) => l === 'measured: start');
  const result = lines.find((l) => l.startsWith('measured: {'));
  if (start === -1 || result === undefined) throw new Error(`the workload printed no result:\n${r.stdout.slice(-2000)}`);
  const field = (line: string, name: string): number => Number(new RegExp(`\\b${name}=([0-9.]+)`).exec(line)?.[1] ?? NaN);
  let promoted = 0;
  let scavenges = 0;
  let scavengePause = 0;
  let markCompacts = 0;
  let longestMarkCompact = 0;
  for (const l of lines.slice(start, lines.indexOf(result))) {
    if (/\bgc=s\b/.test(l)) {
      scavenges++;
      promoted += field(l, 'promoted');
      scavengePause += field(l, 'pause');
    } else if (/\bgc=mc\b/.test(l)) {
      markCompacts++;
      longestMarkCompact = Math.max(longestMarkCompact, field(l, 'pause'));
    }
  }
  const { cpuUsPerRenewal } = JSON.parse(result.slice('measured: '.length)) as { cpuUsPerRenewal: number };
  console.log(`${renewals} renewals, each with a usage report, ${PER_TURN} per turn, over SQLite:`);
  console.log(`  CPU per renewal            ${cpuUsPerRenewal.toFixed(1)} µs`);
  console.log(`  promoted per renewal       ${(promoted / renewals).toFixed(1)} bytes (${scavenges} scavenges, mean pause ${(scavengePause / Math.max(1, scavenges)).toFixed(2)} ms)`);
  console.log(`  mark-compacts              ${markCompacts}${markCompacts > 0 ? `, longest pause ${longestMarkCompact.toFixed(1)} ms` : ''}`);
}

if (process.argv.includes('--child')) await workload();
else measure();
