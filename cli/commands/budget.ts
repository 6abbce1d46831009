// `llmgw budget set|get|list|delete`: operators' view of the quota service (`usage`: budget-usage.ts).
// Tables for people, `--output json` for scripts.
import type { BudgetMsg, WindowEnum } from '../../proto/messages.js';
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

function budgetJson(b: BudgetMsg): object {
  return {
    scope: b.scope,
    window: win(b.window),
    tokens: b.tokens,
    used: b.usedTokens,
    outstanding: b.outstandingTokens,
    remaining: Math.max(0, b.tokens - b.usedTokens),
    windowStart: iso(b.windowStartMs),
    windowEnd: iso(b.windowEndMs),
    priorityFloors: b.floors,
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
  const rows = [['SCOPE', 'WINDOW', 'TOKENS', 'USED', 'OUTSTANDING', 'REMAINING', 'RESETS (UTC)', 'FLOORS batch/background']];
  for (const b of budgets) {
    rows.push([
      b.scope,
      win(b.window),
      String(b.tokens),
      String(b.usedTokens),
      String(b.outstandingTokens),
      String(Math.max(0, b.tokens - b.usedTokens)),
      iso(b.windowEndMs),
      `${b.floors?.batch ?? 0}/${b.floors?.background ?? 0}`,
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

export async function budgetSet(scope: string, o: AdminFlags & { tokens: string; window: string; priorityFloors?: string }): Promise<void> {
  const output = checkOutput(o);
  const tokens = Number(o.tokens);
  if (!Number.isSafeInteger(tokens) || tokens <= 0) throw new UsageError(`--tokens: expected a positive whole number, got "${o.tokens}"`);
  const req = { scope: checkScope(scope), window: checkWindow(o.window), tokens, floors: parseFloors(o.priorityFloors) };
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

export async function budgetDelete(scope: string, o: AdminFlags & { window?: string }): Promise<void> {
  const output = checkOutput(o);
  const window = o.window === undefined ? 'WINDOW_UNSPECIFIED' : checkWindow(o.window);
  const n = await withAdminClient(o, (c) => c.deleteBudget(checkScope(scope), window));
  process.stdout.write(output === 'json' ? `${JSON.stringify({ deleted: n })}\n` : `deleted ${n} budget${n === 1 ? '' : 's'} of ${scope}\n`);
}
