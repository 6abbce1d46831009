// `llmgw fake-provider`: the fake upstream on its own, until SIGTERM.
import { createCommandLogger, type LogFormat } from '../../common/logger.js';
import { startFakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { parseHostPort, UsageError } from '../args.js';
import { runUntilSignal } from '../lifecycle.js';

export async function runFakeProvider(o: { listen: string; apiKey?: string; chunkDelayMs: string; logFormat?: LogFormat }): Promise<void> {
  const at = parseHostPort('--listen', o.listen);
  const chunkDelayMs = Number(o.chunkDelayMs);
  if (!Number.isFinite(chunkDelayMs) || chunkDelayMs < 0) throw new UsageError(`--chunk-delay-ms: expected a number ≥ 0, got "${o.chunkDelayMs}"`);
  const logger = await createCommandLogger('info', { format: o.logFormat });
  const fake = await startFakeProvider(at, { chunkDelayMs, ...(o.apiKey === undefined ? {} : { apiKey: o.apiKey }) });
  // Signals are handled before the line that tells a waiting script it may send one.
  runUntilSignal(logger, () => fake.close());
  logger.info({ url: fake.url }, 'fake provider listening');
}
