import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, flushLogger } from '../../../common/logger.js';
import { accessLine, AccessLog, type AccessLogEntry } from '../../../sidecar/access-log.js';

function sink() {
  const writes: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      writes.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, writes, lines: () => writes.join('').split('\n').filter((l) => l !== '') };
}

const entry = (i: number): AccessLogEntry => ({
  reqId: `req-${i}`,
  method: 'POST',
  path: '/v1/chat/completions',
  status: 200,
  latencyMs: 0.812,
  stream: false,
  model: 'gpt-4o-mini "quoted" \u2028 ünïcode',
  tags: { team: 'core', feature: 'a=b' },
  tokensIn: 7,
  upstreamMs: Number.NaN,
  cache: 'MISS',
});

describe('access log', () => {
  it('writes the line pino would write for the same entry, byte for byte', () => {
    const out = sink();
    const reference = pino({ base: undefined, timestamp: () => ',"time":1796316366209' }, out.stream);
    const e = entry(1);
    reference.info(e, 'request');
    expect(accessLine(e, 1796316366209)).toBe(out.writes.join(''));
  });

  it('batches lines: written within 100 ms, at once past 16 KiB, and all of them on flush', async () => {
    const out = sink();
    const logger = createLogger('info', out.stream);
    const log = new AccessLog(logger, true);
    log.write(entry(1));
    log.write(entry(2));
    expect(out.writes).toEqual([]);
    await new Promise((r) => setTimeout(r, 150));
    expect(out.writes).toHaveLength(1); // both lines in one write
    expect(out.lines().map((l) => (JSON.parse(l) as { reqId: string }).reqId)).toEqual(['req-1', 'req-2']);

    for (let i = 3; i < 100; i++) log.write(entry(i));
    expect(out.writes.length).toBeGreaterThan(1); // past 16 KiB without waiting
    flushLogger(logger);
    expect(out.lines()).toHaveLength(99);

    logger.level = 'warn';
    log.write(entry(100));
    log.setEnabled(true);
    flushLogger(logger);
    expect(out.lines()).toHaveLength(99); // below the logger's level: not written
  });

  it('writes the lines still waiting when the process exits', () => {
    // The built modules (npm test builds first), in a process that exits right after logging.
    const dist = (p: string) => pathToFileURL(join(import.meta.dirname, '../../../dist', p)).href;
    const out = join(mkdtempSync(join(tmpdir(), 'llmgw-exit-')), 'log');
    const script = `
      import { openSync } from 'node:fs';
      import { createLogger } from '${dist('common/logger.js')}';
      import { AccessLog } from '${dist('sidecar/access-log.js')}';
      const log = new AccessLog(createLogger('info', openSync(${JSON.stringify(out)}, 'w')), true);
      for (let i = 0; i < 3; i++) log.write({ reqId: 'r' + i, method: 'POST', path: '/x', status: 200, latencyMs: 1, stream: false });
      process.exit(0);`;
    execFileSync(process.execPath, ['--input-type=module', '-e', script]);
    const lines = readFileSync(out, 'utf8').split('\n').filter((l) => l !== '');
    expect(lines.map((l) => (JSON.parse(l) as { reqId: string }).reqId)).toEqual(['r0', 'r1', 'r2']);
  });
});
