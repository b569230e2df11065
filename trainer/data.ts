import pLimit from 'p-limit';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { PROJECT_ROOT } from '../common/paths.ts';
import { stat } from 'node:fs/promises';
import { manifestDigest, openManifest, readSourceManifest } from '../manifests/reader.ts';
import { UserError } from '../manifests/errors.ts';
import { rngFor } from '../manifests/rng.ts';
import { boxesToMask, loadSegMask, resolveInsideRoot } from '../manifests/masks.ts';
import type { CorpusRow, ManifestMetadata, SourceRow } from '../manifests/schema.ts';
import type { Mask } from '../manifests/pixels.ts';
import {
  applyCropImage, applyCropMask, chooseCrop, decodeResized, objectBox, resizeMask, trainResizeSide, writeNormalised,
} from './augment.ts';
import type { CorpusTerm } from './method.ts';

/**
 * The trainer's data stream (DESIGN §5). Reads the source manifest and the corpus manifests a METHOD needs, joins
 * every original with its own CF and F images by source_id, and yields batches in which each original and its
 * generated images sit in the same step: B originals become up to (1 + #terms)·B images.
 */

/** Splits used for model selection, in order of preference; without any, a held-out slice of train is used. */
export const VAL_SPLITS = ['val', 'cis_val'];
/** Fraction of train held out for validation when the source manifest has no validation split. */
export const HOLDOUT_FRACTION = 0.1;

/** `<corpora>/<dataset>/source`: the dataset's source manifest. */
export function sourceDir(corporaRoot: string, dataset: string): string {
  return join(corporaRoot, dataset, 'source');
}
/** `<corpora>/<dataset>/<folder>`: one generated corpus (images + manifest). */
export function corpusDir(corporaRoot: string, dataset: string, folder: string): string {
  return join(corporaRoot, dataset, folder);
}
/** The manifest folder of a corpus. */
export function corpusManifestDir(corporaRoot: string, dataset: string, folder: string): string {
  return join(corpusDir(corporaRoot, dataset, folder), 'manifest');
}

/** One term's generated images for one original: ok rows only, sorted by variant. */
export interface GeneratedSet {
  term: CorpusTerm;
  rows: CorpusRow[];
}

/** A train original with its generated images, per corpus term of the run. */
export interface TrainExample {
  row: SourceRow;
  /** parallel to the run's corpus terms; rows may be empty (mask empty / covers everything: no CF or F image) */
  generated: GeneratedSet[];
}

/** Everything a run reads of a dataset: its rows by role, joined with the run's corpora. */
export interface DatasetIndex {
  dataset: string;
  /** the source manifest folder, for error messages */
  sourceManifest: string;
  root: string;
  adapter: string;
  classNames: string[];
  metadata: ManifestMetadata;
  terms: CorpusTerm[];
  train: TrainExample[];
  val: SourceRow[];
  /** how the validation rows were chosen, for the run log */
  valSource: string;
  /** every split other than train/val (test; CCT cis_test, trans_test), rows with status ok */
  test: Map<string, SourceRow[]>;
  corpusRoots: Map<string, string>;
  /** counts for the run log: per term, originals with ≥ 1 usable generated image, and rows skipped/errored */
  corpusStats: Record<string, { originalsCovered: number; skipped: number; errors: number; variants: number }>;
  /** corpus_id of each term's corpus (the generator's content id) */
  corpusIds: Record<string, string>;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/**
 * The dataset folder named by a source manifest. A relative config.root is relative to the project folder (where
 * `cfgen dataset` records it from, common/paths.ts); a manifest written elsewhere may be relative to the folder
 * holding its corpora root (a copy of the project's data/ + corpora/ pair), which is tried next. Never the current
 * folder: the same command must find the same data wherever it is run from.
 */
export async function resolveDatasetRoot(root: string, corporaRoot: string): Promise<string | null> {
  if (isAbsolute(root)) return (await exists(root)) ? root : null;
  for (const base of [PROJECT_ROOT, dirname(resolve(corporaRoot))]) {
    const p = resolve(base, root);
    if (await exists(p)) return p;
  }
  return null;
}

/**
 * Corpus folders that cannot be trained from yet: no manifest, or a manifest without its corpus_id (the generator
 * stamps it on every part when the corpus is complete, so an interrupted generation has none).
 */
export async function missingCorpora(corporaRoot: string, dataset: string, folders: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const f of folders) {
    const dir = corpusManifestDir(corporaRoot, dataset, f);
    if (!(await exists(dir))) { missing.push(f); continue; }
    try {
      const m = await openManifest<CorpusRow>(dir);
      if (!m.metadata.corpus_id) missing.push(f);
    } catch {
      missing.push(f);
    }
  }
  return missing;
}

