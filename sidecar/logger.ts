// The process logger (pino): JSON lines to stdout, written asynchronously so logging stays off the
// request's critical path, with secrets redacted should anything ever try to log them.
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Clock } from './clock.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

const REDACT = [
  'apiKey',
  '*.apiKey',
  'providers.*.apiKey',
  'headers.authorization',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
];

/**
 * `to` is a file descriptor (1 = stdout, 2 = stderr) or a stream (tests). Lines are batched: written when
 * 8 KiB have gathered or every 250 ms, whichever comes first (and synchronously at exit), so a busy
 * sidecar makes a few writes a second instead of one per request.
 */
export function createLogger(level: LogLevel, to: number | DestinationStream = 1): Logger {
  const dest = typeof to === 'number' ? pino.destination({ dest: to, sync: false, minLength: 8192, periodicFlush: 250 }) : to;
  const logger = pino({ level, base: undefined, redact: { paths: REDACT, censor: '[redacted]' } }, dest);
  unredacted.set(logger, pino({ level: 'trace', base: undefined }, dest));
  return logger;
}

const unredacted = new WeakMap<Logger, Logger>();

/**
 * A writer to the same destination without the redaction pass (≈2.4 µs a line), for lines whose fields
 * the gateway builds itself and that can hold no secret (the access log). It ignores levels: callers
 * check the process logger's.
 */
export function unredactedWriter(logger: Logger): Logger {
  return unredacted.get(logger) ?? logger;
}

/** Writes what the async destination still buffers (before exit). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // A destination that cannot flush synchronously has nothing buffered worth failing the exit for.
  }
}

/**
 * A warning logged at most once per `everyMs` (the first at once), each line saying how many were left
 * out since the one before: a failure repeated on every request costs a line a minute, not a line each.
 */
export function throttledWarn(logger: Logger, clock: Clock, msg: string, everyMs = 60_000): (fields: object) => void {
  let lastMs = -Infinity;
  let skipped = 0;
  return (fields) => {
    const nowMs = clock.monotonic();
    if (nowMs - lastMs < everyMs) {
      skipped++;
      return;
    }
    logger.warn({ ...fields, skipped }, msg);
    lastMs = nowMs;
    skipped = 0;
  };
}
