// setupFiles of the vitest project `quota-postgres` (vitest.config.ts): the quota end-to-end tests, unchanged,
// with every quota service they start on PostgreSQL instead of SQLite. One rule for both ways a test starts
// one (test/setup/quota-postgres-databases.ts): the SQLite path it names picks the database.
//  - In process: startQuotaService({ dbPath, … }) gets `storeUrl` of dbPath's database (unless the test gave one).
//  - The built CLI: `llmgw quota-service … --db PATH` started through test/helpers/cli.js gets
//    LLMGW_QUOTA_STORE (the URL of PATH's database) in its environment, as the chart passes it; its arguments
//    stay as the test wrote them. `quota-service migrate`, an explicit --store or LLMGW_QUOTA_STORE, and
//    every other command are left alone.
// Module paths here are relative to this file; vitest mocks the module they resolve to, whoever imports it.
import { vi } from 'vitest';
import type { QuotaService, QuotaServiceOptions } from '../../quota-service/quota-service.js';

vi.mock('../../quota-service/quota-service.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../quota-service/quota-service.js')>();
  const { databaseFor } = await import('./quota-postgres-databases.js');
  return {
    ...original,
    startQuotaService: async (opts: QuotaServiceOptions): Promise<QuotaService> => {
      if (opts.storeUrl !== undefined) return original.startQuotaService(opts);
      return original.startQuotaService({ ...opts, storeUrl: await databaseFor(opts.dbPath) });
    },
  };
});

vi.mock('../helpers/cli.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../helpers/cli.js')>();
  const { databaseForSync } = await import('./quota-postgres-databases.js');
  const withStore = (args: string[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
    if (args[0] !== 'quota-service' || args[1] === 'migrate') return env;
    if (args.some((a) => a === '--store' || a.startsWith('--store=')) || (env.LLMGW_QUOTA_STORE ?? '') !== '') return env;
    const at = args.indexOf('--db');
    const db = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith('--db='))?.slice('--db='.length);
    if (db === undefined) return env;
    return { ...env, LLMGW_QUOTA_STORE: databaseForSync(db) };
  };
  return {
    ...original,
    startCli: (args: string[], env: NodeJS.ProcessEnv = process.env) => original.startCli(args, withStore(args, env)),
    runCli: (args: string[], env?: NodeJS.ProcessEnv) => original.runCli(args, withStore(args, env ?? process.env)),
  };
});
