// `llmgw await`: poll a URL until it answers 200 (exit 0) or the timeout passes (exit 1).
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDuration, UsageError } from '../args.js';

export async function runAwait(o: { url: string; timeout: string }): Promise<void> {
  const timeoutMs = parseDuration('--timeout', o.timeout);
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new UsageError(`--url: not a URL: "${o.url}"`);
  }
  if (url.protocol !== 'http:') throw new UsageError(`--url: only http:// URLs are supported, got "${o.url}"`);
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const status = await probe(url, Math.min(2000, Math.max(1, deadline - Date.now()))).catch((err: Error) => err.message);
    if (status === 200) return;
    last = typeof status === 'number' ? `HTTP ${status}` : status;
    await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
  }
  throw new Error(`${o.url} did not answer 200 within ${o.timeout} (last: ${last})`);
}

function probe(url: URL, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}
