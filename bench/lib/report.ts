// Turns a run's measurements into the result JSON, the DESIGN §8 checks, the printed table and RESULTS.md.
import { cpus, release } from 'node:os';
import { summarize, type Summary } from './stats.js';
import { STALL_TARGET_MS, worstShape, type HostileResult } from './hostile-bodies.js';
import { CHART_MEMORY_LIMIT_MB, type LargeAnswersResult } from './large-answers.js';
import type { RoundResult } from './measure.js';
import type { QuotaToggleResult } from './quota-toggle.js';

export interface TargetResult {
  c1P50Ms: Summary;
  c1P99Ms: Summary;
  rps: Summary;
  c32P50Ms: Summary;
  c32P99Ms: Summary;
  cpuPer1k?: Summary;
  rssPeakMB?: Summary;
}

export function summarizeRounds(rounds: RoundResult[]): TargetResult {
  const pick = (f: (r: RoundResult) => number | undefined): number[] => rounds.map(f).filter((v): v is number => v !== undefined);
  const out: TargetResult = {
    c1P50Ms: summarize(pick((r) => r.c1P50Ms)),
    c1P99Ms: summarize(pick((r) => r.c1P99Ms)),
    rps: summarize(pick((r) => r.rps)),
    c32P50Ms: summarize(pick((r) => r.c32P50Ms)),
    c32P99Ms: summarize(pick((r) => r.c32P99Ms)),
  };
  if (rounds.some((r) => r.cpuPer1k !== undefined)) out.cpuPer1k = summarize(pick((r) => r.cpuPer1k));
  if (rounds.some((r) => r.rssPeakMB !== undefined)) out.rssPeakMB = summarize(pick((r) => r.rssPeakMB));
  return out;
}

export interface Check {
  what: string;
  target: string;
  value: string;
  /** null: not measured in this run. */
  met: boolean | null;
}

export interface BenchResult {
  date: string;
  mode: string;
  machine: { cpu: string; cores: number; node: string; kernel: string; loadTool: string; pinned: boolean };
  notes: string[];
  correctness: Record<string, string>;
  targets: Record<string, TargetResult>;
  memoryMB: Record<string, { idle: number; steadyPeak: number; afterLoad: number }>;
  startupMs: Record<string, number>;
  streaming?: {
    ttfbAddedP50Ms: number;
    ttfbAddedP99Ms: number;
    gapMedianMs: { direct: number; sidecar: number };
    spanMedianMs: { direct: number; sidecar: number };
    maxEventsPerRead: { direct: number; sidecar: number };
    concurrent: { streams: number; lost: number; failed: number; expectedEvents: number };
  };
  logging?: { infoRps: number; silentRps: number; costPct: number };
  quota?: {
    noQuotaRps: number;
    upRps: number;
    downRps: number;
    downVsUpPct: number;
    upVsNoQuotaPct: number;
    /** Quota on with the service 3 ms away each way, side by side with quota off (issue 18). */
    slowVsNoQuotaPct?: number;
    /** The same, across several processes of each. */
    slowVsNoQuota?: InstanceComparison;
    /** The same sidecars with their quota switched off and on between measurements (the figure the target is judged on). */
    slowToggled?: QuotaToggleResult;
    /** sidecar-quota-up switched between its service ("on") and one out of reach ("off"), in one process. */
    upDownToggled?: QuotaToggleResult;
    /** …and between the verifying service ("on") and the one that verifies nobody ("off"). */
    verifiedToggled?: QuotaToggleResult;
    /** The sidecar whose quota service verifies its token, side by side with one whose service verifies nothing. */
    verifiedVsUnverifiedPct: number;
    /** Quota RPCs the verified service answered per 1,000 requests of its sidecar (leases, renewals, reports). */
    rpcsPerThousandRequests: number;
  };
  /** Small requests' latency while hostile bodies are sent (bench/lib/hostile-bodies.ts). */
  hostile?: HostileResult;
  /** Peak RSS while four 30 MB answers are served at once (bench/lib/large-answers.ts). */
  largeAnswers?: LargeAnswersResult;
  /** With --baseline: the metered path (quota up) of this build beside the previous one's. */
  vsBaseline?: { quotaThroughputPct: number; quotaAcrossInstances?: InstanceComparison; quotaC1P50AddedMs: number };
  checks: Check[];
}

