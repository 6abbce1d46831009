// One span per upstream attempt (a retry, a fallback and each leg of a hedge are attempts of their own):
// a GenAI inference span (semconv: CLIENT, named `{operation} {model}`) for the provider and upstream
// model it called. Each attempt is its own span rather than one span over all of them because a fallback
// changes the provider and the model; the request's span carries the whole operation.
import { errorCode, LlmgwError } from '../../common/errors.js';
import { ProviderError } from '../errors.js';
import { operationOf } from '../metrics/gen-ai-metrics.js';
import { onComplete } from '../pipeline/on-complete.js';
import type { GatewayRequest, GatewayResponse } from '../pipeline/types.js';
import type { Target } from '../routing/router.js';
import { genAiProvider, serverAttributes, usageAttributes } from './gen-ai-attributes.js';
import type { TraceSpan } from './trace-span.js';

/**
 * Runs one attempt under its span, ended with how it went: a JSON answer when it arrived, a stream when it
 * ended. `call` gets the span's `traceparent` to send upstream (undefined unless propagation is on).
 * Callers check `req.span` first: with tracing off they call the provider directly.
 */
export async function tracedAttempt(span: TraceSpan, req: GatewayRequest, target: Target, attempt: number, call: (traceparent: string | undefined) => Promise<GatewayResponse>): Promise<GatewayResponse> {
  const op = operationOf(req.endpoint);
  const s = span.child(`${op} ${target.model}`, 'client', {
    'gen_ai.operation.name': op,
    'gen_ai.provider.name': genAiProvider(target.provider.config.type),
    'gen_ai.request.model': target.model,
    ...serverAttributes(target.provider.config.baseUrl),
    'llmgw.provider': target.provider.id,
    'llmgw.attempt': attempt,
    'llmgw.stream': req.stream,
  });
  let res: GatewayResponse;
  try {
    res = await call(s.traceparent);
  } catch (err) {
    if (err instanceof ProviderError) s.set({ 'http.response.status_code': err.status });
    s.fail(err instanceof LlmgwError ? errorCode(err) : req.signal.aborted ? 'cancelled' : 'llmgw_internal_error', (err as Error).message);
    s.end();
    throw err;
  }
  s.set({ 'gen_ai.response.model': res.meta.upstreamModel, 'http.response.status_code': res.kind === 'json' ? res.status : 200 });
  if (res.kind === 'json') {
    s.set(usageAttributes(res.meta.usage));
    s.end();
    return res;
  }
  return onComplete(res, (o) => {
    s.set({ ...usageAttributes(o.usage), 'llmgw.stream.frames': o.frames, 'llmgw.stream.complete': o.complete });
    s.end();
  });
}
