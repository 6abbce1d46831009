// Keeps the benchmark harness working: runs it in tiny mode (a few seconds of load per target) and checks
// what it reports for correctness, never its timings.
import { mkdtempSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const RUN = join(import.meta.dirname, '../../dist/bench/run.js');

describe('benchmark harness (tiny mode)', () => {
  it('passes its correctness gate and reports every measurement', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llmgw-bench-test-')), 'result.json');
    const child = spawn(process.execPath, [RUN, '--tiny', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'close', not 'exit': the output is all read by then, so a failure's message is in the assertion.
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code, stderr).toBe(0);
    const r = JSON.parse(readFileSync(out, 'utf8')) as {
      correctness: Record<string, string>;
      targets: Record<string, { rps: { median: number } }>;
      streaming: { concurrent: { lost: number; failed: number; expectedEvents: number }; maxEventsPerRead: { sidecar: number } };
      startupMs: Record<string, number>;
      quota: {
        upRps: number;
        downRps: number;
        noQuotaRps: number;
        verifiedVsUnverifiedPct: number;
        slowVsNoQuotaPct: number;
        slowVsNoQuota: { pct: number; aRps: number[]; bRps: number[] };
        slowToggled: { pairs: number; throughputPct: number; c1P50AddedMs: number; on: { rps: number; cpuUs: number }; off: { rps: number; cpuUs: number } };
        upDownToggled: { pairs: number; throughputPct: number; on: { rps: number }; off: { rps: number } };
        verifiedToggled: { pairs: number; throughputPct: number; on: { rps: number }; off: { rps: number } };
        rpcsPerThousandRequests: number;
      };
      logging: { infoRps: number; silentRps: number };
      checks: { what: string }[];
    };
    expect(r.correctness).toEqual({
      'minimal-proxy': 'ok',
      'minimal-proxy-sse': 'ok',
      sidecar: 'ok',
      'sidecar-sse': 'ok',
      'sidecar-log-a': 'ok',
      'sidecar-log-b': 'ok',
      'sidecar-cache-hit': 'ok',
      'sidecar-quota-up': 'ok',
      'sidecar-quota-unverified': 'ok',
      'sidecar-quota-down': 'ok',
      'sidecar-quota-slow': 'ok',
      // The other processes of the configurations compared across processes (quota on vs off).
      'x2-sidecar': 'ok',
      'x3-sidecar': 'ok',
      'x2-sidecar-quota-slow': 'ok',
      'x3-sidecar-quota-slow': 'ok',
    });
    expect(Object.keys(r.targets)).toEqual(['direct', 'direct-sse', 'minimal-proxy', 'minimal-proxy-sse', 'sidecar', 'sidecar-sse', 'sidecar-cache-hit', 'sidecar-quota-slow']);
    for (const t of Object.values(r.targets)) expect(t.rps.median).toBeGreaterThan(0);
    expect(r.quota.upRps).toBeGreaterThan(0);
    expect(r.quota.downRps).toBeGreaterThan(0);
    // The verified sidecar's requests were served on its lease: far fewer quota RPCs than requests.
    expect(Number.isFinite(r.quota.verifiedVsUnverifiedPct)).toBe(true);
    expect(Number.isFinite(r.quota.slowVsNoQuotaPct)).toBe(true);
    // Quota on vs off across three processes a side: every process measured.
    expect(Number.isFinite(r.quota.slowVsNoQuota.pct)).toBe(true);
    for (const rps of [...r.quota.slowVsNoQuota.aRps, ...r.quota.slowVsNoQuota.bRps]) expect(rps).toBeGreaterThan(0);
    expect(r.quota.slowVsNoQuota.aRps).toHaveLength(3);
    expect(r.quota.slowVsNoQuota.bRps).toHaveLength(3);
    // …and in each of those processes with its quota switched off and on: a pair per process.
    expect(r.quota.slowToggled.pairs).toBe(3);
    for (const side of [r.quota.slowToggled.on, r.quota.slowToggled.off]) {
      expect(side.rps).toBeGreaterThan(0);
      expect(side.cpuUs).toBeGreaterThan(0);
    }
    expect(Number.isFinite(r.quota.slowToggled.throughputPct)).toBe(true);
    expect(Number.isFinite(r.quota.slowToggled.c1P50AddedMs)).toBe(true);
    // The service up vs down, and verifying vs not, each in one process switched between the two.
    for (const t of [r.quota.upDownToggled, r.quota.verifiedToggled]) {
      expect(t.pairs).toBe(2);
      expect(t.on.rps).toBeGreaterThan(0);
      expect(t.off.rps).toBeGreaterThan(0);
      expect(Number.isFinite(t.throughputPct)).toBe(true);
    }
    expect(r.quota.rpcsPerThousandRequests).toBeLessThan(100);
    expect(r.logging.infoRps).toBeGreaterThan(0);
    expect(r.logging.silentRps).toBeGreaterThan(0);
    expect(r.streaming.concurrent).toMatchObject({ lost: 0, failed: 0 });
    expect(r.streaming.concurrent.expectedEvents).toBeGreaterThan(3);
    expect(r.startupMs.sidecar).toBeGreaterThan(0);
    expect(r.checks.length).toBeGreaterThanOrEqual(12);
    expect(stdout).toContain('DESIGN §8 target');
  }, 240_000);
});
