// Loaded into a sidecar under test with `--import` (hostile-bodies.ts): its event loop's delay as the
// process itself sees it, so that a stall of the sidecar is told apart from the probes' own waiting (they
// share the load core with the upstream that parses the same 16 MB). Every 20 ms the longest delay since
// the last sample goes to LLMGW_BENCH_LOOP_DELAY_FILE as a line `epochMs maxMs`.
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.LLMGW_BENCH_LOOP_DELAY_FILE;
if (file !== undefined) {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  let lines = '';
  const flush = (): void => {
    if (lines === '') return;
    appendFileSync(file, lines);
    lines = '';
  };
  setInterval(() => {
    lines += `${Date.now()} ${(delay.max / 1e6).toFixed(2)}\n`;
    delay.reset();
  }, 20).unref();
  setInterval(flush, 250).unref();
  process.on('exit', flush);
}
