// AdmissionReview (admission.k8s.io/v1) in, AdmissionReview out: checks the review's shape, asks the
// decision, builds the patch, and speaks the response format. A malformed review is a MalformedReview
// (HTTP 400 at the transport); everything else is an answer that echoes the request's uid.
import type { InjectorConfig } from './config.js';
import { decide } from './decision.js';
import { injectPatch, skipPatch, type PatchOp } from './patch.js';
import type { Pod } from './pod.js';
import { UNCHECKED, type SidecarConfigState } from './sidecar-config-check.js';

export class MalformedReview extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedReview';
  }
}

export interface AdmissionResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
    status?: { code: number; reason: string; message: string };
  };
}

/** What was decided, for the log and metrics. */
export interface Outcome {
  result: 'injected' | 'skipped' | 'denied' | 'ignored';
  reason?: string;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseReview(body: unknown): { uid: string; request: Record<string, unknown> } {
  if (!isObj(body)) throw new MalformedReview('the body is not a JSON object');
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    throw new MalformedReview(`expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got ${JSON.stringify(body.apiVersion)} and ${JSON.stringify(body.kind)}`);
  }
  const request = body.request;
  if (!isObj(request)) throw new MalformedReview('request is missing');
  if (typeof request.uid !== 'string' || request.uid === '') throw new MalformedReview('request.uid is missing');
  return { uid: request.uid, request };
}

/**
 * Answers one review; `namespaceAnnotations` are the pod's namespace's (defaults), if known, and
 * `sidecarConfig` what is known of the sidecar config its pods would mount.
 */
export function review(
  body: unknown,
  config: InjectorConfig,
  namespaceAnnotations: Record<string, string> = {},
  extraWarnings: string[] = [],
  sidecarConfig: SidecarConfigState = UNCHECKED,
): { answer: AdmissionResponse; outcome: Outcome } {
  const { uid, request } = parseReview(body);
  const answer = (response: Omit<AdmissionResponse['response'], 'uid'>, outcome: Outcome) => ({
    answer: { apiVersion: 'admission.k8s.io/v1' as const, kind: 'AdmissionReview' as const, response: { uid, ...response } },
    outcome,
  });
  const kind = isObj(request.kind) ? request.kind : {};
  const resource = isObj(request.resource) ? request.resource : {};
  const isPod = kind.kind === 'Pod' && (resource.resource === undefined || resource.resource === 'pods') && (request.subResource ?? '') === '';
  if (!isPod || request.operation !== 'CREATE') return answer({ allowed: true }, { result: 'ignored', reason: !isPod ? 'not-a-pod' : 'not-create' });
  if (!isObj(request.object)) throw new MalformedReview('request.object is missing');
  const pod = request.object as Pod;
  if (!Array.isArray(pod.spec?.containers)) throw new MalformedReview('request.object is not a pod: spec.containers is missing');
  const namespace = typeof request.namespace === 'string' && request.namespace !== '' ? request.namespace : (pod.metadata?.namespace ?? 'default');

  const d = decide(pod, namespace, config, namespaceAnnotations, sidecarConfig);
  const warnings = [...extraWarnings];
  const withPatch = (ops: PatchOp[]) => (ops.length === 0 ? {} : { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(ops)).toString('base64') });
  const warn = (list: string[]) => (list.length === 0 ? {} : { warnings: list });
  switch (d.kind) {
    case 'deny':
      return answer({ allowed: false, status: { code: 400, reason: 'BadRequest', message: d.message } }, { result: 'denied', reason: d.reason });
    case 'skip':
      warnings.push(...d.warnings, `llm-gateway: not injected (${d.reason}): ${d.message}`);
      return answer({ allowed: true, ...withPatch(d.annotate ? skipPatch(pod, d.reason) : []), ...warn(warnings) }, { result: 'skipped', reason: d.reason });
    case 'inject': {
      warnings.push(...d.warnings);
      for (const c of pod.spec?.containers ?? []) {
        if ((d.overrides.containers === undefined || d.overrides.containers.includes(c.name)) && (c.envFrom ?? []).length > 0) {
          warnings.push(`llm-gateway: container ${c.name} uses envFrom; OPENAI_BASE_URL, ANTHROPIC_BASE_URL and LLM_GATEWAY_URL set by the injector take precedence over the same names there`);
        }
      }
      return answer({ allowed: true, ...withPatch(injectPatch(pod, config, d.overrides, d.native)), ...warn(warnings) }, { result: 'injected', reason: d.native ? 'native' : 'container' });
    }
  }
}
