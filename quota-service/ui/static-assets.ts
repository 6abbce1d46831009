// The usage page's files: its HTML shell, script and style (quota-service/ui/static/) and uPlot's (from
// node_modules in a checkout; bundle.mjs copies all of them to dist/llmgw/ui/). Read on first use and
// kept in memory: a few tens of KB, nothing loaded unless someone opens the page.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The files served, by name (also their names in the bundle's ui/ folder) → where each is in a checkout, its content type. */
const FILES: Record<string, { checkout: () => string | undefined; type: string }> = {
  'index.html': { checkout: () => own('index.html'), type: 'text/html; charset=utf-8' },
  'usage-tables.js': { checkout: () => own('usage-tables.js'), type: 'text/javascript; charset=utf-8' },
  'usage-charts.js': { checkout: () => own('usage-charts.js'), type: 'text/javascript; charset=utf-8' },
  'usage-page.js': { checkout: () => own('usage-page.js'), type: 'text/javascript; charset=utf-8' },
  'usage-page.css': { checkout: () => own('usage-page.css'), type: 'text/css; charset=utf-8' },
  'uplot.js': { checkout: () => fromPackage('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.css': { checkout: () => fromPackage('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const at = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
const existing = (path: string): string | undefined => (existsSync(path) ? path : undefined);

function own(name: string): string | undefined {
  // Beside this module in the source tree; from dist/quota-service/ui/ (tsc's output), in the source tree.
  return existing(at(`./static/${name}`)) ?? existing(at(`../../../quota-service/ui/static/${name}`));
}

function fromPackage(spec: string): string | undefined {
  try {
    return createRequire(import.meta.url).resolve(spec);
  } catch {
    return undefined;
  }
}

/**
 * The bundle's ui/ folder (beside main.mjs; this module is in main.mjs or in a chunk under chunks/), or
 * undefined in a checkout. Never this module's own folder: tsc's output has a usage-page.js there.
 */
function bundleDir(): string | undefined {
  const own = at('./');
  return [at('./ui/'), at('../ui/')].find((dir) => dir !== own && existsSync(`${dir}index.html`));
}

function locate(name: string): string {
  const dir = bundleDir();
  const path = dir === undefined ? FILES[name]!.checkout() : existing(`${dir}${name}`);
  if (path === undefined) throw new Error(`the usage page's ${name} is missing beside ${at('./')} (run npm run build)`);
  return path;
}

const cache = new Map<string, Asset>();

/** The asset served as `name`, or undefined for a name that is not one. Throws when the build lacks a file. */
export function asset(name: string): Asset | undefined {
  if (!Object.hasOwn(FILES, name)) return undefined;
  let a = cache.get(name);
  if (a === undefined) {
    const body = readFileSync(locate(name));
    a = { body, type: FILES[name]!.type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
    cache.set(name, a);
  }
  return a;
}
