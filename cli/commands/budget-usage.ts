// `llmgw budget usage SCOPE`: what a scope consumed per window, newest first, in tokens and dollars (priced
// by the quota service's table); `--by model|scope|day` or `--by tag KEY` (`--by-tag KEY`) breaks it down,
// `--since DATE|DURATION` picks the windows from an instant on. Tables for people, `--output json` for scripts.
import { formatUsd } from '../../common/pricing/price-usage.js';
import type { UsageResponse, WindowUsageMsg } from '../../proto/messages.js';
import { TAG_KEY } from '../../proto/tags.js';
import { kindsFromMsg } from '../../proto/token-kinds.js';
import { checkOutput, table, withAdminClient, type AdminFlags } from '../admin-connection.js';
import { UsageError } from '../args.js';
import { checkScope, checkWindow, iso, usdAmount, win } from './budget.js';

export interface UsageFlags extends AdminFlags {
  window: string;
  last: string;
  by?: string[];
  byTag?: string;
  since?: string;
}

type Breakdown = { by: 'none' | 'model' | 'scope' | 'day' } | { by: 'tag'; key: string };

function breakdownOf(o: UsageFlags): Breakdown {
  if (o.byTag !== undefined && o.by !== undefined) throw new UsageError('--by and --by-tag: give one of them (--by-tag KEY is --by tag KEY)');
  const by = o.byTag !== undefined ? ['tag', o.byTag] : o.by;
  if (by === undefined) return { by: 'none' };
  const flag = o.byTag !== undefined ? '--by-tag' : '--by';
  const [what, key, ...rest] = by;
  if (what === 'tag') {
    if (key === undefined || rest.length > 0 || !TAG_KEY.test(key)) {
      throw new UsageError(`${flag}: expected a tag key (letters, digits, _.-/ up to 64)${key === undefined ? '' : `, got "${[key, ...rest].join(' ')}"`}`);
    }
    return { by: 'tag', key };
  }
  if ((what === 'model' || what === 'scope' || what === 'day') && key === undefined) return { by: what };
  throw new UsageError(`--by: expected model, scope, day or tag KEY, got "${by.join(' ')}"`);
}

