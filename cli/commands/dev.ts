// `llmgw dev`: the embedded default. The quota service, the sidecar (on 127.0.0.1:4000, spending the
// quota service's budgets, caching answers for an hour) and the built-in fake provider in one process; the
// real OpenAI/Anthropic APIs are used where their keys are set.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { startQuotaService } from '../../quota-service/quota-service.js';
import { startFakeProvider, type FakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { createLogger } from '../../sidecar/logger.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export function devConfig(opts: { fakeUrl: string | undefined; stateDir: string; env: NodeJS.ProcessEnv; quotaAddress: string }): Record<string, unknown> {
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
    quota: { address: opts.quotaAddress },
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
  const quota = await startQuotaService({
    listen: quotaListen,
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: resolve(o.stateDir, 'quota.db'),
    logger: logger.child({ component: 'quota-service' }),
  });
  const quotaAddress = `${quota.address.host}:${quota.address.port}`;
  const needFake = !env.OPENAI_API_KEY || !env.ANTHROPIC_API_KEY;
  const fake: FakeProvider | undefined = needFake ? await startFakeProvider({ host: '127.0.0.1', port: 0 }) : undefined;
  const config = validateConfig(devConfig({ fakeUrl: fake?.url, stateDir: o.stateDir, env, quotaAddress }), 'dev config');
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
      `llmgw budget set namespace/${env.POD_NAMESPACE || 'default'} --tokens 100000 --window day --quota-addr ${quotaAddress}`,
      '',
    ].join('\n'),
  );
  runUntilSignal(logger, async () => {
    await sidecar.stop();
    await quota.stop();
    await fake?.close();
  });
}
