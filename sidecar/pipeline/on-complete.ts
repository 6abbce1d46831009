// Runs a callback once a response is over: for JSON right after the answer is handed to the socket (so
// settling never delays it), for streams when the last frame went out, the app left, or the stream
// failed. Interceptors use it to settle what a request really used, and `watch` to read a running
// stream's usage so far.
import type { Usage } from '../formats/usage.js';
import type { GatewayResponse } from './types.js';

export interface Outcome {
  /** What the provider reported (possibly partial for a stream that did not finish). */
  usage: Usage | undefined;
  /** The answer went out complete. */
  complete: boolean;
  /** Stream frames forwarded (0 for JSON answers). */
  frames: number;
}

export function onComplete(res: GatewayResponse, done: (o: Outcome) => void, watch?: (current: () => Outcome) => void): GatewayResponse {
  if (res.kind === 'json') {
    afterThisTurn(() => done({ usage: res.meta.usage, complete: res.status < 400, frames: 0 }));
    return res;
  }
  const inner = res.rest;
  let frames = 1;
  watch?.(() => ({ usage: res.meta.usage, complete: false, frames }));
  async function* rest(): AsyncGenerator<string> {
    let complete = false;
    try {
      for await (const f of inner) {
        frames++;
        yield f;
      }
      complete = true;
    } finally {
      done({ usage: res.meta.usage, complete, frames });
    }
  }
  return { ...res, rest: rest() };
}

/** Callbacks for the end of this event-loop turn: one setImmediate for all of a busy turn's answers. */
let queued: (() => void)[] = [];
function afterThisTurn(fn: () => void): void {
  if (queued.push(fn) === 1) setImmediate(runQueued);
}

function runQueued(): void {
  const fns = queued;
  queued = [];
  for (const fn of fns) {
    try {
      fn();
    } catch (err) {
      // As an error thrown by its own setImmediate would be: uncaught, without costing the others their turn.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}
