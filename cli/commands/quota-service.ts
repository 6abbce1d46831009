// `llmgw quota-service`: the central quota service until SIGTERM.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { startQuotaService } from '../../quota-service/quota-service.js';
import { createLogger, type LogLevel } from '../../sidecar/logger.js';
import { parseDuration, parseHostPort } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export async function runQuotaService(o: { listen: string; statusListen: string; db: string; leaseTtl: string; logLevel: string }): Promise<void> {
  const listen = parseHostPort('--listen', o.listen);
  const statusListen = parseHostPort('--status-listen', o.statusListen);
  const leaseTtlMs = parseDuration('--lease-ttl', o.leaseTtl);
  mkdirSync(dirname(o.db), { recursive: true });
  const logger = createLogger(o.logLevel as LogLevel);
  const service = await startQuotaService({ listen, statusListen, dbPath: o.db, logger, leaseTtlMs });
  runUntilSignal(logger, () => service.stop());
}