/**
 * Load the source manifest and the corpus manifests of `terms`; join generated rows to their originals.
 * Error rows of the source manifest are left out (they were reported when the dataset was built).
 */
export async function loadDatasetIndex(opts: { corporaRoot: string; dataset: string; terms: readonly CorpusTerm[] }): Promise<DatasetIndex> {
  const { corporaRoot, dataset, terms } = opts;
  const srcDir = sourceDir(corporaRoot, dataset);
  if (!(await exists(srcDir))) {
    throw new UserError(`dataset "${dataset}" has no source manifest`, {
      file: srcDir, fix: `run \`make dataset DATASET=${dataset}\` (or \`npx tsx cfgen.ts dataset ${dataset}\`) first`,
    });
  }
  const { metadata, rows } = await readSourceManifest(srcDir);
  const rawRoot = String(metadata.config?.root ?? '');
  if (!rawRoot) throw new UserError('source manifest metadata has no config.root (the dataset folder)', { file: srcDir, fix: `rebuild it with \`make dataset DATASET=${dataset}\`` });
  const root = await resolveDatasetRoot(rawRoot, corporaRoot);
  if (!root) {
    throw new UserError(`dataset folder "${rawRoot}" (config.root of the source manifest) not found`, {
      file: srcDir, fix: `put the dataset at ${isAbsolute(rawRoot) ? rawRoot : join(PROJECT_ROOT, rawRoot)} (a relative root is relative to the project folder), or rebuild the manifest: make dataset DATASET=${dataset}`,
    });
  }
  const adapter = String(metadata.config?.adapter ?? 'folder');
  const ok = rows.filter((r) => r.status === 'ok');

  const bySplit = new Map<string, SourceRow[]>();
  for (const r of ok) {
    if (!bySplit.has(r.split)) bySplit.set(r.split, []);
    bySplit.get(r.split)!.push(r);
  }
  let trainRows = (bySplit.get('train') ?? []).filter((r) => r.variant === null || r.variant === 'original');
  if (!trainRows.length) throw new UserError(`no usable train rows in dataset "${dataset}"`, { file: srcDir, fix: 'check the dataset build summary for error rows' });
  let val: SourceRow[] = [];
  let valSource = '';
  for (const s of VAL_SPLITS) {
    if (bySplit.get(s)?.length) { val = bySplit.get(s)!; valSource = `split "${s}"`; break; }
  }
  if (!val.length) {
    // Seed-independent, so every seed of an experiment selects on the same images.
    const held = (r: SourceRow): boolean => rngFor('holdout', dataset, r.id).next() < HOLDOUT_FRACTION;
    val = trainRows.filter(held);
    trainRows = trainRows.filter((r) => !held(r));
    valSource = `${Math.round(HOLDOUT_FRACTION * 100)}% of train held out (the dataset has no validation split)`;
  }
  const test = new Map<string, SourceRow[]>();
  for (const [s, rs] of bySplit) if (s !== 'train' && !VAL_SPLITS.includes(s)) test.set(s, rs);

  const corpusRoots = new Map<string, string>();
  const corpusStats: DatasetIndex['corpusStats'] = {};
  const corpusIds: Record<string, string> = {};
  let sourceDigest: string | undefined;
  const joined = new Map<string, CorpusRow[][]>(trainRows.map((r) => [r.id, terms.map(() => [])]));
  for (let t = 0; t < terms.length; t++) {
    const term = terms[t];
    const dir = corpusManifestDir(corporaRoot, dataset, term.folder);
    const m = await openManifest<CorpusRow>(dir);
    if (m.metadata.kind !== 'corpus') throw new UserError(`expected a corpus manifest, found a ${m.metadata.kind} manifest`, { file: m.shards[0] });
    if (m.metadata.dataset !== dataset) {
      throw new UserError(`corpus belongs to dataset "${m.metadata.dataset}", not "${dataset}"`, { file: dir, fix: `regenerate it: make generate DATASET=${dataset} METHODS=${term.folder}` });
    }
    if (!m.metadata.corpus_id) {
      throw new UserError(`corpus ${term.folder} is incomplete (no corpus_id: its generation did not finish)`, { file: dir, fix: `finish it: make generate DATASET=${dataset} METHODS=${term.folder}` });
    }
    if (m.metadata.source_digest && m.metadata.source_digest !== (sourceDigest ??= await manifestDigest(srcDir, 'source'))) {
      throw new UserError(`corpus ${term.folder} was generated from another version of the source manifest`, {
        file: dir, fix: `regenerate it: npx tsx cfgen.ts generate --dataset ${dataset} --methods ${term.folder} --force`,
      });
    }
    corpusIds[term.folder] = m.metadata.corpus_id;
    corpusRoots.set(term.folder, corpusDir(corporaRoot, dataset, term.folder));
    const stats = { originalsCovered: 0, skipped: 0, errors: 0, variants: 0 };
    const variants = new Set<number>();
    for await (const r of m.rows()) {
      if (r.status !== 'ok') { if (r.status === 'error') stats.errors++; else stats.skipped++; continue; }
      if (r.kind !== term.kind) {
        throw new UserError(`row ${r.id} has kind "${r.kind}" in the ${term.folder} corpus (expected "${term.kind}")`, { file: dir, fix: `regenerate it: make generate DATASET=${dataset} METHODS=${term.folder}` });
      }
      const slot = joined.get(r.source_id);
      if (!slot) continue; // an original of another split, or one the source manifest no longer lists as ok
      slot[t].push(r);
      variants.add(r.variant);
    }
    stats.variants = variants.size;
    for (const sets of joined.values()) {
      sets[t].sort((a, b) => a.variant - b.variant);
      if (sets[t].length) stats.originalsCovered++;
    }
    corpusStats[term.folder] = stats;
  }
  const train: TrainExample[] = trainRows.map((row) => ({
    row, generated: terms.map((term, t) => ({ term, rows: joined.get(row.id)![t] })),
  }));
  return { dataset, sourceManifest: srcDir, root, adapter, classNames: metadata.class_names, metadata, terms: [...terms], train, val, valSource, test, corpusRoots, corpusStats, corpusIds };
}

