// Token usage in one shape for the whole sidecar, whatever the provider reported.

export interface Usage {
  /** All prompt tokens, cached ones included (OpenAI's `prompt_tokens`). */
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens read from the provider's prompt cache. */
  cachedInputTokens: number;
  /** Prompt tokens written to the provider's prompt cache (Anthropic `cache_creation_input_tokens`). */
  cacheWriteTokens: number;
}

export const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
