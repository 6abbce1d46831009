// Tracing end to end: the real sidecar with the fake provider, the real quota service over gRPC, the
// official SDKs as callers, and a fake OTLP collector decoding what the sidecar exports (http/protobuf by
// OTLP's own message definitions, and http/json). Spans: the request (a child of the app's traceparent),
// the cache lookup, the quota reservation, each upstream attempt, with GenAI attribute names and values
// equal to what the app was answered. Off by default; a collector in trouble costs requests nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import { killAll, startCli } from '../helpers/cli.js';
import { startOtlpCollector, type CollectedSpan, type OtlpCollector } from '../helpers/otlp-collector.js';
import { startFakeProvider } from '../../sidecar/fake-provider/fake-provider.js';
import { APP_KEY, UPSTREAM_KEY, accessLines, startStack, type Stack } from '../helpers/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'llmgw-tracing-'));
const closing: (() => Promise<void> | void)[] = [];
let quota: QuotaService;
let collector: OtlpCollector;

const APP_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN = '00f067aa0ba902b7';
/** Spans' clocks: each span's times are anchored to Date.now() when it starts, good to a millisecond. */
const SKEW_NS = 1_000_000n;
const traceparent = (sampled = true): string => `00-${APP_TRACE}-${APP_SPAN}-${sampled ? '01' : '00'}`;

