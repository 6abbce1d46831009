// The sidecar's configuration schema (DESIGN §5): the one definition of every key, its default and its type.
import * as z from 'zod/mini';
import { didYouMean } from '../../common/config/did-you-mean.js';

const MiB = 1024 * 1024;

/** `upstream.maxResponseBytes` when the config sets none: 32 MiB. */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * MiB;

const positiveInt = () => z.int().check(z.positive());

export const providerTypes = ['openai', 'anthropic', 'openai-compatible'] as const;
export type ProviderType = (typeof providerTypes)[number];

const httpUrl = z.string().check(
  z.refine((s: string) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.search === '' && u.hash === '';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without query or fragment'),
);

/** Per attempt: to response headers, between two body chunks, and in all (streams included). */
const attemptTimeouts = {
  firstByteMs: z.optional(positiveInt()),
  idleMs: z.optional(positiveInt()),
  totalMs: z.optional(positiveInt()),
};

const providerSchema = z.strictObject({
  type: z.enum(providerTypes),
  /** openai: `https://api.openai.com/v1`; anthropic: `https://api.anthropic.com` (the API adds `/v1/messages`). */
  baseUrl: httpUrl,
  /** Secret sent as `Authorization: Bearer` (openai*) or `x-api-key` (anthropic). */
  apiKey: z.optional(z.string().check(z.minLength(1))),
  /** File holding the key (e.g. a mounted Secret), read at load and on every reload. */
  apiKeyFile: z.optional(z.string().check(z.minLength(1))),
  /** `quota`: the quota service holds the key and hands it to this sidecar over TLS; kept in memory only. */
  apiKeyFrom: z.optional(z.enum(['quota'])),
  /** With apiKeyFrom: the key's name in the quota service's --provider-keys file (default: the provider id). */
  apiKeyName: z.optional(z.string().check(z.minLength(1))),
  /** Extra headers on every upstream request (e.g. `OpenAI-Project`). */
  headers: z._default(z.record(z.string(), z.string()), {}),
  /** `anthropic-version` sent when the gateway translates to Anthropic; pass-through keeps the app's. */
  anthropicVersion: z._default(z.string().check(z.minLength(1)), '2023-06-01'),
  /** Ask OpenAI-style upstreams for usage on streams (`stream_options.include_usage`). */
  streamUsage: z._default(z.boolean(), true),
  /** Keep-alive connections per upstream origin. */
  maxConnections: z._default(positiveInt(), 128),
  /** Overrides of `upstream.*` timeouts for this provider (connectMs: TCP + TLS). */
  timeouts: z.optional(z.strictObject({ connectMs: z.optional(positiveInt()), ...attemptTimeouts })),
  /** Override of `upstream.maxResponseBytes` for this provider. */
  maxResponseBytes: z.optional(positiveInt()),
});

const targetSchema = z.strictObject({
  provider: z.string().check(z.minLength(1)),
  /** The model name sent upstream. */
  model: z.string().check(z.minLength(1)),
  /** Relative share of traffic; 0 takes the target out of rotation. */
  weight: z._default(z.number().check(z.nonnegative()), 1),
});

/** Tries of one target after its first failure (retryable failures only). */
const retryAttempts = () => z.int().check(z.minimum(0), z.maximum(10));

const retryFields = {
  attempts: z.optional(retryAttempts()),
  /** Total time a request may spend waiting between attempts, over all targets and fallbacks. */
  budgetMs: z.optional(positiveInt()),
};

const retrySchema = z.prefault(
  z.strictObject({
    attempts: z._default(retryAttempts(), 2),
    budgetMs: z._default(positiveInt(), 30_000),
    /** Full-jitter exponential backoff: a random wait up to min(maxDelayMs, baseDelayMs × 2^retry). */
    baseDelayMs: z._default(positiveInt(), 200),
    maxDelayMs: z._default(positiveInt(), 5_000),
    /** A provider's Retry-After longer than this moves on to the next target instead of waiting. */
    maxRetryAfterMs: z._default(positiveInt(), 30_000),
  }),
  {},
);

const circuitBreakerSchema = z.prefault(
  z.strictObject({
    enabled: z._default(z.boolean(), true),
    /** Opens after this many failures in a row… */
    consecutiveFailures: z._default(positiveInt(), 5),
    /** …or when this fraction of the calls in the window failed… */
    failureRate: z._default(z.number().check(z.positive(), z.maximum(1)), 0.5),
    windowMs: z._default(positiveInt(), 30_000),
    /** …once the window holds at least this many calls. */
    minRequests: z._default(positiveInt(), 20),
    /** Open this long before letting probes through. */
    coolDownMs: z._default(positiveInt(), 30_000),
    halfOpenProbes: z._default(positiveInt(), 1),
  }),
  {},
);

export const strategies = ['weighted', 'round-robin', 'least-busy', 'least-latency'] as const;

const modelSchema = z.strictObject({
  targets: z.array(targetSchema).check(z.minLength(1)),
  /** Other model names tried in order when every target fails (applied by the resilience layer). */
  fallbacks: z._default(z.array(z.string().check(z.minLength(1))), []),
  /** `max_tokens` sent to Anthropic upstreams when the app sent none (Anthropic requires one). */
  defaultMaxTokens: z.optional(positiveInt()),
  /** Overrides of the provider's and `upstream.*` timeouts for this model. */
  timeouts: z.optional(z.strictObject(attemptTimeouts)),
  /** Override of the provider's and `upstream.maxResponseBytes` for this model. */
  maxResponseBytes: z.optional(positiveInt()),
  /** Models tried instead when a provider says the prompt is too long for this one (larger windows). */
  contextFallbacks: z._default(z.array(z.string().check(z.minLength(1))), []),
  /** Non-streaming requests: when the first target has not answered in this long, also ask the next one. */
  hedgeAfterMs: z.optional(positiveInt()),
  /** How requests are spread over the targets. */
  strategy: z._default(z.enum(strategies), 'weighted'),
  /**
   * `auto`: requests translated for an Anthropic target get prompt-cache breakpoints (the system prompt, the
   * tools, the conversation so far), which OpenAI-format apps cannot set themselves; `off`: none are added.
   */
  promptCache: z._default(z.enum(['auto', 'off']), 'off'),
  /** Overrides of the global `retry` settings for this model. */
  retry: z.optional(z.strictObject(retryFields)),
});

const serverSchema = z.prefault(
  z.strictObject({
    /** Largest accepted request body; larger gets 413. */
    maxBodyBytes: z._default(positiveInt(), 16 * MiB),
    /** Time a client has to send the request headers. */
    headersTimeoutMs: z._default(positiveInt(), 10_000),
    /** Time a client has to send the whole request (headers and body). */
    requestTimeoutMs: z._default(positiveInt(), 30_000),
    /** Idle keep-alive connections from apps are closed after this. */
    keepAliveTimeoutMs: z._default(positiveInt(), 5_000),
    /** On SIGTERM, in-flight requests and streams get this long to finish. */
    drainTimeoutMs: z._default(positiveInt(), 25_000),
  }),
  {},
);

const upstreamSchema = z.prefault(
  z.strictObject({
    /** TCP + TLS connect timeout to a provider. */
    connectTimeoutMs: z._default(positiveInt(), 10_000),
    /** Time from sending the request to the response headers (non-streaming answers can take minutes). */
    headersTimeoutMs: z._default(positiveInt(), 600_000),
    /** Longest silence between two body chunks. */
    bodyTimeoutMs: z._default(positiveInt(), 300_000),
    /** Longest one attempt may take in all, streams included (absent: no limit). */
    totalTimeoutMs: z.optional(positiveInt()),
    /**
     * Largest upstream answer in bytes (a JSON or error body, or a whole stream); larger ones get 502
     * `llmgw_upstream_too_large`. Default 32 MiB.
     */
    maxResponseBytes: z._default(positiveInt(), DEFAULT_MAX_RESPONSE_BYTES),
  }),
  {},
);

const translationSchema = z.prefault(
  z.strictObject({
    /** `max_tokens` for Anthropic upstreams when neither the app nor the model sets one. */
    defaultMaxTokens: z._default(positiveInt(), 4096),
  }),
  {},
);

const loggingSchema = z.prefault(
  z.strictObject({
    level: z._default(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
    /** One JSON line per request at info level. */
    accessLog: z._default(z.boolean(), true),
  }),
  {},
);

/** OpenTelemetry traces over OTLP/HTTP; absent: no tracing, and nothing of it is loaded. */
const tracingSchema = z.strictObject({
  /** Where spans are POSTed, the whole URL (an OpenTelemetry Collector: `http://otel-collector:4318/v1/traces`). */
  endpoint: httpUrl,
  /** `http/protobuf` (OTLP's default) or `http/json`. */
  protocol: z._default(z.enum(['http/protobuf', 'http/json']), 'http/protobuf'),
  /** Sent with every export (e.g. a vendor's key: write it as `${ENV_VAR}`). */
  headers: z._default(z.record(z.string().check(z.minLength(1)), z.string()), {}),
  /** Share of new traces kept, 0 to 1; a request whose `traceparent` says sampled is kept (its trace is the app's). */
  sampleRatio: z._default(z.number().check(z.gte(0), z.lte(1)), 1),
  /** `service.name` of the spans (default: the pod's service, LLMGW_SERVICE, else `llm-gateway-sidecar`). */
  serviceName: z.optional(z.string().check(z.minLength(1))),
  /** Send each upstream attempt's `traceparent` to its provider (model servers that trace); off: providers see no trace ids. */
  propagateUpstream: z._default(z.boolean(), false),
  /** How often queued spans are exported (sooner when a batch of 512 is ready). */
  exportIntervalMs: z._default(positiveInt(), 5000),
  /** Spans waiting for export beyond this many are dropped, never held in memory without bound. */
  maxQueueSize: z._default(positiveInt(), 2048),
  /** One export's longest wait for the endpoint. */
  exportTimeoutMs: z._default(positiveInt(), 10_000),
});

const priorityEnum = z.enum(['interactive', 'background', 'batch']);

const quotaSchema = z.strictObject({
  /**
   * The quota service (gRPC): host:port, or `dns:///name:port` for one that runs several replicas (a headless
   * Service: the client connects to every address the name resolves to and spreads its calls over them).
   */
  address: z.string().check(z.minLength(1)),
  /** The pod's projected service-account token (audience llm-gateway), sent with every call; re-read as the kubelet rotates it. */
  tokenFile: z._default(z.string().check(z.minLength(1)), '/var/run/secrets/llm-gateway/token/token'),
  /** Verify the quota service over TLS (files re-read when they change); absent: plaintext. */
  tls: z.optional(
    z.strictObject({
      caFile: z.string().check(z.minLength(1)),
      /** A client certificate, for a service that requires one (--tls-client-ca). */
      certFile: z.optional(z.string().check(z.minLength(1))),
      keyFile: z.optional(z.string().check(z.minLength(1))),
      /** The name the service's certificate is checked for, when it is not the address's host. */
      serverName: z.optional(z.string().check(z.minLength(1))),
    }),
  ),
  /** When the service is unreachable and the lease is spent: keep serving under a local cap, or refuse. */
  failMode: z._default(z.enum(['failOpen', 'failClosed']), 'failOpen'),
  /** The local cap while failing open. */
  failOpenTokensPerMinute: z._default(positiveInt(), 100_000),
  /** Output tokens assumed for a request that sets no max_tokens. */
  defaultOutputTokens: z._default(positiveInt(), 1024),
  /** The longest a request waits for a lease on the request path. */
  acquireTimeoutMs: z._default(positiveInt(), 1000),
  /** Class of requests without `x-llmgw-priority`. */
  defaultPriority: z._default(priorityEnum, 'interactive'),
});

const bucketSchema = z.strictObject({
  requestsPerMinute: z.optional(positiveInt()),
  tokensPerMinute: z.optional(positiveInt()),
});

const cacheModelSchema = z.strictObject({
  enabled: z._default(z.boolean(), true),
  /** Absent: exact hits only. */
  semantic: z.optional(
    z.strictObject({
      /** A model name this sidecar routes, served by an OpenAI-style provider (its embeddings API). */
      embeddingModel: z.string().check(z.minLength(1)),
      /** Cosine similarity from which a stored answer is served for a different prompt. */
      threshold: z._default(z.number().check(z.gt(0), z.lte(1)), 0.95),
    }),
  ),
});

const rateLimitsSchema = z.strictObject({
  /** For the whole pod. */
  requestsPerMinute: z.optional(positiveInt()),
  tokensPerMinute: z.optional(positiveInt()),
  /** Per model name. */
  models: z._default(z.record(z.string().check(z.minLength(1)), bucketSchema), {}),
});

export const configSchema = z
  .strictObject({
    providers: z.record(z.string().check(z.minLength(1)), providerSchema),
    models: z.record(z.string().check(z.minLength(1)), modelSchema),
    server: serverSchema,
    upstream: upstreamSchema,
    translation: translationSchema,
    logging: loggingSchema,
    storage: z.prefault(z.strictObject({ path: z._default(z.string().check(z.minLength(1)), '/var/lib/llm-gateway/llmgw.db') }), {}),
    retry: retrySchema,
    /** Per provider and upstream model. */
    circuitBreaker: circuitBreakerSchema,
    /** Absent: caching off. */
    cache: z.optional(
      z.strictObject({
        ttlSeconds: z._default(positiveInt(), 3600),
        /** Least-recently-used entries go once the cache holds more than this many bytes… */
        maxBytes: z._default(positiveInt(), 256 * MiB),
        /** …or more than this many entries. */
        maxEntries: z._default(positiveInt(), 100_000),
        /** Per model name: `enabled: false` keeps a model out of the cache; `semantic` turns on similarity hits. */
        models: z._default(z.record(z.string().check(z.minLength(1)), cacheModelSchema), {}),
      }),
    ),
    /** Responses the sidecar keeps for `previous_response_id` follow-ups and `GET /v1/responses/{id}`. */
    responses: z.prefault(
      z.strictObject({
        /** How long a stored response is kept (OpenAI keeps them 30 days). */
        storeTtlSeconds: z._default(positiveInt(), 30 * 24 * 3600),
        /** Oldest responses go once the store holds more than this many bytes. */
        storeMaxBytes: z._default(positiveInt(), 64 * MiB),
      }),
      {},
    ),
    /** Absent: no global quota. */
    quota: z.optional(quotaSchema),
    /** Per-pod token buckets; absent: no local limits. */
    rateLimits: z.optional(rateLimitsSchema),
    /** OpenTelemetry traces (off unless set). */
    tracing: z.optional(tracingSchema),
  })
  .check(z.superRefine((cfg, ctx) => checkCrossFieldRules(cfg, (path, message) => ctx.addIssue({ code: 'custom', path: [...path], message }))));

type Report = (path: readonly (string | number)[], message: string) => void;

/** A mapping of the tree, or undefined when the value is anything else (a list, a string, nothing). */
const mapping = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const fields = (v: unknown): Record<string, unknown> => mapping(v) ?? {};
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * The rules across keys: references between models and providers, keys that go together. The schema runs
 * them on a valid config; the loader also runs them on a tree that failed the schema (zod skips refinements
 * then), so every problem is reported at once. Hence they read the tree as written, tolerating parts of any
 * shape: a part that is not what the schema wants is skipped (its own problem is reported already), and a
 * collection that is missing or malformed is not used to call names in it unknown.
 */
export function checkCrossFieldRules(cfg: unknown, report: Report): void {
  const root = fields(cfg);
  const providers = mapping(root.providers);
  const models = mapping(root.models);
  const modelNames = Object.keys(models ?? {});
  const isUnknownModel = (name: unknown): name is string => models !== undefined && typeof name === 'string' && !Object.hasOwn(models, name);
  const unknownModel = (name: string): string => `unknown model "${name}"${didYouMean(name, modelNames)}`;
  const quota = fields(root.quota);
  for (const [id, value] of Object.entries(providers ?? {})) {
    const p = fields(value);
    if ([p.apiKey, p.apiKeyFile, p.apiKeyFrom].filter((v) => v !== undefined).length > 1) {
      report(['providers', id], 'set one of apiKey, apiKeyFile and apiKeyFrom');
    }
    if (p.apiKeyName !== undefined && p.apiKeyFrom === undefined) {
      report(['providers', id, 'apiKeyName'], 'apiKeyName goes with apiKeyFrom: quota');
    }
    if (p.apiKeyFrom === 'quota' && quota.tls === undefined) {
      report(['providers', id, 'apiKeyFrom'], 'keys come from the quota service over TLS only: set quota.address and quota.tls.caFile');
    }
  }
  const tls = mapping(quota.tls);
  if (tls !== undefined && (tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    report(['quota', 'tls'], 'certFile and keyFile go together');
  }
  for (const name of Object.keys(fields(fields(root.rateLimits).models))) {
    if (isUnknownModel(name)) report(['rateLimits', 'models', name], unknownModel(name));
  }
  for (const [name, c] of Object.entries(fields(fields(root.cache).models))) {
    if (isUnknownModel(name)) report(['cache', 'models', name], unknownModel(name));
    const embeddingModel = fields(fields(c).semantic).embeddingModel;
    if (models === undefined || typeof embeddingModel !== 'string') continue;
    const path = ['cache', 'models', name, 'semantic', 'embeddingModel'];
    if (isUnknownModel(embeddingModel)) report(path, unknownModel(embeddingModel));
    else if (list(fields(models[embeddingModel]).targets).some((t) => providerOf(providers, fields(t).provider).type === 'anthropic')) {
      report(path, `model "${embeddingModel}" has an Anthropic target, which has no embeddings API`);
    }
  }
  for (const [name, value] of Object.entries(models ?? {})) {
    const m = fields(value);
    const targets = list(m.targets);
    targets.forEach((t, i) => {
      const provider = fields(t).provider;
      if (providers !== undefined && typeof provider === 'string' && !Object.hasOwn(providers, provider)) {
        const known = Object.keys(providers);
        report(['models', name, 'targets', i, 'provider'], `unknown provider "${provider}" (known: ${known.join(', ') || 'none'})${didYouMean(provider, known)}`);
      }
    });
    if (targets.length > 0 && targets.every((t) => fields(t).weight === 0)) {
      report(['models', name, 'targets'], 'at least one target needs a weight above 0');
    }
    list(m.contextFallbacks).forEach((f, i) => {
      if (isUnknownModel(f)) report(['models', name, 'contextFallbacks', i], unknownModel(f));
    });
    list(m.fallbacks).forEach((f, i) => {
      if (f === name) report(['models', name, 'fallbacks', i], 'a model cannot fall back to itself');
      else if (isUnknownModel(f)) report(['models', name, 'fallbacks', i], unknownModel(f));
    });
  }
}

function providerOf(providers: Record<string, unknown> | undefined, id: unknown): Record<string, unknown> {
  return providers !== undefined && typeof id === 'string' && Object.hasOwn(providers, id) ? fields(providers[id]) : {};
}

/** The config as written (before defaults). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated config with defaults applied. */
export type Config = z.infer<typeof configSchema>;
export type ProviderConfig = Config['providers'][string];
export type ModelConfig = Config['models'][string];
export type TargetConfig = ModelConfig['targets'][number];
export type QuotaConfig = NonNullable<Config['quota']>;
export type RetryConfig = Config['retry'];
export type CacheConfig = NonNullable<Config['cache']>;
export type CircuitBreakerConfig = Config['circuitBreaker'];
export type Strategy = (typeof strategies)[number];
export type RateLimitsConfig = NonNullable<Config['rateLimits']>;
