// Waiting for a response to take more, in fake upstreams that stream large bodies.
import type { ServerResponse } from 'node:http';

/** Resolves when `res` takes more or is gone, leaving no listener behind (a stream waits many times). */
export function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
