// The sidecar config `llmgw dev` runs with (and `llmgw config example` prints): the real OpenAI/Anthropic
// APIs where their keys are set, else the built-in fake provider; answers cached for an hour; the budgets of
// the embedded quota service. Apart from dev.ts so that printing it loads none of the servers.
import { resolve } from 'node:path';

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
