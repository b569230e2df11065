import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import {
  MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, TOOL_VERSION, UserError, manifestDigest, readSourceManifest, sha256Hex,
  stableStringify, writeJsonAtomic, type EvalRow, type ManifestMetadata, type SourceRow,
} from '../../manifests/index.ts';
import { datasetRootOf, defaultRoot, recordedDatasetRoot } from '../../common/paths.ts';
import type { ImageFormat } from '../decode.ts';
import { createProgress, type Progress } from '../generate/progress.ts';
import {
  clearCorpusDir, corpusIdOf, moveLegacyMarkers, partPath, planShards, readShardRows, removeTempFiles, shardState, type DoneMarker, type ShardCounts,
} from '../generate/shards.ts';
import { CORPUS_LOCK, lockCorpora, releaseAll } from '../generate/locks.ts';
import type { WrittenFile } from '../generate/item.ts';
import { processStressRow, type StressContext } from './item.ts';
import { StressPairing, detectAttribute, type SpuriousAttribute } from './pairing.ts';
import { writeEvalShard, stampEvalShards } from './shards.ts';
import { STRESS_VARIANTS, type StressVariant } from './variants.ts';

/**
 * `stress-test`: IN-9-style evaluation variants of a dataset's test images, written as one eval corpus
 *   <corpora>/<dataset>/stress-test/{images/<variant>/…, manifest/part-NNNNN.arrow, state/part-NNNNN.done, corpus.json}
 * deterministic (donor draws from rngFor(seed, source_id, 'stress-test', variant, 'donors'); no other randomness),
 * resumable (the generator's fixed shards and done markers) and checked by `verify` like any corpus.
 */

/** The stress corpus's folder name under `<corpora>/<dataset>/`. */
export const STRESS_FOLDER = 'stress-test';
/** The eval manifest's algorithm version: bump it when the same inputs and seed would give other bytes. */
export const STRESS_ALGORITHM = 1;
/** Splits never used as stress-test bases by default: training and model selection. */
const NOT_TEST = new Set(['train', 'val', 'cis_val']);

/** Everything a stress-test run needs. */
export interface StressOptions {
  dataset: string;
  corporaRoot: string;
  dataRoot: string;
  /** use this source manifest folder (its parent holds the corpora) instead of building/ingesting `dataset` */
  sourceDir?: string;
  /** dataset root for sourceDir (default: the manifest's config.root) */
  sourceRoot?: string;
  /** base splits (default: every split but train and validation) */
  splits?: string[];
  /** variants to write (default: all; attr_flip only when the dataset has a spurious attribute) */
  variants?: StressVariant[];
  /** output side (null: stored size) */
  size: number | null;
  seed: number;
  format: ImageFormat;
  shardSize: number;
  /** rows in flight (decode/encode run on libuv threads) */
  concurrency: number;
  /** donor candidates per donor variant */
  candidates: number;
  force: boolean;
  datasetSeed?: number;
  progress?: Progress;
  log?: (line: string) => void;
  /** test hook: after each shard's done marker */
  onShardDone?: (shard: number) => void | Promise<void>;
}

/** Defaults of every option a caller may leave out; roots are read when used, so env changes apply. */
export const STRESS_DEFAULTS = {
  dataset: 'synth-waterbirds', size: null, seed: 0, format: 'png', shardSize: 256, concurrency: 4, candidates: 8, force: false,
  get corporaRoot(): string { return defaultRoot('corpora'); },
  get dataRoot(): string { return defaultRoot('data'); },
} as const satisfies Partial<StressOptions>;

/** What a stress-test run wrote. */
export interface StressSummary {
  dir: string;
  corpusId: string;
  splits: string[];
  variants: StressVariant[];
  attribute: SpuriousAttribute | null;
  counts: ShardCounts;
  perVariant: Record<string, ShardCounts>;
  shards: number;
  resumedShards: number;
  rowsProcessed: number;
  imagesWritten: number;
  seconds: number;
}

async function loadSource(o: StressOptions, log: (l: string) => void): Promise<{ dir: string; root: string; metadata: ManifestMetadata; rows: SourceRow[] }> {
  let dir = o.sourceDir, root = o.sourceRoot;
  if (!dir) {
    const { ensureSourceManifest } = await import('../datasets/index.ts');
    const ensured = await ensureSourceManifest(o.dataset, { dataRoot: o.dataRoot, corporaRoot: o.corporaRoot, seed: o.datasetSeed, log });
    dir = ensured.dir;
    root = ensured.root;
  }
  const { metadata, rows } = await readSourceManifest(dir);
  root ??= typeof metadata.config.root === 'string' ? datasetRootOf(metadata.config.root) : undefined;
  if (!root) throw new UserError('the source manifest does not say where its dataset lives (metadata.config.root)', { file: dir, fix: 'pass --source-root <dataset folder>' });
  return { dir, root, metadata, rows };
}

