import { defineConfig } from 'vitest/config';

/** `npm run test:browser`: the verifier page in Debian's Chromium (kept out of the default `npm test`). */
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
