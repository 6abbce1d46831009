// Memory with large answers (DESIGN §8: four 30 MB answers at once keep the sidecar under its chart
// memory limit). For each way an answer can travel (passed through, translated in both directions) a
// fresh sidecar, pinned like the others, is asked for four 30 MB non-streaming answers at once from an
// upstream in this process; its RSS is sampled every 5 ms from outside (/proc) while they are served. A
// fresh process each time: V8 keeps the heap an earlier way grew, which would count against the next.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { MB } from './measure.js';
import { rssBytes, startProc } from './proc.js';
import { sidecarSpec, type Upstreams } from './targets.js';

/** The sidecar container's memory limit in the chart (256Mi; the bench's MB are MiB). */
export const CHART_MEMORY_LIMIT_MB = 256;
const ANSWER_BYTES = 30 * 1_000_000;
const AT_ONCE = 4;

export interface LargeAnswersResult {
  /** The first sidecar's RSS before any answer. */
  idleMB: number;
  /** Per way: peak RSS while four answers were served at once, and whether all four arrived whole. */
  cases: { way: string; peakMB: number; complete: boolean }[];
}

/** A `format` answer of exactly `size` bytes, almost all one text of 'x' (the large-answers test uses it too). */
export function answer(size: number, format: 'openai' | 'anthropic'): Buffer {
  const [head, tail] =
    format === 'openai'
      ? ['{"id":"c","object":"chat.completion","created":1,"model":"big","choices":[{"index":0,"message":{"role":"assistant","content":"', '"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":11,"total_tokens":18}}']
      : ['{"id":"msg_big","type":"message","role":"assistant","model":"big","content":[{"type":"text","text":"', '"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":11}}'];
  const buf = Buffer.alloc(size, 'x');
  buf.write(head, 0);
  buf.write(tail, size - tail.length);
  return buf;
}

async function bigUpstream(): Promise<{ server: Server; url: string }> {
  const bodies = { openai: answer(ANSWER_BYTES, 'openai'), anthropic: answer(ANSWER_BYTES, 'anthropic') };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const b = bodies[req.url === '/v1/messages' ? 'anthropic' : 'openai'];
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length });
      res.end(b);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function measureLargeAnswers(up: Upstreams, workDir: string): Promise<LargeAnswersResult> {
  const big = await bigUpstream();
  const limit = 64 << 20;
  const spec = await sidecarSpec({
    name: 'sidecar-large-answers',
    upstreams: up,
    logLevel: 'info',
    logFile: `${workDir}/sidecar-large-answers.log`,
    workDir,
    extra: {
      providers: {
        'big-openai': { type: 'openai-compatible', baseUrl: `${big.url}/v1`, maxResponseBytes: limit },
        'big-anthropic': { type: 'anthropic', baseUrl: big.url, apiKey: 'bench', maxResponseBytes: limit },
      },
      models: {
        'big-openai': { targets: [{ provider: 'big-openai', model: 'big' }] },
        'big-anthropic': { targets: [{ provider: 'big-anthropic', model: 'big' }] },
      },
    },
  });
  const base = new URL(spec.endpoint.url).origin;
  let idleMB = NaN;
  const ways = [
    { way: 'passed through (OpenAI → OpenAI)', path: '/v1/chat/completions', model: 'big-openai' },
    { way: 'translated (Anthropic answer → OpenAI app)', path: '/v1/chat/completions', model: 'big-anthropic' },
    { way: 'translated (OpenAI answer → Anthropic app)', path: '/v1/messages', model: 'big-openai' },
  ];
  const cases: LargeAnswersResult['cases'] = [];
  try {
    for (const w of ways) {
      // The spec's ports are fixed: each process starts once the one before has stopped.
      const proc = await startProc(spec.spec);
      await sleep(500);
      if (Number.isNaN(idleMB)) idleMB = rssBytes(proc.pid) / MB;
      let peak = rssBytes(proc.pid);
      const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(proc.pid))), 5);
      const body = JSON.stringify({ model: w.model, max_tokens: 16, messages: [{ role: 'user', content: 'a long answer, please' }] });
      // Connections of its own: the previous process's are gone with it.
      const dispatcher = new Agent();
      const sizes = await Promise.all(
        Array.from({ length: AT_ONCE }, async () => {
          const res = await request(`${base}${w.path}`, { dispatcher, method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body });
          let n = 0;
          for await (const c of res.body) n += (c as Buffer).length;
          return res.statusCode === 200 ? n : -1;
        }),
      );
      clearInterval(sampler);
      await dispatcher.close();
      cases.push({ way: w.way, peakMB: Math.max(peak, rssBytes(proc.pid)) / MB, complete: sizes.every((n) => n > ANSWER_BYTES * 0.99) });
      await proc.stop();
    }
    return { idleMB, cases };
  } finally {
    big.server.close();
  }
}
