// `llmgw dev`: the embedded default. The quota service, the sidecar (on 127.0.0.1:4000, spending the
// quota service's budgets, caching answers for an hour) and the built-in fake provider in one process; the
// real OpenAI/Anthropic APIs are used where their keys are set. Security stays on with nothing to set: the
// quota service verifies the sidecar's token against a signing key made at start, and its admin API takes
// the operator token kept in the state directory (the printed CLI line passes it).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createLogger } from '../../common/logger.js';
import { AdminTokens, MIN_ADMIN_TOKEN_LENGTH } from '../../quota-service/auth/admin-tokens.js';
import { createJwksVerifier } from '../../quota-service/auth/jwks-verifier.js';
import { createLocalIssuer } from '../../quota-service/auth/local-issuer.js';
import { startQuotaService } from '../../quota-service/quota-service.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

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

export function devConfig(opts: { fakeUrl: string | undefined; stateDir: string; env: NodeJS.ProcessEnv; quotaAddress: string; tokenFile: string }): Record<string, unknown> {
  const openai = opts.env.OPENAI_API_KEY
    ? { type: 'openai', baseUrl: 'https://api.openai.com/v1', apiKey: '${OPENAI_API_KEY}' }
    : { type: 'openai', baseUrl: `${opts.fakeUrl}/v1` };
  const anthropic = opts.env.ANTHROPIC_API_KEY
    ? { type: 'anthropic', baseUrl: 'https://api.anthropic.com', apiKey: '${ANTHROPIC_API_KEY}' }
    : { type: 'anthropic', baseUrl: opts.fakeUrl };
  return {
    providers: { openai, anthropic },
    models: {
      'gpt-4o-mini': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] },
      'claude-haiku-4-5': { targets: [{ provider: 'anthropic', model: 'claude-haiku-4-5' }] },
      'text-embedding-3-small': { targets: [{ provider: 'openai', model: 'text-embedding-3-small' }] },
    },
    storage: { path: resolve(opts.stateDir, 'llmgw.db') },
    cache: { ttlSeconds: 3600 },
    quota: { address: opts.quotaAddress, tokenFile: opts.tokenFile },
  };
}

export async function runDev(o: { listen: string; statusListen: string; quotaListen: string; stateDir: string }): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const quotaListen = parseHostPort('--quota-listen', o.quotaListen);
  mkdirSync(o.stateDir, { recursive: true });
  const env = process.env;
  // Logs go to stderr so stdout keeps the short how-to below.
  const logger = createLogger('info', 2);
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
    listenFlags: { listen: '--quota-listen' },
    statusListen: { host: '127.0.0.1', port: 0 },
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
  const base = `http://${sidecar.address.host}:${sidecar.address.port}`;
  const upstream = [
    env.OPENAI_API_KEY ? 'OpenAI API (OPENAI_API_KEY)' : `fake OpenAI at ${fake?.url}/v1`,
    env.ANTHROPIC_API_KEY ? 'Anthropic API (ANTHROPIC_API_KEY)' : `fake Anthropic at ${fake?.url}`,
  ];
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello!' }] });
  process.stdout.write(
    [
      `llm-gateway dev: sidecar on ${base} (status ${sidecar.statusAddress.host}:${sidecar.statusAddress.port}), state in ${resolve(o.stateDir)}`,
      `models: ${Object.keys(config.models).join(', ')}`,
      `upstreams: ${upstream.join('; ')}`,
      'try:',
      `curl -s ${base}/v1/chat/completions -H 'content-type: application/json' -d '${body}'`,
      `quota service on ${quotaAddress}; give this pod's namespace a budget with:`,
      `llmgw budget set namespace/${namespace} --tokens 100000 --window day --quota-addr ${quotaAddress} --token-file ${adminTokenFile}`,
      '',
    ].join('\n'),
  );
  runUntilSignal(logger, async () => {
    clearInterval(remint);
    await sidecar.stop();
    await quota.stop();
    await fake?.close();
  });
}
