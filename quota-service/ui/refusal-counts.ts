// Refusal counts since the service started, for the usage page, read from the quota service's metrics: lease
// needs refused per priority class and calls answered with an error per method and code.
import type { QuotaMetrics } from '../quota-metrics.js';
import type { PriorityName, RefusalCounts } from './usage-view.js';

export const PRIORITIES: PriorityName[] = ['interactive', 'background', 'batch'];

/**
 * Refusal counts from the metrics' exposition text: reading it leaves the series as they are (reading a
 * labelled counter directly would create the series it asks about).
 */
export function refusalCounts(metrics: QuotaMetrics): RefusalCounts {
  const byPriority = new Map<PriorityName, number>(PRIORITIES.map((p) => [p, 0]));
  for (const s of samples(metrics.grants.render())) {
    const p = s.labels.priority as PriorityName;
    if (s.labels.result === 'refused' && byPriority.has(p)) byPriority.set(p, byPriority.get(p)! + s.value);
  }
  const byCode = samples(metrics.rpcs.render())
    .filter((s) => s.labels.code !== undefined && s.labels.code !== 'OK' && s.value > 0)
    .map((s) => ({ method: s.labels.method ?? '', code: s.labels.code!, count: s.value }))
    .sort((a, b) => b.count - a.count);
  return { byPriority: [...byPriority].map(([priority, count]) => ({ priority, count })), byCode };
}

const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{(.*)\} (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function samples(text: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of m[1]!.matchAll(LABEL)) labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(m[2]);
    if (Number.isFinite(value)) out.push({ labels, value });
  }
  return out;
}
