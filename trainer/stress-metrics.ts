import type { EvalRow } from '../manifests/schema.ts';
import {
  accuracy, argmaxRows, groupAccuracy, macroOvrAuc, nextClassShift, softmaxRows, type NextClassShift,
} from './metrics.ts';

/**
 * Scores on a stress-test corpus (docs/stress-test.md), as pure functions of the eval rows and the model's logits:
 * accuracy per variant, Xiao et al.'s BG-gap (Mixed-Same − Mixed-Rand), the next-class shift of the paper's Table 3
 * (mean p((y + 1) mod K) on Mixed-Next minus on Original, paired by source image, so the foregrounds are identical),
 * and worst-group accuracy where the rows carry groups (Waterbirds: label × place of the background shown).
 */

/** One variant's scores. */
export interface StressVariantScore {
  n: number;
  acc: number;
  /** lowest accuracy over the (y, place) groups, when the variant's rows all have a place */
  worstGroup?: number;
  groups?: Record<string, { n: number; acc: number }>;
  /** macro one-vs-rest AUC on logits (CCT's metric), when asked */
  auc?: number;
}

/** One split of the stress test. */
export interface StressSplitScore {
  variants: Record<string, StressVariantScore>;
  /** accuracy on mixed_same minus on mixed_rand (Xiao et al.); null without both */
  bgGap: number | null;
  nextClassShift: NextClassShift | null;
}

/** eval.json's `stress` key. */
export interface StressReport {
  /** the corpus scored, relative to the corpora root, and its id */
  corpus: string;
  corpusId: string;
  size: number;
  splits: Record<string, StressSplitScore>;
  /** the results-table figures of the main split (fractions): one per variant, worst-group, BG-gap, next-class shift */
  headline: Record<string, number>;
}

function indexBy<T>(n: number, keep: (i: number) => boolean, f: (i: number) => T): T[] {
  const out: T[] = [];
  for (let i = 0; i < n; i++) if (keep(i)) out.push(f(i));
  return out;
}

/**
 * Scores per split and variant. `logits` is [rows, k] row-major, in the order of `rows` (ok rows only).
 * `withAuc` adds macro OvR AUC per variant (CCT).
 */
export function stressScores(rows: readonly EvalRow[], logits: ArrayLike<number>, k: number, opts: { withAuc?: boolean } = {}): Record<string, StressSplitScore> {
  if (logits.length !== rows.length * k) throw new Error(`stressScores: ${logits.length} logits for ${rows.length} rows × ${k} classes`);
  const pred = argmaxRows(logits, k);
  const labels = Int32Array.from(rows, (r) => r.label);
  const out: Record<string, StressSplitScore> = {};
  for (const split of [...new Set(rows.map((r) => r.split))]) {
    const variants: Record<string, StressVariantScore> = {};
    const inVariant = (v: string) => indexBy(rows.length, (i) => rows[i].split === split && rows[i].variant === v, (i) => i);
    for (const v of [...new Set(rows.filter((r) => r.split === split).map((r) => r.variant))]) {
      const idx = inVariant(v);
      const s: StressVariantScore = { n: idx.length, acc: accuracy(idx.map((i) => pred[i]), idx.map((i) => labels[i])) };
      if (idx.every((i) => rows[i].place !== null)) {
        const g = groupAccuracy(idx.map((i) => pred[i]), idx.map((i) => labels[i]), idx.map((i) => `y=${rows[i].label},place=${rows[i].place}`));
        s.worstGroup = g.worst;
        s.groups = g.groups;
      }
      if (opts.withAuc) s.auc = macroOvrAuc(idx.flatMap((i) => Array.from({ length: k }, (_, c) => logits[i * k + c])), k, idx.map((i) => labels[i])).auc;
      variants[v] = s;
    }
    const probsOf = (v: string) => {
      const idx = inVariant(v);
      const probs = softmaxRows(idx.flatMap((i) => Array.from({ length: k }, (_, c) => logits[i * k + c])), k);
      return { keys: idx.map((i) => rows[i].source_id), labels: idx.map((i) => labels[i]), probs };
    };
    out[split] = {
      variants,
      bgGap: variants.mixed_same && variants.mixed_rand ? variants.mixed_same.acc - variants.mixed_rand.acc : null,
      nextClassShift: variants.original && variants.mixed_next ? nextClassShift(probsOf('original'), probsOf('mixed_next'), k) : null,
    };
  }
  return out;
}

/** The split a results table shows: `test` when there is one, else the first. */
export function mainStressSplit(splits: Record<string, StressSplitScore>): string | null {
  const names = Object.keys(splits);
  return names.includes('test') ? 'test' : names[0] ?? null;
}

/**
 * Headline figures of the main split: `stress <variant>` accuracies, `stress worst-group`, `stress BG-gap` and
 * `stress next-class shift` (prefixed, so they never collide with IN-9's own headline `Next-class shift`).
 */
export function stressHeadline(splits: Record<string, StressSplitScore>): Record<string, number> {
  const main = mainStressSplit(splits);
  if (!main) return {};
  const s = splits[main];
  const h: Record<string, number> = {};
  for (const [v, sc] of Object.entries(s.variants)) h[`stress ${v}`] = sc.acc;
  if (s.bgGap !== null) h['stress BG-gap'] = s.bgGap;
  if (s.nextClassShift) h['stress next-class shift'] = s.nextClassShift.shift;
  const wg = Object.values(s.variants).map((v) => v.worstGroup).filter((x): x is number => x !== undefined);
  if (wg.length) h['stress worst-group'] = Math.min(...wg);
  return h;
}

const pct = (v: number | undefined | null): string => (v === undefined || v === null || Number.isNaN(v) ? 'n/a' : (100 * v).toFixed(1));

/** Table rows [label, value] for the plain-text eval table. */
export function stressTableRows(r: StressReport): [string, string][] {
  const rows: [string, string][] = [];
  for (const [split, s] of Object.entries(r.splits)) {
    for (const [v, sc] of Object.entries(s.variants)) {
      rows.push([`stress ${split} ${v} (n=${sc.n})`, `${pct(sc.acc)}${sc.worstGroup !== undefined ? `  (worst group ${pct(sc.worstGroup)})` : ''}${sc.auc !== undefined ? `  (AUC ${pct(sc.auc)})` : ''}`]);
    }
    if (s.bgGap !== null) rows.push([`stress ${split} BG-gap (mixed_same − mixed_rand)`, `${(100 * s.bgGap).toFixed(1)} pts`]);
    if (s.nextClassShift) rows.push([`stress ${split} next-class shift (n=${s.nextClassShift.n})`, `${(100 * s.nextClassShift.shift).toFixed(2)} pts (${pct(s.nextClassShift.meanOriginal)} → ${pct(s.nextClassShift.meanMixedNext)})`]);
  }
  return rows;
}
