#!/usr/bin/env node
// The files the bundled `llmgw` needs at run time, and nothing else: dist/llmgw without source maps, and
// the node_modules of the packages the bundle loads by name (bundle.mjs's `external`) with their run-time
// dependencies. The Dockerfile's runtime stage is this tree; test/integration/production-install.test.ts
// starts every role from it, so the test checks exactly what the image ships.
//
//   node scripts/runtime-deps.mjs OUT_DIR [--from CHECKOUT]   (CHECKOUT: built, with node_modules; default .)
//
// Prints one JSON line: { "packages": [{ "name", "version", "path" }], "bytes" }.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Packages the bundle imports by name at run time: bundle.mjs's `external` (a native addon cannot be
 * bundled). Keep the two in step; `checkBundleImports` refuses a bundle that imports anything else.
 */
export const RUNTIME_PACKAGES = ['better-sqlite3'];

/**
 * Per package: `installOnly`, dependencies used only while npm installs it (prebuild-install fetches the
 * prebuilt addon, else node-gyp builds it, both during `npm ci` in the build stage); `files`, what it
 * reads at run time (default: everything but its nested node_modules). better-sqlite3 loads
 * lib/ and, through `bindings` (which finds the package root by its package.json), the compiled addon;
 * its SQLite sources (deps/, src/) and the build's object files stay behind.
 */
const RULES = {
  'better-sqlite3': { installOnly: ['prebuild-install'], files: ['package.json', 'LICENSE', 'lib', 'build/Release/better_sqlite3.node'] },
};

const BUNDLE_DIR = 'dist/llmgw';

/** Module specifiers in static imports, dynamic imports and require() calls of a bundled file. */
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']([^"'\s]+)["']/g;
const PACKAGE_NAME = /^(?:@[a-z0-9][\w.~-]*\/)?[a-z0-9][\w.~-]*/;

function filesUnder(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

/**
 * The packages a built bundle imports by name, each with a file that imports it. Throws when one is not
 * in RUNTIME_PACKAGES: it would be missing from the image (bundle it, or list it here and in bundle.mjs).
 */
export function checkBundleImports(checkout) {
  const found = new Map();
  for (const file of filesUnder(join(checkout, BUNDLE_DIR)).filter((f) => f.endsWith('.mjs'))) {
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      // node: is always a built-in, also one newer than this Node (undici mentions node:sqlite).
      if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || isBuiltin(spec)) continue;
      const name = PACKAGE_NAME.exec(spec)?.[0];
      if (name !== undefined && !found.has(name)) found.set(name, relative(checkout, file));
    }
  }
  const unlisted = [...found].filter(([name]) => !RUNTIME_PACKAGES.includes(name));
  if (unlisted.length > 0) {
    throw new Error(
      `the bundle imports ${unlisted.map(([n, f]) => `"${n}" (${f})`).join(', ')} by name, which would be missing at run time: ` +
        'bundle it, or add it to RUNTIME_PACKAGES in scripts/runtime-deps.mjs and to `external` in bundle.mjs',
    );
  }
  return found;
}

/** The directory of package `name` as Node resolves it from `fromDir`: the nearest node_modules up to the checkout. */
function locate(name, fromDir, checkout) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === checkout || dirname(dir) === dir) break;
  }
  throw new Error(`${name} (needed at run time from ${relative(checkout, fromDir) || '.'}) is not installed in ${join(checkout, 'node_modules')}: run npm ci`);
}

/** Every package the runtime packages load, with its directory; each nested where npm installed it. */
export function selectPackages(checkout) {
  const selected = new Map(); // directory -> { name, version }
  const visit = (name, fromDir) => {
    const dir = locate(name, fromDir, checkout);
    if (selected.has(dir)) return;
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    selected.set(dir, { name, version: manifest.version });
    const installOnly = RULES[name]?.installOnly ?? [];
    for (const dep of Object.keys(manifest.dependencies ?? {})) if (!installOnly.includes(dep)) visit(dep, dir);
  };
  for (const name of RUNTIME_PACKAGES) visit(name, checkout);
  return [...selected].map(([dir, p]) => ({ ...p, dir }));
}

function copyPackage(pkg, checkout, out) {
  const target = join(out, relative(checkout, pkg.dir));
  const files = RULES[pkg.name]?.files;
  if (files === undefined) {
    const nested = join(pkg.dir, 'node_modules');
    cpSync(pkg.dir, target, { recursive: true, filter: (src) => src !== nested });
    return;
  }
  for (const f of files) {
    if (!existsSync(join(pkg.dir, f))) throw new Error(`${join(pkg.dir, f)} is missing: is ${pkg.name} built (npm ci runs its install script)?`);
    cpSync(join(pkg.dir, f), join(target, f), { recursive: true });
  }
}

function sizeOf(dir) {
  return filesUnder(dir).reduce((n, f) => n + statSync(f).size, 0);
}

/** Writes the runtime tree of `checkout` (built, with node_modules) into `out`, replacing what was there. */
export function buildRuntimeTree(checkout, out) {
  checkout = resolve(checkout);
  out = resolve(out);
  if (!existsSync(join(checkout, BUNDLE_DIR, 'main.mjs'))) throw new Error(`${join(checkout, BUNDLE_DIR, 'main.mjs')} is missing: run npm run build first`);
  const inside = relative(checkout, out);
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    // Inside the checkout, the tree's own node_modules lookups would fall through to the checkout's.
    throw new Error(`${out}: the runtime tree must be outside ${checkout}, where node_modules cannot resolve into the checkout's`);
  }
  checkBundleImports(checkout);
  const packages = selectPackages(checkout);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // Source maps are not read at run time (no --enable-source-maps): they would double the image's bundle.
  cpSync(join(checkout, BUNDLE_DIR), join(out, BUNDLE_DIR), { recursive: true, filter: (src) => !src.endsWith('.map') });
  for (const pkg of packages) copyPackage(pkg, checkout, out);
  return { packages: packages.map((p) => ({ name: p.name, version: p.version, path: relative(checkout, p.dir) })), bytes: sizeOf(out) };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const fromAt = args.indexOf('--from');
  const checkout = fromAt === -1 ? '.' : args[fromAt + 1];
  const out = args.filter((_, i) => fromAt === -1 || (i !== fromAt && i !== fromAt + 1))[0];
  if (out === undefined || checkout === undefined) {
    process.stderr.write('usage: node scripts/runtime-deps.mjs OUT_DIR [--from CHECKOUT]\n');
    process.exit(2);
  }
  try {
    process.stdout.write(`${JSON.stringify(buildRuntimeTree(checkout, out))}\n`);
  } catch (err) {
    process.stderr.write(`runtime-deps: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