/** Several processes of two configurations, each alone under load in turn (bench/run.ts, INSTANCES). */
export interface InstanceComparison {
  /** Mean of the second's instance medians over the first's, minus one, in percent. */
  pct: number;
  /** Each instance's median throughput (req/s). */
  aRps: number[];
  bRps: number[];
}

const pctOf = (added: number, base: number): number => (added / base) * 100;

/** The toggled comparison's figure furthest from zero: throughput, c=1 p50 or c=1 p99, in percent. */
function worstOf(t: QuotaToggleResult): number {
  const all = [t.throughputPct, pctOf(t.c1P50AddedMs, t.off.c1P50Ms), pctOf(t.c1P99AddedMs, t.off.c1P99Ms)];
  return all.reduce((w, v) => (Math.abs(v) > Math.abs(w) ? v : w));
}

const instancesText = (c: InstanceComparison): string =>
  `${signed(c.pct, 1)}% across ${c.aRps.length} processes each (req/s per process: ${c.bRps.map((x) => f(x, 0)).join(', ')} vs ${c.aRps.map((x) => f(x, 0)).join(', ')})`;

export function machine(loadTool: string, pinned: boolean): BenchResult['machine'] {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, kernel: release(), loadTool, pinned };
}

const f = (n: number | null | undefined, digits = 2): string => (n === undefined || n === null || Number.isNaN(n) ? 'n/a' : n.toFixed(digits)); // null: NaN once through JSON (--render)
/** A difference with its sign: +1.2, -0.4. */
export const signed = (v: number, digits: number): string => `${v >= 0 ? '+' : ''}${f(v, digits)}`;
const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || b === 0 ? undefined : a / b);

