// What an app is told when a global budget refuses its request (DESIGN §4). A request larger than its
// class may use of a whole budget window can never be admitted by waiting: 400
// llmgw_request_exceeds_budget, no Retry-After. Any other refusal is 429 llmgw_quota_exhausted with a
// Retry-After after which the same request can be admitted: the window's end when it wants more than is
// left, or when the tokens other leases hold are back. Every message names the budget's scope and window,
// the priority class, the request's estimate, what is left, and the fix. While the service is out of reach,
// a class that spent its share of the budget gets 503 llmgw_quota_unavailable (failOpenSpent).
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

/** "budget namespace/x (500 tokens a minute)", with what the class may use of it when a floor keeps some back. */
function budgetText(r: RefusalMsg): string {
  const window = WINDOWS[r.window];
  const floor = r.classLimitTokens < r.budgetTokens ? `, of which ${CLASSES[r.priority]} requests may use ${r.classLimitTokens}` : '';
  return `budget ${r.scope} (${r.budgetTokens} tokens a ${window}${floor})`;
}

/** The request can never fit: more than its class may use of a whole window. */
export function exceedsBudget(r: RefusalMsg, estimate: number): GatewayError {
  const window = WINDOWS[r.window];
  const cls = CLASSES[r.priority];
  const higher = r.classLimitTokens < r.budgetTokens ? ', send it with a higher x-llmgw-priority' : '';
  return new GatewayError(
    'llmgw_request_exceeds_budget',
    400,
    `this request's estimated ${estimate} tokens (its prompt plus max_tokens) are more than ${cls} requests may use of ` +
      `${budgetText(r)} in a whole ${window}; ${r.leftTokens} are left in this one. Waiting will not help: lower max_tokens${higher}, ` +
      `or raise the budget (llmgw budget set ${r.scope} --tokens N --window ${window})`,
  );
}

/** The request fits once the window resets (`retryAfterMs` from now). */
export function windowSpent(r: RefusalMsg, estimate: number, retryAfterMs: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  const window = WINDOWS[r.window];
  const cls = CLASSES[r.priority];
  const state =
    r.leftTokens === 0
      ? `${budgetText(r)} is spent for ${cls} requests in this ${window}; this request's estimate is ${estimate} tokens`
      : `${budgetText(r)} has ${r.leftTokens} tokens left for ${cls} requests in this ${window}, fewer than this request's estimated ${estimate}`;
  const fix = r.leftTokens === 0 ? '' : ', or lower max_tokens to fit what is left';
  return new GatewayError('llmgw_quota_exhausted', 429, `${state}; the window resets at ${at(r.windowEndMs)}: retry in ${s} s${fix}`, { retryAfterSeconds: s });
}

/** What is left covers the request, but other leases hold part of it until they give it back. */
export function heldByLeases(r: RefusalMsg, estimate: number, retryAfterMs: number): GatewayError {
  const s = retrySeconds(retryAfterMs);
  return new GatewayError(
    'llmgw_quota_exhausted',
    429,
    `${budgetText(r)} has ${r.leftTokens} tokens left for ${CLASSES[r.priority]} requests in this ${WINDOWS[r.window]}, but the leases of ` +
      `other pods or classes hold all but ${r.availableTokens} of them, fewer than this request's estimated ${estimate}; ` +
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
