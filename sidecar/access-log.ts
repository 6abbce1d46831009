// One JSON line per request: who asked for what, where it went, how it ended, what it cost. The line is
// built here (the fields are fixed, made by the gateway, and can hold no secret), in the process logger's
// format, and written in batches beside its lines.
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../common/clock.js';
import { lineWriter } from '../common/logger.js';

export interface AccessLogEntry {
  reqId: string;
  method: string;
  path: string;
  /** The model name the app asked for. */
  model?: string;
  provider?: string;
  upstreamModel?: string;
  status: number;
  latencyMs: number;
  upstreamMs?: number;
  /** All prompt tokens (cache reads and writes included), and the output. */
  tokensIn?: number;
  tokensOut?: number;
  /** Of tokensIn: read from the provider's prompt cache, and written to it (present when not 0). */
  cachedTokensIn?: number;
  cacheWriteTokensIn?: number;
  /** USD cost of the request from the sidecar's price table (streams: known at their end). */
  costUsd?: number;
  stream: boolean;
  priority?: string;
  tags?: Record<string, string>;
  cache?: string;
  /** On a semantic cache hit: how similar the prompt was to the stored one. */
  similarity?: number;
  /** On a cache hit: the tokens the stored answer cost when it was made, not spent again. */
  savedTokensIn?: number;
  savedTokensOut?: number;
  /** Semantic mode: the embeddings model asked for the prompt's vector, and the tokens that cost. */
  embeddingModel?: string;
  embeddingTokens?: number;
  attempts?: number;
  /** The `llmgw_*` code or provider status behind a failure. */
  error?: string;
  /** The app went away before the answer was complete. */
  clientAborted?: boolean;
}

export class AccessLog {
  private readonly writeLine: (line: string) => void;

  constructor(
    /** The process logger: its level (reloadable) decides whether lines are written. */
    private readonly logger: Logger,
    private enabled: boolean,
    private readonly clock: Clock = systemClock,
  ) {
    this.writeLine = lineWriter(logger);
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  write(entry: AccessLogEntry): void {
    if (!this.enabled) return;
    const warn = upstreamFailed(entry);
    if (this.logger.isLevelEnabled(warn ? 'warn' : 'info')) this.writeLine(accessLine(entry, this.clock.now(), warn ? WARN : INFO));
  }
}

/** pino's level numbers. */
const INFO = 30;
const WARN = 40;

/**
 * The app got a failure because of the upstream: an `llmgw_upstream_*` error (an answer, or the error event
 * that ended a stream already under way) or a provider's 5xx passed on. A warning, seen at level `warn` too.
 */
function upstreamFailed(entry: AccessLogEntry): boolean {
  const e = entry.error;
  if (e === undefined) return false;
  if (e.startsWith('llmgw_upstream_')) return true;
  return e.startsWith('provider_') && Number(e.slice(9)) >= 500;
}

/** Printable ASCII but `"` and `\`: a string JSON writes as it is, between quotes (ids, paths, model names). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** pino's line (info by default): level and time first, then the entry's fields in order, then the message. */
export function accessLine(entry: AccessLogEntry, timeMs: number, level: number = INFO): string {
  let line = `{"level":${level},"time":${timeMs}`;
  for (const key in entry) {
    const v = entry[key as keyof AccessLogEntry];
    if (v === undefined) continue;
    // Keys are this interface's own names: nothing to escape. Values: JSON.stringify only where it changes something.
    const json = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : typeof v === 'boolean' ? String(v) : typeof v === 'string' && PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
    line += `,"${key}":${json}`;
  }
  return `${line},"msg":"request"}\n`;
}