beforeAll(async () => {
  collector = await startOtlpCollector();
  closing.push(() => collector.close());
  quota = await startQuotaService({
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    dbPath: join(dir, 'quota.db'),
    logger: pino({ level: 'silent' }),
    // Who may call is quota-auth.test.ts's concern; here, what the reservation's span says.
    auth: { mode: 'none' },
  });
  closing.push(() => quota.stop());
  await quota.allocator.setBudget('namespace/traced', 'day', 1_000_000);
  await quota.allocator.setBudget('namespace/starved', 'day', 10);
});
afterAll(async () => {
  killAll();
  for (const c of closing.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** A sidecar of namespace `ns` exporting to the collector (unless `tracing` is null), with cache and quota. */
async function tracedStack(name: string, tracing: Record<string, unknown> | null, ns = 'traced'): Promise<Stack> {
  const stack = await startStack({
    env: { POD_NAMESPACE: ns, LLMGW_SERVICE: 'checkout', POD_NAME: `${name}-pod` },
    config: (raw) => ({
      ...raw,
      storage: { path: join(dir, `${name}.db`) },
      cache: { ttlSeconds: 600 },
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
      quota: { address: `127.0.0.1:${quota.address.port}`, tokenFile: join(dir, 'no-token') },
      ...(tracing === null ? {} : { tracing: { endpoint: collector.url, exportIntervalMs: 50, ...tracing } }),
    }),
  });
  closing.push(() => stack.close());
  return stack;
}

const byTrace = (trace: string) => (spans: CollectedSpan[]) => spans.filter((s) => s.traceId === trace);
const childrenOf = (spans: CollectedSpan[], parent: CollectedSpan): CollectedSpan[] => spans.filter((s) => s.parentSpanId === parent.spanId);
/** The spans of the request whose server span has this llmgw.request_id, once its root and `n` spans in all arrived. */
async function requestSpans(requestId: string, n: number): Promise<{ root: CollectedSpan; all: CollectedSpan[] }> {
  let root: CollectedSpan | undefined;
  const spans = await collector.waitFor((all) => {
    root = all.find((s) => s.attributes['llmgw.request_id'] === requestId);
    return root !== undefined && all.filter((s) => s.traceId === root!.traceId).length >= n;
  });
  return { root: root!, all: byTrace(root!.traceId)(spans) };
}

describe('spans of a request (http/protobuf)', () => {
  let stack: Stack;
  let openai: OpenAI;
  beforeAll(async () => {
    stack = await tracedStack('proto', { sampleRatio: 1, propagateUpstream: true });
    openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
  });

  it('a miss: the request span under the app\'s trace, then cache lookup, quota reservation and the attempt, with the answer\'s usage and cost', async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Trace this request please' }] }, { headers: { traceparent: traceparent(), 'x-llmgw-tags': 'feature=search', 'x-llmgw-priority': 'background' } })
      .withResponse();
    const id = response.headers.get('x-request-id')!;
    const { root, all } = await requestSpans(id, 4);
    expect(collector.exports.at(-1)!.contentType).toBe('application/x-protobuf');
    // The request span continues the app's trace.
    expect(root).toMatchObject({ traceId: APP_TRACE, parentSpanId: APP_SPAN, name: 'POST /v1/chat/completions', kind: 'SERVER' });
    expect(root.status.code).toBe('UNSET');
    const u = data.usage!;
    expect(root.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/chat/completions',
      'http.response.status_code': 200,
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.provider.name': 'openai',
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': u.prompt_tokens,
      'gen_ai.usage.output_tokens': u.completion_tokens,
      'llmgw.provider': 'openai',
      'llmgw.cache': 'MISS',
      'llmgw.attempts': 1,
      'llmgw.priority': 'background',
      'llmgw.stream': false,
      'llmgw.tag.feature': 'search',
    });
    expect(root.attributes['llmgw.cost_usd']).toBeCloseTo(Number(response.headers.get('x-llmgw-cost-usd')), 9);
    expect(root.resource).toMatchObject({ 'service.name': 'checkout', 'k8s.namespace.name': 'traced', 'k8s.pod.name': 'proto-pod' });
    // No prompt text anywhere in the span.
    expect(JSON.stringify(all.map((s) => s.attributes))).not.toContain('Trace this request');

    const kids = childrenOf(all, root);
    expect(kids.map((s) => s.name).sort()).toEqual(['chat gpt-4o-mini', 'llmgw.cache.lookup', 'llmgw.quota.reserve']);
    const cache = kids.find((s) => s.name === 'llmgw.cache.lookup')!;
    expect(cache).toMatchObject({ kind: 'INTERNAL', attributes: { 'llmgw.cache.result': 'miss' } });
    const reserve = kids.find((s) => s.name === 'llmgw.quota.reserve')!;
    expect(reserve.kind).toBe('INTERNAL');
    expect(reserve.attributes['llmgw.priority']).toBe('background');
    expect(reserve.attributes['llmgw.quota.estimate_tokens']).toBeGreaterThan(u.prompt_tokens);
    expect(typeof reserve.attributes['llmgw.quota.waited']).toBe('boolean');
    const attempt = kids.find((s) => s.name === 'chat gpt-4o-mini')!;
    expect(attempt).toMatchObject({ kind: 'CLIENT', status: { code: 'UNSET' } });
    expect(attempt.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': u.prompt_tokens,
      'gen_ai.usage.output_tokens': u.completion_tokens,
      'server.address': '127.0.0.1',
      'server.port': Number(new URL(stack.fake.url).port),
      'http.response.status_code': 200,
      'llmgw.attempt': 1,
    });
    // Children sit inside their parent's time (the SDK anchors each span to Date.now(): 1 ms apart at most).
    for (const k of kids) {
      expect(k.startNs).toBeGreaterThanOrEqual(root.startNs - SKEW_NS);
      expect(k.endNs).toBeLessThanOrEqual(root.endNs + SKEW_NS);
    }
    // propagateUpstream: the provider was called under the attempt's span.
    const upstream = stack.fake.requests.at(-1)!;
    expect(upstream.headers.traceparent).toBe(`00-${APP_TRACE}-${attempt.spanId}-01`);
  });

  it('a cache hit: the lookup says hit, and no attempt or reservation span exists', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Cache me and trace me' }] };
    await openai.chat.completions.create(body);
    const { response } = await openai.chat.completions.create(body).withResponse();
    expect(response.headers.get('x-llmgw-cache')).toBe('HIT');
    const { root, all } = await requestSpans(response.headers.get('x-request-id')!, 2);
    expect(root.parentSpanId).toBe('');
    expect(root.attributes['llmgw.cache']).toBe('HIT');
    expect(root.attributes['llmgw.cost_usd']).toBe(0);
    const kids = childrenOf(all, root);
    expect(kids.map((s) => s.name)).toEqual(['llmgw.cache.lookup']);
    expect(kids[0]!.attributes['llmgw.cache.result']).toBe('hit');
  });

  it('a malformed traceparent from the app starts a trace of our own', async () => {
    const { response } = await openai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Bad parent' }] }, { headers: { traceparent: `00-${'0'.repeat(32)}-${APP_SPAN}-01`, 'cache-control': 'no-store' } })
      .withResponse();
    const { root } = await requestSpans(response.headers.get('x-request-id')!, 3);
    expect(root.parentSpanId).toBe('');
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.traceId).not.toBe('0'.repeat(32));
  });

  it('a retried attempt: one failed span with the provider\'s status, then the one that answered', async () => {
    stack.fake.faults.add({ match: { model: 'gpt-4o-mini' }, status: 503 });
    const { response } = await openai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Retry me once' }] }, { headers: { 'cache-control': 'no-store' } })
      .withResponse();
    expect(response.headers.get('x-llmgw-attempts')).toBe('2');
    const { root, all } = await requestSpans(response.headers.get('x-request-id')!, 4);
    const attempts = childrenOf(all, root)
      .filter((s) => s.kind === 'CLIENT')
      .sort((a, b) => Number(a.attributes['llmgw.attempt']) - Number(b.attributes['llmgw.attempt']));
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatchObject({ status: { code: 'ERROR' }, attributes: { 'llmgw.attempt': 1, 'error.type': 'provider_503', 'http.response.status_code': 503 } });
    expect(attempts[1]).toMatchObject({ status: { code: 'UNSET' }, attributes: { 'llmgw.attempt': 2, 'http.response.status_code': 200 } });
    expect(attempts[1]!.attributes['error.type']).toBeUndefined();
    expect(root.attributes['llmgw.attempts']).toBe(2);
  });

  it('a stream: the attempt span ends with the stream and carries its usage, as the request span does', async () => {
    const anthropic = new Anthropic({ baseURL: stack.url, apiKey: APP_KEY, maxRetries: 0 });
    const stream = anthropic.messages.stream({ model: 'claude-haiku', max_tokens: 64, messages: [{ role: 'user', content: 'Stream and trace' }] }, { headers: { 'cache-control': 'no-store' } });
    const final = await stream.finalMessage();
    const id = (await stream.withResponse()).response.headers.get('x-request-id')!;
    const { root, all } = await requestSpans(id, 3);
    expect(root.name).toBe('POST /v1/messages');
    expect(root.attributes).toMatchObject({ 'llmgw.stream': true, 'gen_ai.provider.name': 'anthropic', 'gen_ai.usage.output_tokens': final.usage.output_tokens });
    const attempt = childrenOf(all, root).find((s) => s.kind === 'CLIENT')!;
    expect(attempt.name).toBe('chat claude-haiku-4-5');
    expect(attempt.attributes).toMatchObject({
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-haiku-4-5',
      'gen_ai.usage.input_tokens': final.usage.input_tokens,
      'gen_ai.usage.output_tokens': final.usage.output_tokens,
      'llmgw.stream.complete': true,
    });
    expect(attempt.endNs).toBeLessThanOrEqual(root.endNs + SKEW_NS);
  });
});

