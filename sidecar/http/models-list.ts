// GET /v1/models and /v1/models/{id}: the names this sidecar routes, in OpenAI's shapes, or Anthropic's
// when an Anthropic SDK asks (it sends `anthropic-version`).
import type { IncomingMessage } from 'node:http';

const anthropicAsks = (req: IncomingMessage): boolean => req.headers['anthropic-version'] !== undefined;

function describe(id: string, req: IncomingMessage, createdSeconds: number): unknown {
  if (anthropicAsks(req)) return { type: 'model', id, display_name: id, created_at: new Date(createdSeconds * 1000).toISOString() };
  return { id, object: 'model', created: createdSeconds, owned_by: 'llm-gateway' };
}

export function listModels(names: readonly string[], req: IncomingMessage, createdSeconds: number): unknown {
  const data = names.map((id) => describe(id, req, createdSeconds));
  if (anthropicAsks(req)) return { data, has_more: false, first_id: names[0] ?? null, last_id: names.at(-1) ?? null };
  return { object: 'list', data };
}

/** One routed model (`GET /v1/models/{id}`, what `models.retrieve` calls); undefined when it is not routed. */
export function describeModel(names: readonly string[], id: string, req: IncomingMessage, createdSeconds: number): unknown {
  return names.includes(id) ? describe(id, req, createdSeconds) : undefined;
}
