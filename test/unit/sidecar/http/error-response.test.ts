import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { ProviderError } from '../../../../sidecar/errors.js';
import { toErrorFrame, toWireError } from '../../../../sidecar/http/error-response.js';

describe('errors on the wire', () => {
  const refusal = new GatewayError('llmgw_quota_exhausted', 429, 'budget spent', { retryAfterSeconds: 12.2 });

  it('writes gateway refusals in the OpenAI shape with their llmgw_ code and Retry-After', () => {
    expect(toWireError(refusal, 'openai')).toEqual({
      status: 429,
      headers: { 'retry-after': '13' },
      body: { error: { message: 'budget spent', type: 'rate_limit_error', param: null, code: 'llmgw_quota_exhausted' } },
    });
  });

  it('writes gateway refusals in the Anthropic shape on /v1/messages', () => {
    expect(toWireError(refusal, 'anthropic').body).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'budget spent', code: 'llmgw_quota_exhausted' },
    });
  });

  it('passes a provider error through untouched when the formats match', () => {
    const body = { error: { message: 'Rate limit reached', type: 'requests', param: null, code: 'rate_limit_exceeded' } };
    const err = new ProviderError({ status: 429, providerId: 'o', format: 'openai', body, retryAfter: '2' });
    expect(toWireError(err, 'openai')).toEqual({ status: 429, headers: { 'retry-after': '2' }, body });
  });

  it('translates provider errors across formats, keeping status and message', () => {
    const anthropicBody = { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } };
    const fromAnthropic = new ProviderError({ status: 400, providerId: 'a', format: 'anthropic', body: anthropicBody });
    expect(toWireError(fromAnthropic, 'openai').body).toEqual({
      error: { message: 'max_tokens: Field required', type: 'invalid_request_error', param: null, code: null },
    });
    const openaiBody = { error: { message: 'The model `x` does not exist', type: 'invalid_request_error', param: null, code: 'model_not_found' } };
    const fromOpenAI = new ProviderError({ status: 404, providerId: 'o', format: 'openai', body: openaiBody });
    expect(toWireError(fromOpenAI, 'anthropic')).toEqual({
      status: 404,
      headers: {},
      body: { type: 'error', error: { type: 'not_found_error', message: 'The model `x` does not exist' } },
    });
  });

  it('wraps a non-JSON provider error body with the provider and status', () => {
    const err = new ProviderError({ status: 502, providerId: 'vllm', format: 'openai', body: '<html>Bad Gateway</html>' });
    expect(toWireError(err, 'openai').body).toEqual({
      error: { message: 'provider vllm answered 502: <html>Bad Gateway</html>', type: 'server_error', param: null, code: null },
    });
  });

  it('frames stream errors the way each SDK raises them', () => {
    const err = new GatewayError('llmgw_upstream_error', 502, 'cut');
    expect(toErrorFrame(err, 'openai')).toBe(
      'data: {"error":{"message":"cut","type":"server_error","param":null,"code":"llmgw_upstream_error"}}\n\n',
    );
    expect(toErrorFrame(err, 'anthropic')).toBe(
      'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"cut","code":"llmgw_upstream_error"}}\n\n',
    );
  });
});
