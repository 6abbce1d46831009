// One JSON line per request: who asked for what, where it went, how it ended, what it cost.
import type { Logger } from 'pino';
import { unredactedWriter } from './logger.js';

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
  tokensIn?: number;
  tokensOut?: number;
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
  /** Entries are the fixed fields above, built by the gateway: they skip the redaction pass. */
  private readonly writer: Logger;

  constructor(
    /** The process logger: its level (reloadable) decides whether lines are written. */
    private readonly logger: Logger,
    private enabled: boolean,
  ) {
    this.writer = unredactedWriter(logger);
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  write(entry: AccessLogEntry): void {
    if (this.enabled && this.logger.isLevelEnabled('info')) this.writer.info(entry, 'request');
  }
}
