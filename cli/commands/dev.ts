// `llmgw dev`: the embedded default. The quota service, the sidecar (on 127.0.0.1:4000, spending the
// quota service's budgets, caching answers for an hour) and the built-in fake provider in one process; the
// real OpenAI/Anthropic APIs are used where their keys are set. Security stays on with nothing to set: the
// quota service verifies the sidecar's token against a signing key made at start, and its admin API takes
// the operator token kept in the state directory (the printed CLI lines pass it). The banner on stdout
// lists every address and CLI lines that work as printed; logs go to stderr, readable on a terminal.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createCommandLogger, type LogFormat } from '../../common/logger.js';
import { AdminTokens, MIN_ADMIN_TOKEN_LENGTH } from '../../quota-service/auth/admin-tokens.js';
import { createJwksVerifier } from '../../quota-service/auth/jwks-verifier.js';
import { createLocalIssuer } from '../../quota-service/auth/local-issuer.js';
import { startQuotaService } from '../../quota-service/quota-service.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import type { HostPort } from '../../common/http/listen.js';
import { parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';
import { devConfig } from './dev-config.js';

/** Tokens last a day and are minted anew every hour, as the kubelet rotates projected tokens. */
const TOKEN_SECONDS = 86_400;
const REMINT_MS = 3_600_000;

/** Writes a private file atomically (the sidecar may be reading the old one). */
function writePrivate(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** The operator token of the state directory: kept across runs, so scripts that read it keep working. */
function adminToken(path: string): void {
  if (existsSync(path) && readFileSync(path, 'utf8').trim().length >= MIN_ADMIN_TOKEN_LENGTH) return;
  writePrivate(path, `${randomBytes(24).toString('base64url')}\n`);
}

/** An argument as a POSIX shell reads it back: bare when it is plainly safe, else single-quoted. */
export function shellArg(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const hostPort = (a: HostPort): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

export interface DevBannerInput {
  stateDir: string;
  sidecar: HostPort;
  sidecarStatus: HostPort;
  quota: HostPort;
  quotaStatus: HostPort;
  /** The fake provider's base URL; absent when both real providers' keys are set. */
  fakeUrl: string | undefined;
  models: string[];
  upstreams: string[];
  namespace: string;
  adminTokenFile: string;
}

/**
 * What `llmgw dev` prints on stdout: every address it listens on, a `curl` line and the `llmgw` lines
 * that work as printed (README: `npm link` puts `llmgw` on the PATH), one command a line.
 */
export function devBanner(b: DevBannerInput): string {
  const base = `http://${hostPort(b.sidecar)}`;
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello!' }] });
  const admin = `--quota-addr ${shellArg(hostPort(b.quota))} --token-file ${shellArg(b.adminTokenFile)}`;
  const scope = shellArg(`namespace/${b.namespace}`);
  return [
    `llm-gateway dev is running; state in ${b.stateDir}`,
    `  sidecar          ${base}  the app's base URL (OpenAI SDKs: ${base}/v1)`,
    `  sidecar status   http://${hostPort(b.sidecarStatus)}  /healthz/ready, /metrics`,
    `  quota service    ${hostPort(b.quota)}  gRPC`,
    `  quota status     http://${hostPort(b.quotaStatus)}  /healthz/ready, /metrics, /ui (usage page: sign in with the token in ${b.adminTokenFile})`,
    b.fakeUrl === undefined
      ? '  fake provider    not started (OPENAI_API_KEY and ANTHROPIC_API_KEY are set)'
      : `  fake provider    ${b.fakeUrl}  OpenAI at /v1, Anthropic at /, faults at /_fake/faults`,
    `models: ${b.models.join(', ')}`,
    `upstreams: ${b.upstreams.join('; ')}`,
    'try:',
    `curl -s ${base}/v1/chat/completions -H 'content-type: application/json' -d ${shellArg(body)}`,
    "give this pod's namespace a budget, then read it and what the namespace used (llmgw: `npm link` in the clone, see README):",
    `llmgw budget set ${scope} --tokens 100000 --window day ${admin}`,
    `llmgw budget get ${scope} ${admin}`,
    `llmgw budget usage ${scope} ${admin}`,
    'logs are on stderr; Ctrl-C stops (requests in flight finish first)',
    '',
  ].join('\n');
}

export async function runDev(o: { listen: string; statusListen: string; quotaListen: string; quotaStatusListen: string; stateDir: string; logFormat?: LogFormat }): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const quotaListen = parseHostPort('--quota-listen', o.quotaListen);
  const quotaStatusListen = parseHostPort('--quota-status-listen', o.quotaStatusListen);
  mkdirSync(o.stateDir, { recursive: true });
  const env = process.env;
  // Logs go to stderr so stdout keeps the short how-to below.
  const logger = await createCommandLogger('info', { fd: 2, format: o.logFormat });
  const namespace = env.POD_NAMESPACE || 'default';
  const issuer = createLocalIssuer();
  const jwksFile = resolve(o.stateDir, 'jwks.json');
  const tokenFile = resolve(o.stateDir, 'sidecar-token');
  const adminTokenFile = resolve(o.stateDir, 'admin-token');
  writePrivate(jwksFile, JSON.stringify(issuer.jwks));
  const mint = async (): Promise<void> =>
    writePrivate(tokenFile, await issuer.mint({ namespace, serviceAccount: 'default', pod: hostname(), audience: 'llm-gateway', expiresInSeconds: TOKEN_SECONDS }));
  await mint();
  const remint = setInterval(() => mint().catch((err: unknown) => logger.error({ err }, 'could not mint the sidecar token')), REMINT_MS);
  remint.unref();
  adminToken(adminTokenFile);
  const quota = await startQuotaService({
    listen: quotaListen,
    listenFlags: { listen: '--quota-listen', statusListen: '--quota-status-listen' },
    statusListen: quotaStatusListen,
    dbPath: resolve(o.stateDir, 'quota.db'),
    logger: logger.child({ component: 'quota-service' }),
    auth: {
      mode: 'jwks',
      verifier: createJwksVerifier({ jwks: jwksFile, issuer: issuer.issuer, audience: 'llm-gateway' }),
      adminTokens: new AdminTokens({ path: adminTokenFile }),
    },
  });
  const quotaAddress = `${quota.address.host}:${quota.address.port}`;
  const needFake = !env.OPENAI_API_KEY || !env.ANTHROPIC_API_KEY;
  const fake: FakeProvider | undefined = needFake ? await startFakeProvider({ host: '127.0.0.1', port: 0 }) : undefined;
  const config = validateConfig(devConfig({ fakeUrl: fake?.url, stateDir: o.stateDir, env, quotaAddress, tokenFile }), 'dev config');
  const sidecar = await startSidecar({ config, listen, statusListen, logger });
  const upstreams = [
    env.OPENAI_API_KEY ? 'OpenAI API (OPENAI_API_KEY)' : `fake OpenAI at ${fake?.url}/v1`,
    env.ANTHROPIC_API_KEY ? 'Anthropic API (ANTHROPIC_API_KEY)' : `fake Anthropic at ${fake?.url}`,
  ];
  // Signals are handled before the banner tells anyone what to stop.
  runUntilSignal(logger, async () => {
    clearInterval(remint);
    await sidecar.stop();
    await quota.stop();
    await fake?.close();
  });
  process.stdout.write(
    devBanner({
      stateDir: resolve(o.stateDir),
      sidecar: sidecar.address,
      sidecarStatus: sidecar.statusAddress,
      quota: quota.address,
      quotaStatus: quota.statusAddress,
      fakeUrl: fake?.url,
      models: Object.keys(config.models),
      upstreams,
      namespace,
      adminTokenFile,
    }),
  );
}
