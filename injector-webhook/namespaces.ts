// What the injector reads about a pod's namespace from the Kubernetes API with its service account, cached
// briefly: the `llm-gateway.dev/*` annotations (namespace-level defaults; RBAC: get namespaces) and, when
// asked, the sidecar ConfigMap its pods would mount, judged with the sidecar's own loader (RBAC: get that
// ConfigMap by name). A lookup that fails or is slow never blocks admission: the pod is injected without
// defaults (the answer says so) or without the config check.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { checkSidecarConfigData, type SidecarConfigState } from './sidecar-config-check.js';

export interface NamespaceSource {
  /** The namespace's annotations, or a warning when they could not be read. */
  annotations(namespace: string): Promise<{ annotations: Record<string, string>; warning?: string }>;
  /** The sidecar config in ConfigMap `name` of the namespace, judged; absent: never checked. */
  sidecarConfig?(namespace: string, name: string): Promise<SidecarConfigState>;
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
  /** How long an answer is reused (default 30 s); a sidecar config found broken, at most 5 s, so a fix shows soon. */
  ttlMs?: number;
  now?: () => number;
  /** Also read and judge the sidecar ConfigMap (`sidecarConfig`); the chart grants the RBAC for it. */
  checkSidecarConfig?: boolean;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const BROKEN_TTL_MS = 5_000;

/** The in-cluster API, as every pod sees it, with the chart's RBAC; undefined outside a cluster. */
export function inClusterOptions(env: NodeJS.ProcessEnv = process.env): ApiNamespaceSourceOptions | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  return { baseUrl: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, tokenFile: `${SA_DIR}/token`, caFile: `${SA_DIR}/ca.crt`, checkSidecarConfig: true };
}

export function apiNamespaceSource(opts: ApiNamespaceSourceOptions): NamespaceSource {
  const ttl = opts.ttlMs ?? 30_000;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { at: number; annotations: Record<string, string> }>();
  const configs = new Map<string, { at: number; ttl: number; state: SidecarConfigState }>();
  const pending = new Map<string, Promise<SidecarConfigState>>();
  const dispatcher = new Agent({ connect: opts.caFile ? { ca: readFileSync(opts.caFile) } : {}, keepAliveTimeout: 30_000 });

  /** GET an API path; the JSON body on 200, else the status. */
  async function get(path: string): Promise<{ status: 200; body: unknown } | { status: number; body?: undefined }> {
    // The token is re-read each time: the kubelet rotates it.
    const token = readFileSync(opts.tokenFile, 'utf8').trim();
    const res = await request(`${opts.baseUrl}${path}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      dispatcher,
      headersTimeout: opts.timeoutMs ?? 1000,
      bodyTimeout: opts.timeoutMs ?? 1000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return { status: res.statusCode };
    }
    return { status: 200, body: await res.body.json() };
  }

  async function readSidecarConfig(namespace: string, name: string, stale: SidecarConfigState | undefined): Promise<SidecarConfigState> {
    const where = `${namespace}/${name}`;
    let state: SidecarConfigState;
    try {
      const res = await get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(name)}`);
      if (res.status === 404) state = { status: 'missing' };
      else if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      else state = await checkSidecarConfigData((res.body as { data?: Record<string, string> } | null)?.data);
    } catch (err) {
      // Not known: the last verdict stands, else the pod is injected unchecked (as without this check).
      state = stale ?? { status: 'unchecked', reason: `could not read ConfigMap ${where} (${(err as Error).message})` };
    }
    configs.set(where, { at: now(), ttl: state.status === 'valid' ? ttl : Math.min(ttl, BROKEN_TTL_MS), state });
    return state;
  }

  const source: NamespaceSource = {
    async annotations(namespace) {
      const hit = cache.get(namespace);
      if (hit !== undefined && now() - hit.at < ttl) return { annotations: hit.annotations };
      try {
        const res = await get(`/api/v1/namespaces/${encodeURIComponent(namespace)}`);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const ns = res.body as { metadata?: { annotations?: Record<string, string> } };
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
  if (opts.checkSidecarConfig === true) {
    source.sidecarConfig = async (namespace, name) => {
      const where = `${namespace}/${name}`;
      const hit = configs.get(where);
      if (hit !== undefined && now() - hit.at < hit.ttl) return hit.state;
      // A burst of pods (a ReplicaSet scaling up) shares one lookup.
      let p = pending.get(where);
      if (p === undefined) {
        p = readSidecarConfig(namespace, name, hit?.state).finally(() => pending.delete(where));
        pending.set(where, p);
      }
      return p;
    };
  }
  return source;
}
