// Client-side probes the load generator cannot do: the correctness gate, time to first byte, the timing
// of stream chunks as they arrive, many concurrent streams, and start-up to the first proxied answer.
import { performance } from 'node:perf_hooks';
import { Pool, request } from 'undici';

export interface Endpoint {
  url: string;
  headers: Record<string, string>;
}

/** Ids and timestamps differ per answer; everything else must match byte for byte. */
export const normalize = (text: string): string => text.replace(/"id":"[^"]*"/g, '"id":""').replace(/"created":\d+/g, '"created":0');

export async function fetchText(ep: Endpoint, body: string): Promise<{ status: number; text: string }> {
  const res = await request(ep.url, { method: 'POST', headers: ep.headers, body });
  return { status: res.statusCode, text: await res.body.text() };
}

/**
 * The gate before timing: `n` answers from `ep` are 200 and, normalized, identical to the reference
 * (for streams this compares every frame in order). Returns problems, empty when it passes.
 */
export async function checkSame(ep: Endpoint, body: string, reference: string, n: number): Promise<string[]> {
  const problems: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await fetchText(ep, body);
    if (r.status !== 200) problems.push(`answer ${i} had status ${r.status}: ${r.text.slice(0, 200)}`);
    else if (normalize(r.text) !== reference) problems.push(`answer ${i} differs: ${firstDifference(normalize(r.text), reference)}`);
    if (problems.length > 0) break;
  }
  return problems;
}

function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `at byte ${i}: got …${JSON.stringify(a.slice(Math.max(0, i - 40), i + 60))} expected …${JSON.stringify(b.slice(Math.max(0, i - 40), i + 60))}`;
}

export interface StreamTiming {
  ttfbMs: number[];
  /** Gaps between consecutive SSE events, as the client saw them arrive. */
  gapsMs: number[];
  /** First to last event of each stream. */
  spanMs: number[];
  /** The most events that arrived in one read (1 when nothing is held back and batched). */
  maxEventsPerRead: number;
  events: number[];
}

/** Sequential streams (concurrency 1) over one keep-alive connection, timed chunk by chunk. */
export async function streamTimings(ep: Endpoint, body: string, n: number): Promise<StreamTiming> {
  const url = new URL(ep.url);
  const pool = new Pool(url.origin, { connections: 1 });
  const out: StreamTiming = { ttfbMs: [], gapsMs: [], spanMs: [], maxEventsPerRead: 0, events: [] };
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const res = await pool.request({ path: url.pathname, method: 'POST', headers: ep.headers, body });
      let first = NaN;
      let last = NaN;
      let prev = NaN;
      let events = 0;
      let tail = '';
      for await (const chunk of res.body) {
        const now = performance.now();
        if (Number.isNaN(first)) out.ttfbMs.push(now - t0);
        const text = tail + (chunk as Buffer).toString('utf8');
        const parts = text.split('\n\n');
        tail = parts.pop() ?? '';
        const arrived = parts.filter((p) => p.trim() !== '').length;
        if (arrived === 0) continue;
        out.maxEventsPerRead = Math.max(out.maxEventsPerRead, arrived);
        if (Number.isNaN(first)) first = now;
        if (!Number.isNaN(prev)) out.gapsMs.push(now - prev);
        prev = now;
        last = now;
        events += arrived;
      }
      out.spanMs.push(last - first);
      out.events.push(events);
    }
  } finally {
    await pool.close();
  }
  return out;
}

/** Opens `n` streams at once; returns how many events each delivered. */
export async function concurrentStreams(ep: Endpoint, body: string, n: number): Promise<{ events: number[]; failed: number }> {
  const url = new URL(ep.url);
  const pool = new Pool(url.origin, { connections: n });
  let failed = 0;
  try {
    const events = await Promise.all(
      Array.from({ length: n }, async () => {
        try {
          const res = await pool.request({ path: url.pathname, method: 'POST', headers: ep.headers, body });
          const text = await res.body.text();
          if (res.statusCode !== 200) failed += 1;
          return text.split('\n\n').filter((p) => p.trim() !== '').length;
        } catch {
          failed += 1;
          return 0;
        }
      }),
    );
    return { events, failed };
  } finally {
    await pool.close();
  }
}

/** Time from `start()` (a spawn) to the first 200 answer through the new process, polling every 2 ms. */
export async function timeToFirstAnswer(start: () => { stop(): Promise<void> }, ep: Endpoint, body: string): Promise<number> {
  const t0 = performance.now();
  const proc = start();
  let ms = NaN;
  for (;;) {
    try {
      const r = await fetchText(ep, body);
      if (r.status === 200) {
        ms = performance.now() - t0;
        break;
      }
    } catch {
      // not listening yet
    }
    if (performance.now() - t0 > 20_000) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  await proc.stop();
  return ms;
}
