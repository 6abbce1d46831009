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
  return pino({ level, base: undefined, redact: { paths: REDACT, censor: '[redacted]' } }, dest);
}

/** Lines serialized by their callers, waiting to be written together, per destination. */
const batches = new WeakMap<DestinationStream, LineBatch>();
/** Batches holding lines, written out (synchronously) should the process exit before their timer. */
const holding = new Set<LineBatch>();
let exitHook = false;

/** Lines go to the destination in one write per 16 KiB or per 100 ms, whichever comes first. */
class LineBatch {
  private pending = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly dest: DestinationStream) {}

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= 16_384) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.flush, 100);
      this.timer.unref();
      holding.add(this);
      if (!exitHook) {
        exitHook = true;
        // pino's own exit handler has already flushed its destination: write these, then flush again.
        process.once('exit', () => {
          for (const b of holding) b.flushSync();
        });
      }
    }
  }

  readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    holding.delete(this);
    if (this.pending === '') return;
    const chunk = this.pending;
    this.pending = '';
    this.dest.write(chunk);
  };

  flushSync(): void {
    this.flush();
    try {
      (this.dest as { flushSync?: () => void }).flushSync?.();
    } catch {
      // A destination not open yet has nothing of ours to lose that waiting could save.
    }
  }
}

/**
 * A writer of whole JSON lines (ending in a newline) that the caller built itself: fields the gateway
 * makes and that can hold no secret (the access log). They skip pino's serializer and redaction and
 * reach the logger's destination in batches (≈1 µs a line, not ≈4). It ignores levels: callers check the
 * logger's. A line waits at most 100 ms, or until `flushLogger` or the process exits.
 */
export function lineWriter(logger: Logger): (line: string) => void {
  const dest = destinationOf(logger);
  let batch = batches.get(dest);
  if (batch === undefined) batches.set(dest, (batch = new LineBatch(dest)));
  const b = batch;
  return (line) => b.write(line);
}

const destinationOf = (logger: Logger): DestinationStream => (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!;

/** Writes what the async destination still buffers (before exit). */
export function flushLogger(logger: Logger): void {
  try {
    batches.get(destinationOf(logger))?.flush();
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
