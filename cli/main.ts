#!/usr/bin/env -S node --max-semi-space-size=4
// `llmgw`: one executable for every part of llm-gateway. Each command's code is loaded only when that
// command runs, so start-up stays short. The shebang caps V8's young generation at 4 MB per semi-space
// (default 16): a proxy allocates short-lived objects fast, and the smaller nursery keeps RSS under load
// near 100 MB at the same throughput (bench/RESULTS.md).
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from './args.js';

const program = new Command('llmgw')
  .description('llm-gateway: a per-pod LLM gateway sidecar, its quota service and its injector')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError();

program
  .command('sidecar')
  .description('run the sidecar: an OpenAI- and Anthropic-compatible proxy for the app in this pod')
  .option('--config <file>', 'config file (YAML or JSON)', '/etc/llm-gateway/config.yaml')
  .option('--listen <host:port>', 'data listener for the app', '127.0.0.1:4000')
  .option('--status-listen <host:port>', 'probes and metrics listener', '0.0.0.0:4001')
  .addOption(new Option('--log-level <level>', 'overrides logging.level of the config').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .addOption(new Option('--log-format <format>', 'json or pretty (default: pretty on a terminal, json otherwise)').choices(['json', 'pretty']))
  .action(async (o: { config: string; listen: string; statusListen: string; logLevel?: string; logFormat?: 'json' | 'pretty' }) => {
    const { runSidecar } = await import('./commands/sidecar.js');
    await runSidecar(o);
  });

program
  .command('dev')
  .description('the embedded default: quota service, sidecar and fake provider in one process, state under ./.llmgw/')
  .option('--listen <host:port>', 'data listener', '127.0.0.1:4000')
  .option('--status-listen <host:port>', 'probes and metrics listener', '127.0.0.1:4001')
  .option('--quota-listen <host:port>', 'the quota service (gRPC)', '127.0.0.1:50051')
  .option('--quota-status-listen <host:port>', "the quota service's probes and metrics listener", '127.0.0.1:4002')
  .option('--state-dir <dir>', 'where state is kept', '.llmgw')
  .addOption(new Option('--log-format <format>', 'json or pretty on stderr (default: pretty on a terminal, json otherwise)').choices(['json', 'pretty']))
  .action(async (o: { listen: string; statusListen: string; quotaListen: string; quotaStatusListen: string; stateDir: string; logFormat?: 'json' | 'pretty' }) => {
    const { runDev } = await import('./commands/dev.js');
    await runDev(o);
  });

program
  .command('injector')
  .description('run the mutating admission webhook that adds the sidecar to pods (HTTPS, POST /mutate)')
  .option('--config <file>', 'injector config (JSON or YAML; the chart renders it)', '/etc/llm-gateway-injector/config.json')
  .option('--tls-cert <file>', 'TLS certificate (PEM), re-read when it changes', '/etc/llm-gateway-injector/tls/tls.crt')
  .option('--tls-key <file>', 'TLS private key (PEM), re-read when it changes', '/etc/llm-gateway-injector/tls/tls.key')
  .option('--listen <host:port>', 'HTTPS listener', '0.0.0.0:8443')
  .option('--status-listen <host:port>', 'probes and metrics listener', '0.0.0.0:9091')
  .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .addOption(new Option('--log-format <format>', 'json or pretty (default: pretty on a terminal, json otherwise)').choices(['json', 'pretty']))
  .action(async (o: { config: string; tlsCert: string; tlsKey: string; listen: string; statusListen: string; logLevel: string; logFormat?: 'json' | 'pretty' }) => {
    const { runInjector } = await import('./commands/injector.js');
    await runInjector(o);
  });

const quotaService = program
  .command('quota-service')
  .description('run the central quota service: global token budgets, leases for sidecars (gRPC)')
  .option('--listen <host:port>', 'gRPC listener', '0.0.0.0:50051')
  .option('--status-listen <host:port>', 'probes and metrics listener', '0.0.0.0:9090')
  .option('--db <path>', 'SQLite file holding budgets, consumption and leases', '/var/lib/llm-gateway/quota.db')
  .option(
    '--store <url>',
    "the store: a postgres:// (or postgresql://) URL shares budgets and leases between replicas (default $LLMGW_QUOTA_STORE; without either, --db's SQLite file)",
  )
  .option('--lease-ttl <duration>', 'a lease lapses this long after its last renewal', '30s')
  .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .addOption(new Option('--log-format <format>', 'json or pretty (default: pretty on a terminal, json otherwise)').choices(['json', 'pretty']))
  .addOption(
    new Option('--auth <mode>', 'how sidecars are verified: kubernetes (TokenReview in the cluster), jwks (--auth-jwks), none (nothing verified: must be asked for)')
      .choices(['kubernetes', 'jwks', 'none'])
      .default('kubernetes'),
  )
  .option('--auth-jwks <file|url>', 'with --auth jwks: the JWKS document that signs service-account tokens (a file is re-read when it changes)')
  .option('--auth-issuer <iss>', 'with --auth jwks: the issuer tokens must carry')
  .option('--auth-audience <aud>', 'the audience tokens must carry', 'llm-gateway')
  .option('--admin-token-file <file>', 'operator bearer tokens, one per line (re-read when it changes)')
  .option('--admin-subjects <ns/sa,...>', 'service accounts allowed every admin call (their verified tokens)')
  .option('--viewer-subjects <ns/sa,...>', 'service accounts allowed the read-only admin calls')
  .option('--tls-cert <file>', 'serve gRPC over TLS with this certificate (PEM, re-read when it changes)')
  .option('--tls-key <file>', 'the key of --tls-cert')
  .option('--tls-client-ca <file>', 'require client certificates signed by this CA (mutual TLS)')
  .option('--provider-keys <file>', 'provider API keys to hand to verified sidecars over TLS (YAML; re-read when it changes)')
  .option('--prices <file>', 'prices (USD per million tokens) over the shipped table, and the default for unpriced models (YAML or JSON; re-read when it changes)')
  .action(async (o) => {
    const { runQuotaService } = await import('./commands/quota-service.js');
    // An empty variable (a template that sets it to nothing) counts as unset.
    await runQuotaService({ ...o, store: (o.store as string | undefined) ?? (process.env.LLMGW_QUOTA_STORE || undefined) });
  });

// A subcommand beside the command's own action: `quota-service migrate …` runs this, `quota-service --listen …`
// the service. The service's options are parsed wherever they appear, so migrate's options must not share their names.
quotaService
  .command('migrate')
  .description(
    'copy a SQLite quota file into an empty PostgreSQL database in one transaction, checked row by row before it commits; ' +
      'stop the quota service first. Exits 0 copied, 1 failed (rolled back), 2 usage, 3 target not empty',
  )
  .requiredOption('--from <file>', "the quota service's SQLite file (its --db; opened read-only)")
  .option('--to <url>', 'the target: postgres://USER:PASSWORD@HOST:PORT/DATABASE (default $LLMGW_QUOTA_STORE, which keeps the password off the command line)')
  .action(async (o: { from: string; to?: string }) => (await import('./commands/quota-migrate.js')).runQuotaMigrate(o));

const adminOptions = (c: Command): Command =>
  c
    .option('--quota-addr <host:port>', 'quota service (default $LLMGW_QUOTA_ADDR, else 127.0.0.1:50051)')
    .option('--token <token>', 'operator token (default $LLMGW_ADMIN_TOKEN)')
    .option('--token-file <file>', 'read the operator token from this file')
    .option('--tls-ca <file>', 'verify the quota service over TLS with this CA (default $LLMGW_QUOTA_CA; absent: plaintext)')
    .option('--tls-server-name <name>', 'the name in the quota service\'s certificate, when it differs from --quota-addr\'s host (e.g. through a port-forward)')
    .option('--tls-cert <file>', 'client certificate, for a quota service that requires one')
    .option('--tls-key <file>', 'the key of --tls-cert')
    .option('--output <format>', 'table or json', 'table');

const budget = program.command('budget').description('set and read global budgets (tokens or dollars) on the quota service');

adminOptions(
  budget
    .command('set <scope>')
    .description('create or update the budget of a scope (namespace/<ns>, namespace/<ns>/service/<name>, team/<name>) for a window')
    .option('--tokens <n>', 'a token budget: tokens (input + output) per window')
    .option('--usd <amount>', 'a dollar budget: USD per window (e.g. 250 or 0.05), priced by the quota service\'s table; a scope may have one of each')
    .requiredOption('--window <window>', 'minute, hour, day or month (calendar, UTC)')
    .option('--priority-floors <spec>', 'batch=F,background=F: a class stops drawing below this fraction left (default batch=0.5,background=0.2)'),
).action(async (scope: string, o) => (await import('./commands/budget.js')).budgetSet(scope, o));
adminOptions(budget.command('get <scope>').description('the budgets of a scope and their current windows')).action(async (scope: string, o) =>
  (await import('./commands/budget.js')).budgetGet(scope, o),
);
adminOptions(budget.command('list').description('every budget')).action(async (o) => (await import('./commands/budget.js')).budgetList(o));
adminOptions(
  budget
    .command('delete <scope>')
    .description('delete the budgets of a scope (token and dollar budgets alike, unless --tokens or --usd)')
    .option('--window <window>', 'only this window')
    .option('--tokens', 'only its token budgets')
    .option('--usd', 'only its dollar budgets'),
).action(async (scope: string, o) => (await import('./commands/budget.js')).budgetDelete(scope, o));
adminOptions(
  budget
    .command('usage <scope>')
    .description('tokens and dollars a scope consumed per window, newest first')
    .option('--window <window>', 'minute, hour, day or month', 'day')
    .option('--last <n>', 'how many windows', '10')
    .option('--since <date|duration>', 'every window since a date (2026-12-01), a time (ISO 8601) or a duration back (7d, 12h), instead of --last')
    .option('--by <dimension...>', 'also break each window down: model, scope (the scope and its sub-scopes), day (day windows) or tag KEY')
    .option('--by-tag <key>', 'the same as --by tag KEY: by the values of this x-llmgw-tags key'),
).action(async (scope: string, o) => (await import('./commands/budget-usage.js')).budgetUsage(scope, o));

const team = program.command('team').description('map namespaces to team/<name> budgets (operator data, not pod data)');
adminOptions(
  team.command('set <team>').description("set a team's namespaces (replacing the ones it had)").requiredOption('--namespaces <a,b>', 'the namespaces whose pods are charged to team/<team>'),
).action(async (name: string, o) => (await import('./commands/team.js')).teamSet(name, o));
adminOptions(team.command('list').description('every team and its namespaces')).action(async (o) => (await import('./commands/team.js')).teamList(o));
adminOptions(team.command('delete <team>').description('delete a team (its budgets stay)')).action(async (name: string, o) => (await import('./commands/team.js')).teamDelete(name, o));

program
  .command('fake-provider')
  .description('a fake OpenAI/Anthropic upstream for tests, benchmarks and demos')
  .option('--listen <host:port>', 'listener', '127.0.0.1:9000')
  .option('--api-key <key>', 'require this key from callers')
  .option('--chunk-delay-ms <ms>', 'pause between stream chunks', '0')
  .addOption(new Option('--log-format <format>', 'json or pretty (default: pretty on a terminal, json otherwise)').choices(['json', 'pretty']))
  .action(async (o: { listen: string; apiKey?: string; chunkDelayMs: string; logFormat?: 'json' | 'pretty' }) => {
    const { runFakeProvider } = await import('./commands/fake-provider.js');
    await runFakeProvider(o);
  });

program
  .command('await')
  .description('wait until a URL answers 200 (the injected postStart hook; the image has no curl)')
  .requiredOption('--url <url>', 'URL to poll')
  .option('--timeout <duration>', 'give up after this long', '120s')
  .action(async (o: { url: string; timeout: string }) => {
    const { runAwait } = await import('./commands/await.js');
    await runAwait(o);
  });

const configCommand = program.command('config').description('check a sidecar config file, or print a config to start from');
configCommand
  .command('check <file>')
  .description(
    'validate a sidecar config exactly as `llmgw sidecar` does at start: ${VAR}s expand from this environment and apiKeyFile key files are read; prints every problem at once, exits 0 if valid, 2 if not',
  )
  .action(async (file: string) => (await import('./commands/config.js')).configCheck(file));
configCommand
  .command('example')
  .description('print a commented starting config: the one `llmgw dev` runs, with the paths and addresses of a pod')
  .action(async () => (await import('./commands/config.js')).configExample());

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version exit 0; every usage mistake exits 2 (commander has printed the message).
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof UsageError) {
    process.stderr.write(`llmgw: ${err.message}\n`);
    process.exit(2);
  }
  const { ConfigError } = await import('../common/config/config-error.js');
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.problems.map((p) => `llmgw: ${p}`).join('\n')}\n`);
    process.exit(2);
  }
  process.stderr.write(`llmgw: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
