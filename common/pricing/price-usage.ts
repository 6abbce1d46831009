// What tokens cost: a model's prices as nano-USD per token, and the price of a request's (or a report's)
// tokens by kind. Nano-USD (1e-9 USD) because a price in USD per million tokens with up to three decimals
// is a whole number of nano-USD per thousand tokens, and a sum of them stays an exact integer up to
// 2^53 nano-USD (about 9 million USD) in a JavaScript number.
import type { TokenKinds } from '../../proto/token-kinds.js';
import type { ModelPrice } from './price-table.js';

/** Nano-USD per token, by kind; `highest` prices tokens whose kind is not known. */
export interface Rates {
  input: number;
  cachedInput: number;
  cacheWrite: number;
  output: number;
  reasoning: number;
  highest: number;
}

/** Tokens by kind as the providers report them: `input` counts every prompt token, cache reads and writes included. */
export interface PricedTokens {
  input: number;
  output: number;
  cachedInput: number;
  cacheWrite: number;
  /** Of `output`, those spent on reasoning (priced apart only where the table does). */
  reasoning?: number;
}

/** USD per million tokens → nano-USD per token (×1000); absent prices fall back to input's and output's. */
export function ratesOf(p: ModelPrice): Rates {
  const input = p.input * 1000;
  const output = p.output * 1000;
  const r = { input, output, cachedInput: (p.cachedInput ?? p.input) * 1000, cacheWrite: (p.cacheWrite ?? p.input) * 1000, reasoning: (p.reasoning ?? p.output) * 1000 };
  return { ...r, highest: Math.max(r.input, r.output, r.cachedInput, r.cacheWrite, r.reasoning) };
}

const count = (n: number | undefined): number => (n !== undefined && n > 0 && Number.isFinite(n) ? n : 0);

/**
 * The price of tokens in nano-USD (not rounded). `total`, when given, is what was charged in all: the part of
 * it the kinds do not account for (a request cut off before the provider said, a sidecar that predates
 * kinds) is priced at the model's highest rate, so an unknown split never costs less than the truth.
 */
export function priceUsage(rates: Rates, t: PricedTokens, total?: number): number {
  return priceTokens(rates, t.input, t.output, t.cachedInput, t.cacheWrite, t.reasoning, total);
}

/**
 * What `tokens` charged tokens cost (nano-USD, whole), as the quota service charges a report: by kind, no
 * kind counting for more than `tokens`, and what the kinds do not account for at the model's highest rate.
 * The sidecar settles dollar reservations by the same rule.
 */
export function chargedNano(rates: Rates, kinds: TokenKinds | undefined, tokens: number): number {
  if (kinds === undefined) return Math.round(priceTokens(rates, 0, 0, 0, 0, undefined, tokens));
  return Math.round(priceTokens(rates, Math.min(kinds.input, tokens), Math.min(kinds.output, tokens), kinds.cachedInput, kinds.cacheWrite, undefined, tokens));
}

/** priceUsage with the counts as arguments (the sidecar's request path: nothing allocated). */
export function priceTokens(rates: Rates, inputTokens: number, outputTokens: number, cachedInputTokens: number, cacheWriteTokens: number, reasoningTokens?: number, total?: number): number {
  const input = count(inputTokens);
  const output = count(outputTokens);
  const cachedInput = Math.min(count(cachedInputTokens), input);
  const cacheWrite = Math.min(count(cacheWriteTokens), input - cachedInput);
  const reasoning = Math.min(count(reasoningTokens), output);
  let n =
    (input - cachedInput - cacheWrite) * rates.input +
    cachedInput * rates.cachedInput +
    cacheWrite * rates.cacheWrite +
    (output - reasoning) * rates.output +
    reasoning * rates.reasoning;
  if (total !== undefined) n += Math.max(0, count(total) - input - output) * rates.highest;
  return n;
}

/** Nano-USD → a USD decimal string for people and headers: '0', else up to 9 decimals without trailing zeros. */
export function formatUsd(nanoUsd: number): string {
  if (nanoUsd === 0) return '0';
  // Whole nano-USD in integer arithmetic (exact, and on the request path: no float formatting, no regex).
  const n = Math.round(Math.abs(nanoUsd));
  const whole = Math.floor(n / 1e9);
  let frac = n - whole * 1e9;
  const sign = nanoUsd < 0 ? '-' : '';
  if (frac === 0) return `${sign}${whole}`;
  let places = 9;
  while (frac % 10 === 0) {
    frac /= 10;
    places--;
  }
  return `${sign}${whole}.${String(frac).padStart(places, '0')}`;
}

/**
 * Nano-USD → dollars for people: `$12.34` (to the cent from a dollar up), and below a dollar at least two
 * places and as many more as the amount has (`$0.50`, `$0.2003`, `$0.000042`), so small budgets read exactly.
 */
export function formatDollars(nanoUsd: number): string {
  if (Math.abs(nanoUsd) >= 1e9) return `$${(nanoUsd / 1e9).toFixed(2)}`;
  const s = formatUsd(Math.round(nanoUsd));
  const dot = s.indexOf('.');
  const places = dot < 0 ? 0 : s.length - dot - 1;
  return `$${places >= 2 ? s : (nanoUsd / 1e9).toFixed(2)}`;
}
