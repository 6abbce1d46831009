import { openSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createCommandLogger, createLogger, defaultLogFormat, flushLogger, throttledWarn } from '../../../common/logger.js';
import { AccessLog } from '../../../sidecar/access-log.js';

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

describe('log format', () => {
  const file = (): { fd: number; text: () => string } => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-log-')), 'log');
    return { fd: openSync(path, 'w'), text: () => readFileSync(path, 'utf8') };
  };

  it('is pretty on a terminal and JSON anywhere else', () => {
    expect(defaultLogFormat(1, () => true)).toBe('pretty');
    expect(defaultLogFormat(1, () => false)).toBe('json');
    expect(defaultLogFormat(file().fd)).toBe('json'); // a file is no terminal
  });

  it('writes JSON lines by default to a file', async () => {
    const out = file();
    const logger = await createCommandLogger('info', { fd: out.fd });
    logger.info({ port: 4000 }, 'sidecar started');
    await new Promise<void>((resolve) => logger.flush(() => resolve())); // JSON is written asynchronously
    expect(JSON.parse(out.text())).toMatchObject({ level: 30, port: 4000, msg: 'sidecar started' });
  });

  it('writes pretty lines in local time, without colour codes off a terminal, secrets still redacted', async () => {
    const out = file();
    const logger = await createCommandLogger('info', { fd: out.fd, format: 'pretty' });
    logger.warn({ apiKey: 'sk-secret-0123456789', provider: 'openai' }, 'provider failed');
    const lines = out.text().split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1); // written at once: nothing waits to be lost at exit
    const m = /^\[(\d{2}):(\d{2}):(\d{2})\.(\d{3})\] WARN: provider failed \{"apiKey":"\[redacted\]","provider":"openai"\}$/.exec(lines[0]!);
    expect(m, lines[0]).not.toBeNull();
    const now = new Date();
    const logged = new Date(now);
    logged.setHours(Number(m![1]), Number(m![2]), Number(m![3]), Number(m![4]));
    expect(Math.abs(now.getTime() - logged.getTime())).toBeLessThan(5_000); // the machine's local time, not UTC
    expect(lines[0]).not.toContain('\u001b[');
  });

  it('prints access lines (written in batches) one a request, method, path, status, model and latency first', async () => {
    const out = file();
    const logger = await createCommandLogger('info', { fd: out.fd, format: 'pretty' });
    const log = new AccessLog(logger, true);
    log.write({ reqId: 'r1', method: 'POST', path: '/v1/chat/completions', model: 'gpt-4o-mini', status: 200, latencyMs: 12.5, stream: false, cache: 'MISS' });
    log.write({ reqId: 'r2', method: 'POST', path: '/v1/messages', model: 'claude-haiku-4-5', status: 502, latencyMs: 3, stream: true, error: 'llmgw_upstream_error' });
    flushLogger(logger);
    const lines = out.text().split('\n').filter((l) => l !== '');
    expect(lines.map((l) => l.replace(/^\[[\d:.]+\] /, ''))).toEqual([
      'INFO: POST /v1/chat/completions 200 gpt-4o-mini 12.5 ms {"reqId":"r1","stream":false,"cache":"MISS"}',
      'WARN: POST /v1/messages 502 claude-haiku-4-5 3 ms {"reqId":"r2","stream":true,"error":"llmgw_upstream_error"}',
    ]);
  });
});
