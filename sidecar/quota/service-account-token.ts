// The pod's projected service-account token (quota.tokenFile), sent as `authorization: Bearer` with every
// quota call. The kubelet rewrites the file well before the token expires, so it is read again at most
// every 10 s (and at once after the service refused it). Its claims name the pod's namespace, service
// account and pod, which fill the Identity message; the service verifies the token itself.
import { readFileSync } from 'node:fs';

/** What the token says about the pod, read without verifying it (the service verifies). */
export interface TokenClaims {
  namespace: string;
  serviceAccount: string;
  pod: string;
}

const REREAD_MS = 10_000;

export class ServiceAccountToken {
  private token = '';
  private readAtMs = -Infinity;
  private warned = false;

  constructor(
    readonly path: string,
    private readonly now: () => number,
    private readonly onMissing: (err: unknown) => void = () => undefined,
  ) {}

  /** The token ('' when the file cannot be read: the call goes without, and only a service run with --auth none takes it). */
  current(): string {
    const now = this.now();
    if (now - this.readAtMs < REREAD_MS) return this.token;
    this.readAtMs = now;
    try {
      this.token = readFileSync(this.path, 'utf8').trim();
      this.warned = false;
    } catch (err) {
      this.token = '';
      if (!this.warned) this.onMissing(err);
      this.warned = true;
    }
    return this.token;
  }

  /** The next call reads the file again (the service refused what it had). */
  invalidate(): void {
    this.readAtMs = -Infinity;
  }

  /** The pod's names as the token states them; undefined when there is no readable Kubernetes token. */
  claims(): TokenClaims | undefined {
    const token = this.current();
    const payload = token.split('.')[1];
    if (payload === undefined) return undefined;
    try {
      const k = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { 'kubernetes.io'?: Record<string, unknown> })['kubernetes.io'];
      const name = (v: unknown): string => (typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string' ? (v as { name: string }).name : '');
      if (typeof k?.namespace !== 'string') return undefined;
      return { namespace: k.namespace, serviceAccount: name(k.serviceaccount), pod: name(k.pod) };
    } catch {
      return undefined;
    }
  }
}
