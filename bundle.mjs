// Bundles the llmgw executable with esbuild into dist/llmgw/: one file per command, loaded on demand, so
// start-up reads and compiles only what the command uses (see bench/RESULTS.md for start-up times).
import { cpSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const outdir = 'dist/llmgw';
rmSync(outdir, { recursive: true, force: true });
await build({
  // The quota client's worker thread (sidecar/quota/worker-quota-client.ts) is a file of its own.
  entryPoints: { main: 'cli/main.ts', 'quota-rpc-worker': 'sidecar/quota/quota-rpc-worker.ts' },
  outdir,
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  logLevel: 'warning',
  // A native addon: loaded from node_modules at run time.
  external: ['better-sqlite3'],
  // Bundled CommonJS dependencies call require() for Node built-ins.
  banner: { js: "import { createRequire as __llmgwCreateRequire } from 'node:module'; const require = __llmgwCreateRequire(import.meta.url);" },
});

// The gRPC service definitions are read at run time (proto/load.ts looks for them beside its chunk), by
// the bundle and by the compiled tree the benches run from (dist/proto/load.js).
for (const dir of [`${outdir}/proto`, 'dist/proto']) cpSync('proto', dir, { recursive: true, filter: (src) => !src.endsWith('.ts') });

// The quota service's usage page (quota-service/ui/static-assets.ts serves them from ui/ beside main.mjs):
// its shell, scripts and style, and the chart library from node_modules, so the page needs no network.
cpSync('quota-service/ui/static', `${outdir}/ui`, { recursive: true });
cpSync('node_modules/uplot/dist/uPlot.iife.min.js', `${outdir}/ui/uplot.js`);
cpSync('node_modules/uplot/dist/uPlot.min.css', `${outdir}/ui/uplot.css`);
