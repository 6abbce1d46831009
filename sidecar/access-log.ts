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
    if (this.enabled && this.logger.isLevelEnabled('info')) this.writeLine(accessLine(entry, this.clock.now()));
  }
}

/** pino's info line: level and time first, then the entry's fields in order, then the message. */
export function accessLine(entry: AccessLogEntry, timeMs: number): string {
  let line = `{"level":30,"time":${timeMs}`;
  for (const key in entry) {
    const v = entry[key as keyof AccessLogEntry];
    if (v === undefined) continue;
    // Keys are this interface's own names: nothing to escape.
    line += `,"${key}":${typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : typeof v === 'boolean' ? String(v) : JSON.stringify(v)}`;
  }
  return `${line},"msg":"request"}\n`;
}