/** The seeded order of the train examples in one epoch: a full permutation, so it mixes across shards. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  rngFor(seed, 'epoch-order', epoch).shuffle(order);
  return order;
}

/** Which generated variant an original uses in an epoch: they take turns (epoch mod the number available). */
export function pickVariant<T>(rows: readonly T[], epoch: number): T | null {
  return rows.length ? rows[epoch % rows.length] : null;
}

/**
 * The mask used for the crop and for Sal/FGSM (DESIGN §1): the segmentation mask where the dataset has one, else
 * the union of the boxes (CCT), else none. `seg` is false when it came from boxes.
 */
export async function objectMaskOf(root: string, row: SourceRow): Promise<{ mask: Mask; seg: boolean } | null> {
  if (row.mask_path) {
    const m = await loadSegMask(root, row);
    if (m) return { mask: m, seg: true };
  }
  if (row.boxes && row.boxes.length >= 4) return { mask: boxesToMask(row.boxes, row.width, row.height), seg: false };
  return null;
}

/** What an image of a batch is: an original, or a CF / F image of one. */
export const ROLE = { orig: 0, cf: 1, f: 2 } as const;

/** One step's images, normalised, originals first; generated images follow and point to their original. */
export interface TrainBatch {
  /** crop side S */
  size: number;
  /** originals, at rows [0, nOrig) */
  nOrig: number;
  /** all images: originals, then each term's generated images, in term order */
  n: number;
  /** [n, S, S, 3] NHWC in [−1, 1] */
  x: Float32Array;
  /** class y of each image's original (a CF image is still labelled y; its loss is the non-y one) */
  labels: Int32Array;
  /** ROLE of each image */
  role: Uint8Array;
  /** index (in this batch) of each image's original */
  parent: Int32Array;
  /** index into the run's corpus terms of each generated image; −1 for originals */
  term: Int16Array;
  ids: string[];
  /** [nOrig, S, S] object mask of the originals after crop and flip (1 = object); zeros where there is none */
  objMask: Float32Array | null;
  /** per original: 1 when its mask exists and has both object and background pixels (usable for Sal / FGSM) */
  maskUsable: Uint8Array;
}

