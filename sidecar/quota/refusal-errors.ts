// What an app is told when a global budget refuses its request (DESIGN §4). A request larger than its
// class may use of a whole budget window can never be admitted by waiting: 400
// llmgw_request_exceeds_budget, no Retry-After. Any other refusal is 429 llmgw_quota_exhausted with a
// Retry-After after which the same request can be admitted: the window's end when it wants more than is
// left, or when the tokens other leases hold are back. Every message names the budget's scope and window,
// the priority class, the request's estimate, what is left, and the fix. While the service is out of reach,
// a class that spent its share of the budget gets 503 llmgw_quota_unavailable (failOpenSpent).
// A dollar budget's refusal says the same in dollars ($12.34): its amounts are nano-USD, and the request's
// estimate is its priced one (`estimateNano`; unknown when this class keeps no USD balance).
import { formatDollars } from '../../common/pricing/price-usage.js';
import { GatewayError } from '../../common/errors.js';
import type { PriorityName, RefusalMsg, WindowEnum } from '../../proto/messages.js';

/** Whole seconds for Retry-After: rounded up, and at least 1 (0 would invite a retry that is refused again). */
export const retrySeconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

const WINDOWS: Record<WindowEnum, string> = {
  WINDOW_UNSPECIFIED: 'window',
  WINDOW_MINUTE: 'minute',
  WINDOW_HOUR: 'hour',
  WINDOW_DAY: 'day',
  WINDOW_MONTH: 'month',
};

const CLASSES: Record<PriorityName, string> = {
  PRIORITY_UNSPECIFIED: 'interactive',
  PRIORITY_INTERACTIVE: 'interactive',
  PRIORITY_BACKGROUND: 'background',
  PRIORITY_BATCH: 'batch',
};

const at = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

/** Whether the refusing budget is in dollars (its amounts nano-USD). */
export const inUsd = (r: RefusalMsg): boolean => r.unit === 'BUDGET_UNIT_USD';

/** An amount of the refusing budget: `500 tokens`, or `$12.34`. */
const amount = (r: RefusalMsg, n: number): string => (inUsd(r) ? formatDollars(n) : `${n} tokens`);

/** The request's estimate in the budget's unit: `estimated 503 tokens`, or `estimated cost $0.0123`. */
function estimated(r: RefusalMsg, estimate: number, estimateNano: number | undefined): string {
  if (!inUsd(r)) return `estimated ${estimate} tokens`;
  return estimateNano === undefined ? `estimated ${estimate} tokens` : `estimated cost ${formatDollars(estimateNano)}`;
}

/** "budget namespace/x (500 tokens a minute)", with what the class may use of it when a floor keeps some back. */
function budgetText(r: RefusalMsg): string {
  const window = WINDOWS[r.window];
  const floor = r.classLimitTokens < r.budgetTokens ? `, of which ${CLASSES[r.priority]} requests may use ${inUsd(r) ? formatDollars(r.classLimitTokens) : r.classLimitTokens}` : '';
  return `budget ${r.scope} (${amount(r, r.budgetTokens)} a ${window}${floor})`;
}

/** The request can never fit: more than its class may use of a whole window. */
export function exceedsBudget(r: RefusalMsg, estimate: number, estimateNano?: number): GatewayError {
  const window = WINDOWS[r.window];
  const cls = CLASSES[r.priority];
  const higher = r.classLimitTokens < r.budgetTokens ? ', send it with a higher x-llmgw-priority' : '';
  const usd = inUsd(r);
  const left = usd ? `${formatDollars(r.leftTokens)} is` : `${r.leftTokens} are`;
  const what = usd ? 'its prompt at the input price plus max_tokens at the output price' : 'its prompt plus max_tokens';
  return new GatewayError(
    'llmgw_request_exceeds_budget',
    400,
    `this request's ${estimated(r, estimate, estimateNano)} (${what}) ${usd ? 'is' : 'are'} more than ${cls} requests may use of ` +
      `${budgetText(r)} in a whole ${window}; ${left} left in this one. Waiting will not help: lower max_tokens${higher}, ` +
      `or raise the budget (llmgw budget set ${r.scope} ${usd ? '--usd AMOUNT' : '--tokens N'} --window ${window})`,
  );
}