/** Compares the medians against DESIGN §8. */
export function checks(r: BenchResult): Check[] {
  const t = r.targets;
  const sc = t.sidecar;
  const direct = t.direct;
  const out: Check[] = [];
  const add = (what: string, target: string, value: number | undefined, ok: (v: number) => boolean, fmt: (v: number) => string): void => {
    out.push({ what, target, value: value === undefined || Number.isNaN(value) ? 'not measured' : fmt(value), met: value === undefined || Number.isNaN(value) ? null : ok(value) });
  };
  if (r.machine.loadTool === 'wrk') {
    const addedP50 = sc && direct ? sc.c1P50Ms.median - direct.c1P50Ms.median : undefined;
    const addedP99 = sc && direct ? sc.c1P99Ms.median - direct.c1P99Ms.median : undefined;
    add('added latency p50, c=1, cache miss', '≤ 0.2 ms', addedP50, (v) => v <= 0.2, (v) => `${f(v, 3)} ms`);
    add('added latency p99, c=1, cache miss', '≤ 0.9 ms', addedP99, (v) => v <= 0.9, (v) => `${f(v, 3)} ms`);
  } else {
    for (const p of ['p50', 'p99']) {
      out.push({ what: `added latency ${p}, c=1, cache miss`, target: p === 'p50' ? '≤ 0.2 ms' : '≤ 0.9 ms', value: 'not measurable: autocannon reports whole ms (install wrk)', met: null });
    }
  }
  add('throughput vs minimal proxy, c=32', '≥ 0.9×', ratio(sc?.rps.median, t['minimal-proxy']?.rps.median), (v) => v >= 0.9, (v) => `${f(v)}×`);
  add('throughput vs Portkey, c=32', '≥ 6×', ratio(sc?.rps.median, t.portkey?.rps.median), (v) => v >= 6, (v) => `${f(v)}×`);
  add('CPU per 1,000 req/s', '≤ 0.20 vCPU', sc?.cpuPer1k?.median, (v) => v <= 0.2, (v) => `${f(v, 3)} vCPU`);
  const s = r.streaming;
  add('streaming: added time to first byte p50', '≤ 0.3 ms', s?.ttfbAddedP50Ms, (v) => v <= 0.3, (v) => `${f(v, 3)} ms`);
  add('streaming: added time to first byte p99', '≤ 1 ms', s?.ttfbAddedP99Ms, (v) => v <= 1, (v) => `${f(v, 3)} ms`);
  add(
    'streaming: chunks forwarded as they arrive',
    'same pacing as direct',
    s === undefined ? undefined : s.maxEventsPerRead.sidecar,
    (v) => v <= Math.max(2, s!.maxEventsPerRead.direct) && Math.abs(s!.gapMedianMs.sidecar - s!.gapMedianMs.direct) < 2,
    (v) => `median gap ${f(s!.gapMedianMs.sidecar)} ms (direct ${f(s!.gapMedianMs.direct)}), ≤ ${v} events per read`,
  );
  add(
    `streaming: ${s?.concurrent.streams ?? 256} concurrent streams`,
    'no lost chunk',
    s === undefined ? undefined : s.concurrent.lost + s.concurrent.failed,
    (v) => v === 0,
    (v) => (v === 0 ? `all complete (${s!.concurrent.expectedEvents} events each)` : `${v} streams short or failed`),
  );
  const hit = t['sidecar-cache-hit'];
  if (r.machine.loadTool === 'wrk') {
    add('cache hit: added latency p50, c=1', '≤ 0.1 ms', hit && direct ? hit.c1P50Ms.median - direct.c1P50Ms.median : undefined, (v) => v <= 0.1, (v) => `${f(v, 3)} ms`);
  }
  add('cache hit: throughput vs miss, c=32', '≥ 1.7×', ratio(hit?.rps.median, sc?.rps.median), (v) => v >= 1.7, (v) => `${f(v)}×`);
  const m = r.memoryMB.sidecar;
  add('sidecar RSS idle', '≤ 60 MB', m?.idle, (v) => v <= 60, (v) => `${f(v, 1)} MB`);
  add('sidecar RSS steady at c=32', '≤ 100 MB', m?.steadyPeak, (v) => v <= 100, (v) => `${f(v, 1)} MB`);
  add('sidecar RSS after load', '≤ 1.2× idle', ratio(m?.afterLoad, m?.idle), (v) => v <= 1.2, (v) => `${f(v)}× idle (${f(m?.afterLoad, 1)} MB)`);
  add('start to first proxied response', '≤ 150 ms', r.startupMs.sidecar, (v) => v <= 150, (v) => `${f(v, 0)} ms (node -e 0: ${f(r.startupMs['node -e 0'], 0)} ms)`);
  add('info-level access log cost vs silent', '≤ 5%', r.logging?.costPct, (v) => v <= 5, (v) => `${f(v, 1)}%`);
  const q = r.quota;
  const upDown = q?.upDownToggled;
  // Toggled "on" is the service up, "off" down: down vs up is the inverse of on vs off.
  const downVsUp = upDown === undefined ? q?.downVsUpPct : (1 / (1 + upDown.throughputPct / 100) - 1) * 100;
  add(
    'quota: throughput with the quota service down vs up',
    'within ±1%',
    downVsUp,
    (v) => Math.abs(v) <= 1,
    (v) =>
      (upDown === undefined ? '' : `${signed(v, 1)}% in one process, its service switched off and on (${upDown.pairs} pairs: up ${f(upDown.on.rps, 0)}, down ${f(upDown.off.rps, 0)} req/s); `) +
      `${signed(q!.downVsUpPct, 1)}% two processes side by side (up vs no quota ${f(q!.upVsNoQuotaPct, 1)}%; each sharing the core: up ${f(q!.upRps, 0)}, down ${f(q!.downRps, 0)}, no quota ${f(q!.noQuotaRps, 0)} req/s)`,
  );
  const verified = q?.verifiedToggled;
  add(
    'quota: throughput with token verification vs without',
    'within ±2%',
    verified?.throughputPct ?? q?.verifiedVsUnverifiedPct,
    (v) => Math.abs(v) <= 2,
    (v) =>
      (verified === undefined ? '' : `${signed(v, 1)}% in one process, switched between the two services (${verified.pairs} pairs); `) +
      `${signed(q!.verifiedVsUnverifiedPct, 1)}% two processes side by side; quota RPCs per 1,000 requests: ${f(q!.rpcsPerThousandRequests, 2)}`,
  );
  const slow = r.targets['sidecar-quota-slow'];
  const tog = q?.slowToggled;
  add(
    'quota on (service 3 ms away each way) vs off: throughput and c=1 p50/p99 (issue 18)',
    'within 2%',
    tog === undefined ? (q?.slowVsNoQuota?.pct ?? q?.slowVsNoQuotaPct) : worstOf(tog),
    (v) => Math.abs(v) <= 2,
    () =>
      (tog === undefined
        ? ''
        : `same process, quota switched off and on (${tog.pairs} pairs): throughput ${signed(tog.throughputPct, 1)}% (${f(tog.on.rps, 0)} vs ${f(tog.off.rps, 0)} req/s), ` +
          `CPU per request ${signed(tog.cpuPct, 1)}% (${f(tog.on.cpuUs, 1)} vs ${f(tog.off.cpuUs, 1)} µs), c=1 p50 ${signed(tog.c1P50AddedMs, 3)} ms (${signed(pctOf(tog.c1P50AddedMs, tog.off.c1P50Ms), 1)}%), ` +
          `p99 ${signed(tog.c1P99AddedMs, 3)} ms (${signed(pctOf(tog.c1P99AddedMs, tog.off.c1P99Ms), 1)}%); separate processes: `) +
      `${q!.slowVsNoQuota === undefined ? '' : `${instancesText(q!.slowVsNoQuota)}; `}one process each side by side ${f(q!.slowVsNoQuotaPct, 1)}%; c=1 p50 ${f(slow?.c1P50Ms.median, 3)} vs ${f(sc?.c1P50Ms.median, 3)} ms, p99 ${f(slow?.c1P99Ms.median, 3)} vs ${f(sc?.c1P99Ms.median, 3)} ms`,
  );
  const h = r.hostile;
  const worst = h === undefined ? undefined : worstShape(h);
  const slowestProbe = h === undefined ? undefined : Math.max(...h.shapes.map((s) => s.maxMs));
  add(
    "hostile bodies at the 16 MiB limit: the sidecar's event-loop stall (issue 17)",
    `max ≤ ${STALL_TARGET_MS} ms`,
    worst?.loopMaxMs,
    (v) => v <= STALL_TARGET_MS,
    (v) =>
      `max ${f(v, 1)} ms (${worst!.shape}); idle max ${f(h!.idle.loopMaxMs, 1)} ms; small requests meanwhile: slowest ${f(slowestProbe, 1)} ms, idle ${f(h!.idle.maxMs, 1)} ms`,
  );
  const la = r.largeAnswers;
  const worstLarge = la === undefined ? undefined : la.cases.reduce((a, b) => (b.peakMB > a.peakMB ? b : a));
  add(
    'large answers: four 30 MB at once, peak RSS',
    `≤ ${CHART_MEMORY_LIMIT_MB} MiB (chart limit)`,
    worstLarge === undefined ? undefined : worstLarge.complete && la!.cases.every((c) => c.complete) ? worstLarge.peakMB : Infinity,
    (v) => v <= CHART_MEMORY_LIMIT_MB,
    (v) => (Number.isFinite(v) ? `${la!.cases.map((c) => `${c.way}: ${f(c.peakMB, 0)}`).join('; ')} MiB (idle ${f(la!.idleMB, 0)})` : 'an answer did not arrive whole'),
  );
  const vb = r.vsBaseline;
  add(
    'durable in-flight accounting and validated answers: metered throughput vs the previous build',
    '≥ −3%',
    vb?.quotaAcrossInstances?.pct ?? vb?.quotaThroughputPct,
    (v) => v >= -3,
    () => `${vb!.quotaAcrossInstances === undefined ? '' : `${instancesText(vb!.quotaAcrossInstances)}; `}one process each side by side ${f(vb!.quotaThroughputPct, 1)}%`,
  );
  if (r.machine.loadTool === 'wrk') {
    add('… and their added p50 at c=1', '≤ 0.05 ms', vb?.quotaC1P50AddedMs, (v) => v <= 0.05, (v) => `${f(v, 3)} ms`);
  }
  return out;
}

