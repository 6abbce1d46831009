// `llmgw budget set|get|list|delete`: operators' view of the quota service (`usage`: budget-usage.ts).
// A budget is in tokens (`--tokens N`) or in dollars (`--usd AMOUNT`); a scope may have one of each per
// window, and `delete` removes both unless `--tokens` or `--usd` names one. Tables for people (dollar
// amounts as `$12.34`), `--output json` for scripts.
import { formatDollars, formatUsd } from '../../common/pricing/price-usage.js';
import type { BudgetMsg, BudgetUnitName, WindowEnum } from '../../proto/messages.js';
import { windowEnum } from '../../quota-service/convert.js';
import { scopeProblem } from '../../quota-service/scopes.js';
import { isWindowName } from '../../quota-service/windows.js';
import { checkOutput, table, withAdminClient, type AdminFlags } from '../admin-connection.js';
import { UsageError } from '../args.js';

export function checkScope(scope: string): string {
  const problem = scopeProblem(scope);
  if (problem !== undefined) throw new UsageError(`scope "${scope}": ${problem}`);
  return scope;
}

export function checkWindow(window: string): WindowEnum {
  if (!isWindowName(window)) throw new UsageError(`--window: expected minute, hour, day or month, got "${window}"`);
  return windowEnum(window);
}


export const win = (w: string): string => w.replace('WINDOW_', '').toLowerCase();
export const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

const isUsd = (b: BudgetMsg): boolean => b.unit === 'BUDGET_UNIT_USD';
/** Nano-USD as a JSON number of dollars (at most 9 decimals). */
export const usdAmount = (nano: number): number => Number(formatUsd(nano));

/** A USD budget's limit, used, outstanding and remaining in USD; a token budget's in tokens, with what its window cost. */
function budgetJson(b: BudgetMsg): object {
  const head = { scope: b.scope, window: win(b.window) };
  const tail = { windowStart: iso(b.windowStartMs), windowEnd: iso(b.windowEndMs), priorityFloors: b.floors };
  if (isUsd(b)) {
    const limit = Number(b.nanoUsd ?? 0);
    const used = Number(b.usedNanoUsd ?? 0);
    return {
      ...head,
      unit: 'usd',
      usd: usdAmount(limit),
      used: usdAmount(used),
      outstanding: usdAmount(Number(b.outstandingNanoUsd ?? 0)),
      remaining: usdAmount(Math.max(0, limit - used)),
      usedTokens: b.usedTokens,
      ...tail,
    };
  }
  return {
    ...head,
    unit: 'tokens',
    tokens: b.tokens,
    used: b.usedTokens,
    outstanding: b.outstandingTokens,
    remaining: Math.max(0, b.tokens - b.usedTokens),
    usedUsd: usdAmount(Number(b.usedNanoUsd ?? 0)),
    ...tail,
  };
}



