// `llmgw budget set|get|list|delete|usage`: operators' view of the quota service. Tables for people,
// `--output json` for scripts.
import type { BudgetMsg, UsageResponse, WindowEnum, WindowUsageMsg } from '../../proto/messages.js';
import { TAG_KEY } from '../../proto/tags.js';
import { windowEnum } from '../../quota-service/convert.js';
import { scopeProblem } from '../../quota-service/scopes.js';
import { isWindowName } from '../../quota-service/windows.js';
import { checkOutput, table, withAdminClient, type AdminFlags } from '../admin-connection.js';
import { UsageError } from '../args.js';

function checkScope(scope: string): string {
  const problem = scopeProblem(scope);
  if (problem !== undefined) throw new UsageError(`scope "${scope}": ${problem}`);
  return scope;
}

function checkWindow(window: string): WindowEnum {
  if (!isWindowName(window)) throw new UsageError(`--window: expected minute, hour, day or month, got "${window}"`);
  return windowEnum(window);
}


const win = (w: string): string => w.replace('WINDOW_', '').toLowerCase();
const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

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

export async function budgetUsage(scope: string, o: AdminFlags & { window: string; last: string; byTag?: string }): Promise<void> {
  const output = checkOutput(o);
  const last = Number(o.last);
  if (!Number.isInteger(last) || last < 1 || last > 1000) throw new UsageError(`--last: expected a whole number from 1 to 1000, got "${o.last}"`);
  const byTag = o.byTag;
  if (byTag !== undefined && !TAG_KEY.test(byTag)) throw new UsageError(`--by-tag: expected a tag key (letters, digits, _.-/ up to 64), got "${byTag}"`);
  const u: UsageResponse = await withAdminClient(o, (c) => c.getUsage(checkScope(scope), checkWindow(o.window), last, byTag ?? ''));
  // What a window used without the tag: the total less what its values add up to.
  const untagged = (w: WindowUsageMsg) => w.usedTokens - w.byTag.reduce((n, t) => n + t.usedTokens, 0);
  if (output === 'json') {
    const windows = u.windows.map((w) => ({
      windowStart: iso(w.windowStartMs),
      windowEnd: iso(w.windowEndMs),
      used: w.usedTokens,
      // By kind, as the sidecars reported them (0 for usage from builds that did not).
      input: Number(w.inputTokens ?? 0),
      output: Number(w.outputTokens ?? 0),
      cachedInput: Number(w.cachedInputTokens ?? 0),
      cacheWrite: Number(w.cacheWriteTokens ?? 0),
      ...(byTag === undefined ? {} : { byTag: w.byTag.map((t) => ({ value: t.value, used: t.usedTokens })), untagged: untagged(w) }),
    }));
    process.stdout.write(`${JSON.stringify({ scope: u.scope, window: win(u.window), ...(byTag === undefined ? {} : { tag: byTag }), windows }, null, 2)}\n`);
    return;
  }
  if (byTag === undefined) {
    const kind = (n: number | undefined): string => String(Number(n ?? 0));
    process.stdout.write(
      table([
        ['WINDOW START (UTC)', 'WINDOW END (UTC)', 'USED', 'INPUT', 'CACHED INPUT', 'CACHE WRITE', 'OUTPUT'],
        ...u.windows.map((w) => [iso(w.windowStartMs), iso(w.windowEndMs), String(w.usedTokens), kind(w.inputTokens), kind(w.cachedInputTokens), kind(w.cacheWriteTokens), kind(w.outputTokens)]),
      ]),
    );
    return;
  }
  // One row per window with its total, then one per value of the tag (and what carried no such tag).
  const rows = [['WINDOW START (UTC)', 'WINDOW END (UTC)', byTag.toUpperCase(), 'USED']];
  for (const w of u.windows) {
    rows.push([iso(w.windowStartMs), iso(w.windowEndMs), '(all)', String(w.usedTokens)]);
    for (const t of w.byTag) rows.push(['', '', t.value, String(t.usedTokens)]);
    const rest = untagged(w);
    if (rest > 0 && w.byTag.length > 0) rows.push(['', '', '(untagged)', String(rest)]);
  }
  process.stdout.write(table(rows));
}
