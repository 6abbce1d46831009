// A fake Kubernetes API server that answers TokenReviews the way a real one does, judging tokens against a
// test issuer's keys, so TokenReview tests mint tokens and let it decide.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { selfSigned } from './certs.js';
import type { TokenIssuer } from './sa-tokens.js';

/** status of a TokenReview (authentication.k8s.io/v1). */
export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

export interface FakeApiServer {
  /** https://127.0.0.1:<port> */
  url: string;
  /** The self-signed certificate, which is also its CA. */
  caFile: string;
  /** TokenReview requests received, refused ones included. */
  requests: number;
  /** 'ok' answers; 'fail' answers 503; 'forbid' answers 403 (no RBAC); 'hang' never answers. */
  mode: 'ok' | 'fail' | 'forbid' | 'hang';
  /** Bearer tokens accepted from the caller (anything else gets 401). */
  acceptedBearerTokens: string[];
  /** The bearer token of each request, in order. */
  seenBearerTokens: string[];
  /** spec.audiences of the last review. */
  lastAudiences: string[] | undefined;
  /** Rewrites each verdict before it is sent, to play an API server or authenticator that says something else. */
  rewrite: ((status: TokenReviewStatus) => TokenReviewStatus) | undefined;
  close(): Promise<void>;
}

const REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';

/** Starts on 127.0.0.1, port 0. `clock` (epoch ms) is the time tokens are judged at; default Date.now. */
export async function startFakeApiServer(opts: { issuer: TokenIssuer; bearerToken?: string; clock?: { now(): number } }): Promise<FakeApiServer> {
  const cert = selfSigned('kubernetes');
  const server: Server = createServer({ cert: cert.cert, key: cert.key });
  const self: FakeApiServer = {
    url: '',
    caFile: cert.certFile,
    requests: 0,
    mode: 'ok',
    acceptedBearerTokens: [opts.bearerToken ?? 'quota-service-token'],
    seenBearerTokens: [],
    lastAudiences: undefined,
    rewrite: undefined,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };

  async function judge(token: string, audiences: string[]): Promise<TokenReviewStatus> {
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(opts.issuer.jwks), {
        issuer: opts.issuer.issuer,
        audience: audiences,
        currentDate: new Date(opts.clock?.now() ?? Date.now()),
      });
      const k8s = payload['kubernetes.io'] as { namespace: string; serviceaccount: { name: string; uid: string }; pod?: { name: string; uid: string }; node?: { name: string; uid: string } };
      const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${String(payload.jti)}`] };
      if (k8s.node) Object.assign(extra, { 'authentication.kubernetes.io/node-name': [k8s.node.name], 'authentication.kubernetes.io/node-uid': [k8s.node.uid] });
      if (k8s.pod) Object.assign(extra, { 'authentication.kubernetes.io/pod-name': [k8s.pod.name], 'authentication.kubernetes.io/pod-uid': [k8s.pod.uid] });
      const tokenAud = payload.aud as string[];
      return {
        authenticated: true,
        user: {
          username: `system:serviceaccount:${k8s.namespace}:${k8s.serviceaccount.name}`,
          uid: k8s.serviceaccount.uid,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${k8s.namespace}`, 'system:authenticated'],
          extra,
        },
        audiences: audiences.filter((a) => tokenAud.includes(a)),
      };
    } catch (err) {
      // A real API server leaves authenticated out (false) and lists what its authenticators said.
      return { user: {}, error: `[invalid bearer token, ${(err as Error).message}]` };
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== 'POST' || req.url !== REVIEW_PATH) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    self.requests++;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    self.seenBearerTokens.push(bearer);
    if (self.mode === 'hang') return;
    if (!self.acceptedBearerTokens.includes(bearer)) return status(res, 401, 'Unauthorized', 'Unauthorized');
    if (self.mode === 'forbid') {
      return status(res, 403, 'Forbidden', 'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:llm-gateway:quota" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope');
    }
    if (self.mode === 'fail') return status(res, 503, 'ServiceUnavailable', 'the server is currently unable to handle the request');
    const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { spec: { token: string; audiences?: string[] } };
    self.lastAudiences = review.spec.audiences;
    let verdict = await judge(review.spec.token, review.spec.audiences ?? ['https://kubernetes.default.svc.cluster.local']);
    if (self.rewrite) verdict = self.rewrite(verdict);
    // Like the real one, the answer echoes the spec, token included.
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec, status: verdict }));
  }

  server.on('request', (req, res) => void handle(req, res).catch(() => status(res, 500, 'InternalError', 'fake API server error')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  self.url = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return self;
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}
