import type { SourceRow } from '../../manifests/index.ts';
import type { InfillMethod, Params } from '../infills/index.ts';
import { DEFAULT_MAX_PIXELS, type ImageFormat } from '../decode.ts';
import { defaultRoot } from '../../common/paths.ts';
import type { ClaimTiming } from './claims.ts';
import type { RunContext } from './item.ts';
import type { SourceInfo } from './plan.ts';
import type { Progress } from './progress.ts';
import type { ShardCounts } from './shards.ts';

/** What `generate` is asked to do (the CLI's flags, resolved). */
export interface GenerateOptions {
  dataset: string;
  /** registry names; default: DEFAULT_METHODS plus registered batch methods that report themselves ready */
  methods?: string[];
  variants: number;
  /** output side in px (images resized to size×size); null keeps the stored size */
  size: number | null;
  seed: number;
  workers: number;
  splits: string[];
  /** source rows per shard */
  shardSize: number;
  strict: boolean;
  maxErrorRate: number;
  corporaRoot: string;
  dataRoot: string;
  format: ImageFormat;
  /** per-method params, e.g. { 'cf-random': { grid: '4x4' } } */
  params: Record<string, Params>;
  /** replace corpora made with another config */
  force: boolean;
  /** on resume, re-hash every image of every done shard and regenerate the shards with missing or modified files */
  verify?: boolean;
  /** images with more pixels are error rows, refused from the header (default DEFAULT_MAX_PIXELS) */
  maxPixels?: number;
  /** folder datasets: read files whose real path lies outside the dataset root (symbolic links) */
  followSymlinks?: boolean;
  /** folder: and waterbirds PNG masks: the pixel values that are the object (EnsureOptions.maskForeground) */
  maskForeground?: string;
  /** seed of the dataset build (synthetic datasets), kept apart from the generation seed */
  datasetSeed: number;
  /** use this source manifest folder (its parent becomes the corpora folder) instead of ensureSourceManifest */
  sourceDir?: string;
  /** dataset root for sourceDir (default: the manifest's metadata.config.root) */
  sourceRoot?: string;
  /**
   * Sharded generation: this process is worker `shardIndex` of `shardCount` and writes only the shards it owns
   * (shard s belongs to worker s mod N). Absent: read from SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX (see
   * sharding.ts `shardAssignment`), else an ordinary run that writes every shard.
   */
  shardIndex?: number;
  shardCount?: number;
  /** where SLURM_* / JOB_COMPLETION_INDEX / CFGEN_SHARD_COUNT are read (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** sharded runs: when a silent shard claim counts as abandoned (default claims.ts `claimTiming()`) */
  claimTiming?: ClaimTiming;
  progress?: Progress;
  log?: (line: string) => void;
  /** test hook: after each shard's done marker */
  onShardDone?: (method: string, shard: number) => void | Promise<void>;
}

/**
 * Defaults for every option but the per-run ones. The roots are getters, read when the defaults are spread or used,
 * so they honour CFGEN_CORPORA_ROOT / CFGEN_DATA_ROOT as set at that moment (tests set them after import) and never
 * depend on the current folder.
 */
export const GENERATE_DEFAULTS = {
  dataset: 'synth-waterbirds', variants: 1, size: null, seed: 0, workers: 1, splits: ['train'], shardSize: 256,
  strict: false, maxErrorRate: 0.05, format: 'png', force: false, datasetSeed: 0, verify: false, maxPixels: DEFAULT_MAX_PIXELS,
  get corporaRoot(): string { return defaultRoot('corpora'); },
  get dataRoot(): string { return defaultRoot('data'); },
} as const satisfies Partial<GenerateOptions>;

/** One method's corpus after a run. */
export interface MethodSummary {
  name: string;
  dir: string;
  /** null: not finalized by this process (a sharded worker whose corpus still has shards to write) */
  corpusId: string | null;
  /** the corpus's counts once finalized; a sharded worker's own shards otherwise */
  counts: ShardCounts;
  shards: number;
  resumedShards: number;
  /** sharded runs: why the corpus was not finalized here, e.g. "3 of 8 shards done" */
  note?: string;
}

/** What runGenerate did, and the exit status the CLI should return. */
export interface GenerateSummary {
  methods: MethodSummary[];
  counts: ShardCounts;
  /** source rows processed in this run (resumed shards excluded) */
  rowsProcessed: number;
  imagesWritten: number;
  seconds: number;
  errorRate: number;
  exitCode: number;
  exitReason: string | null;
  /** sharded runs: this worker's index and count, and where they came from */
  sharding?: { index: number; count: number; from: string };
}

/** What runGenerate has settled before it takes locks or claims. */
export interface Resolved {
  methods: InfillMethod[];
  parsed: Map<string, Params>;
  source: SourceInfo;
  rows: SourceRow[];
  /** the dataset's corpora folder: one folder per method inside it */
  base: string;
  log: (l: string) => void;
  t0: number;
}

/** The exit status for `total`: 1 with --strict and any error row, or when the error rate exceeds --max-error-rate. */
export function exitStatus(opts: Pick<GenerateOptions, 'strict' | 'maxErrorRate'>, total: ShardCounts): { errorRate: number; exitCode: number; exitReason: string | null } {
  const items = total.ok + total.skipped + total.error;
  const errorRate = items ? total.error / items : 0;
  if (opts.strict && total.error > 0) return { errorRate, exitCode: 1, exitReason: `--strict: ${total.error} error row(s)` };
  if (errorRate > opts.maxErrorRate) {
    return { errorRate, exitCode: 1, exitReason: `error rate ${(errorRate * 100).toFixed(2)}% exceeds --max-error-rate ${(opts.maxErrorRate * 100).toFixed(2)}%` };
  }
  return { errorRate, exitCode: 0, exitReason: null };
}

/** Add `b`'s counts to `a`. */
export function addCounts(a: ShardCounts, b: ShardCounts): ShardCounts {
  for (const k of ['ok', 'skipped', 'error'] as const) a[k] += b[k];
  return a;
}

/** The per-run context every row job gets (the same object, cloned, in every worker thread); methods are added per corpus. */
export function runContext(opts: GenerateOptions, source: SourceInfo): RunContext {
  const size = opts.size ? { width: opts.size, height: opts.size } : null;
  return { root: source.root, seed: opts.seed, size, format: opts.format, methods: {}, maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS };
}
