import pLimit from 'p-limit';
import { rngFor } from '../manifests/rng.ts';
import { resolveInsideRoot } from '../manifests/masks.ts';
import type { CorpusRow } from '../manifests/schema.ts';
import {
  applyCropImage, applyCropMask, chooseCrop, decodeResized, objectBox, resizeMask, trainResizeSide, writeNormalised,
} from './augment.ts';
import { objectMaskOf } from './data-masks.ts';
import type { DatasetIndex, TrainExample } from './data-index.ts';

/**
 * The train stream (DESIGN §5): every original is yielded with its own CF and F images in the same step, so B
 * originals become up to (1 + #terms)·B images, decoded and augmented ahead of the trainer.
 */

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