interface LoadedGroup {
  ex: TrainExample;
  orig: Float32Array;
  mask: Uint8Array | null;
  generated: { t: number; row: CorpusRow; px: Float32Array }[];
}

/** How trainBatches cuts and augments an epoch. */
export interface TrainStreamOptions {
  batchSize: number;
  size: number;
  seed: number;
  /** also return the originals' object masks (Sal, FGSM) */
  withMasks: boolean;
  /** parallel decodes (sharp runs them on libuv threads) */
  concurrency?: number;
  /** batches decoded ahead of the consumer */
  prefetch?: number;
  /** read only the first `limit` examples of each epoch's order (tests, --max-steps) */
  limit?: number;
}

/**
 * Decode and augment one original and its generated images. They share one crop and flip: the crop is chosen to
 * overlap the original's object box, which is also where a CF image's hole is, so neither loses its object.
 */
async function loadGroup(index: DatasetIndex, ex: TrainExample, epoch: number, opts: TrainStreamOptions): Promise<LoadedGroup> {
  const S = opts.size;
  const R = trainResizeSide(S);
  const where = { file: index.sourceManifest, row: ex.row.id };
  const file = resolveInsideRoot(index.root, ex.row.path, where);
  const rng = rngFor(opts.seed, 'augment', epoch, ex.row.id);
  const [img, obj] = await Promise.all([decodeResized(file, R, R, where), objectMaskOf(index.root, ex.row)]);
  const big = obj ? resizeMask(obj.mask, R, R) : null;
  const crop = chooseCrop(R, R, S, objectBox(big), rng);
  const orig = new Float32Array(S * S * 3);
  writeNormalised(applyCropImage(img, crop), orig, 0);
  const mask = big ? applyCropMask(big, crop).data : null;
  const generated: LoadedGroup['generated'] = [];
  await Promise.all(ex.generated.map(async (set, t) => {
    const row = pickVariant(set.rows, epoch);
    if (!row || !row.image_path) return;
    const gfile = resolveInsideRoot(index.corpusRoots.get(set.term.folder)!, row.image_path, { file: set.term.folder, row: row.id });
    const gimg = await decodeResized(gfile, R, R, { file: set.term.folder, row: row.id });
    const px = new Float32Array(S * S * 3);
    writeNormalised(applyCropImage(gimg, crop), px, 0);
    generated.push({ t, row, px });
  }));
  generated.sort((a, b) => a.t - b.t);
  return { ex, orig, mask, generated };
}

function assemble(groups: LoadedGroup[], opts: TrainStreamOptions, nTerms: number): TrainBatch {
  const S = opts.size, px = S * S * 3;
  const nOrig = groups.length;
  const extra: { g: number; t: number; row: CorpusRow; px: Float32Array }[] = [];
  for (let t = 0; t < nTerms; t++) groups.forEach((gr, g) => { for (const e of gr.generated) if (e.t === t) extra.push({ g, ...e }); });
  const n = nOrig + extra.length;
  const b: TrainBatch = {
    size: S, nOrig, n, x: new Float32Array(n * px), labels: new Int32Array(n), role: new Uint8Array(n), parent: new Int32Array(n),
    term: new Int16Array(n).fill(-1), ids: [], objMask: opts.withMasks ? new Float32Array(nOrig * S * S) : null, maskUsable: new Uint8Array(nOrig),
  };
  groups.forEach((gr, i) => {
    b.x.set(gr.orig, i * px);
    b.labels[i] = gr.ex.row.label;
    b.role[i] = ROLE.orig;
    b.parent[i] = i;
    b.ids.push(gr.ex.row.id);
    if (gr.mask) {
      let on = 0;
      for (let p = 0; p < gr.mask.length; p++) on += gr.mask[p];
      b.maskUsable[i] = on > 0 && on < gr.mask.length ? 1 : 0;
      if (b.objMask) for (let p = 0; p < gr.mask.length; p++) b.objMask[i * S * S + p] = gr.mask[p];
    }
  });
  extra.forEach((e, j) => {
    const i = nOrig + j;
    b.x.set(e.px, i * px);
    b.labels[i] = groups[e.g].ex.row.label;
    b.role[i] = e.row.kind === 'cf' ? ROLE.cf : ROLE.f;
    b.parent[i] = e.g;
    b.term[i] = e.t;
    b.ids.push(e.row.id);
  });
  return b;
}

