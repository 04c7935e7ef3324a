import { defineConfig } from 'vitest/config';

// Integration tests start real processes (the local stack, agents) and share 2 cores in CI,
// so files run in a small pool and each test gets a generous timeout.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
