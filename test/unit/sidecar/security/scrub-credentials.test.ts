import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../../../sidecar/errors.js';
import type { Provider } from '../../../../sidecar/providers/provider.js';
import { providerSecrets } from '../../../../sidecar/providers/provider-secrets.js';
import { REDACTED, scrubCredentials } from '../../../../sidecar/security/scrub-credentials.js';
import { scrubProviderError } from '../../../../sidecar/security/scrub-provider-error.js';

const KEY = 'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z';
const PLAIN_KEY = 'tgp_v1_Q8m2Zr7Lx4Vb9Nc3Kd6Jf1Hs5Gw0Pt';
const scrub = (text: string, secrets: readonly string[] = []): string => scrubCredentials(text, secrets);

describe('scrubCredentials: key shapes', () => {
  it.each([
    ['OpenAI user key', 'sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zT3BlbkFJ'],
    ['OpenAI project key', 'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_-Zz'],
    ['OpenAI service-account key', 'sk-svcacct-Ab3dEf6hIj9kLm2nOp5qRs8t'],
    ['Anthropic API key', 'sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-AbCdEfGh_AA'],
    ['Anthropic admin key', 'sk-ant-admin01-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAA'],
    ['OpenAI masked echo with stars', 'sk-proj-abc***********xyz'],
    ['OpenAI masked echo with dots', 'sk-abc...xyz'],
    ['masked echo with an ellipsis', 'sk-abc…xyz'],
    ['masked echo with stars only after the prefix', 'sk-********************************3QoA'],
    ['Google API key', 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q'],
    ['Groq key', 'gsk_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z'],
    ['xAI key', 'xai-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6h'],
    ['Hugging Face token', 'hf_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z'],
    ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE'],
    ['AWS temporary access key id', 'ASIAIOSFODNN7EXAMPLE'],
  ])('redacts a %s whole, in prose', (_name, key) => {
    expect(scrub(`Incorrect API key provided: ${key}. Check it.`)).toBe(`Incorrect API key provided: ${REDACTED}. Check it.`);
  });

  it('redacts the token of a Bearer credential, whatever its case, keeping the scheme', () => {
    expect(scrub('Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl')).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(scrub('header was "bearer abcDEF123456789=="')).toBe(`header was "bearer ${REDACTED}"`);
    expect(scrub('use BEARER    abcdefgh12345678 please')).toBe(`use BEARER    ${REDACTED} please`);
  });

  it('redacts the value of api-key echoes, keeping the name', () => {
    expect(scrub('x-api-key: abcdefgh12345678')).toBe(`x-api-key: ${REDACTED}`);
    expect(scrub('api_key=abcdefgh12345678&model=x')).toBe(`api_key=${REDACTED}&model=x`);
    expect(scrub('{"apiKey": "abcdefgh12345678"}')).toBe(`{"apiKey": "${REDACTED}"}`);
    expect(scrub("config {'API-KEY': 'abcdefgh12345678'}")).toBe(`config {'API-KEY': '${REDACTED}'}`);
    expect(scrub('Your API key: abcdefgh12345678 is not valid')).toBe(`Your API key: ${REDACTED} is not valid`);
  });

  it('leaves words that only resemble credentials alone', () => {
    for (const text of [
      'task-management-system and desk-organizer-pro',
      'scikit-learn and sk-learn',
      'xai-grok-2-vision-1212 and hf_hub_download',
      'invalid x-api-key',
      'You need to provide your API key in an Authorization header using Bearer auth',
      'api_key: missing',
      'AKIAIOSFODNN7EXAMPLEXTRA is too long for an AWS key id',
      'the token_type is "bearer"',
    ]) {
      expect(scrub(text)).toBe(text);
    }
  });
});

describe('scrubCredentials: configured secrets', () => {
  it('redacts an exact configured key that has no known shape, in prose', () => {
    expect(scrub(`The key ${PLAIN_KEY} was revoked (${PLAIN_KEY})`, [PLAIN_KEY])).toBe(`The key ${REDACTED} was revoked (${REDACTED})`);
  });

  it('redacts masked echoes of a configured key: a prefix, a mask, a suffix', () => {
    expect(scrub('Incorrect API key provided: tgp_v1_Q8***********w0Pt.', [PLAIN_KEY])).toBe(`Incorrect API key provided: ${REDACTED}.`);
    expect(scrub('key tgp_v1...0Pt rejected', [PLAIN_KEY])).toBe(`key ${REDACTED} rejected`);
    expect(scrub('key tgp_v1_Q8m2…', [PLAIN_KEY])).toBe(`key ${REDACTED}`);
    expect(scrub('key=tgp_v1_Q8***0Pt', [PLAIN_KEY])).toBe(`key=${REDACTED}`);
  });

  it('does not mistake ordinary ellipses or a too short prefix for an echo', () => {
    for (const text of ['wait... then tgp...', 'see the docs… and retry', 'tg***Pt']) {
      expect(scrub(text, [PLAIN_KEY])).toBe(text);
    }
  });

  it('ignores configured secrets shorter than 8 characters', () => {
    expect(scrub('the model is missing from the request', ['model', 'missing'])).toBe('the model is missing from the request');
  });

  it('redacts a configured key inside JSON text and keeps the JSON parseable', () => {
    const body = JSON.stringify({
      error: { message: `Incorrect API key provided: ${PLAIN_KEY}.\n${KEY}\t${PLAIN_KEY}`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
    });
    const out = scrub(body, [PLAIN_KEY, KEY]);
    expect(out).not.toContain(PLAIN_KEY);
    expect(out).not.toContain('sk-');
    const parsed = JSON.parse(out) as { error: { message: string; code: string } };
    expect(parsed.error.message).toBe(`Incorrect API key provided: ${REDACTED}.\n${REDACTED}\t${REDACTED}`);
    expect(parsed.error.code).toBe('invalid_api_key');
  });

  it('keeps JSON parseable when a key follows an escape or holds a quote', () => {
    // A key starting with the letter of an escape (`\t` + `tgp_…`) must not leave a lone backslash behind.
    const json = JSON.stringify({ m: `tab\t${PLAIN_KEY.slice(1)} and ${PLAIN_KEY}` });
    const out = scrub(json, [PLAIN_KEY]);
    expect(() => JSON.parse(out)).not.toThrow();
    expect(out).not.toContain(PLAIN_KEY);
    const quoted = 'abc"defgh\\ijk';
    const outQuoted = scrub(JSON.stringify({ m: `key ${quoted} end` }), [quoted]);
    expect(JSON.parse(outQuoted)).toEqual({ m: `key ${REDACTED} end` });
  });

  it('keeps every kind of match JSON-safe', () => {
    const value = {
      a: `Bearer ${PLAIN_KEY}`,
      b: `x-api-key: "${PLAIN_KEY}"`,
      c: `line\nsk-ant-api03-${'x'.repeat(40)}`,
      d: ['AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q', 'tgp_v1_Q8***0Pt'],
    };
    const out = scrub(JSON.stringify(value), [PLAIN_KEY]);
    expect(JSON.parse(out)).toEqual({
      a: `Bearer ${REDACTED}`,
      b: `x-api-key: "${REDACTED}"`,
      c: `line\n${REDACTED}`,
      d: [REDACTED, REDACTED],
    });
  });
});

describe('scrubCredentials: text without credentials', () => {
  it('returns the very same text', () => {
    const text = JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error' } });
    expect(scrub(text, [KEY, PLAIN_KEY])).toBe(text);
    expect(scrub('', [KEY])).toBe('');
    expect(scrub('short', [KEY])).toBe('short');
  });

  it('returns random text holding no trigger unchanged (1,000 random strings)', () => {
    // Letters without s, k, b, a, i, g, x, h (the first letters of every shape), plus digits, punctuation,
    // JSON escapes and masks: no shape can start, and no configured secret is in there.
    const alphabet = 'cdefjlmnopqrtuvwyzCDEFJLMNOPQRTUVWYZ0123456789 _-.,:;=*…"\'\\/{}[]()\n\t';
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 1000; n++) {
      let text = '';
      const length = Math.floor(random() * 400);
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      expect(scrub(text, [KEY, PLAIN_KEY])).toBe(text);
    }
  });
});

describe('scrubProviderError', () => {
  const error = (body: unknown, retryAfter?: string): ProviderError =>
    new ProviderError({ status: 401, providerId: 'openai', format: 'openai', body, retryAfter });

  it('scrubs every string of a JSON body, keys and credential-named fields included', () => {
    const err = error({ error: { message: `Incorrect API key provided: ${PLAIN_KEY}.`, type: 'invalid_request_error', code: 'invalid_api_key', details: [{ api_key: 'abcdefgh12345678' }] } });
    const out = scrubProviderError(err, [PLAIN_KEY]);
    expect(out).not.toBe(err);
    expect(out).toBeInstanceOf(ProviderError);
    expect(out).toMatchObject({ status: 401, providerId: 'openai', format: 'openai', retryable: false });
    expect(out.body).toEqual({ error: { message: `Incorrect API key provided: ${REDACTED}.`, type: 'invalid_request_error', code: 'invalid_api_key', details: [{ api_key: REDACTED }] } });
    // The original was not changed in place.
    expect(JSON.stringify(err.body)).toContain(PLAIN_KEY);
  });

  it('scrubs a text body and the Retry-After value', () => {
    const out = scrubProviderError(error(`bad key ${KEY}`, `1 ${PLAIN_KEY}`), [PLAIN_KEY]);
    expect(out.body).toBe(`bad key ${REDACTED}`);
    expect(out.retryAfter).toBe(`1 ${REDACTED}`);
  });

  it('returns the error itself when there is nothing to remove', () => {
    const err = error({ error: { message: 'Rate limit reached', type: 'rate_limit_error' } }, '20');
    expect(scrubProviderError(err, [PLAIN_KEY])).toBe(err);
  });

  it('does not walk absurdly deep bodies', () => {
    let deep: unknown = KEY;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const out = scrubProviderError(error(deep), []);
    expect(JSON.stringify(out.body)).not.toContain('sk-');
  });
});

describe('providerSecrets', () => {
  const provider = (config: { apiKey?: string; headers: Record<string, string> }): Provider => ({ config, key: () => config.apiKey }) as unknown as Provider;

  it('lists the API key and the values of credential headers, with the bare token of an Authorization one', () => {
    expect(
      providerSecrets(provider({ apiKey: KEY, headers: { 'OpenAI-Project': 'proj_123', Authorization: `Bearer ${PLAIN_KEY}`, 'X-Service-Token': 'svc-token-value', 'x-tenant': 'blue' } })),
    ).toEqual([KEY, `Bearer ${PLAIN_KEY}`, PLAIN_KEY, 'svc-token-value']);
  });

  it('is empty for a provider without credentials', () => {
    expect(providerSecrets(provider({ headers: {} }))).toEqual([]);
  });
});
