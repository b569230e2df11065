import * as tf from '@tensorflow/tfjs-core';
import { basename, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { UserError } from '../manifests/errors.ts';
import { writeJsonAtomic } from '../manifests/io.ts';
import { rngFor } from '../manifests/rng.ts';
import type { SourceRow } from '../manifests/schema.ts';
import { evalBatches, loadDatasetIndex } from './data.ts';
import {
  accuracy, argmaxRows, groupAccuracy, macroOvrAuc, nextClassShift, pixelImportance, saliencyAupr, softmaxRows,
  waterbirdsAccuracy, type MacroAuc, type NextClassShift, type SaliencyAupr, type WaterbirdsAccuracy,
} from './metrics.ts';
import { expectedGradients, inputGradient } from './attribution.ts';
import type { Model } from './model.ts';
import type { RunConfig } from './train.ts';
import type { ValMetric } from './presets.ts';

/**
 * Test-time evaluation (DESIGN §7) at the best-validation checkpoint: accuracy per split and variant, the dataset's
 * own metrics (Waterbirds Original/Flip/worst-group, IN-9 variants and next-class shift, CCT macro OvR AUC), and
 * saliency AUPR by input gradient and by expected gradients.
 */

/** Logits [rows, K] for eval-preprocessed images (resize to S×S). */
export async function predictLogits(
  model: Model, root: string, rows: readonly SourceRow[], opts: { size: number; batchSize: number; concurrency?: number },
): Promise<Float32Array> {
  const k = model.config.numClasses;
  const out = new Float32Array(rows.length * k);
  let at = 0;
  for await (const b of evalBatches(root, rows, { size: opts.size, batchSize: opts.batchSize, concurrency: opts.concurrency })) {
    const logits = tf.tidy(() => model.apply(tf.tensor4d(b.x, [b.n, b.size, b.size, 3])));
    out.set(await logits.data() as Float32Array, at * k);
    logits.dispose();
    at += b.n;
  }
  return out;
}

export interface ValResult {
  metric: number;
  metricName: ValMetric;
  acc: number;
  worstGroup: number;
  auc: number;
  loss: number;
  n: number;
}

/** Mean cross-entropy of logits [n, k] (for the log; selection uses the metric). */
export function meanCrossEntropy(logits: ArrayLike<number>, labels: ArrayLike<number>, k: number): number {
  const p = softmaxRows(logits, k);
  let s = 0;
  for (let i = 0; i < labels.length; i++) s -= Math.log(Math.max(p[i * k + labels[i]], 1e-12));
  return labels.length ? s / labels.length : NaN;
}

/** The validation metric from logits: accuracy, worst-group accuracy (by the `group` column) or macro OvR AUC. */
export function validationResult(logits: Float32Array, rows: readonly SourceRow[], k: number, metricName: ValMetric): ValResult {
  const labels = Int32Array.from(rows, (r) => r.label);
  const pred = argmaxRows(logits, k);
  const acc = accuracy(pred, labels);
  const wg = groupAccuracy(pred, labels, rows.map((r) => r.group ?? `y=${r.label}`)).worst;
  const auc = metricName === 'auc' ? macroOvrAuc(logits, k, labels).auc : NaN;
  const metric = metricName === 'acc' ? acc : metricName === 'worst-group' ? wg : auc;
  return { metric, metricName, acc, worstGroup: wg, auc, loss: meanCrossEntropy(logits, labels, k), n: rows.length };
}

export interface SplitReport {
  n: number;
  acc: number;
  /** IN-9 test: accuracy per variant */
  variants?: Record<string, { n: number; acc: number }>;
  waterbirds?: WaterbirdsAccuracy;
  auc?: MacroAuc;
}

export interface SaliencyReport {
  /** subset name (e.g. test/original, test/flip, cis_test) → AUPR by each attribution */
  subsets: Record<string, { inputGradient: Omit<SaliencyAupr, 'perImage'>; expectedGradients: Omit<SaliencyAupr, 'perImage'> | null }>;
  imagesPerSubset: number;
  egSamples: number;
}

export interface EvalReport {
  run: string | null;
  dataset: string;
  adapter: string;
  method: string | null;
  seed: number | null;
  checkpoint: string;
  bestEpoch: number | null;
  size: number;
  classNames: string[];
  splits: Record<string, SplitReport>;
  nextClassShift: NextClassShift | null;
  saliency: SaliencyReport | null;
  /** the numbers a results table shows for this dataset (fractions, not percent) */
  headline: Record<string, number>;
}

export interface EvalOptions {
  size: number;
  batchSize: number;
  /** images per saliency subset (seeded sample of those with a mask); 0 skips saliency */
  auprImages: number;
  /** Monte-Carlo draws of expected gradients; 0 computes the input gradient only */
  egSamples: number;
  seed: number;
  /** parallel image decodes */
  concurrency?: number;
  log?: (line: string) => void;
}

export const EVAL_DEFAULTS = { batchSize: 64, auprImages: 200, egSamples: 16 } as const;

/** File-name pairing key of IN-9 test variants: the class and the file name, identical across variants. */
export function variantPairKey(row: SourceRow): string {
  return `${row.label}/${basename(row.path)}`;
}

function pick<T>(items: readonly T[], n: number, seed: number | string): T[] {
  if (items.length <= n) return [...items];
  const idx = Array.from({ length: items.length }, (_, i) => i);
  rngFor('aupr-subset', seed).shuffle(idx);
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => items[i]);
}