/** Steps of an epoch of `nExamples` originals in batches of `batchSize` (the last batch may be short). */
export function stepsPerEpoch(nExamples: number, batchSize: number, limit?: number): number {
  return Math.ceil(Math.min(nExamples, limit ?? Infinity) / batchSize);
}

/**
 * The batches of one epoch, in the seeded order, decoded `prefetch` batches ahead with at most `concurrency`
 * images in flight. Same (seed, epoch) → same batches, whatever the timing.
 */
export async function* trainBatches(index: DatasetIndex, epoch: number, opts: TrainStreamOptions): AsyncGenerator<TrainBatch> {
  const order = epochOrder(index.train.length, opts.seed, epoch);
  const total = Math.min(order.length, opts.limit ?? Infinity);
  const nBatches = Math.ceil(total / opts.batchSize);
  const limit = pLimit(opts.concurrency ?? 8);
  const prefetch = Math.max(1, opts.prefetch ?? 2);
  const start = (k: number): Promise<TrainBatch> => {
    const idx = Array.from(order.subarray(k * opts.batchSize, Math.min(total, (k + 1) * opts.batchSize)));
    return Promise.all(idx.map((i) => limit(() => loadGroup(index, index.train[i], epoch, opts)))).then((gs) => assemble(gs, opts, index.terms.length));
  };
  const queue: Promise<TrainBatch>[] = [];
  let next = 0;
  // A rejected promise parked in the queue would be reported as unhandled before we await it.
  const park = (p: Promise<TrainBatch>): void => { p.catch(() => undefined); queue.push(p); };
  while (next < nBatches && queue.length < prefetch) park(start(next++));
  while (queue.length) {
    const b = await queue.shift()!;
    if (next < nBatches) park(start(next++));
    yield b;
  }
}

/** A batch of eval-preprocessed images (resized to S×S), with masks when asked. */
export interface EvalBatch {
  size: number;
  n: number;
  x: Float32Array;
  labels: Int32Array;
  rows: SourceRow[];
  /** [n, S, S] object masks resized to S×S (any-over), when requested; rows without one are all zero */
  masks: Float32Array | null;
  hasMask: Uint8Array;
}

/** Eval batches: resize to S×S, no crop or flip; masks (when asked) resized the same way. */
export async function* evalBatches(
  root: string, rows: readonly SourceRow[], opts: { size: number; batchSize: number; withMasks?: boolean; concurrency?: number; prefetch?: number },
): AsyncGenerator<EvalBatch> {
  const S = opts.size;
  const limit = pLimit(opts.concurrency ?? 8);
  const nBatches = Math.ceil(rows.length / opts.batchSize);
  const start = async (k: number): Promise<EvalBatch> => {
    const part = rows.slice(k * opts.batchSize, (k + 1) * opts.batchSize);
    const b: EvalBatch = {
      size: S, n: part.length, x: new Float32Array(part.length * S * S * 3), labels: new Int32Array(part.length), rows: part,
      masks: opts.withMasks ? new Float32Array(part.length * S * S) : null, hasMask: new Uint8Array(part.length),
    };
    await Promise.all(part.map((row, i) => limit(async () => {
      const where = { file: 'source manifest', row: row.id };
      const img = await decodeResized(resolveInsideRoot(root, row.path, where), S, S, where);
      writeNormalised(img, b.x, i * S * S * 3);
      b.labels[i] = row.label;
      if (b.masks) {
        const obj = await objectMaskOf(root, row);
        if (obj) {
          const m = resizeMask(obj.mask, S, S);
          b.hasMask[i] = 1;
          for (let p = 0; p < S * S; p++) b.masks[i * S * S + p] = m.data[p];
        }
      }
    })));
    return b;
  };
  const queue: Promise<EvalBatch>[] = [];
  let next = 0;
  const park = (p: Promise<EvalBatch>): void => { p.catch(() => undefined); queue.push(p); };
  while (next < nBatches && queue.length < Math.max(1, opts.prefetch ?? 2)) park(start(next++));
  while (queue.length) {
    const b = await queue.shift()!;
    if (next < nBatches) park(start(next++));
    yield b;
  }
}
