// One throw-away PostgreSQL server (test/helpers/postgres.ts) for the test file that calls it. Not in that
// module: the global setup imports it, outside any test file, where vitest's hooks do not exist.
import { afterAll, beforeAll } from 'vitest';
import { startPostgres, type TestPostgres } from './postgres.js';

/** Starts the server before the file's tests and stops it after them; call the getter inside a test. */
export function postgresPerFile(): () => TestPostgres {
  let server: TestPostgres | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (server === undefined) throw new Error('the test PostgreSQL server is not started (call the getter inside a test)');
    return server;
  };
}
