// Tokens by kind, as providers report them, for pricing per kind: `input` counts every prompt token, cache
// reads and writes included; `cachedInput` and `cacheWrite` are the parts of it read from and written to a
// prompt cache. Shared by the sidecar's usage records and the quota service's consumption.

export interface TokenKinds {
  input: number;
  output: number;
  cachedInput: number;
  cacheWrite: number;
}

export const noKinds = (): TokenKinds => ({ input: 0, output: 0, cachedInput: 0, cacheWrite: 0 });

/** Adds `b` into `a`. */
export function addKinds(a: TokenKinds, b: TokenKinds): void {
  a.input += b.input;
  a.output += b.output;
  a.cachedInput += b.cachedInput;
  a.cacheWrite += b.cacheWrite;
}

/** The wire fields of a report or a window (UsageReport, WindowUsage). */
export function kindsToMsg(k: TokenKinds): { inputTokens: number; outputTokens: number; cachedInputTokens: number; cacheWriteTokens: number } {
  return { inputTokens: k.input, outputTokens: k.output, cachedInputTokens: k.cachedInput, cacheWriteTokens: k.cacheWrite };
}

export function kindsFromMsg(m: { inputTokens?: number | string; outputTokens?: number | string; cachedInputTokens?: number | string; cacheWriteTokens?: number | string }): TokenKinds {
  return { input: Number(m.inputTokens ?? 0), output: Number(m.outputTokens ?? 0), cachedInput: Number(m.cachedInputTokens ?? 0), cacheWrite: Number(m.cacheWriteTokens ?? 0) };
}