/** The request fits once the window resets (`retryAfterMs` from now). */
export function windowSpent(r: RefusalMsg, estimate: number, retryAfterMs: number, estimateNano?: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  const window = WINDOWS[r.window];
  const cls = CLASSES[r.priority];
  const usd = inUsd(r);
  const state =
    r.leftTokens === 0
      ? `${budgetText(r)} is spent for ${cls} requests in this ${window}; this request's ${usd ? estimated(r, estimate, estimateNano) : `estimate is ${estimate} tokens`}`
      : `${budgetText(r)} has ${amount(r, r.leftTokens)} left for ${cls} requests in this ${window}, ${usd ? 'less' : 'fewer'} than this request's ${usd ? estimated(r, estimate, estimateNano) : `estimated ${estimate}`}`;
  const fix = r.leftTokens === 0 ? '' : ', or lower max_tokens to fit what is left';
  return new GatewayError('llmgw_quota_exhausted', 429, `${state}; the window resets at ${at(r.windowEndMs)}: retry in ${s} s${fix}`, { retryAfterSeconds: s });
}

/** What is left covers the request, but other leases hold part of it until they give it back. */
export function heldByLeases(r: RefusalMsg, estimate: number, retryAfterMs: number, estimateNano?: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  const usd = inUsd(r);
  const rest = usd
    ? `all but ${formatDollars(r.availableTokens)} of it, less than this request's ${estimated(r, estimate, estimateNano)}`
    : `all but ${r.availableTokens} of them, fewer than this request's estimated ${estimate}`;
  return new GatewayError(
    'llmgw_quota_exhausted',
    429,
    `${budgetText(r)} has ${amount(r, r.leftTokens)} left for ${CLASSES[r.priority]} requests in this ${WINDOWS[r.window]}, but the leases of ` +
      `other pods or classes hold ${rest}; ` +
      `they are being given back: retry in ${s} s`,
    { retryAfterSeconds: s },
  );
}

/** A service that predates refusal descriptions named no budget. */
export function unnamedRefusal(priority: string, estimate: number, retryAfterMs: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  return new GatewayError(
    'llmgw_quota_exhausted',
    429,
    `the quota service refused this ${priority} request's estimated ${estimate} tokens without naming the budget (it predates refusal descriptions); retry in ${s} s`,
    { retryAfterSeconds: s },
  );
}

/**
 * The quota service is out of reach and the class has spent what it may spend without it: what its lease
 * held, then its share of the budget the service last gave it (`allowance` tokens until `windowEndMs`).
 * Not a budget refusal (it may well have tokens left): 503, after the back-off in which the service is tried again.
 */
export function failOpenSpent(priority: string, estimate: number, allowance: number, windowEndMs: number, retryAfterMs: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  return new GatewayError(
    'llmgw_quota_unavailable',
    503,
    `the quota service is out of reach, and this pod has spent what it may spend without it for ${priority} requests: its lease, then its share of ` +
      `the budget (${allowance} tokens left until ${at(windowEndMs)}, fewer than this request's estimated ${estimate}); retry in ${s} s`,
    { retryAfterSeconds: s },
  );
}

/** failOpenSpent for a dollar budget: the class's fail-open share of it (`allowanceNano`) is less than the request's priced estimate. */
export function failOpenSpentUsd(priority: string, estimateNano: number, allowanceNano: number, windowEndMs: number, retryAfterMs: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  return new GatewayError(
    'llmgw_quota_unavailable',
    503,
    `the quota service is out of reach, and this pod has spent what it may spend without it for ${priority} requests: its lease, then its share of ` +
      `the dollar budget (${formatDollars(allowanceNano)} left until ${at(windowEndMs)}, less than this request's estimated cost ${formatDollars(estimateNano)}); retry in ${s} s`,
    { retryAfterSeconds: s },
  );
}
