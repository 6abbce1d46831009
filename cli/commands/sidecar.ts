// `llmgw sidecar`: load and validate the config, start the sidecar, run until SIGTERM.
import { createCommandLogger, type LogFormat, type LogLevel } from '../../common/logger.js';
import { loadConfigFile } from '../../sidecar/config/load-config.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export async function runSidecar(o: { config: string; listen: string; statusListen: string; logLevel?: string; logFormat?: LogFormat }): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const config = await loadConfigFile(o.config);
  const logLevelOverride = o.logLevel as LogLevel | undefined;
  const logger = await createCommandLogger(logLevelOverride ?? config.logging.level, { format: o.logFormat });
  const sidecar = await startSidecar({
    config,
    configPath: o.config,
    listen,
    statusListen,
    logger,
    ...(logLevelOverride === undefined ? {} : { logLevelOverride }),
  });
  runUntilSignal(logger, () => sidecar.stop());
}
