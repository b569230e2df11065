import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2-core machines: more forks than cores only adds contention.
    pool: 'forks',
    maxWorkers: 2,
  },
});
