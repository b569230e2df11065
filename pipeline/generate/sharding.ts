import { UserError } from '../../manifests/errors.ts';
import { parseInteger } from '../../common/flags.ts';

/**
 * Which shards a worker of a sharded `generate` owns. Shard s belongs to worker s mod N: for any N ≥ 1 every shard
 * has exactly one owner, neighbouring shards go to different workers (so a slow stretch of the dataset is spread),
 * and the rule needs nothing but the shard index, so workers never talk to each other.
 */

/** Worker `index` of `count`, and where that came from (for the log). */
export interface ShardAssignment {
  index: number;
  count: number;
  /** e.g. "--shard-index/--shard-count", "SLURM_ARRAY_TASK_ID=3", "JOB_COMPLETION_INDEX=1" */
  from: string;
}

/** Does worker `a` own shard `shard`? */
export function ownsShard(shard: number, a: Pick<ShardAssignment, 'index' | 'count'>): boolean {
  return shard % a.count === a.index;
}

/** The shards among [0, total) that worker `a` owns, ascending. */
export function ownedShards(total: number, a: Pick<ShardAssignment, 'index' | 'count'>): number[] {
  const out: number[] = [];
  for (let s = a.index; s < total; s += a.count) out.push(s);
  return out;
}

/** The worker index that owns shard `shard` among `count` workers (for finalize's "resubmit these tasks"). */
export const ownerOf = (shard: number, count: number): number => shard % count;

const int = (name: string, raw: string, min = 0) => parseInteger(name, raw, { min });

/**
 * The assignment of this process, or null for an ordinary (unsharded) run:
 *  1. `--shard-index i --shard-count N` (both or neither);
 *  2. a Slurm job array: `SLURM_ARRAY_TASK_ID`. The count is `--shard-count`, else `$CFGEN_SHARD_COUNT`, and then the
 *     task id is the index as is (so resubmitting one task, `sbatch --array=3`, keeps its shards); else
 *     `SLURM_ARRAY_TASK_COUNT`, and the index is (id − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP;
 *  3. a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX`, with the count from `--shard-count` or `$CFGEN_SHARD_COUNT`.
 */
export function shardAssignment(flags: { shardIndex?: number; shardCount?: number }, env: NodeJS.ProcessEnv = process.env): ShardAssignment | null {
  const check = (a: ShardAssignment): ShardAssignment => {
    if (a.index >= a.count) {
      throw new UserError(`worker index ${a.index} (${a.from}) is not below the shard count ${a.count}`, {
        fix: 'give every worker an index in [0, count): e.g. sbatch --array=0-$((N-1)) with CFGEN_SHARD_COUNT=N',
      });
    }
    return a;
  };
  if (flags.shardIndex !== undefined || (flags.shardCount !== undefined && env.SLURM_ARRAY_TASK_ID === undefined && env.JOB_COMPLETION_INDEX === undefined)) {
    if (flags.shardIndex === undefined || flags.shardCount === undefined) {
      throw new UserError('--shard-index and --shard-count go together', { fix: 'e.g. --shard-index 0 --shard-count 4 (worker 0 of 4)' });
    }
    return check({ index: flags.shardIndex, count: flags.shardCount, from: '--shard-index/--shard-count' });
  }
  const envCount = env.CFGEN_SHARD_COUNT !== undefined && env.CFGEN_SHARD_COUNT !== '' ? int('CFGEN_SHARD_COUNT', env.CFGEN_SHARD_COUNT, 1) : undefined;
  const count = flags.shardCount ?? envCount;
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_ID !== '') {
    const id = int('SLURM_ARRAY_TASK_ID', env.SLURM_ARRAY_TASK_ID);
    if (count !== undefined) return check({ index: id, count, from: `SLURM_ARRAY_TASK_ID=${id}` });
    if (!env.SLURM_ARRAY_TASK_COUNT) {
      throw new UserError('SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT', { fix: 'set CFGEN_SHARD_COUNT (or --shard-count) to the number of workers' });
    }
    const n = int('SLURM_ARRAY_TASK_COUNT', env.SLURM_ARRAY_TASK_COUNT, 1);
    const min = env.SLURM_ARRAY_TASK_MIN ? int('SLURM_ARRAY_TASK_MIN', env.SLURM_ARRAY_TASK_MIN) : 0;
    const step = env.SLURM_ARRAY_TASK_STEP ? int('SLURM_ARRAY_TASK_STEP', env.SLURM_ARRAY_TASK_STEP, 1) : 1;
    if ((id - min) % step !== 0) {
      throw new UserError(`cannot tell this task's worker index from SLURM_ARRAY_TASK_ID=${id} (a --array list that is not a range)`, {
        fix: 'submit --array=0-$((N-1)) with CFGEN_SHARD_COUNT=N (scripts/slurm/submit.sh does)',
      });
    }
    return check({ index: (id - min) / step, count: n, from: `SLURM_ARRAY_TASK_ID=${id} of SLURM_ARRAY_TASK_COUNT=${n}` });
  }
  if (env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX !== '') {
    const id = int('JOB_COMPLETION_INDEX', env.JOB_COMPLETION_INDEX);
    if (count === undefined) {
      throw new UserError('JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of workers', {
        fix: 'set CFGEN_SHARD_COUNT to the Job\'s completions (scripts/k8s/generate-job.yaml does), or pass --shard-count',
      });
    }
    return check({ index: id, count, from: `JOB_COMPLETION_INDEX=${id}` });
  }
  return null;
}
