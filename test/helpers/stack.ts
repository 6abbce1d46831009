// Starts what integration tests talk to: the fake provider and the real sidecar on 127.0.0.1 port 0,
// wired by a config that routes models to the fake over both wire formats.
import { Writable } from 'node:stream';
import { request } from 'undici';
import { createLogger, flushLogger } from '../../common/logger.js';
import { validateConfig } from '../../sidecar/config/load-config.js';
import type { Config } from '../../sidecar/config/schema.js';
import { startFakeProvider, type FakeProvider, type FakeProviderOptions } from '../../sidecar/fake-provider/fake-provider.js';
import { startSidecar, type Sidecar } from '../../sidecar/sidecar.js';

export const UPSTREAM_KEY = 'sk-upstream-secret-0123456789';
export const APP_KEY = 'sk-app-key-must-not-travel';

/** The routes every integration suite can use. */
export function stackConfig(fakeUrl: string): Record<string, unknown> {
  return {
    providers: {
      openai: { type: 'openai', baseUrl: `${fakeUrl}/v1`, apiKey: UPSTREAM_KEY },
      claude: { type: 'anthropic', baseUrl: fakeUrl, apiKey: UPSTREAM_KEY },
      vllm: { type: 'openai-compatible', baseUrl: `${fakeUrl}/v1`, apiKey: UPSTREAM_KEY, headers: { 'x-tenant': 'blue' } },
    },
    models: {
      'gpt-4o-mini': { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] },
      'claude-haiku': { targets: [{ provider: 'claude', model: 'claude-haiku-4-5' }] },
      llama: { targets: [{ provider: 'vllm', model: 'llama-3.1-8b' }] },
      embed: { targets: [{ provider: 'openai', model: 'text-embedding-3-small' }] },
      'claude-embed': { targets: [{ provider: 'claude', model: 'claude-haiku-4-5' }] },
      'gone-model': { targets: [{ provider: 'openai', model: 'missing-model' }] },
    },
    storage: { path: '/tmp/unused.db' },
  };
}

export interface Stack {
  fake: FakeProvider;
  sidecar: Sidecar;
  /** `http://127.0.0.1:port` of the sidecar's data listener. */
  url: string;
  statusUrl: string;
  /** Every log line the sidecar wrote, parsed. */
  logs: Record<string, unknown>[];
  rawLogs: string[];
  close(): Promise<void>;
}

export interface StackOptions {
  fake?: FakeProviderOptions;
  /** Edits the raw config before validation. */
  config?: (raw: Record<string, unknown>, fakeUrl: string) => Record<string, unknown>;
  configPath?: string;
  random?: () => number;
  /** The pod identity the sidecar reads (POD_NAMESPACE, LLMGW_SERVICE, …); default process.env. */
  env?: NodeJS.ProcessEnv;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const fake = await startFakeProvider({ host: '127.0.0.1', port: 0 }, { apiKey: UPSTREAM_KEY, ...opts.fake });
  let raw = stackConfig(fake.url);
  if (opts.config !== undefined) raw = opts.config(raw, fake.url);
  const config: Config = validateConfig(raw, 'test config');
  const rawLogs: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        rawLogs.push(line);
        logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const logger = createLogger('info', sink);
  const sidecar = await startSidecar({
    config,
    listen: { host: '127.0.0.1', port: 0 },
    statusListen: { host: '127.0.0.1', port: 0 },
    logger,
    ...(opts.configPath === undefined ? {} : { configPath: opts.configPath }),
    ...(opts.random === undefined ? {} : { random: opts.random }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  });
  return {
    fake,
    sidecar,
    url: `http://127.0.0.1:${sidecar.address.port}`,
    statusUrl: `http://127.0.0.1:${sidecar.statusAddress.port}`,
    // What has been logged so far: the access log's batch is written out first, as at shutdown.
    get logs() {
      flushLogger(logger);
      return logs;
    },
    get rawLogs() {
      flushLogger(logger);
      return rawLogs;
    },
    async close() {
      await sidecar.stop();
      await fake.close();
    },
  };
}

/** The sidecar's /metrics page, as Prometheus would scrape it. */
export async function scrapeMetrics(stack: Stack): Promise<string> {
  return (await request(`${stack.statusUrl}/metrics`)).body.text();
}

/** Polls until `check` passes or the time is up (for effects that happen asynchronously). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Access-log lines (one per request). */
export const accessLines = (stack: Stack): Record<string, unknown>[] => stack.logs.filter((l) => l.msg === 'request');

/** The error a call ends in, failing the test if it succeeds. */
export async function caught(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}
