// `llmgw sidecar`: load and validate the config, start the sidecar, run until SIGTERM.
import { createLogger, type LogLevel } from '../../common/logger.js';
import { loadConfigFile } from '../../sidecar/config/load-config.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export async function runSidecar(o: { config: string; listen: string; statusListen: string; logLevel?: string }): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const config = await loadConfigFile(o.config);
  const logLevelOverride = o.logLevel as LogLevel | undefined;
  const logger = createLogger(logLevelOverride ?? config.logging.level);
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
