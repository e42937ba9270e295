import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // The software SEV platform for the platform tests (skipped with SEVKIT_HW=1).
    globalSetup: ['test/setup/sim-global.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
