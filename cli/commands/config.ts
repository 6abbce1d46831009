// `llmgw config check FILE` validates a sidecar config exactly as `llmgw sidecar` does at start (a problem
// ends as a ConfigError: every line on stderr, exit 2); `llmgw config example` prints a commented config
// to start from, made from the one `llmgw dev` runs so the two cannot drift apart.
import { Document, isMap, isScalar, isSeq, type Pair } from 'yaml';
import { loadConfigFile } from '../../sidecar/config/load-config.js';
import { providerTypes } from '../../sidecar/config/schema.js';
import { devConfig } from './dev-config.js';

export async function configCheck(file: string): Promise<void> {
  await loadConfigFile(file, { unreadableHint: '; `llmgw config example` prints a config to start from' });
  process.stdout.write(`${file}: ok\n`);
}

export function configExample(): void {
  process.stdout.write(exampleConfigText());
}

/**
 * The config `llmgw dev` runs when OPENAI_API_KEY and ANTHROPIC_API_KEY are set (the real APIs, keys from
 * the environment), with the paths and addresses of a pod where dev uses ./.llmgw/ and 127.0.0.1.
 */
export function exampleConfig(): Record<string, unknown> {
  return devConfig({
    fakeUrl: undefined,
    env: { OPENAI_API_KEY: 'set', ANTHROPIC_API_KEY: 'set' },
    stateDir: '/var/lib/llm-gateway',
    quotaAddress: 'llm-gateway-quota.llm-gateway.svc:50051',
    tokenFile: '/var/run/secrets/llm-gateway/token/token',
  });
}

const header = `
 A starting config for \`llmgw sidecar --config FILE\`: the one \`llmgw dev\` runs when OPENAI_API_KEY and
 ANTHROPIC_API_KEY are set, with the paths and addresses of a pod in place of dev's ./.llmgw/ and
 127.0.0.1. Check it with \`llmgw config check FILE\`. \${VAR} expands from the environment (a missing
 variable is an error); unknown keys are errors. Every key and its default: README.md.`;

/** A comment before each top-level section, to say what it is for. */
const sections: Record<string, string> = {
  providers: `
 Upstream APIs, under ids of your choice. type: ${providerTypes.join(' | ')} (vLLM, Ollama, …).
 The key comes from apiKey (here from the environment), apiKeyFile (a file, e.g. a mounted Secret) or
 apiKeyFrom: quota (kept by the quota service, handed to the sidecar over TLS).`,
  models: `
 The model names apps send. Each is served by its targets (a provider id and the model name sent
 upstream), load-balanced by weight; fallbacks: [other model names] are tried in order when every
 target fails. Any model can be served by any provider type: requests and answers are translated.`,
  storage: `
 The sidecar's one SQLite file: the response cache and usage not yet reported (an emptyDir in a pod).`,
  cache: `
 Identical requests are answered from the cache for ttlSeconds; remove this section to turn caching off.`,
  quota: `
 Global token budgets, spent from leases of the quota service (llmgw quota-service); remove this section
 for none. tokenFile: the pod's projected service-account token, sent with every call. Add
 tls: { caFile: FILE } to verify the service over TLS.`,
};

export function exampleConfigText(): string {
  const doc = new Document(exampleConfig());
  doc.commentBefore = header.slice(1);
  const top = doc.contents;
  if (!isMap(top)) throw new Error('the example config is not a mapping');
  top.items.forEach((pair: Pair, i) => {
    if (!isScalar(pair.key)) return;
    const comment = sections[String(pair.key.value)];
    if (comment !== undefined) pair.key.commentBefore = comment.slice(1);
    pair.key.spaceBefore = i > 0;
  });
  // One line per target reads like the README's examples.
  const models = doc.get('models');
  for (const model of isMap(models) ? models.items : []) {
    const targets = isMap(model.value) ? model.value.get('targets') : undefined;
    for (const t of isSeq(targets) ? targets.items : []) if (isMap(t)) t.flow = true;
  }
  return doc.toString({ lineWidth: 0 });
}
