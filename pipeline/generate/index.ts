/**
 * The `generate` stage's public API: run a generation, report progress, read what it wrote, finalize a sharded one.
 * The other files of this folder are its parts (shards, claims, pool, worker, per-row work) and are imported from
 * here by code outside the folder.
 */
export {
  GENERATE_DEFAULTS, resolveMethods, runGenerate, type GenerateOptions, type GenerateSummary, type MethodSummary,
} from './run.ts';
export { createProgress, type Progress } from './progress.ts';
export { PER_WORKER } from './pool.ts';
export {
  corpusIdOf, countRows, donePath, partPath, readShardRows, rowsContentHash, stateDir, type DoneMarker, type ShardCounts,
} from './shards.ts';
export { CORPUS_LOCK, corpusLockPath } from './locks.ts';
export { ownedShards, ownerOf, ownsShard, shardAssignment, type ShardAssignment } from './sharding.ts';
export { claimPath, claimTiming, type ClaimTiming } from './claims.ts';
export { finalizeCorpus, type FinalizeReport, type FinalizeResult } from './finalize.ts';
export { planPath, readPlan, type CorpusPlan } from './plan.ts';