function printBudgets(budgets: BudgetMsg[], output: 'table' | 'json'): void {
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify(budgets.map(budgetJson), null, 2)}\n`);
    return;
  }
  if (budgets.length === 0) {
    process.stdout.write('no budgets\n');
    return;
  }
  // Amounts in the budget's unit: tokens, or dollars ($12.34).
  const rows = [['SCOPE', 'WINDOW', 'LIMIT', 'USED', 'OUTSTANDING', 'REMAINING', 'RESETS (UTC)', 'FLOORS batch/background', 'UNIT']];
  for (const b of budgets) {
    const [limit, used, outstanding, fmt] = isUsd(b)
      ? [Number(b.nanoUsd ?? 0), Number(b.usedNanoUsd ?? 0), Number(b.outstandingNanoUsd ?? 0), formatDollars]
      : [b.tokens, b.usedTokens, b.outstandingTokens, String];
    rows.push([
      b.scope,
      win(b.window),
      fmt(limit),
      fmt(used),
      fmt(outstanding),
      fmt(Math.max(0, limit - used)),
      iso(b.windowEndMs),
      `${b.floors?.batch ?? 0}/${b.floors?.background ?? 0}`,
      isUsd(b) ? 'usd' : 'tokens',
    ]);
  }
  process.stdout.write(table(rows));
}

function parseFloors(spec: string | undefined): { batch: number; background: number } | null {
  if (spec === undefined) return null;
  const floors = { batch: 0.5, background: 0.2 };
  for (const part of spec.split(',')) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if ((k !== 'batch' && k !== 'background') || v === undefined || !(n >= 0 && n <= 1)) {
      throw new UsageError(`--priority-floors: expected batch=F,background=F with fractions from 0 to 1, got "${spec}"`);
    }
    floors[k] = n;
  }
  return floors;
}

/** `--usd`: dollars with up to 9 decimals (nano-USD), exactly; returns nano-USD. */
export function parseUsd(value: string): number {
  const m = /^\$?(\d+)(?:\.(\d{1,9}))?$/.exec(value.trim());
  const nano = m === null ? NaN : Number(m[1]) * 1e9 + Number((m[2] ?? '').padEnd(9, '0'));
  if (!Number.isSafeInteger(nano) || nano <= 0) throw new UsageError(`--usd: expected a positive amount of dollars (e.g. 250 or 0.05, up to 9 decimals, at most 9007199), got "${value}"`);
  return nano;
}

/** `--tokens` or `--usd`, exactly one (a scope with both has two budgets: set each with its own call). */
function limitOf(o: { tokens?: string; usd?: string }): { tokens: number; nanoUsd: number } {
  if (o.tokens !== undefined && o.usd !== undefined) throw new UsageError('--tokens and --usd: give one of them (a scope can have both budgets: set each with its own call)');
  if (o.usd !== undefined) return { tokens: 0, nanoUsd: parseUsd(o.usd) };
  if (o.tokens === undefined) throw new UsageError('give the budget as --tokens N or --usd AMOUNT');
  const tokens = Number(o.tokens);
  if (!Number.isSafeInteger(tokens) || tokens <= 0) throw new UsageError(`--tokens: expected a positive whole number, got "${o.tokens}"`);
  return { tokens, nanoUsd: 0 };
}

export async function budgetSet(scope: string, o: AdminFlags & { tokens?: string; usd?: string; window: string; priorityFloors?: string }): Promise<void> {
  const output = checkOutput(o);
  const req = { scope: checkScope(scope), window: checkWindow(o.window), ...limitOf(o), floors: parseFloors(o.priorityFloors) };
  const b = await withAdminClient(o, (c) => c.setBudget(req));
  printBudgets([b], output);
}

export async function budgetGet(scope: string, o: AdminFlags): Promise<void> {
  const output = checkOutput(o);
  printBudgets(await withAdminClient(o, (c) => c.getBudget(checkScope(scope))), output);
}

export async function budgetList(o: AdminFlags): Promise<void> {
  const output = checkOutput(o);
  printBudgets(await withAdminClient(o, (c) => c.listBudgets()), output);
}

/** `--tokens` / `--usd` as flags of `delete`: which unit's budgets (neither: both). */
function unitOf(o: { tokens?: boolean; usd?: boolean }): BudgetUnitName {
  if (o.tokens === true && o.usd === true) throw new UsageError('--tokens and --usd: give one of them, or neither to delete both');
  return o.usd === true ? 'BUDGET_UNIT_USD' : o.tokens === true ? 'BUDGET_UNIT_TOKENS' : 'BUDGET_UNIT_UNSPECIFIED';
}

export async function budgetDelete(scope: string, o: AdminFlags & { window?: string; tokens?: boolean; usd?: boolean }): Promise<void> {
  const output = checkOutput(o);
  const window = o.window === undefined ? 'WINDOW_UNSPECIFIED' : checkWindow(o.window);
  const unit = unitOf(o);
  const n = await withAdminClient(o, (c) => c.deleteBudget(checkScope(scope), window, unit));
  process.stdout.write(output === 'json' ? `${JSON.stringify({ deleted: n })}\n` : `deleted ${n} budget${n === 1 ? '' : 's'} of ${scope}\n`);
}
