// The parts of a Kubernetes Pod the injector reads, typed loosely: a pod from the API server may carry
// any field, and everything not named here passes through untouched.
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface Container {
  name: string;
  image?: string;
  env?: EnvVar[];
  envFrom?: unknown[];
  ports?: { containerPort: number; hostPort?: number; protocol?: string; name?: string }[];
  restartPolicy?: string;
  [key: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; controller?: boolean }[];
    [key: string]: unknown;
  };
  spec?: {
    containers?: Container[];
    initContainers?: Container[];
    volumes?: { name: string; [key: string]: unknown }[];
    hostNetwork?: boolean;
    nodeSelector?: Record<string, string>;
    os?: { name?: string };
    serviceAccountName?: string;
    [key: string]: unknown;
  };
}
