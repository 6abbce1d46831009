// The data listener's metrics with a stand-in pipeline: what it records from an answer's meta (cost from the
// cost interceptor, the target the provider handler reports) into /metrics and the access log.
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
import type { Handler, ResponseMeta } from '../../../../sidecar/pipeline/types.js';
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
  validateConfig(
    {
      providers: { p: { type: 'openai-compatible', baseUrl: 'http://127.0.0.1:1/v1' }, q: { type: 'anthropic', baseUrl: 'http://127.0.0.1:1' } },
      models: { m: { targets: [{ provider: 'p', model: 'x' }] }, n: { targets: [{ provider: 'q', model: 'y' }] } },
    },
    't',
  ),
  pools,
);
const metrics = new SidecarMetrics();
const usage = { inputTokens: 12, outputTokens: 5, cachedInputTokens: 0, cacheWriteTokens: 0 };
/** Answers like the provider handler behind a cost interceptor: target in the trace, price in the meta. */
const handler: Handler = async (req) => {
  const target = runtime.router.resolve(req.model).targets[0]!;
  if (req.trace !== undefined) req.trace.target = target;
  const meta: ResponseMeta = { provider: target.provider.id, upstreamModel: target.model, attempts: 1, cache: 'MISS', upstreamMs: 1, usage };
  if (req.model === 'm') meta.costUsd = 0.0125;
  return { kind: 'json', status: 200, body: '{"ok":true}', meta };
};
const logger = createLogger('info', sink);
const server = createDataServer({
  handler,
  runtime: () => runtime,
  clock: systemClock,
  metrics,
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

const chat = async (model: string): Promise<void> => {
  const res = await request(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
  });
  expect(res.statusCode).toBe(200);
  await res.body.text();
};

describe('data server metrics', () => {
  it("adds each priced request's cost to llmgw_cost_usd_total by model and provider id, and logs it as costUsd", async () => {
    await chat('m');
    await chat('m');
    await chat('n');
    const out = metrics.registry.render();
    expect(out).toContain('# TYPE llmgw_cost_usd_total counter\nllmgw_cost_usd_total{model="m",provider="p"} 0.025\n');
    // An unpriced answer adds no series.
    expect(out).not.toContain('llmgw_cost_usd_total{model="n"');
    flushLogger(logger);
    const access = lines.filter((l) => l.msg === 'request');
    expect(access.map((l) => l.costUsd)).toEqual([0.0125, 0.0125, undefined]);
  });

  it('labels the GenAI series from the target the pipeline reports: an OpenAI-compatible provider as openai, Anthropic as anthropic', () => {
    const out = metrics.registry.render();
    expect(out).toContain(
      'gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="m",gen_ai_response_model="x",gen_ai_token_type="input"} 24\n',
    );
    expect(out).toContain(
      'gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="n",gen_ai_response_model="y",error_type=""} 1\n',
    );
    expect(out).toContain('llmgw_gateway_overhead_seconds_count{endpoint="/v1/chat/completions"} 3\n');
  });
});
