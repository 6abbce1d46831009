// One rule for the vitest project `quota-postgres`: a quota service started on a SQLite path runs on a
// PostgreSQL database chosen by that path. The same path (resolved) gives the same database for the rest of
// the test file, so a test that restarts a service on its file finds its state again; a path not seen before
// gives a new, empty database, as a new file would be. `:memory:` (or no path) is a new database every time.
// The map lives in the test file's module graph, so it is per test file; the server is the project's one
// (test/setup/quota-postgres-global.ts).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';

const REPO = join(import.meta.dirname, '../..');
const created = new Map<string, string>();
const creating = new Map<string, Promise<string>>();

/** The URL of the database for `dbPath`, created the first time the path is seen. */
export async function databaseFor(dbPath: string): Promise<string> {
  const key = keyOf(dbPath);
  if (key === undefined) return createDatabase();
  const known = created.get(key) ?? creating.get(key);
  if (known !== undefined) return known;
  const pending = createDatabase().then((url) => {
    created.set(key, url);
    return url;
  });
  creating.set(key, pending);
  try {
    return await pending;
  } finally {
    creating.delete(key);
  }
}

/**
 * The same, for a caller that cannot wait (startCli returns its child at once): the database is created by a
 * short-lived `node` process, which blocks this worker for a moment (once per new path).
 */
export function databaseForSync(dbPath: string): string {
  const key = keyOf(dbPath);
  if (key !== undefined) {
    const known = created.get(key);
    if (known !== undefined) return known;
    if (creating.has(key)) throw new Error(`quota-postgres: the database of ${dbPath} is still being created by an in-process service`);
  }
  const name = newName();
  const script =
    "const pg = require('pg'); const [url, name] = process.argv.slice(1); const c = new pg.Client({ connectionString: url });" +
    ' c.connect().then(() => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} STRATEGY = FILE_COPY`)).finally(() => c.end())' +
    '.catch((e) => { console.error(e.message); process.exitCode = 1; });';
  try {
    execFileSync(process.execPath, ['-e', script, adminUrl(), name], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString('utf8') ?? '';
    throw new Error(`quota-postgres: could not create a database for ${dbPath}: ${stderr || (err as Error).message}`, { cause: err });
  }
  const url = urlOf(name);
  if (key !== undefined) created.set(key, url);
  return url;
}

/** SQLite's transient databases have no key: each open is a new, empty database. */
function keyOf(dbPath: string): string | undefined {
  if (dbPath === '' || dbPath === ':memory:' || dbPath.startsWith('file::memory:')) return undefined;
  return resolve(dbPath);
}

async function createDatabase(): Promise<string> {
  const name = newName();
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    // As test/helpers/postgres.ts does: copying the template's files is faster than logging them.
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} STRATEGY = FILE_COPY`);
  } finally {
    await client.end();
  }
  return urlOf(name);
}

/** Unique over the project's workers and files (they share one server). */
function newName(): string {
  return `quota_${randomBytes(8).toString('hex')}`;
}

function adminUrl(): string {
  const url = inject('quotaPostgresUrl');
  if (typeof url !== 'string' || url === '') throw new Error('quota-postgres: no server URL; this setup file needs the globalSetup test/setup/quota-postgres-global.ts');
  return url;
}

function urlOf(name: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}
