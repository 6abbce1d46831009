// The sidecar's named limits per endpoint (messages, tools, content parts, embedding inputs), enforced by
// the body reader on small bodies (after the parse) and large ones (as they arrive) alike. The depth and
// per-container bounds themselves are tested with the reader (test/unit/common/http/).
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { GatewayError } from '../../../../common/errors.js';
import { readJsonBody, SMALL_BODY_BYTES } from '../../../../common/http/read-json-body.js';
import type { Endpoint } from '../../../../sidecar/pipeline/types.js';
import { entryLimitsOf, MAX_CONTENT_PARTS, MAX_EMBEDDING_INPUTS, MAX_MESSAGES, MAX_TOOLS } from '../../../../sidecar/http/json-limits.js';

/** What the reader says of `body` sent to `endpoint`: its refusal, or undefined. */
async function refusal(endpoint: Endpoint, body: Record<string, unknown>, large: boolean): Promise<GatewayError | undefined> {
  // A leading pad takes the body past SMALL_BODY_BYTES, onto the path that checks it as it arrives.
  const text = JSON.stringify(large ? { pad: 'p'.repeat(SMALL_BODY_BYTES), ...body } : body);
  const req = new PassThrough() as PassThrough & IncomingMessage;
  req.headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) };
  const read = readJsonBody(req, 16 << 20, entryLimitsOf(endpoint));
  req.end(text);
  try {
    await read;
    return undefined;
  } catch (err) {
    return err as GatewayError;
  }
}

const parts = (n: number) => Array.from({ length: n }, () => ({ type: 'text', text: '' }));
const msgs = (n: number) => Array.from({ length: n }, () => ({ role: 'user', content: 'x' }));
const tools = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'function', function: { name: `f${i}` } }));
const inputs = (n: number) => Array.from({ length: n }, () => 'text');

describe.each([false, true])('named limits (large body: %s)', (large) => {
  it('accepts exactly the limits', async () => {
    for (const endpoint of ['chat', 'messages'] as const) {
      expect(await refusal(endpoint, { messages: msgs(MAX_MESSAGES), tools: tools(MAX_TOOLS) }, large)).toBeUndefined();
      expect(await refusal(endpoint, { messages: [{ role: 'user', content: parts(MAX_CONTENT_PARTS) }], system: parts(MAX_CONTENT_PARTS) }, large)).toBeUndefined();
    }
    expect(await refusal('embeddings', { input: inputs(MAX_EMBEDDING_INPUTS) }, large)).toBeUndefined();
  });

  it('refuses one more message, tool, content part or embedding input with 400 naming the limit and the field', async () => {
    const cases: [Endpoint, Record<string, unknown>, string, string][] = [
      ['chat', { messages: msgs(MAX_MESSAGES + 1) }, 'messages', `"messages" has more entries than the limit of ${MAX_MESSAGES}`],
      ['messages', { messages: msgs(1), tools: tools(MAX_TOOLS + 1) }, 'tools', `"tools" has more entries than the limit of ${MAX_TOOLS}`],
      ['chat', { messages: [...msgs(2), { role: 'user', content: parts(MAX_CONTENT_PARTS + 1) }] }, 'messages[2].content', `"messages[2].content" has more content parts than the limit of ${MAX_CONTENT_PARTS}`],
      ['messages', { messages: msgs(1), system: parts(MAX_CONTENT_PARTS + 1) }, 'system', `"system" has more content parts than the limit of ${MAX_CONTENT_PARTS}`],
      ['embeddings', { model: 'e', input: inputs(MAX_EMBEDDING_INPUTS + 1) }, 'input', `"input" has more entries than the limit of ${MAX_EMBEDDING_INPUTS}`],
    ];
    for (const [endpoint, body, param, message] of cases) {
      expect(await refusal(endpoint, body, large)).toMatchObject({ status: 400, code: 'llmgw_invalid_request', param, message });
    }
  });

  it('applies each endpoint its own names only', async () => {
    expect(await refusal('chat', { messages: msgs(1), input: inputs(MAX_EMBEDDING_INPUTS + 1) }, large)).toBeUndefined();
    expect(await refusal('embeddings', { input: 'one', messages: msgs(MAX_MESSAGES + 1) }, large)).toBeUndefined();
  });
});
