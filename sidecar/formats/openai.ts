// OpenAI Chat Completions wire shapes the sidecar reads or writes, and their SSE framing.
import type { Json } from '../../common/json.js';
import { num, type Usage } from './usage.js';

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number; cache_write_tokens?: number };
  completion_tokens_details?: Json;
}

export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface OpenAIChunkChoice {
  index: number;
  delta: Json;
  finish_reason: string | null;
  logprobs?: null;
}

export interface OpenAIChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: OpenAIChunkChoice[];
  usage?: OpenAIUsage | null;
}

export function usageFromOpenAI(u: unknown): Usage | undefined {
  if (u === null || typeof u !== 'object') return undefined;
  const o = u as Json;
  const details = (o.prompt_tokens_details ?? {}) as Json;
  return {
    inputTokens: num(o.prompt_tokens),
    outputTokens: num(o.completion_tokens),
    cachedInputTokens: num(details.cached_tokens),
    cacheWriteTokens: num(details.cache_write_tokens),
  };
}

export function usageToOpenAI(u: Usage): OpenAIUsage {
  const out: OpenAIUsage = {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
  };
  if (u.cachedInputTokens > 0 || u.cacheWriteTokens > 0) {
    out.prompt_tokens_details = { cached_tokens: u.cachedInputTokens };
    if (u.cacheWriteTokens > 0) out.prompt_tokens_details.cache_write_tokens = u.cacheWriteTokens;
  }
  return out;
}

/** One SSE frame of an OpenAI stream. */
export const openaiFrame = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;
export const OPENAI_DONE_FRAME = 'data: [DONE]\n\n';
