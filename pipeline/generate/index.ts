/**
 * The `generate` stage's public API: run a generation, report progress, read what it wrote. The other files of this
 * folder are its parts (shards, pool, worker, per-row work) and are imported from here by code outside the folder.
 */
export {
  GENERATE_DEFAULTS, resolveMethods, runGenerate, type GenerateOptions, type GenerateSummary, type MethodSummary,
} from './run.ts';
export { createProgress, type Progress } from './progress.ts';
export { PER_WORKER } from './pool.ts';
export {
  corpusIdOf, countRows, donePath, partPath, readShardRows, rowsContentHash, type DoneMarker, type ShardCounts,
} from './shards.ts';
export { CORPUS_LOCK, corpusLockPath } from './locks.ts';
