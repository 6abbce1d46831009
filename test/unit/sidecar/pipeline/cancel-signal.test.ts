import { describe, expect, it } from 'vitest';
import { CancelSignal, sleepUnlessCancelled } from '../../../../sidecar/pipeline/cancel-signal.js';
import { isAbortError } from '../../../../sidecar/upstream/upstream-errors.js';

describe('cancel signal', () => {
  it('aborts once, with an AbortError unless given a reason', () => {
    const s = new CancelSignal();
    let heard = 0;
    s.on('abort', () => heard++);
    expect(s.aborted).toBe(false);
    s.abort();
    s.abort(new Error('later'));
    expect(heard).toBe(1);
    expect(s.aborted).toBe(true);
    expect(isAbortError(s.reason)).toBe(true);
    const given = new CancelSignal();
    const why = new Error('the app left');
    given.abort(why);
    expect(given.reason).toBe(why);
  });

  it('passes its cancellation to a follower until released', () => {
    const app = new CancelSignal();
    const [a, b] = [new CancelSignal(), new CancelSignal()];
    a.abort(new Error('a timed out')); // a follower cancelled on its own leaves the parent alone
    const releaseA = app.follow(a);
    const releaseB = app.follow(b);
    releaseA();
    expect(app.aborted).toBe(false);
    const why = new Error('gone');
    app.abort(why);
    expect(b.reason).toBe(why);
    releaseB();
    expect(app.listenerCount('abort')).toBe(0);
    const late = new CancelSignal();
    app.follow(late); // following an already cancelled signal cancels at once
    expect(late.reason).toBe(why);
  });

  it('sleeps, or stops sleeping with the reason when cancelled', async () => {
    const s = new CancelSignal();
    await expect(sleepUnlessCancelled(5, s)).resolves.toBeUndefined();
    expect(s.listenerCount('abort')).toBe(0);
    const started = Date.now();
    const waiting = sleepUnlessCancelled(10_000, s);
    const why = new Error('left');
    setTimeout(() => s.abort(why), 10);
    await expect(waiting).rejects.toBe(why);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(sleepUnlessCancelled(1, s)).rejects.toBe(why);
  });
});
