import { describe, expect, it } from 'vitest';
import { AttemptSignal } from '../../../../sidecar/upstream/attempt-signal.js';
import { isAbortError } from '../../../../sidecar/upstream/upstream-errors.js';

describe('attempt signal', () => {
  it('aborts once, with an AbortError unless given a reason', () => {
    const s = new AttemptSignal();
    let heard = 0;
    s.on('abort', () => heard++);
    expect(s.aborted).toBe(false);
    s.abort();
    s.abort(new Error('later'));
    expect(heard).toBe(1);
    expect(s.aborted).toBe(true);
    expect(isAbortError(s.reason)).toBe(true);
    const given = new AttemptSignal();
    const why = new Error('the app left');
    given.abort(why);
    expect(given.reason).toBe(why);
  });
});
