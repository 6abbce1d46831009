// The tokens a request will likely use, before it goes upstream: its prompt text at ~4 characters a
// token, plus its max_tokens (or a configured default). Estimates are reserved, then settled to what the
// provider reports.
import type { GatewayRequest } from '../pipeline/types.js';

const cache = new WeakMap<GatewayRequest, number>();

function textLength(v: unknown, depth = 0): number {
  if (typeof v === 'string') return v.length;
  if (depth > 8 || v === null || typeof v !== 'object') return 0;
  let n = 0;
  if (Array.isArray(v)) for (const x of v) n += textLength(x, depth + 1);
  else for (const [k, x] of Object.entries(v)) if (k !== 'type' && k !== 'role') n += textLength(x, depth + 1);
  return n;
}

export function promptTokens(req: GatewayRequest): number {
  const b = req.body;
  const chars = textLength(b.messages) + textLength(b.system) + textLength(b.tools) + textLength(b.input);
  return Math.ceil(chars / 4);
}

export function estimateTokens(req: GatewayRequest, defaultOutputTokens: number): number {
  let v = cache.get(req);
  if (v === undefined) {
    const b = req.body;
    const max = b.max_completion_tokens ?? b.max_tokens;
    const output = req.endpoint === 'embeddings' ? 0 : typeof max === 'number' && max > 0 ? max : defaultOutputTokens;
    v = Math.max(1, promptTokens(req) + output);
    cache.set(req, v);
  }
  return v;
}

/** What an unfinished response used: the provider's partial counts, else the prompt and one token a frame. */
export function usedTokens(req: GatewayRequest, usage: { inputTokens: number; outputTokens: number } | undefined, complete: boolean, frames: number): number {
  if (usage !== undefined && complete) return usage.inputTokens + usage.outputTokens;
  const input = usage !== undefined && usage.inputTokens > 0 ? usage.inputTokens : promptTokens(req);
  return input + Math.max(usage?.outputTokens ?? 0, frames);
}
