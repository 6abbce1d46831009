// A configured provider: where its API lives, how it authenticates, and one call that posts JSON to it
// over the shared keep-alive pool. Format translation is not its concern (see translate/).
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher, Pool } from 'undici';
import { GatewayError } from '../../common/errors.js';
import { slicesLength } from '../../common/json-in-slices.js';
import type { Config, ProviderConfig, ProviderType } from '../config/schema.js';
import { providerFormat, type WireFormat } from '../formats/wire-format.js';
import type { CancelSignal } from '../pipeline/cancel-signal.js';
import type { PoolRegistry } from '../upstream/pool-registry.js';
import { request } from '../upstream/undici-pool.js';
import { upstreamFailure } from '../upstream/upstream-errors.js';

/**
 * The upstream API a request goes to: the format's chat API (Chat Completions or Messages), embeddings,
 * OpenAI's Responses, or Anthropic's token counting (`/v1/messages/count_tokens`).
 */
export type ProviderApi = 'chat' | 'embeddings' | 'responses' | 'count_tokens';

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
}

export interface Provider {
  readonly id: string;
  readonly type: ProviderType;
  readonly format: WireFormat;
  readonly config: ProviderConfig;
  readonly pool: Pool;
  /** The API key sent upstream now (from config, its file, or the quota service); undefined when none. */
  key(): string | undefined;
  /**
   * Posts `body` (JSON text, or a large one's slices in order) to the provider's `api` endpoint. `headers`
   * add to or replace the provider's own (e.g. the app's `anthropic-beta`). Network failures throw typed
   * GatewayErrors.
   */
  send(api: ProviderApi, body: string | readonly Buffer[], signal: CancelSignal, headers?: Record<string, string>, timeouts?: { firstByteMs: number; idleMs: number }): Promise<UpstreamResponse>;
}

const USER_AGENT = 'llm-gateway/0.1';

/** A key held by the quota service, by name (`apiKeyFrom: quota`); undefined until it arrived. */
export type QuotaKeyLookup = (name: string) => string | undefined;

export function createProvider(id: string, cfg: ProviderConfig, upstream: Config['upstream'], pools: PoolRegistry, quotaKey: QuotaKeyLookup = () => undefined): Provider {
  const url = new URL(cfg.baseUrl);
  const basePath = url.pathname.replace(/\/+$/, '');
  const pool = pools.get(url.origin, { connections: cfg.maxConnections, connectTimeoutMs: cfg.timeouts?.connectMs ?? upstream.connectTimeoutMs });
  const format = providerFormat(cfg.type);
  const paths: Record<ProviderApi, string> =
    format === 'anthropic'
      ? { chat: `${basePath}/v1/messages`, embeddings: '', responses: '', count_tokens: `${basePath}/v1/messages/count_tokens` }
      : { chat: `${basePath}/chat/completions`, embeddings: `${basePath}/embeddings`, responses: `${basePath}/responses`, count_tokens: '' };

  const baseHeaders: Record<string, string> = { 'content-type': 'application/json', 'user-agent': USER_AGENT };
  if (format === 'anthropic') baseHeaders['anthropic-version'] = cfg.anthropicVersion;
  const keyHeaders = (key: string): Record<string, string> => (format === 'anthropic' ? { 'x-api-key': key } : { authorization: `Bearer ${key}` });
  if (cfg.apiKey !== undefined) Object.assign(baseHeaders, keyHeaders(cfg.apiKey));
  for (const [k, v] of Object.entries(cfg.headers)) baseHeaders[k.toLowerCase()] = v;
  const keyName = cfg.apiKeyFrom === 'quota' ? (cfg.apiKeyName ?? id) : undefined;
  const key = keyName === undefined ? () => cfg.apiKey : () => quotaKey(keyName);
  /** The headers of one request: the key of the moment when it comes from the quota service (it rotates). */
  const headersFor = (extra: Record<string, string> | undefined): Record<string, string> => {
    if (keyName === undefined) return extra === undefined ? baseHeaders : { ...baseHeaders, ...extra };
    const k = quotaKey(keyName);
    if (k === undefined) {
      throw new GatewayError('llmgw_upstream_unavailable', 503, `provider ${id}: its API key has not arrived from the quota service yet`, { retryable: true, retryAfterSeconds: 1 });
    }
    return { ...baseHeaders, ...keyHeaders(k), ...extra };
  };

  return {
    id,
    type: cfg.type,
    format,
    config: cfg,
    pool,
    key,
    async send(api, body, signal, headers, timeouts) {
      const sent = typeof body === 'string' ? headersFor(headers) : { ...headersFor(headers), 'content-length': String(slicesLength(body)) };
      try {
        const res = await request(pool, {
          path: paths[api],
          method: 'POST',
          headers: sent,
          // undici sends any iterable of Buffers one after another (its typings list only single values).
          body: body as string | Buffer,
          signal,
          headersTimeout: timeouts?.firstByteMs ?? upstream.headersTimeoutMs,
          bodyTimeout: timeouts?.idleMs ?? upstream.bodyTimeoutMs,
        });
        return { status: res.statusCode, headers: res.headers, body: res.body };
      } catch (err) {
        if (signal.aborted) throw err;
        throw upstreamFailure(id, err);
      }
    },
  };
}
