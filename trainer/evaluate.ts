import * as tf from '@tensorflow/tfjs-core';
import { basename, join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import type { SourceRow } from '../manifests/schema.ts';
import { evalBatches } from './data-eval.ts';
import { loadDatasetIndex } from './data-index.ts';
import { EVAL_DEFAULTS } from './eval-defaults.ts';
import { writeEvalReport, type KeptFrom } from './eval-file.ts';
import {
  accuracy, argmaxRows, groupAccuracy, macroOvrAuc, nextClassShift, softmaxRows,
  waterbirdsAccuracy, type MacroAuc, type NextClassShift, type WaterbirdsAccuracy,
} from './metrics.ts';
import type { Model } from './model.ts';
import type { ValMetric } from './presets.ts';
import { bestCheckpoint } from './run-resume.ts';
import { readRunConfig } from './run-state.ts';
import { evaluateSaliency, type SaliencyOptions, type SaliencyReport } from './saliency-eval.ts';
import { stressTableRows, type StressReport } from './stress-metrics.ts';

export { EVAL_DEFAULTS } from './eval-defaults.ts';
export type { SaliencyReport } from './saliency-eval.ts';

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

/** One validation pass: the selection metric and the figures logged beside it. */
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

/** Accuracy of one test split, and its dataset's own metrics where they apply. */
export interface SplitReport {
  n: number;
  acc: number;
  /** IN-9 test: accuracy per variant */
  variants?: Record<string, { n: number; acc: number }>;
  waterbirds?: WaterbirdsAccuracy;
  auc?: MacroAuc;
}

/** eval.json: a run's test-time results at its best-validation checkpoint. */
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
  /** results this evaluation did not compute, kept from an earlier eval.json (eval-file.ts); absent when none */
  kept?: KeptFrom;
  /** `eval --stress`: scores on the dataset's stress-test corpus (trainer/stress-eval.ts); absent when never run */
  stress?: StressReport;
}

/** How to evaluate: image size and batch, the saliency sample, the seed of its draws. */
export interface EvalOptions extends SaliencyOptions {
  /** parallel image decodes */
  concurrency?: number;
}

/** File-name pairing key of IN-9 test variants: the class and the file name, identical across variants. */
export function variantPairKey(row: SourceRow): string {
  return `${row.label}/${basename(row.path)}`;
}

/** The figures a results table shows for this dataset (the paper's columns), from the split reports. */
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
  const saliency = await evaluateSaliency(model, ds, opts);
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
      // egSamples 0 with EG values: they were kept from an earlier evaluation that drew them.
      if (v.expectedGradients) rows.push([`saliency AUPR ${s}, expected gradients ${r.saliency.egSamples ? `×${r.saliency.egSamples}` : '(earlier evaluation)'}`, pct(v.expectedGradients.mean)]);
    }
  }
  if (r.stress) rows.push(...stressTableRows(r.stress));
  const w = Math.max(...rows.map(([a]) => a.length));
  for (const [a, b] of rows) lines.push(`  ${a.padEnd(w)}  ${b}`);
  if (r.kept) lines.push(`  (kept from an earlier evaluation: ${Object.entries(r.kept).map(([p, k]) => `${p}, best epoch ${k.bestEpoch ?? '?'}`).join('; ')})`);
  return lines.join('\n');
}

/**
 * Evaluate a run at its best-validation checkpoint and write `eval.json` beside it, merged with the one already
 * there (eval-file.ts); returns what was written. The caller initialises the tfjs backend. `loadModel` comes
 * from checkpoint.ts.
 */
export async function evaluateRun(
  runDir: string,
  opts: Partial<EvalOptions> & { corporaRoot?: string; loadModel: (dir: string) => Promise<Model>; stress?: boolean },
): Promise<EvalReport> {
  const cfg = await readRunConfig(runDir);
  // No state.json: evaluated before the first epoch ended.
  const { state, bestDir } = await bestCheckpoint(runDir);
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
      progressEveryMs: opts.progressEveryMs,
    });
    const report: EvalReport = { run: cfg.runId, method: cfg.method.canonical, seed: cfg.seed, checkpoint: 'best', bestEpoch: state?.bestEpoch ?? null, ...base };
    if (opts.stress) {
      // loaded only when asked: it reads the stress corpus and may run the pipeline's CLI to build it
      const { evaluateStress } = await import('./stress-eval.ts');
      report.stress = await evaluateStress(model, {
        corporaRoot: opts.corporaRoot ?? cfg.corporaRoot, dataset: cfg.dataset, adapter: base.adapter, size: base.size,
        batchSize: opts.batchSize ?? EVAL_DEFAULTS.batchSize, concurrency: opts.concurrency, log: opts.log,
      });
    }
    return await writeEvalReport(runDir, report, opts.log);
  } finally {
    model.dispose();
  }
}
