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
  model: 'gpt-4o-mini "quoted" \u2028 ünïcode \\ back\tslash \u0001 \u007f',
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

describe('access log level', () => {
  const at = (over: Partial<AccessLogEntry>): AccessLogEntry => ({ reqId: 'r', method: 'POST', path: '/v1/chat/completions', status: 200, latencyMs: 1, stream: false, ...over });

  it('writes a failure the upstream caused and the app got as a warning, every other request as info', () => {
    const cases: [Partial<AccessLogEntry>, number][] = [
      [{}, 30],
      [{ status: 502, error: 'llmgw_upstream_error' }, 40],
      [{ status: 502, error: 'llmgw_upstream_unavailable' }, 40],
      [{ status: 504, error: 'llmgw_upstream_timeout' }, 40],
      [{ status: 502, error: 'llmgw_upstream_too_large' }, 40],
      [{ status: 502, error: 'provider_502' }, 40],
      [{ status: 500, error: 'provider_500' }, 40],
      // The stream had begun: the app got an error event.
      [{ status: 200, stream: true, error: 'llmgw_upstream_error' }, 40],
      [{ status: 400, error: 'provider_400' }, 30],
      [{ status: 429, error: 'llmgw_rate_limited' }, 30],
      [{ status: 503, error: 'llmgw_quota_unavailable' }, 30],
      [{ status: 404, error: 'llmgw_unknown_model' }, 30],
    ];
    const out = sink();
    const logger = createLogger('info', out.stream);
    const log = new AccessLog(logger, true);
    for (const [over] of cases) log.write(at(over));
    flushLogger(logger);
    expect(out.lines().map((l) => [(JSON.parse(l) as { error?: string }).error, (JSON.parse(l) as { level: number }).level])).toEqual(cases.map(([over, level]) => [over.error, level]));
  });

  it('writes the warning line pino would write for the same entry, byte for byte', () => {
    const out = sink();
    const reference = pino({ base: undefined, timestamp: () => ',"time":1796316366209' }, out.stream);
    const e = at({ status: 502, error: 'llmgw_upstream_error', model: 'gpt-4o-mini', attempts: 3 });
    reference.warn(e, 'request');
    expect(accessLine(e, 1796316366209, 40)).toBe(out.writes.join(''));
  });

  it('at log level warn, still writes the upstream failures, and only them', () => {
    const out = sink();
    const logger = createLogger('warn', out.stream);
    const log = new AccessLog(logger, true);
    log.write(at({ reqId: 'ok' }));
    log.write(at({ reqId: 'bad', status: 502, error: 'provider_502' }));
    flushLogger(logger);
    expect(out.lines().map((l) => (JSON.parse(l) as { reqId: string }).reqId)).toEqual(['bad']);
  });
});
