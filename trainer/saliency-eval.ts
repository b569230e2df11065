import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../manifests/rng.ts';
import type { SourceRow } from '../manifests/schema.ts';
import { expectedGradients, inputGradient } from './attribution.ts';
import { evalBatches } from './data-eval.ts';
import { pixelImportance, saliencyAupr, type SaliencyAupr } from './metrics.ts';
import type { Model } from './model.ts';

/**
 * Saliency AUPR at test time (DESIGN §7): how much of a model's input gradient (and expected gradients) lies on
 * the object, per subset the paper reports. A pass takes minutes on a real model, so it reports its progress.
 */

/** The saliency part of an eval report. */
export interface SaliencyReport {
  /** subset name (e.g. test/original, test/flip, cis_test) → AUPR by each attribution */
  subsets: Record<string, { inputGradient: Omit<SaliencyAupr, 'perImage'>; expectedGradients: Omit<SaliencyAupr, 'perImage'> | null }>;
  imagesPerSubset: number;
  egSamples: number;
}

/** What a saliency pass needs of the evaluation's options. */
export interface SaliencyOptions {
  size: number;
  batchSize: number;
  /** images per subset (seeded sample of those with a mask); 0 skips saliency */
  auprImages: number;
  /** Monte-Carlo draws of expected gradients; 0 computes the input gradient only */
  egSamples: number;
  seed: number;
  log?: (line: string) => void;
  /** least time between two progress lines of a pass (default 10 s) */
  progressEveryMs?: number;
}

/** A seeded sample of `n` items, in their original order. */
export function pick<T>(items: readonly T[], n: number, seed: number | string): T[] {
  if (items.length <= n) return [...items];
  const idx = Array.from({ length: items.length }, (_, i) => i);
  rngFor('aupr-subset', seed).shuffle(idx);
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => items[i]);
}

/** A logger that lets a line through at most every `everyMs`. */
function ticker(log: (l: string) => void, everyMs: number): (line: () => string) => void {
  let last = Date.now();
  return (line) => {
    if (Date.now() - last < everyMs) return;
    last = Date.now();
    log(line());
  };
}

async function saliencyOf(model: Model, root: string, name: string, rows: readonly SourceRow[], pool: readonly SourceRow[], opts: SaliencyOptions): Promise<SaliencyReport['subsets'][string]> {
  const k = model.config.numClasses;
  const S = opts.size;
  const forward = (x: tf.Tensor4D): tf.Tensor2D => model.apply(x);
  let baselines: tf.Tensor4D | null = null;
  if (opts.egSamples > 0) {
    const parts: Float32Array[] = [];
    for await (const b of evalBatches(root, pick(pool, 32, `${opts.seed}/${name}/pool`), { size: S, batchSize: 32 })) parts.push(b.x);
    const flat = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) { flat.set(p, o); o += p.length; }
    baselines = tf.tensor4d(flat, [flat.length / (S * S * 3), S, S, 3]);
  }
  // Progress between expected-gradient draws too: one batch of draws can take longer than the interval.
  const tick = ticker(opts.log ?? (() => undefined), opts.progressEveryMs ?? 10_000);
  let done = 0;
  const ig: { importance: Float64Array; mask: Float32Array }[] = [];
  const eg: { importance: Float64Array; mask: Float32Array }[] = [];
  let batchNo = 0;
  for await (const b of evalBatches(root, rows, { size: S, batchSize: Math.min(opts.batchSize, 32), withMasks: true })) {
    const x = tf.tensor4d(b.x, [b.n, S, S, 3]);
    const g = inputGradient(forward, x, b.labels, k);
    const gv = await g.data();
    g.dispose();
    let ev: Float32Array | null = null;
    if (baselines) {
      const onSample = (s: number): void => tick(() => `saliency ${name}: ${done}/${rows.length} images (expected gradients of the next ${b.n}: draw ${s}/${opts.egSamples})`);
      const e = expectedGradients(forward, x, b.labels, k, baselines, { samples: opts.egSamples, seed: `${opts.seed}/${name}/${batchNo}`, onSample });
      ev = await e.data() as Float32Array;
      e.dispose();
    }
    x.dispose();
    const px = S * S * 3;
    for (let i = 0; i < b.n; i++) {
      if (!b.hasMask[i]) continue;
      const mask = b.masks!.subarray(i * S * S, (i + 1) * S * S);
      ig.push({ importance: pixelImportance(gv.subarray(i * px, (i + 1) * px)), mask });
      if (ev) eg.push({ importance: pixelImportance(ev.subarray(i * px, (i + 1) * px)), mask });
    }
    batchNo++;
    done += b.n;
    tick(() => `saliency ${name}: ${done}/${rows.length} images`);
  }
  baselines?.dispose();
  const strip = (r: SaliencyAupr): Omit<SaliencyAupr, 'perImage'> => ({ mean: r.mean, n: r.n, skipped: r.skipped });
  return { inputGradient: strip(saliencyAupr(ig)), expectedGradients: baselines ? strip(saliencyAupr(eg)) : null };
}

/** The saliency subsets of a dataset: the ones the paper reports (Tables 2, 5, 7), else one per test split. */
function saliencySubsets(adapter: string, test: Map<string, SourceRow[]>): { name: string; rows: SourceRow[]; pool: SourceRow[] }[] {
  const out: { name: string; rows: SourceRow[]; pool: SourceRow[] }[] = [];
  for (const [split, all] of test) {
    const rows = all.filter((r) => r.mask_path || (r.boxes && r.boxes.length >= 4));
    if (!rows.length) continue;
    if (adapter === 'waterbirds' && rows.every((r) => r.place !== null)) {
      out.push({ name: `${split}/original`, rows: rows.filter((r) => r.label === r.place), pool: all });
      out.push({ name: `${split}/flip`, rows: rows.filter((r) => r.label !== r.place), pool: all });
    } else if (rows.some((r) => r.variant)) {
      for (const v of ['original', 'mixed_next']) {
        const vr = rows.filter((r) => r.variant === v);
        if (vr.length) out.push({ name: `${split}/${v}`, rows: vr, pool: all.filter((r) => r.variant === v) });
      }
    } else out.push({ name: split, rows, pool: all });
  }
  return out;
}

/** Saliency AUPR of every subset of a dataset's test splits; null when `auprImages` is 0. */
export async function evaluateSaliency(
  model: Model, ds: { root: string; adapter: string; test: Map<string, SourceRow[]> }, opts: SaliencyOptions,
): Promise<SaliencyReport | null> {
  if (opts.auprImages <= 0) return null;
  const log = opts.log ?? (() => undefined);
  const saliency: SaliencyReport = { subsets: {}, imagesPerSubset: opts.auprImages, egSamples: opts.egSamples };
  for (const sub of saliencySubsets(ds.adapter, ds.test)) {
    const t0 = Date.now();
    const rows = pick(sub.rows, opts.auprImages, `${opts.seed}/${sub.name}`);
    saliency.subsets[sub.name] = await saliencyOf(model, ds.root, sub.name, rows, sub.pool, opts);
    log(`saliency ${sub.name}: ${rows.length} images (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return saliency;
}