/** The rows the stress test builds variants of: ok, annotated, in the base splits; IN-9's own variants left out. */
export function stressBaseRows(rows: readonly SourceRow[], splits: readonly string[]): SourceRow[] {
  return rows.filter((r) => splits.includes(r.split) && r.status === 'ok' && (r.variant === null || r.variant === 'original')
    && (!!r.mask_path || (!!r.boxes && r.boxes.length >= 4)));
}

/** Default base splits: every split of the manifest but train and validation, in first-seen order. */
export function defaultStressSplits(rows: readonly SourceRow[]): string[] {
  return [...new Set(rows.map((r) => r.split))].filter((s) => !NOT_TEST.has(s));
}

/** Called holding the corpus lock: --force empties the folder but for that lock (the folder itself stays). */
async function checkSameConfig(dir: string, configHash: string, force: boolean): Promise<void> {
  if (force) await clearCorpusDir(dir, [CORPUS_LOCK]);
  let old: { config_hash?: string } | null = null;
  try { old = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8')); } catch { /* none yet */ }
  if (old && old.config_hash !== configHash) {
    throw new UserError(`${dir} already holds a stress-test corpus built with another configuration`, {
      file: join(dir, 'corpus.json'), fix: 'pass --force to replace it, or use another --corpora-root',
    });
  }
  await mkdir(dir, { recursive: true });
}

/** Build (or resume) the stress-test corpus of a dataset; see the comment at the top of this file. */
export async function runStressTest(o: StressOptions): Promise<StressSummary> {
  const t0 = Date.now();
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const source = await loadSource(o, log);
  const haveSplits = [...new Set(source.rows.map((r) => r.split))];
  const splits = o.splits?.length ? o.splits : defaultStressSplits(source.rows);
  for (const s of splits) {
    if (!haveSplits.includes(s)) throw new UserError(`split "${s}" is not in the source manifest`, { file: source.dir, fix: `choose --splits among: ${haveSplits.join(', ')}` });
  }
  if (!splits.length) throw new UserError('the dataset has no test split to stress-test', { file: source.dir, fix: `pass --splits (the manifest has: ${haveSplits.join(', ')})` });
  const rows = stressBaseRows(source.rows, splits);
  if (!rows.length) {
    throw new UserError(`no usable row in split(s) ${splits.join(', ')}: the stress test needs images with a segmentation mask or boxes`, { file: source.dir, fix: 'check the dataset\'s masks / boxes (docs/datasets.md)' });
  }
  const attribute = detectAttribute(rows);
  const variants = (o.variants ?? STRESS_VARIANTS.filter((v) => v !== 'attr_flip' || attribute)) as StressVariant[];
  if (variants.includes('attr_flip') && !attribute) {
    throw new UserError('attr_flip needs a spurious attribute (place or location), and this dataset has none', { fix: 'leave attr_flip out of --variants' });
  }
  const sourceDigest = await manifestDigest(source.dir, 'source');
  const dir = join(dirname(resolve(source.dir)), STRESS_FOLDER);
  // the stress corpus is locked like any corpus for the whole run: --force's clearing and the temp-file sweep below
  // would otherwise delete a live run's files
  const locks = await lockCorpora([{ name: STRESS_FOLDER, dir }], log);
  try {
    return await stressLocked(o, { source, rows, splits, variants, attribute, sourceDigest, dir, log, t0 });
  } finally {
    await releaseAll(locks);
  }
}

/** runStressTest's work once the stress corpus folder is locked. */
async function stressLocked(o: StressOptions, r: {
  source: { dir: string; root: string; metadata: ManifestMetadata }; rows: SourceRow[]; splits: string[]; variants: StressVariant[];
  attribute: SpuriousAttribute | null; sourceDigest: string; dir: string; log: (l: string) => void; t0: number;
}): Promise<StressSummary> {
  const { source, rows, splits, variants, attribute, sourceDigest, dir, log, t0 } = r;
  const config = {
    dataset: source.metadata.dataset, method: STRESS_FOLDER, algorithm: STRESS_ALGORITHM, kind: 'eval', variants, attribute,
    size: o.size, seed: o.seed, splits, format: o.format, shard_size: o.shardSize, candidates: o.candidates, tile: 'maxrect',
    source_manifest: basename(source.dir),
  };
  const configHash = sha256Hex(stableStringify({ config, source_digest: sourceDigest, tool_version: TOOL_VERSION }));
  const metadata: ManifestMetadata = {
    format: MANIFEST_FORMAT, format_version: MANIFEST_FORMAT_VERSION, kind: 'eval', dataset: source.metadata.dataset,
    class_names: source.metadata.class_names, tool_version: TOOL_VERSION, seed: o.seed, config, source_digest: sourceDigest,
    dataset_root: recordedDatasetRoot(source.root),
  };
  await checkSameConfig(dir, configHash, o.force);

  const shards = planShards(rows.length, o.shardSize);
  const markers: (DoneMarker | null)[] = [];
  for (const s of shards) {
    const st = await shardState(dir, s.index, configHash);
    if (st.state === 'other-config') throw new UserError(`${dir} holds shards built with another configuration`, { fix: 'pass --force to replace them' });
    if (st.state === 'stale') log(`stress-test: shard ${s.index} will be rebuilt (${st.why})`);
    markers.push(st.state === 'done' ? st.marker : null);
  }
  const resumed = markers.filter(Boolean).length;
  if (resumed < shards.length) {
    // safe only under the corpus lock: no live run owns these temp files
    const n = await removeTempFiles(dir);
    if (n) log(`stress-test: removed ${n} temp file(s) left by an interrupted run`);
  }

  const size = o.size ? { width: o.size, height: o.size } : null;
  const ctx: StressContext = {
    root: resolve(source.root), dir, seed: o.seed, size, format: o.format, variants, attribute,
    pairing: new StressPairing(rows, source.metadata.class_names.length, attribute), candidates: o.candidates,
  };
  const pending = shards.filter((s) => !markers[s.index]);
  const rowsProcessed = pending.reduce((a, s) => a + s.end - s.start, 0);
  const progress = o.progress ?? createProgress();
  const limit = pLimit(Math.max(1, o.concurrency));
  let imagesWritten = 0;
  progress.start(rowsProcessed, `stress-test ${source.metadata.dataset}`);
  try {
    for (const s of pending) {
      const results = await Promise.all(rows.slice(s.start, s.end).map((row) => limit(async () => {
        const r = await processStressRow(row, ctx);
        progress.tick();
        return r;
      })));
      const shardRows: EvalRow[] = results.flatMap((r) => r.rows);
      const files: WrittenFile[] = results.flatMap((r) => r.files);
      imagesWritten += files.length;
      markers[s.index] = await writeEvalShard(dir, s.index, metadata, shardRows, files, configHash);
      await o.onShardDone?.(s.index);
    }
  } finally {
    progress.stop();
  }

  const done = markers as DoneMarker[];
  const counts: ShardCounts = { ok: 0, skipped: 0, error: 0 };
  for (const mk of done) for (const k of ['ok', 'skipped', 'error'] as const) counts[k] += mk.counts[k];
  const hashes = done.map((mk) => mk.content_hash);
  const corpusId = corpusIdOf(TOOL_VERSION, config, sourceDigest, hashes);
  await moveLegacyMarkers(dir, done.length);
  await stampEvalShards(dir, done.length, { ...metadata, corpus_id: corpusId });
  const perVariant = await countByVariant(dir, done.length);
  await writeJsonAtomic(join(dir, 'corpus.json'), {
    corpus_id: corpusId, tool_version: TOOL_VERSION, dataset: source.metadata.dataset, method: STRESS_FOLDER, name: STRESS_FOLDER,
    kind: 'eval', config, config_hash: configHash, source_digest: sourceDigest, shards: done.length, counts, files: counts.ok,
    variants: perVariant, shard_hashes: hashes, dataset_root: metadata.dataset_root,
  });
  return {
    dir, corpusId, splits, variants, attribute, counts, perVariant, shards: done.length, resumedShards: resumed, rowsProcessed,
    imagesWritten, seconds: (Date.now() - t0) / 1000,
  };
}

async function countByVariant(dir: string, shards: number): Promise<Record<string, ShardCounts>> {
  const out: Record<string, ShardCounts> = {};
  for (let i = 0; i < shards; i++) {
    for (const r of (await readShardRows(partPath(dir, i))) as unknown as EvalRow[]) {
      const c = (out[r.variant] ??= { ok: 0, skipped: 0, error: 0 });
      c[r.status as keyof ShardCounts]++;
    }
  }
  return out;
}
