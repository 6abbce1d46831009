// The data listener with a stand-in pipeline: what reaches the app when the pipeline itself fails.
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../../common/clock.js';
import { closeServer, listen } from '../../../../common/http/listen.js';
import { createLogger, flushLogger } from '../../../../common/logger.js';
import { AccessLog } from '../../../../sidecar/access-log.js';
import { validateConfig } from '../../../../sidecar/config/load-config.js';
import { createDataServer } from '../../../../sidecar/http/data-server.js';
import { Inflight } from '../../../../sidecar/http/inflight.js';
import { SidecarMetrics } from '../../../../sidecar/metrics/sidecar-metrics.js';
import type { Handler } from '../../../../sidecar/pipeline/types.js';
import { buildRuntime } from '../../../../sidecar/runtime.js';
import { PoolRegistry } from '../../../../sidecar/upstream/pool-registry.js';

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _e, done) {
    for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
    done();
  },
});
const pools = new PoolRegistry();
const runtime = buildRuntime(
  validateConfig({ providers: { p: { type: 'openai', baseUrl: 'http://127.0.0.1:1/v1' } }, models: { m: { targets: [{ provider: 'p', model: 'x' }] } } }, 't'),
  pools,
);
let handler: Handler = () => Promise.reject(new Error('unset'));
const logger = createLogger('info', sink);
const server = createDataServer({
  handler: (req) => handler(req),
  runtime: () => runtime,
  clock: systemClock,
  metrics: new SidecarMetrics(),
  inflight: new Inflight(),
  accessLog: new AccessLog(logger, true),
  logger,
  draining: () => false,
  startedAtSeconds: 0,
});
let base = '';

beforeAll(async () => {
  const at = await listen(server, { host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${at.port}`;
});
afterAll(async () => {
  await closeServer(server);
  await pools.close();
});

const post = (path: string, body: unknown) =>
  request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('data server', () => {
  it('answers a bug in the pipeline with 500 llmgw_internal_error, hides it from the app, logs the stack', async () => {
    handler = () => Promise.reject(new TypeError("Cannot read properties of undefined (reading 'secret')"));
    const res = await post('/v1/messages', { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
    expect(res.statusCode).toBe(500);
    const body = (await res.body.json()) as Record<string, any>;
    expect(body).toEqual({ type: 'error', error: { type: 'api_error', message: 'internal error in the gateway', code: 'llmgw_internal_error' } });
    const logged = lines.find((l) => l.msg === 'internal error') as { err: { stack: string } } | undefined;
    expect(logged?.err.stack).toContain("reading 'secret'");
  });

  it('ends a stream whose pipeline fails midway with an error event and records it', async () => {
    handler = async () => ({
      kind: 'stream',
      head: 'data: {"first":true}\n\n',
      rest: (async function* () {
        yield 'data: {"second":true}\n\n';
        throw new Error('boom');
      })(),
      meta: { attempts: 1, cache: 'BYPASS' },
    });
    const res = await post('/v1/chat/completions', { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const text = await res.body.text();
    expect(text).toBe(
      'data: {"first":true}\n\ndata: {"second":true}\n\ndata: {"error":{"message":"internal error in the gateway","type":"server_error","param":null,"code":"llmgw_internal_error"}}\n\n',
    );
    await new Promise((r) => setTimeout(r, 20));
    flushLogger(logger); // the access line may still wait in its batch
    expect(lines.filter((l) => l.msg === 'request').at(-1)).toMatchObject({ status: 200, stream: true, error: 'llmgw_internal_error' });
  });
});