describe('refusals, sampling, protocols, a collector in trouble', () => {
  it('a quota refusal: the reservation span failed with the refusal\'s code; the 429 request span is not an error', async () => {
    const stack = await tracedStack('starved', {}, 'starved');
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const err = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Too much for ten tokens' }], max_tokens: 500 }).catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    const status = (err as InstanceType<typeof OpenAI.APIError>).status!;
    expect([400, 429]).toContain(status);
    const code = accessLines(stack).at(-1)!.error as string;
    const id = (err as InstanceType<typeof OpenAI.APIError>).headers!.get('x-request-id')!;
    const { root, all } = await requestSpans(id, 3);
    expect(root.status.code).toBe('UNSET');
    expect(root.attributes).toMatchObject({ 'http.response.status_code': status, 'error.type': code });
    const reserve = childrenOf(all, root).find((s) => s.name === 'llmgw.quota.reserve')!;
    expect(reserve.status.code).toBe('ERROR');
    expect(reserve.attributes['error.type']).toBe(code);
    expect(childrenOf(all, root).some((s) => s.kind === 'CLIENT')).toBe(false);
  });

  it('http/json; sampleRatio 0 keeps no new trace but follows an app that samples; nothing propagates upstream by default', async () => {
    const stack = await tracedStack('json', { protocol: 'http/json', sampleRatio: 0 });
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const ask = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Sampled or not' }] };
    const unsampled = await openai.chat.completions.create(ask, { headers: { 'cache-control': 'no-store' } }).withResponse();
    const sampled = await openai.chat.completions.create(ask, { headers: { 'cache-control': 'no-store', traceparent: traceparent() } }).withResponse();
    const { root } = await requestSpans(sampled.response.headers.get('x-request-id')!, 4);
    expect(collector.exports.some((e) => e.contentType.startsWith('application/json'))).toBe(true);
    expect(root.parentSpanId).toBe(APP_SPAN);
    expect(collector.spans.some((s) => s.attributes['llmgw.request_id'] === unsampled.response.headers.get('x-request-id'))).toBe(false);
    // An app that says "not sampled" is not traced either.
    const declined = await openai.chat.completions.create(ask, { headers: { 'cache-control': 'no-store', traceparent: traceparent(false) } }).withResponse();
    await stack.sidecar.stop();
    expect(collector.spans.some((s) => s.attributes['llmgw.request_id'] === declined.response.headers.get('x-request-id'))).toBe(false);
    expect(stack.fake.requests.every((r) => r.headers.traceparent === undefined)).toBe(true);
  });

  it('off by default: a sidecar without a tracing section exports nothing and sends no traceparent', async () => {
    const before = collector.exports.length;
    const stack = await tracedStack('off', null);
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Not traced' }] }, { headers: { traceparent: traceparent() } });
    await stack.sidecar.stop();
    expect(collector.exports.length).toBe(before);
    expect(stack.fake.requests.at(-1)!.headers.traceparent).toBeUndefined();
  });

  it('a collector that fails or is gone costs requests nothing: answered at once, one throttled warning', async () => {
    const stack = await tracedStack('trouble', { exportTimeoutMs: 500 });
    collector.answerWith(503);
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    for (let i = 0; i < 5; i++) {
      const { response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `Collector down ${i}` }] }).withResponse();
      expect(response.status).toBe(200);
    }
    const started = Date.now();
    await stack.sidecar.stop();
    // The last spans' export is bounded by exportTimeoutMs, not by the collector.
    expect(Date.now() - started).toBeLessThan(3000);
    collector.answerWith(200);
    const warnings = stack.logs.filter((l) => l.msg === 'could not export spans');
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(2);
  });

  it('turned on and off by a config reload', async () => {
    const stack = await tracedStack('reload', null);
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: APP_KEY, maxRetries: 0 });
    const raw = (tracing: boolean): Record<string, unknown> => ({
      ...JSON.parse(JSON.stringify(stack.sidecar.config())),
      ...(tracing ? { tracing: { endpoint: collector.url, exportIntervalMs: 50 } } : { tracing: undefined }),
    });
    stack.sidecar.reload(validateConfig(raw(true), 'reload'));
    // The tracer is loaded in the background of the reload: the next requests are traced.
    await new Promise((r) => setTimeout(r, 200));
    const on = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'After reload' }] }).withResponse();
    await requestSpans(on.response.headers.get('x-request-id')!, 1);
    stack.sidecar.reload(validateConfig(raw(false), 'reload'));
    const off = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'After the second reload' }] }).withResponse();
    await stack.sidecar.stop();
    expect(collector.spans.some((s) => s.attributes['llmgw.request_id'] === off.response.headers.get('x-request-id'))).toBe(false);
  });
});

