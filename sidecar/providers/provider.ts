// A configured provider: where its API lives, how it authenticates, and one call that posts JSON to it
// over the shared keep-alive pool. Format translation is not its concern (see translate/).
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher, Pool } from 'undici';
import type { Config, ProviderConfig, ProviderType } from '../config/schema.js';
import type { CancelSignal } from '../pipeline/cancel-signal.js';
import { providerFormat, type WireFormat } from '../formats/wire-format.js';
import type { PoolRegistry } from '../upstream/pool-registry.js';
import { request } from '../upstream/undici-pool.js';
import { upstreamFailure } from '../upstream/upstream-errors.js';

export type ProviderApi = 'chat' | 'embeddings';

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
  /**
   * Posts `body` (JSON text) to the provider's `api` endpoint. `headers` add to or replace the
   * provider's own (e.g. the app's `anthropic-beta`). Network failures throw typed GatewayErrors.
   */
  send(api: ProviderApi, body: string, signal: CancelSignal, headers?: Record<string, string>, timeouts?: { firstByteMs: number; idleMs: number }): Promise<UpstreamResponse>;
}

const USER_AGENT = 'llm-gateway/0.1';

export function createProvider(id: string, cfg: ProviderConfig, upstream: Config['upstream'], pools: PoolRegistry): Provider {
  const url = new URL(cfg.baseUrl);
  const basePath = url.pathname.replace(/\/+$/, '');
  const pool = pools.get(url.origin, { connections: cfg.maxConnections, connectTimeoutMs: cfg.timeouts?.connectMs ?? upstream.connectTimeoutMs });
  const format = providerFormat(cfg.type);
  const paths: Record<ProviderApi, string> =
    format === 'anthropic'
      ? { chat: `${basePath}/v1/messages`, embeddings: '' }
      : { chat: `${basePath}/chat/completions`, embeddings: `${basePath}/embeddings` };

  const baseHeaders: Record<string, string> = { 'content-type': 'application/json', 'user-agent': USER_AGENT };
  if (format === 'anthropic') {
    baseHeaders['anthropic-version'] = cfg.anthropicVersion;
    if (cfg.apiKey !== undefined) baseHeaders['x-api-key'] = cfg.apiKey;
  } else if (cfg.apiKey !== undefined) {
    baseHeaders.authorization = `Bearer ${cfg.apiKey}`;
  }
  for (const [k, v] of Object.entries(cfg.headers)) baseHeaders[k.toLowerCase()] = v;

  return {
    id,
    type: cfg.type,
    format,
    config: cfg,
    pool,
    async send(api, body, signal, headers, timeouts) {
      try {
        const res = await request(pool, {
          path: paths[api],
          method: 'POST',
          headers: headers === undefined ? baseHeaders : { ...baseHeaders, ...headers },
          body,
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
