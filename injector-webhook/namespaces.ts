// Namespace-level defaults: the `llm-gateway.dev/*` annotations of the pod's namespace, read from the
// Kubernetes API with the injector's service account (RBAC: get namespaces), cached briefly. A lookup that
// fails or is slow never blocks admission: the pod is injected without defaults and the answer says so.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

export interface NamespaceSource {
  /** The namespace's annotations, or a warning when they could not be read. */
  annotations(namespace: string): Promise<{ annotations: Record<string, string>; warning?: string }>;
  close(): Promise<void>;
}

export const noNamespaceSource: NamespaceSource = {
  annotations: async () => ({ annotations: {} }),
  close: async () => undefined,
};

export interface ApiNamespaceSourceOptions {
  /** `https://host:port` of the API server. */
  baseUrl: string;
  tokenFile: string;
  caFile?: string;
  timeoutMs?: number;
  ttlMs?: number;
  now?: () => number;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The in-cluster API, as every pod sees it; undefined outside a cluster. */
export function inClusterOptions(env: NodeJS.ProcessEnv = process.env): ApiNamespaceSourceOptions | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  return { baseUrl: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, tokenFile: `${SA_DIR}/token`, caFile: `${SA_DIR}/ca.crt` };
}

export function apiNamespaceSource(opts: ApiNamespaceSourceOptions): NamespaceSource {
  const ttl = opts.ttlMs ?? 30_000;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { at: number; annotations: Record<string, string> }>();
  const dispatcher = new Agent({ connect: opts.caFile ? { ca: readFileSync(opts.caFile) } : {}, keepAliveTimeout: 30_000 });
  return {
    async annotations(namespace) {
      const hit = cache.get(namespace);
      if (hit !== undefined && now() - hit.at < ttl) return { annotations: hit.annotations };
      try {
        // The token is re-read each time: the kubelet rotates it.
        const token = readFileSync(opts.tokenFile, 'utf8').trim();
        const res = await request(`${opts.baseUrl}/api/v1/namespaces/${encodeURIComponent(namespace)}`, {
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
          dispatcher,
          headersTimeout: opts.timeoutMs ?? 1000,
          bodyTimeout: opts.timeoutMs ?? 1000,
        });
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new Error(`HTTP ${res.statusCode}`);
        }
        const ns = (await res.body.json()) as { metadata?: { annotations?: Record<string, string> } };
        const annotations = Object.fromEntries(Object.entries(ns.metadata?.annotations ?? {}).filter(([k]) => k.startsWith('llm-gateway.dev/')));
        cache.set(namespace, { at: now(), annotations });
        return { annotations };
      } catch (err) {
        const stale = hit?.annotations;
        return {
          annotations: stale ?? {},
          warning: `llm-gateway: could not read namespace ${namespace}'s defaults (${(err as Error).message})${stale ? '; used the last known ones' : '; injected without them'}`,
        };
      }
    },
    close: () => dispatcher.close(),
  };
}