async function saliencyOf(model: Model, root: string, name: string, rows: readonly SourceRow[], pool: readonly SourceRow[], opts: EvalOptions): Promise<SaliencyReport['subsets'][string]> {
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
      const e = expectedGradients(forward, x, b.labels, k, baselines, { samples: opts.egSamples, seed: `${opts.seed}/${name}/${batchNo}` });
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

export function headlineOf(adapter: string, splits: Record<string, SplitReport>, shift: NextClassShift | null): Record<string, number> {
  const h: Record<string, number> = {};
  const test = splits.test;
  if (test?.waterbirds) {
    h.Original = test.waterbirds.original;
    h.Flip = test.waterbirds.flip;
    h['Worst-group'] = test.waterbirds.worstGroup;
  } else if (test?.variants) {
    const names: Record<string, string> = { original: 'Original', mixed_same: 'Mixed-Same', mixed_rand: 'Mixed-Rand', mixed_next: 'Mixed-Next', only_fg: 'Only-FG', no_fg: 'No-FG' };
    for (const [v, label] of Object.entries(names)) if (test.variants[v]) h[label] = test.variants[v].acc;
    if (shift) h['Next-class shift'] = shift.shift;
  } else if (adapter === 'cct' || splits.cis_test?.auc || splits.trans_test?.auc) {
    for (const [s, r] of Object.entries(splits)) if (r.auc) h[`${s} AUC`] = r.auc.auc;
  } else {
    for (const [s, r] of Object.entries(splits)) h[`${s} acc`] = r.acc;
  }
  return h;
}

/** Evaluate a model on every test split of a dataset. */
export async function evaluateModel(
  model: Model,
  ds: { dataset: string; root: string; adapter: string; classNames: string[]; test: Map<string, SourceRow[]> },
  opts: EvalOptions,
): Promise<Omit<EvalReport, 'run' | 'method' | 'seed' | 'checkpoint' | 'bestEpoch'>> {
  const k = model.config.numClasses;
  const log = opts.log ?? (() => undefined);
  const splits: Record<string, SplitReport> = {};
  let shift: NextClassShift | null = null;
  for (const [split, rows] of ds.test) {
    const t0 = Date.now();
    const logits = await predictLogits(model, ds.root, rows, opts);
    const labels = Int32Array.from(rows, (r) => r.label);
    const pred = argmaxRows(logits, k);
    const rep: SplitReport = { n: rows.length, acc: accuracy(pred, labels) };
    if (rows.some((r) => r.variant)) {
      rep.variants = {};
      for (const v of [...new Set(rows.map((r) => r.variant ?? '(none)'))].sort()) {
        const idx = rows.flatMap((r, i) => ((r.variant ?? '(none)') === v ? [i] : []));
        rep.variants[v] = { n: idx.length, acc: accuracy(idx.map((i) => pred[i]), idx.map((i) => labels[i])) };
      }
      const byVariant = (v: string) => {
        const idx = rows.flatMap((r, i) => (r.variant === v ? [i] : []));
        const probs = softmaxRows(idx.flatMap((i) => Array.from(logits.subarray(i * k, (i + 1) * k))), k);
        return { keys: idx.map((i) => variantPairKey(rows[i])), labels: idx.map((i) => labels[i]), probs };
      };
      if (rows.some((r) => r.variant === 'original') && rows.some((r) => r.variant === 'mixed_next')) {
        shift = nextClassShift(byVariant('original'), byVariant('mixed_next'), k);
      }
    }
    if (ds.adapter === 'waterbirds' && rows.every((r) => r.place !== null)) {
      rep.waterbirds = waterbirdsAccuracy(pred, labels, rows.map((r) => r.place!));
    }
    if (ds.adapter === 'cct') rep.auc = macroOvrAuc(logits, k, labels);
    splits[split] = rep;
    log(`eval ${split}: ${rows.length} images, acc ${(100 * rep.acc).toFixed(1)}% (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  let saliency: SaliencyReport | null = null;
  if (opts.auprImages > 0) {
    saliency = { subsets: {}, imagesPerSubset: opts.auprImages, egSamples: opts.egSamples };
    for (const sub of saliencySubsets(ds.adapter, ds.test)) {
      const t0 = Date.now();
      const rows = pick(sub.rows, opts.auprImages, `${opts.seed}/${sub.name}`);
      saliency.subsets[sub.name] = await saliencyOf(model, ds.root, sub.name, rows, sub.pool, opts);
      log(`saliency ${sub.name}: ${rows.length} images (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  }
  return {
    dataset: ds.dataset, adapter: ds.adapter, size: opts.size, classNames: ds.classNames, splits, nextClassShift: shift, saliency,
    headline: headlineOf(ds.adapter, splits, shift),
  };
}

const pct = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? 'n/a' : (100 * v).toFixed(1));

/** A plain-text table of an eval report. */
export function formatEvalTable(r: EvalReport): string {
  const lines: string[] = [];
  lines.push(`run ${r.run ?? '(none)'}  dataset ${r.dataset}  method ${r.method ?? '?'}  seed ${r.seed ?? '?'}  checkpoint ${r.checkpoint}${r.bestEpoch !== null ? ` (epoch ${r.bestEpoch})` : ''}`);
  const rows: [string, string][] = [];
  for (const [name, v] of Object.entries(r.headline)) rows.push([name, name === 'Next-class shift' ? `${(100 * v).toFixed(2)} pts` : pct(v)]);
  for (const [s, sp] of Object.entries(r.splits)) {
    rows.push([`${s} accuracy (n=${sp.n})`, pct(sp.acc)]);
    if (sp.waterbirds) for (const [g, ga] of Object.entries(sp.waterbirds.groups)) rows.push([`  ${s} group ${g} (n=${ga.n})`, pct(ga.acc)]);
    if (sp.variants) for (const [v, va] of Object.entries(sp.variants)) rows.push([`  ${s} ${v} (n=${va.n})`, pct(va.acc)]);
    if (sp.auc) rows.push([`  ${s} macro OvR AUC${sp.auc.dropped.length ? ` (dropped classes ${sp.auc.dropped.join(',')})` : ''}`, pct(sp.auc.auc)]);
  }
  if (r.nextClassShift) rows.push([`next-class prob. Original → Mixed-Next (n=${r.nextClassShift.n})`, `${pct(r.nextClassShift.meanOriginal)} → ${pct(r.nextClassShift.meanMixedNext)}`]);
  if (r.saliency) {
    for (const [s, v] of Object.entries(r.saliency.subsets)) {
      rows.push([`saliency AUPR ${s}, input gradient (n=${v.inputGradient.n})`, pct(v.inputGradient.mean)]);
      if (v.expectedGradients) rows.push([`saliency AUPR ${s}, expected gradients ×${r.saliency.egSamples}`, pct(v.expectedGradients.mean)]);
    }
  }
  const w = Math.max(...rows.map(([a]) => a.length));
  for (const [a, b] of rows) lines.push(`  ${a.padEnd(w)}  ${b}`);
  return lines.join('\n');
}

export async function readRunConfig(runDir: string): Promise<RunConfig> {
  try {
    return JSON.parse(await readFile(join(runDir, 'config.json'), 'utf8')) as RunConfig;
  } catch {
    throw new UserError('not a training run (no readable config.json)', { file: runDir, fix: 'give --run the id of a folder under the runs root that `train` wrote' });
  }
}

/**
 * Evaluate a run at its best-validation checkpoint and write `eval.json` beside it. The caller initialises the
 * tfjs backend. `loadModel` comes from checkpoint.ts.
 */
export async function evaluateRun(
  runDir: string,
  opts: Partial<EvalOptions> & { corporaRoot?: string; loadModel: (dir: string) => Promise<Model> },
): Promise<EvalReport> {
  const cfg = await readRunConfig(runDir);
  let state: { bestEpoch?: number | null } = {};
  try { state = JSON.parse(await readFile(join(runDir, 'state.json'), 'utf8')); } catch { /* evaluated before the first epoch ended */ }
  const bestDir = join(runDir, 'best');
  const model = await opts.loadModel(bestDir).catch((e: unknown) => {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot load the best checkpoint (${(e as Error).message})`, { file: bestDir, fix: 'train the run until at least one epoch has finished' });
  });
  try {
    const index = await loadDatasetIndex({ corporaRoot: opts.corporaRoot ?? cfg.corporaRoot, dataset: cfg.dataset, terms: [] });
    const base = await evaluateModel(model, index, {
      size: opts.size ?? cfg.hyper.size,
      batchSize: opts.batchSize ?? EVAL_DEFAULTS.batchSize,
      auprImages: opts.auprImages ?? EVAL_DEFAULTS.auprImages,
      egSamples: opts.egSamples ?? EVAL_DEFAULTS.egSamples,
      seed: opts.seed ?? cfg.seed,
      concurrency: opts.concurrency,
      log: opts.log,
    });
    const report: EvalReport = { run: cfg.runId, method: cfg.method.canonical, seed: cfg.seed, checkpoint: 'best', bestEpoch: state.bestEpoch ?? null, ...base };
    await writeJsonAtomic(join(runDir, 'eval.json'), report);
    return report;
  } finally {
    model.dispose();
  }
}
