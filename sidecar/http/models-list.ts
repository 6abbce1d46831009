// GET /v1/models: the names this sidecar routes, in OpenAI's list shape, or Anthropic's when an
// Anthropic SDK asks (it sends `anthropic-version`).
import type { IncomingMessage } from 'node:http';

export function listModels(names: readonly string[], req: IncomingMessage, createdSeconds: number): unknown {
  if (req.headers['anthropic-version'] !== undefined) {
    const createdAt = new Date(createdSeconds * 1000).toISOString();
    return {
      data: names.map((id) => ({ type: 'model', id, display_name: id, created_at: createdAt })),
      has_more: false,
      first_id: names[0] ?? null,
      last_id: names.at(-1) ?? null,
    };
  }
  return {
    object: 'list',
    data: names.map((id) => ({ id, object: 'model', created: createdSeconds, owned_by: 'llm-gateway' })),
  };
}