const DURATION_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--since`: a date (YYYY-MM-DD, UTC), a time (ISO 8601), or a duration back from now (30m, 12h, 7d, 2w); epoch ms. */
export function parseSince(value: string, nowMs: number): number {
  const d = /^(\d+)(m|h|d|w)$/.exec(value.trim());
  const ms = d !== null ? nowMs - Number(d[1]) * DURATION_MS[d[2]!]! : /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value) : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError(`--since: expected a date (2026-12-01), a time (2026-12-01T08:00:00Z) or a duration (7d, 12h, 30m, 2w), got "${value}"`);
  if (ms > nowMs) throw new UsageError(`--since: ${value} is in the future`);
  return ms;
}

const usd = (nano: number | undefined): string => formatUsd(Number(nano ?? 0));
const usdNumber = (nano: number | undefined): number => usdAmount(Number(nano ?? 0));
const n = (v: number | undefined): number => Number(v ?? 0);
/** What a window used without the tag: the total less what its values add up to. */
const untagged = (w: WindowUsageMsg) => ({
  used: w.usedTokens - w.byTag.reduce((s, t) => s + t.usedTokens, 0),
  costNano: n(w.costNanoUsd) - w.byTag.reduce((s, t) => s + n(t.costNanoUsd), 0),
});

const untaggedJson = (u: { used: number; costNano: number }) => ({ untagged: u.used, untaggedCostUsd: usdNumber(u.costNano) });

function windowJson(w: WindowUsageMsg, b: Breakdown): object {
  return {
    windowStart: iso(w.windowStartMs),
    windowEnd: iso(w.windowEndMs),
    used: w.usedTokens,
    // By kind, as the sidecars reported them (0 for usage from builds that did not).
    ...kindsFromMsg(w),
    costUsd: usdNumber(w.costNanoUsd),
    ...(b.by === 'tag'
      ? { byTag: w.byTag.map((t) => ({ value: t.value, used: t.usedTokens, costUsd: usdNumber(t.costNanoUsd) })), ...untaggedJson(untagged(w)) }
      : {}),
    ...(b.by === 'model'
      ? { byModel: (w.byModel ?? []).map((m) => ({ provider: m.providerType, model: m.model, used: m.usedTokens, ...kindsFromMsg(m), costUsd: usdNumber(m.costNanoUsd) })) }
      : {}),
    ...(b.by === 'scope' ? { byScope: (w.byScope ?? []).map((s) => ({ scope: s.scope, used: s.usedTokens, costUsd: usdNumber(s.costNanoUsd) })) } : {}),
  };
}

function printTable(u: UsageResponse, b: Breakdown): void {
  const span = (w: WindowUsageMsg): string[] => [iso(w.windowStartMs), iso(w.windowEndMs)];
  const kinds = (m: { inputTokens?: number; cachedInputTokens?: number; cacheWriteTokens?: number; outputTokens?: number }): string[] =>
    [m.inputTokens, m.cachedInputTokens, m.cacheWriteTokens, m.outputTokens].map((v) => String(n(v)));
  const KINDS = ['INPUT', 'CACHED INPUT', 'CACHE WRITE', 'OUTPUT'];
  let rows: string[][];
  if (b.by === 'tag') {
    // Per window its total, then a row per value of the tag (and what carried no such tag).
    rows = [['WINDOW START (UTC)', 'WINDOW END (UTC)', b.key.toUpperCase(), 'USED', 'COST (USD)']];
    for (const w of u.windows) {
      rows.push([...span(w), '(all)', String(w.usedTokens), usd(w.costNanoUsd)]);
      for (const t of w.byTag) rows.push(['', '', t.value, String(t.usedTokens), usd(t.costNanoUsd)]);
      const rest = untagged(w);
      if (rest.used > 0 && w.byTag.length > 0) rows.push(['', '', '(untagged)', String(rest.used), usd(rest.costNano)]);
    }
  } else if (b.by === 'model') {
    rows = [['WINDOW START (UTC)', 'WINDOW END (UTC)', 'PROVIDER', 'MODEL', 'USED', ...KINDS, 'COST (USD)']];
    for (const w of u.windows) {
      rows.push([...span(w), '', '(all)', String(w.usedTokens), ...kinds(w), usd(w.costNanoUsd)]);
      for (const m of w.byModel ?? []) rows.push(['', '', m.providerType || '-', m.model || '(unnamed)', String(m.usedTokens), ...kinds(m), usd(m.costNanoUsd)]);
    }
  } else if (b.by === 'scope') {
    rows = [['WINDOW START (UTC)', 'WINDOW END (UTC)', 'SCOPE', 'USED', 'COST (USD)']];
    for (const w of u.windows) {
      rows.push([...span(w), '(all)', String(w.usedTokens), usd(w.costNanoUsd)]);
      for (const s of w.byScope ?? []) rows.push(['', '', s.scope, String(s.usedTokens), usd(s.costNanoUsd)]);
    }
  } else {
    rows = [['WINDOW START (UTC)', 'WINDOW END (UTC)', 'USED', ...KINDS, 'COST (USD)'], ...u.windows.map((w) => [...span(w), String(w.usedTokens), ...kinds(w), usd(w.costNanoUsd)])];
  }
  process.stdout.write(table(rows));
}

export async function budgetUsage(scope: string, o: UsageFlags): Promise<void> {
  const output = checkOutput(o);
  const last = Number(o.last);
  if (!Number.isInteger(last) || last < 1 || last > 1000) throw new UsageError(`--last: expected a whole number from 1 to 1000, got "${o.last}"`);
  const b = breakdownOf(o);
  if (b.by === 'day' && o.window !== 'day') throw new UsageError('--by day shows day windows: drop --window');
  const window = checkWindow(o.window);
  const more = { by: b.by === 'model' || b.by === 'scope' ? b.by : '', sinceMs: o.since === undefined ? 0 : parseSince(o.since, Date.now()) };
  const u = await withAdminClient(o, (c) => c.getUsage(checkScope(scope), window, last, b.by === 'tag' ? b.key : '', more));
  if (output === 'json') {
    const by = b.by === 'tag' ? { tag: b.key } : b.by === 'none' ? {} : { by: b.by };
    process.stdout.write(`${JSON.stringify({ scope: u.scope, window: win(u.window), ...by, windows: u.windows.map((w) => windowJson(w, b)) }, null, 2)}\n`);
    return;
  }
  printTable(u, b);
}
