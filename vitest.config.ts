import { createHash } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Time limits follow how busy the machine is, measured when the suite starts, instead of a fixed 120 s that a
 * loaded machine misses while the code is right. The factor is the larger of
 *   - the run-queue length per core (1-minute load average / cores), and
 *   - a measured budget: how much longer a fixed amount of hashing takes now than it does on an idle reference
 *     machine of the CI kind (2 cores) — 20 MiB of SHA-256 in ~11 ms there (best of three here);
 * never below 1, at most 20. CFGEN_TEST_TIME_SCALE overrides it.
 */
function measuredSlowdown(): number {
  const buf = Buffer.alloc(1 << 20, 7);
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) createHash('sha256').update(buf).digest();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best / 11;
}

function timeScale(): number {
  const forced = Number(process.env.CFGEN_TEST_TIME_SCALE);
  if (Number.isFinite(forced) && forced > 0) return forced;
  const queue = loadavg()[0] / availableParallelism();
  return Math.min(20, Math.max(1, queue, measuredSlowdown()));
}

const scale = timeScale();
const BASE_MS = 120_000;
if (scale > 1.2) process.stderr.write(`vitest: machine busy (×${scale.toFixed(1)}); time limits ${Math.round((BASE_MS * scale) / 1000)} s\n`);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: Math.round(BASE_MS * scale),
    hookTimeout: Math.round(BASE_MS * scale),
    // 2-core machines: more forks than cores only adds contention.
    pool: 'forks',
    maxWorkers: 2,
  },
});
