// Hedging for non-streaming requests: send to the first target; if no answer came within `afterMs` (or
// it failed), send the same request to the second; the first success wins and the other is aborted.
// Fails with the first target's error when both fail.
import { CancelSignal } from '../pipeline/cancel-signal.js';
import type { GatewayRequest, GatewayResponse } from '../pipeline/types.js';
import type { Target } from '../routing/router.js';

export interface HedgeOutcome {
  res: GatewayResponse;
  target: Target;
  /** Calls made: 1, or 2 when the hedge went out. */
  calls: number;
}

export interface HedgeCall {
  (req: GatewayRequest, target: Target): Promise<GatewayResponse>;
}

/** Reports each call's end, for breakers and logs (`cancelled`: the loser we aborted). */
export type HedgeObserver = (target: Target, outcome: { ok: true } | { ok: false; err: unknown; cancelled: boolean }) => void;

/** `tryNext`: whether a failure of the first call lets the second go out at once (not for bad requests). */
export function hedge(
  req: GatewayRequest,
  pair: readonly [Target, Target],
  afterMs: number,
  call: HedgeCall,
  observe: HedgeObserver,
  tryNext: (err: unknown) => boolean,
): Promise<HedgeOutcome> {
  return new Promise((resolve, reject) => {
    const controllers = pair.map(() => new CancelSignal());
    const unfollow = controllers.map((c) => req.signal.follow(c));
    const errors: unknown[] = [];
    let settled = false;
    let calls = 0;
    let pending = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      for (const u of unfollow) u();
    };
    const start = (i: 0 | 1): void => {
      calls++;
      pending++;
      const target = pair[i];
      call({ ...req, signal: controllers[i]! }, target).then(
        (res) => {
          pending--;
          if (settled) return; // a loser that answered anyway: discarded
          observe(target, { ok: true });
          finish();
          controllers[1 - i]!.abort();
          resolve({ res, target, calls });
        },
        (err: unknown) => {
          pending--;
          errors[i] = err;
          observe(target, { ok: false, err, cancelled: settled || req.signal.aborted });
          if (settled) return;
          if (calls === 1) {
            if (!req.signal.aborted && tryNext(err)) {
              // The first failed before the hedge went out: send it now.
              clearTimeout(timer);
              start(1);
            } else {
              finish();
              reject(err);
            }
            return;
          }
          if (pending === 0) {
            finish();
            reject(errors[0] ?? err);
          }
        },
      );
    };
    start(0);
    timer = setTimeout(() => {
      if (!settled && calls === 1) start(1);
    }, afterMs);
  });
}
