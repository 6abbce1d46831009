// `llmgw injector`: the mutating admission webhook until SIGTERM.
import { createCommandLogger, type LogFormat, type LogLevel } from '../../common/logger.js';
import { loadInjectorConfig } from '../../injector-webhook/config.js';
import { apiNamespaceSource, inClusterOptions, noNamespaceSource } from '../../injector-webhook/namespaces.js';
import { startInjector } from '../../injector-webhook/server.js';
import { parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export async function runInjector(o: { config: string; tlsCert: string; tlsKey: string; listen: string; statusListen: string; logLevel: string; logFormat?: LogFormat }): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const config = await loadInjectorConfig(o.config);
  const logger = await createCommandLogger(o.logLevel as LogLevel, { format: o.logFormat });
  const api = inClusterOptions();
  if (api === undefined) logger.warn('not in a cluster (KUBERNETES_SERVICE_HOST unset): namespace defaults are not read');
  const injector = await startInjector({
    config,
    listen,
    statusListen,
    certFile: o.tlsCert,
    keyFile: o.tlsKey,
    namespaces: api === undefined ? noNamespaceSource : apiNamespaceSource(api),
    logger,
  });
  runUntilSignal(logger, () => injector.stop());
}
