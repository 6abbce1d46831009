// Fault injection for the fake provider: rules that match a path and/or model and change the next
// answers (error statuses, delays, hangs, streams cut or failing midway, malformed answers and frames).

export interface Fault {
  match?: { path?: string; model?: string };
  /** How many matching requests this rule applies to; 0 means every one. Default 1. */
  times?: number;
  /** Answer with this status and the provider's usual error body for it (or `body`). */
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Never answer (until the client gives up). */
  hang?: boolean;
  /** Streams: destroy the connection after this many chunks. */
  dropAfterChunks?: number;
  /** Streams: send the format's error event after this many chunks, then end. */
  errorAfterChunks?: number;
  /** Streams: pause between chunks. */
  chunkDelayMs?: number;
  /**
   * Answer 200 with exactly this text instead of the real answer (a malformed answer: `{"x":NaN}`, a cut
   * body, a wrong shape). Content type `application/json` unless `headers` say otherwise.
   */
  rawBody?: string;
  /**
   * Streams: send this raw text (a malformed frame, e.g. `data: {oops\n\n`) after the first
   * `rawFrameAfterChunks` chunks (default 0: before any), in one write with the last of them, then carry on.
   */
  rawFrame?: string;
  rawFrameAfterChunks?: number;
}

interface Rule {
  fault: Fault;
  remaining: number;
}

export class FaultQueue {
  private rules: Rule[] = [];

  add(fault: Fault): void {
    this.rules.push({ fault, remaining: fault.times ?? 1 });
  }

  clear(): void {
    this.rules = [];
  }

  /** The first rule matching this request, consumed once. */
  take(path: string, model: string | undefined): Fault | undefined {
    const i = this.rules.findIndex(
      (r) => (r.fault.match?.path === undefined || r.fault.match.path === path) && (r.fault.match?.model === undefined || r.fault.match.model === model),
    );
    if (i === -1) return undefined;
    const rule = this.rules[i]!;
    if (rule.remaining > 0) {
      rule.remaining -= 1;
      if (rule.remaining === 0) this.rules.splice(i, 1);
    }
    return rule.fault;
  }
}
