// The process logger (pino): JSON lines to stdout, written asynchronously so logging stays off the
// request's critical path, with secrets redacted should anything ever try to log them; on a terminal,
// the same lines made readable by pino-pretty (local times, colours).
import { isatty } from 'node:tty';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Clock } from './clock.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** `json`: one JSON object a line (pods, files, pipes). `pretty`: a readable line for people. */
export type LogFormat = 'json' | 'pretty';

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

/** Pretty on a terminal, JSON everywhere else (a pod's stdout, a file, a pipe). */
export function defaultLogFormat(fd: number, isTerminal: (fd: number) => boolean = isatty): LogFormat {
  return isTerminal(fd) ? 'pretty' : 'json';
}

/**
 * A command's logger on file descriptor `fd` (1 = stdout, 2 = stderr) in `format`, by default
 * `defaultLogFormat(fd)`. JSON is `createLogger`'s batched writer; pretty loads pino-pretty (only then:
 * it costs ~10 ms of start-up) and writes its lines synchronously, so none is lost at exit.
 */
export async function createCommandLogger(level: LogLevel, opts: { fd?: number; format?: LogFormat | undefined } = {}): Promise<Logger> {
  const fd = opts.fd ?? 1;
  const format = opts.format ?? defaultLogFormat(fd);
  if (format === 'json') return createLogger(level, fd);
  // A CommonJS module: its exports are the default export in the bundle (esbuild), also named ones in Node.
  type PinoPretty = typeof import('pino-pretty');
  const mod = (await import('pino-pretty')) as PinoPretty & { default?: PinoPretty };
  const { prettyFactory } = mod.default ?? mod;
  const colorize = isatty(fd) && !process.env.NO_COLOR;
  // `err` holds errors (pino's serializer); the access log's `error` is a code, kept on the line.
  const prettify = prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true, errorLikeObjectKeys: ['err'] });
  return createLogger(level, prettyDestination(prettify, pino.destination({ dest: fd, sync: true })));
}

/** The access log's fields a person scans for, moved into the message: `POST /v1/chat/completions 200 gpt-4o-mini 12.3 ms`. */
const SUMMARY = ['method', 'path', 'status', 'model', 'latencyMs'] as const;

function readable(line: string): string | Record<string, unknown> {
  let log: unknown;
  try {
    log = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof log !== 'object' || log === null) return line;
  const entry = log as Record<string, unknown>;
  if (entry.msg !== 'request' || typeof entry.status !== 'number') return entry;
  entry.msg = SUMMARY.filter((k) => entry[k] !== undefined)
    .map((k) => (k === 'latencyMs' ? `${String(entry[k])} ms` : String(entry[k])))
    .join(' ');
  for (const k of SUMMARY) delete entry[k];
  return entry;
}

/** Takes pino's JSON lines (one or many a write, the access log's batches too) and writes them prettified. */
function prettyDestination(prettify: (log: string | object) => string | undefined, out: DestinationStream): DestinationStream {
  let partial = '';
  return {
    write(chunk: string): void {
      const text = partial + chunk;
      const end = text.lastIndexOf('\n');
      partial = text.slice(end + 1);
      if (end < 0) return;
      let pretty = '';
      for (const line of text.slice(0, end).split('\n')) if (line !== '') pretty += prettify(readable(line)) ?? '';
      if (pretty !== '') out.write(pretty);
    },
  };
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
