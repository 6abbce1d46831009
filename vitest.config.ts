import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration suites start real servers on port 0; a few at a time keeps the two-core machines responsive.
    maxWorkers: 2,
  },
});