/** Per hostile shape: what the sidecar answered, its own event-loop delay, and what the small requests beside it saw. */
export function hostileTable(h: HostileResult): string {
  const rows: string[][] = [['hostile body (sent one after another)', 'MB', 'answers', 'answer ms', 'loop delay max ms', 'probes', 'p50 ms', 'p99 ms', 'max ms']];
  rows.push(['none (idle)', '-', '-', '-', f(h.idle.loopMaxMs), String(h.idle.probes), f(h.idle.p50Ms), f(h.idle.p99Ms), f(h.idle.maxMs)]);
  for (const s of h.shapes) {
    const counts = new Map<number, number>();
    for (const status of s.statuses) counts.set(status, (counts.get(status) ?? 0) + 1);
    // Status 0: no answer came (the sidecar closed the connection while the client was still sending).
    const answers = [...counts].map(([status, n]) => `${status === 0 ? 'none' : status}×${n}`).join(' ');
    rows.push([s.shape, f(s.bytes / 1e6, 1), answers, f(s.answerMs, 0), f(s.loopMaxMs), String(s.probes), f(s.p50Ms), f(s.p99Ms), f(s.maxMs)]);
  }
  return formatRows(rows);
}

export function table(r: BenchResult): string {
  const rows: string[][] = [['target', 'c1 p50 ms', 'c1 p99 ms', 'c32 req/s (min–max)', 'c32 p50 ms', 'c32 p99 ms', 'vs direct', 'vs minimal', 'CPU s/1k req', 'RSS peak MB']];
  const names = Object.keys(r.targets);
  for (const name of names) {
    const t = r.targets[name]!;
    const sse = name.endsWith('-sse');
    const direct = r.targets[sse ? 'direct-sse' : 'direct'];
    const minimal = r.targets[sse ? 'minimal-proxy-sse' : 'minimal-proxy'];
    rows.push([
      name,
      f(t.c1P50Ms.median, 3),
      f(t.c1P99Ms.median, 3),
      `${f(t.rps.median, 0)} (${f(t.rps.min, 0)}–${f(t.rps.max, 0)})`,
      f(t.c32P50Ms.median),
      f(t.c32P99Ms.median),
      f(ratio(t.rps.median, direct?.rps.median)),
      f(ratio(t.rps.median, minimal?.rps.median)),
      f(t.cpuPer1k?.median, 3),
      f(t.rssPeakMB?.median, 1),
    ]);
  }
  return formatRows(rows);
}

