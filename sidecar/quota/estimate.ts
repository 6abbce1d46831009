// The tokens a request will likely use, before it goes upstream: its prompt text at ~4 characters a
// token, plus its max_tokens / max_output_tokens (or a configured default). Estimates are reserved, then settled to what the
// provider reports. Also what a priority class is likely to spend per second (DemandRate), for lease sizes.
import type { TokenKinds } from '../../proto/token-kinds.js';
import type { Usage } from '../formats/usage.js';
import type { GatewayRequest } from '../pipeline/types.js';

function textLength(v: unknown, depth = 0): number {
  if (typeof v === 'string') return v.length;
  if (depth > 8 || v === null || typeof v !== 'object') return 0;
  let n = 0;
  if (Array.isArray(v)) for (const x of v) n += textLength(x, depth + 1);
  else for (const k in v) if (k !== 'type' && k !== 'role') n += textLength((v as Record<string, unknown>)[k], depth + 1);
  return n;
}

/** A request's prompt count, read at reservation, at each stream checkpoint and at settle: walked once. */
export function promptTokens(req: GatewayRequest): number {
  const memo = req.estimates;
  if (memo?.prompt !== undefined) return memo.prompt;
  const b = req.body;
  const n = Math.ceil((textLength(b.messages) + textLength(b.system) + textLength(b.tools) + textLength(b.input) + textLength(b.instructions)) / 4);
  if (memo !== undefined) memo.prompt = n;
  return n;
}

export function estimateTokens(req: GatewayRequest, defaultOutputTokens: number): number {
  const memo = req.estimates;
  if (memo?.total !== undefined) return memo.total;
  const b = req.body;
  const max = b.max_completion_tokens ?? b.max_tokens ?? b.max_output_tokens;
  const output = req.endpoint === 'embeddings' ? 0 : typeof max === 'number' && max > 0 ? max : defaultOutputTokens;
  const v = Math.max(1, promptTokens(req) + output);
  if (memo !== undefined) memo.total = v;
  return v;
}

/** What an unfinished response used: the provider's partial counts, else the prompt and one token a frame. */
export function usedTokens(req: GatewayRequest, usage: { inputTokens: number; outputTokens: number } | undefined, complete: boolean, frames: number): number {
  if (usage !== undefined && complete) return usage.inputTokens + usage.outputTokens;
  const input = usage !== undefined && usage.inputTokens > 0 ? usage.inputTokens : promptTokens(req);
  return input + Math.max(usage?.outputTokens ?? 0, frames);
}

/** The tokens by kind, when the provider's usage accounts for all that was used (else unknown: none). */
export function kindsOf(usage: Usage | undefined, used: number): TokenKinds | undefined {
  if (usage === undefined || usage.inputTokens + usage.outputTokens !== used) return undefined;
  return { input: usage.inputTokens, output: usage.outputTokens, cachedInput: usage.cachedInputTokens, cacheWrite: usage.cacheWriteTokens };
}

/** Time constant of a class's demand estimate (ms): about how far back its rate looks. */
export const DEMAND_TAU_MS = 10_000;
/** Time constant of the largest recent request (ms): a class that went quiet stops holding tokens for it. */
export const REQUEST_SIZE_TAU_MS = 30_000;
/** Until a class has this much history (ms), its rate is its tokens over this long (a start is not a rate). */
const MIN_SPAN_MS = 1000;

/**
 * A class's demand in tokens per second, exponentially weighted: a sum of the tokens reserved, decayed
 * continuously with DEMAND_TAU_MS, over the span that sum covers (τ·(1 − e^(−age/τ)), so a young class is
 * not underestimated). Exact for a steady rate however often it is read or written, unlike a rate per
 * renewal interval. Also keeps the largest recent request, decaying with REQUEST_SIZE_TAU_MS.
 */
export class DemandRate {
  private sum = 0;
  private largest = 0;
  private at = 0;
  /** When the first request was noted (its history starts there, not at an idle start-up). */
  private since: number | undefined;

  /** A request of `tokens` was reserved at `now` (monotonic ms). */
  note(tokens: number, now: number): void {
    if (this.since === undefined) this.since = this.at = now;
    this.decay(now);
    this.sum += tokens;
    if (tokens > this.largest) this.largest = tokens;
  }

  /** Tokens per second. */
  rate(now: number): number {
    if (this.since === undefined) return 0;
    this.decay(now);
    const span = DEMAND_TAU_MS * (1 - Math.exp(-(now - this.since) / DEMAND_TAU_MS));
    return (this.sum * 1000) / Math.max(MIN_SPAN_MS, span);
  }

  /** The largest recent request estimate, in tokens. */
  requestTokens(now: number): number {
    this.decay(now);
    return this.largest;
  }

  private decay(now: number): void {
    if (this.since === undefined) return;
    const dt = now - this.at;
    if (dt <= 0) return;
    this.sum *= Math.exp(-dt / DEMAND_TAU_MS);
    this.largest *= Math.exp(-dt / REQUEST_SIZE_TAU_MS);
    this.at = now;
  }
}
