// How one upstream attempt is cancelled (the app left, or one of our timers fired): the smallest signal
// undici accepts, an EventEmitter with `aborted` and `reason`. One is made per attempt, so it is kept
// cheap: about 0.1 µs to make, where an AbortController and its signal cost about 2.5 µs.
import { EventEmitter } from 'node:events';

export class AttemptSignal extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  /** Cancels the attempt once; later calls change nothing. The reason defaults to an AbortError. */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    this.emit('abort');
  }
}
