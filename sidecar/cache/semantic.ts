// Semantic mode's pieces: the prompt as text, and its embedding, asked of a configured embeddings model
// through the rest of the sidecar's pipeline (its routing, retries, rate limits and quota), as a unit
// vector. A prompt with parts that are not text (images, documents, audio) has no text form: such a
// request is served by the exact cache only.
import { isObject, type Json } from '../../common/json.js';
import type { Usage } from '../formats/usage.js';
import type { GatewayRequest, Handler } from '../pipeline/types.js';

/** The conversation as text, one line per message and part; undefined when some part is not text. */
export function promptText(req: GatewayRequest): string | undefined {
  const lines: string[] = [];
  const system = req.body.system;
  if (system !== undefined && !addContent(lines, 'system', system)) return undefined;
  if (!Array.isArray(req.body.messages)) return undefined;
  for (const m of req.body.messages) {
    if (!isObject(m)) return undefined;
    const role = String(m.role ?? '');
    if (m.content !== undefined && m.content !== null && !addContent(lines, role, m.content)) return undefined;
    if (Array.isArray(m.tool_calls)) {
      for (const c of m.tool_calls) {
        const fn = isObject(c) && isObject(c.function) ? c.function : {};
        lines.push(`${role} tool call: ${String(fn.name)}(${String(fn.arguments)})`);
      }
    }
  }
  return lines.join('\n');
}

function addContent(lines: string[], role: string, content: unknown): boolean {
  if (typeof content === 'string') {
    lines.push(`${role}: ${content}`);
    return true;
  }
  if (!Array.isArray(content)) return false;
  for (const part of content) {
    if (!isObject(part)) return false;
    switch (part.type) {
      case 'text':
        lines.push(`${role}: ${String(part.text)}`);
        break;
      case 'tool_use':
        lines.push(`${role} tool call: ${String(part.name)}(${JSON.stringify(part.input)})`);
        break;
      case 'tool_result':
        if (part.content !== undefined && !addContent(lines, `${role} tool result`, part.content)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** The prompt's embedding as a unit vector, or undefined when the embeddings model did not give one. */
export async function embedPrompt(
  next: Handler,
  req: GatewayRequest,
  model: string,
  text: string,
): Promise<{ vector: Float32Array; upstreamMs: number; usage: Usage | undefined } | undefined> {
  const res = await next({
    id: `${req.id}:embedding`,
    endpoint: 'embeddings',
    format: 'openai',
    model,
    body: { model, input: text },
    stream: false,
    headers: {},
    priority: req.priority,
    tags: req.tags,
    signal: req.signal,
  });
  if (res.kind !== 'json' || res.status !== 200) return undefined;
  const body: unknown = JSON.parse(typeof res.body === 'string' ? res.body : res.body.toString('utf8'));
  const first = isObject(body) && Array.isArray(body.data) ? (body.data[0] as Json | undefined) : undefined;
  const vector = unit(first?.embedding);
  return vector === undefined ? undefined : { vector, upstreamMs: res.meta.upstreamMs ?? 0, usage: res.meta.usage };
}

/** Floats (a JSON array, or base64 of little-endian float32) scaled to length 1. */
function unit(embedding: unknown): Float32Array | undefined {
  let v: Float32Array;
  if (Array.isArray(embedding) && embedding.length > 0 && embedding.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    v = Float32Array.from(embedding as number[]);
  } else if (typeof embedding === 'string' && embedding !== '') {
    const bytes = Buffer.from(embedding, 'base64');
    if (bytes.length % 4 !== 0) return undefined;
    v = new Float32Array(new Uint8Array(bytes).buffer);
  } else {
    return undefined;
  }
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  if (!(norm > 0) || !Number.isFinite(norm)) return undefined;
  for (let i = 0; i < v.length; i++) v[i] = v[i]! / norm;
  return v;
}
