import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['*/src/**/*.test.ts', 'verifier/web/src/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
    // The chaos run (about 4 minutes) is its own CI step, `npm run test:chaos`: not run twice.
    exclude: ['**/node_modules/**', ...(process.env.STELE_CHAOS === '1' ? [] : ['test/e2e/chaos/chaos.test.ts'])],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
