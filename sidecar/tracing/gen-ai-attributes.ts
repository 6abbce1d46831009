// GenAI semantic-convention attributes (semconv v1.41.0, docs/gen-ai/gen-ai-spans.md) from what the
// pipeline knows, shared by the request span and the upstream attempt spans. The names match the
// gen_ai_* metrics (metrics/gen-ai-metrics.ts): the same operation and provider values.
import type { ProviderType } from '../config/schema.js';
import type { Usage } from '../formats/usage.js';
import { operationOf } from '../metrics/gen-ai-metrics.js';
import type { Endpoint } from '../pipeline/types.js';
import type { SpanAttributes } from './trace-span.js';

/** gen_ai.provider.name: the telemetry flavour of the API spoken (an OpenAI-compatible server is `openai`). */
export function genAiProvider(type: ProviderType | undefined): string | undefined {
  return type === undefined ? undefined : type === 'anthropic' ? 'anthropic' : 'openai';
}

export function operationAttributes(endpoint: Endpoint, requestModel: string): SpanAttributes {
  return { 'gen_ai.operation.name': operationOf(endpoint), 'gen_ai.request.model': requestModel };
}

/** The usage attributes; cache reads and writes only when the provider reported some. */
export function usageAttributes(usage: Usage | undefined): SpanAttributes {
  if (usage === undefined) return {};
  return {
    'gen_ai.usage.input_tokens': usage.inputTokens,
    'gen_ai.usage.output_tokens': usage.outputTokens,
    'gen_ai.usage.cache_read.input_tokens': usage.cachedInputTokens > 0 ? usage.cachedInputTokens : undefined,
    'gen_ai.usage.cache_creation.input_tokens': usage.cacheWriteTokens > 0 ? usage.cacheWriteTokens : undefined,
  };
}

const servers = new Map<string, SpanAttributes>();

/** server.address and server.port of a provider's base URL (parsed once per URL). */
export function serverAttributes(baseUrl: string): SpanAttributes {
  let attrs = servers.get(baseUrl);
  if (attrs === undefined) {
    const u = new URL(baseUrl);
    attrs = { 'server.address': u.hostname, 'server.port': u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port) };
    if (servers.size < 1000) servers.set(baseUrl, attrs);
  }
  return attrs;
}
