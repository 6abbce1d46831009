import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, throttledWarn } from '../../../common/logger.js';

describe('throttled warning', () => {
  it('logs the first at once, then at most one a period saying how many it left out', () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    let nowMs = 1000;
    const warn = throttledWarn(createLogger('info', sink), { now: () => nowMs, monotonic: () => nowMs }, 'it failed', 60_000);
    warn({ err: new Error('one') });
    for (let i = 0; i < 5; i++) warn({ err: new Error('more') });
    nowMs += 59_999;
    warn({ err: new Error('still inside') });
    nowMs += 1;
    warn({ err: new Error('next period') });
    expect(lines.map((l) => [l.level, l.msg, (l.err as { message: string }).message, l.skipped])).toEqual([
      [40, 'it failed', 'one', 0],
      [40, 'it failed', 'next period', 6],
    ]);
  });
});
