// OpenAI's reasoning effort as Anthropic's extended thinking: the effort → budget_tokens table (documented in
// the README, "Reasoning and thinking"), how max_tokens makes room for the budget, and the parameters
// Anthropic refuses while thinking is on, refused here with 400 naming them rather than changed.
import { invalidRequest } from '../../common/errors.js';
import type { Json } from '../../common/json.js';
import { asObject } from './json-object.js';

/** Anthropic's smallest `budget_tokens`. */
export const MIN_THINKING_BUDGET_TOKENS = 1024;

/** `reasoning_effort` → thinking `budget_tokens` (tokens); 0: thinking stays off. */
export const THINKING_BUDGET_TOKENS: ReadonlyMap<string, number> = new Map([
  ['none', 0],
  ['minimal', 0],
  ['low', 1024],
  ['medium', 4096],
  ['high', 16_384],
  ['xhigh', 32_768],
  ['max', 49_152],
]);

/** Where the effort and the output cap are in the app's request, for refusals ("reasoning.effort" in Responses). */
export interface EffortParams {
  effort: string;
  cap: string;
}

/**
 * The thinking budget for an effort under the app's output cap (tokens; 0: no thinking). OpenAI counts
 * reasoning in `max_completion_tokens` as Anthropic counts thinking in `max_tokens`, so a cap stays the cap
 * and the budget fits below it (Anthropic wants budget_tokens < max_tokens): min(table, cap − 1), refused
 * when that is under Anthropic's minimum of 1,024.
 */
export function effortBudget(effort: unknown, cap: unknown, params: EffortParams): number {
  const budget = typeof effort === 'string' ? THINKING_BUDGET_TOKENS.get(effort) : undefined;
  if (budget === undefined) {
    throw invalidRequest(`${params.effort} must be one of ${[...THINKING_BUDGET_TOKENS.keys()].join(', ')}`, params.effort);
  }
  if (budget === 0 || cap === undefined || cap === null) return budget;
  if (typeof cap !== 'number' || !Number.isInteger(cap) || cap < 1) throw invalidRequest(`${params.cap} must be a positive integer`, params.cap);
  if (cap - 1 < MIN_THINKING_BUDGET_TOKENS) {
    throw invalidRequest(
      `${params.effort} "${effort}" needs ${params.cap} above ${MIN_THINKING_BUDGET_TOKENS} for an Anthropic model (its thinking budget is at least ` +
        `${MIN_THINKING_BUDGET_TOKENS} tokens and counts in the cap, now ${cap}): raise ${params.cap} or send ${params.effort} "minimal"`,
      params.effort,
    );
  }
  return Math.min(budget, cap - 1);
}

/** The Anthropic request's `thinking` (undefined: not sent) and `max_tokens`, and whether thinking is on. */
export interface AnthropicThinking {
  thinking: Json | undefined;
  maxTokens: unknown;
  /** What turned thinking on, for refusals (`reasoning_effort "high"`, `thinking`); undefined when off. */
  on: string | undefined;
}

/**
 * Thinking for a Chat request's `reasoning_effort`, or its `thinking` object in Anthropic's own shape (as
 * LiteLLM takes it), passed through. Without a cap from the app, max_tokens is the default plus the budget,
 * so the answer keeps the room it has without thinking.
 */
export function anthropicThinking(body: Json, defaultMaxTokens: number): AnthropicThinking {
  const capParam = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const cap = body[capParam] ?? undefined;
  const effort = body.reasoning_effort ?? undefined;
  if (body.thinking !== undefined && body.thinking !== null) {
    if (effort !== undefined) throw invalidRequest('send reasoning_effort or thinking, not both', 'reasoning_effort');
    return ownThinking(asObject(body.thinking, 'thinking'), cap, capParam, defaultMaxTokens);
  }
  if (effort === undefined) return { thinking: undefined, maxTokens: cap ?? defaultMaxTokens, on: undefined };
  const budget = effortBudget(effort, cap, { effort: 'reasoning_effort', cap: capParam });
  if (budget === 0) return { thinking: undefined, maxTokens: cap ?? defaultMaxTokens, on: undefined };
  return { thinking: { type: 'enabled', budget_tokens: budget }, maxTokens: cap ?? defaultMaxTokens + budget, on: `reasoning_effort "${String(effort)}"` };
}

function ownThinking(thinking: Json, cap: unknown, capParam: string, defaultMaxTokens: number): AnthropicThinking {
  switch (thinking.type) {
    case 'disabled':
      return { thinking, maxTokens: cap ?? defaultMaxTokens, on: undefined };
    case 'adaptive':
      return { thinking, maxTokens: cap ?? defaultMaxTokens, on: 'thinking' };
    case 'enabled': {
      const budget = thinking.budget_tokens;
      if (typeof budget !== 'number' || !Number.isInteger(budget) || budget < MIN_THINKING_BUDGET_TOKENS) {
        throw invalidRequest(`thinking.budget_tokens must be an integer of at least ${MIN_THINKING_BUDGET_TOKENS}`, 'thinking.budget_tokens');
      }
      if (typeof cap === 'number' && budget >= cap) {
        throw invalidRequest(`thinking.budget_tokens (${budget}) must be less than ${capParam} (${cap}), which includes it`, 'thinking.budget_tokens');
      }
      return { thinking, maxTokens: cap ?? defaultMaxTokens + budget, on: 'thinking' };
    }
    default:
      throw invalidRequest(`thinking.type must be "enabled", "adaptive" or "disabled"`, 'thinking.type');
  }
}

/**
 * Refuses what Anthropic rejects with thinking on, in the translated request `out`: a temperature other
 * than 1, top_k, top_p below 0.95, and a tool_choice that forces a tool (`required` or a named function).
 */
export function refuseWithThinking(out: Json, on: string): void {
  const refuse = (param: string, what: string) =>
    invalidRequest(`${what} cannot be combined with ${on} on an Anthropic model: with extended thinking on it refuses that`, param);
  if (out.temperature !== undefined && out.temperature !== 1) throw refuse('temperature', `temperature ${String(out.temperature)} (only 1 is taken)`);
  if (out.top_k !== undefined) throw refuse('top_k', 'top_k');
  if (typeof out.top_p === 'number' && out.top_p < 0.95) throw refuse('top_p', `top_p ${out.top_p} (0.95 to 1 is taken)`);
  const choice = out.tool_choice as Json | undefined;
  if (choice?.type === 'any' || choice?.type === 'tool') throw refuse('tool_choice', 'a tool_choice that forces a tool call');
}