export function checksTable(cs: Check[]): string {
  return formatRows([['DESIGN §8 target', 'bar', 'measured', 'met'], ...cs.map((c) => [c.what, c.target, c.value, c.met === null ? '—' : c.met ? 'yes' : 'NO'])]);
}

function formatRows(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

function markdownRows(rows: string[][]): string {
  return [rows[0]!, rows[0]!.map(() => '---'), ...rows.slice(1)].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** What the minimal proxy itself adds over direct: the floor any Node proxy pays on this machine. */
function floorNote(r: BenchResult): string {
  const m = r.targets['minimal-proxy'];
  const d = r.targets.direct;
  if (m === undefined || d === undefined) return '';
  return `For scale: the minimal proxy itself adds ${f(m.c1P50Ms.median - d.c1P50Ms.median, 3)} ms at p50 and ${f(m.c1P99Ms.median - d.c1P99Ms.median, 3)} ms at p99 over direct at c=1 on this machine.`;
}

export function resultsMarkdown(r: BenchResult): string {
  const split = (text: string): string[][] => text.split('\n').map((l) => l.trim().split(/\s{2,}/));
  return [
    '# Benchmark results',
    '',
    `Latest run: ${r.date.slice(0, 10)}, \`npm run bench${r.mode === 'full' ? '' : ` -- --${r.mode}`}\` (${r.mode} mode). Method: [README.md](README.md).`,
    '',
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, Linux ${r.machine.kernel}, Node.js ${r.machine.node}; load generator ${r.machine.loadTool}; ` +
      `system under test ${r.machine.pinned ? 'pinned to core 0 (taskset), upstreams and load on core 1' : 'not pinned (no taskset)'}.`,
    '',
    '## Targets (DESIGN §8)',
    '',
    markdownRows(split(checksTable(r.checks))),
    '',
    '## All targets, medians of interleaved rounds',
    '',
    markdownRows(split(table(r))),
    '',
    `Memory (MB): ${Object.entries(r.memoryMB).map(([k, v]) => `${k} idle ${f(v.idle, 1)}, steady peak ${f(v.steadyPeak, 1)}, after load ${f(v.afterLoad, 1)}`).join('; ')}.`,
    '',
    `Start to first proxied response (ms, median): ${Object.entries(r.startupMs).map(([k, v]) => `${k} ${f(v, 0)}`).join(', ')}.`,
    '',
    floorNote(r),
    '',
    ...(r.hostile === undefined ? [] : ["## Hostile bodies: the sidecar's event-loop delay, and small requests' latency meanwhile", '', markdownRows(split(hostileTable(r.hostile))), '']),
    r.notes.length > 0 ? `Notes:\n${r.notes.map((n) => `- ${n}`).join('\n')}` : '',
    '',
  ].join('\n');
}
