import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration suites start real servers on port 0; a few at a time keeps the two-core machines responsive.
    // (A root option: the limit holds for both projects together.)
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['test/**/*.test.ts'],
        },
      },
      {
        // The quota end-to-end tests, unchanged, once more with every quota service they start over PostgreSQL:
        // one server for the project (test/setup/quota-postgres-global.ts), a database per SQLite path a test
        // names (test/setup/quota-postgres.ts).
        extends: true,
        test: {
          name: 'quota-postgres',
          include: [
            'test/integration/quota-*.test.ts',
            'test/integration/pricing.test.ts',
            'test/integration/sidecar-price-claims.test.ts',
            'test/integration/tracing.test.ts',
          ],
          exclude: [
            ...configDefaults.exclude,
            // Over PostgreSQL already (a server of their own), or about the stores themselves rather than a service.
            'test/integration/quota-replicas.test.ts',
            'test/integration/quota-replicas-kill.test.ts',
            'test/integration/quota-store-contract.test.ts',
            'test/integration/quota-lease-functions.test.ts',
            'test/integration/quota-store-postgres.test.ts',
            'test/integration/quota-migrate.test.ts',
            // Starts no quota service (TLS of a bare grpc-js server).
            'test/integration/quota-tls.test.ts',
            // Too long to run twice: 50 lease clients for 959 or 1439 fake-clock steps pass over PostgreSQL but take
            // 38 s and 68 s alone (the per-day one beyond its 60 s timeout; both time out beside other files). The
            // same race over PostgreSQL is quota-replicas.test.ts's ("50 clients over 2 replicas at 1.5x…").
            'test/integration/quota-race.test.ts',
            'test/integration/quota-usd-race.test.ts',
            // A 2.5-4 minute load measurement of 20 sidecar processes whose latency thresholds are this machine's
            // over SQLite; its correctness checks over PostgreSQL are quota-replicas(-kill).test.ts's.
            'test/integration/quota-scale.test.ts',
          ],
          globalSetup: ['test/setup/quota-postgres-global.ts'],
          setupFiles: ['test/setup/quota-postgres.ts'],
        },
      },
    ],
  },
});
