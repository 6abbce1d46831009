// `npm run chart:schema`: rewrites the sidecar section of charts/llm-gateway/values.schema.json from the
// sidecar's config schema (scripts/chart-schema.ts, bundled on the fly with esbuild: no build needed).
// `--check`: change nothing, exit 1 when the file is stale (for CI).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const file = fileURLToPath(new URL('../charts/llm-gateway/values.schema.json', import.meta.url));
const { outputFiles } = await build({
  entryPoints: [fileURLToPath(new URL('./chart-schema.ts', import.meta.url))],
  bundle: true,
  write: false,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
const { valuesSchemaText } = await import(`data:text/javascript;base64,${Buffer.from(outputFiles[0].text).toString('base64')}`);

const current = readFileSync(file, 'utf8');
const next = valuesSchemaText(current);
if (next === current) {
  console.log(`${file}: up to date`);
} else if (process.argv.includes('--check')) {
  console.error(`${file} is stale: run npm run chart:schema`);
  process.exitCode = 1;
} else {
  writeFileSync(file, next);
  console.log(`${file}: sidecar section regenerated`);
}
