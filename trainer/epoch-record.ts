import type { ValResult } from './evaluate.ts';
import type { StepStats } from './step.ts';

/** One epoch's figures: summed over its steps, then written as a metrics.jsonl line and a log line. */

/** Running sums over an epoch's steps (loss terms are sums over images; divide by the image counts). */
export class EpochSums {
  total = 0; ce = 0; cf = 0; f = 0; fgsm = 0; sal = 0;
  images = 0; orig = 0; cfN = 0; fN = 0; fgsmN = 0; salN = 0;
  gradNorm = 0; clipped = 0; skipped = 0; steps = 0;

  /** Add one step's stats. */
  add(st: StepStats): void {
    this.steps++;
    this.total += st.total * st.nImages;
    this.ce += st.terms.ce; this.cf += st.terms.cf; this.f += st.terms.f; this.fgsm += st.terms.fgsm; this.sal += st.terms.sal;
    this.images += st.nImages; this.orig += st.counts.orig; this.cfN += st.counts.cf; this.fN += st.counts.f; this.fgsmN += st.counts.fgsm; this.salN += st.counts.sal;
    // A skipped step's norm is not finite; it would make the epoch's mean NaN.
    this.gradNorm += st.skipped ? 0 : st.gradNorm;
    if (st.clipped) this.clipped++;
    if (st.skipped) this.skipped++;
  }
}

/** The metrics.jsonl record of an epoch; its key order is the file format. */
export interface EpochRecord {
  epoch: number; step: number; lr: number; backend: string; workers: number;
  train: {
    loss: number | null; ce: number | null; cf: number | null; f: number | null; fgsm: number | null; sal: number | null;
    images: number; originals: number; cf_images: number; f_images: number; fgsm_images: number;
    grad_norm: number | null; clipped_steps: number; skipped_steps: number; steps: number;
  };
  val: { metric: number; metric_name: string; acc: number; worst_group: number; auc: number | null; loss: number; n: number };
  best: boolean;
  images_per_s: number;
  compute_images_per_s: number | null;
  seconds: { train: number; val: number };
  time: string;
}

/** Build an epoch's record from its sums, its validation result and its timings. */
export function epochRecord(
  at: { epoch: number; step: number; lr: number; backend: string; workers: number },
  sums: EpochSums, val: ValResult, improved: boolean, t: { trainSec: number; valSec: number; computeMs: number },
): EpochRecord {
  const per = (s: number, n: number): number | null => (n ? s / n : null);
  return {
    epoch: at.epoch, step: at.step, lr: at.lr, backend: at.backend, workers: at.workers,
    train: {
      loss: per(sums.total, sums.images), ce: per(sums.ce, sums.orig), cf: per(sums.cf, sums.cfN), f: per(sums.f, sums.fN),
      fgsm: per(sums.fgsm, sums.fgsmN), sal: per(sums.sal, sums.salN),
      images: sums.images, originals: sums.orig, cf_images: sums.cfN, f_images: sums.fN, fgsm_images: sums.fgsmN,
      grad_norm: per(sums.gradNorm, sums.steps - sums.skipped), clipped_steps: sums.clipped, skipped_steps: sums.skipped, steps: sums.steps,
    },
    val: { metric: val.metric, metric_name: val.metricName, acc: val.acc, worst_group: val.worstGroup, auc: Number.isNaN(val.auc) ? null : val.auc, loss: val.loss, n: val.n },
    best: improved,
    images_per_s: sums.images / t.trainSec,
    compute_images_per_s: t.computeMs ? sums.images / (t.computeMs / 1000) : null,
    seconds: { train: t.trainSec, val: t.valSec },
    time: new Date().toISOString(),
  };
}

/** The log line of an epoch: losses by term, the validation metric, speed, and why the run stops if it does. */
export function epochLogLine(label: string, r: EpochRecord, valMetric: string, stop: string | null): string {
  const tr = r.train;
  const terms = (tr.cf !== null ? `, cf ${tr.cf.toFixed(4)}` : '') + (tr.f !== null ? `, f ${tr.f.toFixed(4)}` : '')
    + (tr.fgsm !== null ? `, fgsm ${tr.fgsm.toFixed(4)}` : '') + (tr.sal !== null ? `, sal ${tr.sal.toFixed(5)}` : '');
  return `${label}: loss ${tr.loss?.toFixed(4)} (ce ${tr.ce?.toFixed(4)}${terms}), val ${valMetric} ${(100 * r.val.metric).toFixed(1)}%${r.best ? ' *best*' : ''}, `
    + `lr ${r.lr.toPrecision(3)}, ${r.images_per_s.toFixed(0)} img/s, ${r.seconds.train.toFixed(0)} s${stop ? ` — stop: ${stop}` : ''}`;
}