describe('the built llmgw', () => {
  it('loads its tracer from the bundle and exports the spans of a request (both protocols)', async () => {
    const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY });
    closing.push(() => fake.close());
    for (const protocol of ['http/protobuf', 'http/json']) {
      const path = join(dir, `cli-${protocol.replace('/', '-')}.yaml`);
      writeFileSync(
        path,
        JSON.stringify({
          providers: { openai: { type: 'openai', baseUrl: `${fake.url}/v1`, apiKey: UPSTREAM_KEY } },
          models: { 'gpt-4o-mini': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] } },
          storage: { path: join(dir, 'cli.db') },
          tracing: { endpoint: collector.url, protocol, exportIntervalMs: 50 },
        }),
      );
      const proc = startCli(['sidecar', '--config', path, '--listen', '127.0.0.1:0', '--status-listen', '127.0.0.1:0'], { ...process.env, LLMGW_SERVICE: 'cli-app' });
      const started = JSON.parse(await proc.waitForLine(/"msg":"sidecar started"/)) as { listen: { port: number } };
      const openai = new OpenAI({ baseURL: `http://127.0.0.1:${started.listen.port}/v1`, apiKey: APP_KEY, maxRetries: 0 });
      const { response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `Bundled ${protocol}` }] }).withResponse();
      const { root, all } = await requestSpans(response.headers.get('x-request-id')!, 2);
      expect(root.resource['service.name']).toBe('cli-app');
      expect(all.map((s) => s.name).sort()).toEqual(['POST /v1/chat/completions', 'chat gpt-4o-mini']);
      expect(collector.exports.at(-1)!.contentType).toBe(protocol === 'http/json' ? 'application/json' : 'application/x-protobuf');
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toBe(0);
    }
  });
});
