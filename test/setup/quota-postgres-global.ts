// globalSetup of the vitest project `quota-postgres` (vitest.config.ts): ONE throw-away PostgreSQL server
// for the whole project, stopped when the run ends. Its URL (the `postgres` database, as the superuser)
// reaches the test workers as `inject('quotaPostgresUrl')`; test/setup/quota-postgres-databases.ts creates
// a database per SQLite path of a test file from it.
import type { TestProject } from 'vitest/node';
import { startPostgres } from '../helpers/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    quotaPostgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('quotaPostgresUrl', server.url);
  return () => server.stop();
}
