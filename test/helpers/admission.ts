// AdmissionReview requests as the API server sends them, and the injector config the golden cases use.
import { validateInjectorConfig, type InjectorConfig } from '../../injector-webhook/config.js';

export interface Case {
  namespace?: string;
  operation?: string;
  kind?: string;
  resource?: string;
  config?: Record<string, unknown>;
  namespaceAnnotations?: Record<string, string>;
}

const BASE_CONFIG = {
  image: 'ghcr.io/llm-gateway/llm-gateway:0.1.0',
  releaseNamespace: 'llm-gateway',
  nativeSidecar: { mode: 'auto', kubernetesVersion: '1.30.2' },
  quotaAddress: 'llm-gateway-quota.llm-gateway.svc:50051',
  providerSecretName: 'llm-gateway-providers',
};

export function configFor(c: Case): InjectorConfig {
  const over = c.config ?? {};
  const native = { ...BASE_CONFIG.nativeSidecar, ...((over.nativeSidecar as object | undefined) ?? {}) };
  return validateInjectorConfig({ ...BASE_CONFIG, ...over, nativeSidecar: native }, 'test config');
}

export function reviewOf(pod: unknown, c: Case, uid = 'b7e2a8f0-0000-4000-8000-000000000001'): unknown {
  const kind = c.kind ?? 'Pod';
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind },
      resource: { group: '', version: 'v1', resource: c.resource ?? 'pods' },
      requestKind: { group: '', version: 'v1', kind },
      namespace: c.namespace ?? 'demo',
      operation: c.operation ?? 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

