/**
 * Evaluation metrics (DESIGN §6–7). Pure functions over plain arrays: no tfjs, no I/O, so each one is
 * checked against hand-computed numbers in test/metrics.test.ts.
 */

/** Index of the largest logit in each row of a row-major [n, k] matrix (first index wins a tie). */
export function argmaxRows(logits: ArrayLike<number>, k: number): Int32Array {
  const n = Math.floor(logits.length / k);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
    out[i] = best;
  }
  return out;
}

/** Row-wise softmax of a row-major [n, k] matrix, computed stably (max subtracted). */
export function softmaxRows(logits: ArrayLike<number>, k: number): Float64Array {
  const n = Math.floor(logits.length / k);
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += (out[i * k + j] = Math.exp(logits[i * k + j] - m));
    for (let j = 0; j < k; j++) out[i * k + j] /= s;
  }
  return out;
}

/** Fraction of predictions equal to the labels; NaN for an empty set (there is nothing to be accurate on). */
export function accuracy(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (pred.length !== labels.length) throw new Error(`accuracy: ${pred.length} predictions for ${labels.length} labels`);
  if (!pred.length) return NaN;
  let hit = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) hit++;
  return hit / pred.length;
}

export interface GroupAccuracy {
  /** group key → { n, acc } */
  groups: Record<string, { n: number; acc: number }>;
  /** lowest accuracy over the groups that have at least one image; NaN when there are none */
  worst: number;
  worstGroup: string | null;
}

/** Accuracy per group key, and the worst group. */
export function groupAccuracy(pred: ArrayLike<number>, labels: ArrayLike<number>, groups: readonly string[]): GroupAccuracy {
  if (groups.length !== pred.length || labels.length !== pred.length) throw new Error('groupAccuracy: length mismatch');
  const tally = new Map<string, { n: number; hit: number }>();
  for (let i = 0; i < pred.length; i++) {
    const t = tally.get(groups[i]) ?? { n: 0, hit: 0 };
    t.n++;
    if (pred[i] === labels[i]) t.hit++;
    tally.set(groups[i], t);
  }
  const out: GroupAccuracy = { groups: {}, worst: NaN, worstGroup: null };
  for (const key of [...tally.keys()].sort()) {
    const t = tally.get(key)!;
    const acc = t.hit / t.n;
    out.groups[key] = { n: t.n, acc };
    if (out.worstGroup === null || acc < out.worst) { out.worst = acc; out.worstGroup = key; }
  }
  return out;
}

export interface WaterbirdsAccuracy {
  /** all images */
  overall: number;
  /** y == place: the background agrees with the label (as in training) */
  original: number;
  /** y != place: the background contradicts the label */
  flip: number;
  /** lowest accuracy over the four (y, place) groups */
  worstGroup: number;
  groups: GroupAccuracy['groups'];
  n: { original: number; flip: number };
}

/** Waterbirds test metrics (DESIGN §6): Original = y == place, Flip = y != place, worst of the 4 (y, place) groups. */
export function waterbirdsAccuracy(pred: ArrayLike<number>, labels: ArrayLike<number>, place: ArrayLike<number>): WaterbirdsAccuracy {
  const origP: number[] = [], origY: number[] = [], flipP: number[] = [], flipY: number[] = [];
  const keys: string[] = [];
  for (let i = 0; i < pred.length; i++) {
    const same = labels[i] === place[i];
    (same ? origP : flipP).push(pred[i]);
    (same ? origY : flipY).push(labels[i]);
    keys.push(`y=${labels[i]},place=${place[i]}`);
  }
  const g = groupAccuracy(pred, labels, keys);
  return {
    overall: accuracy(pred, labels),
    original: accuracy(origP, origY),
    flip: accuracy(flipP, flipY),
    worstGroup: g.worst,
    groups: g.groups,
    n: { original: origP.length, flip: flipP.length },
  };
}

/**
 * Ranks 1..n of the values, ties given the average of the ranks they span (the Mann–Whitney convention,
 * which makes AUC count a tied positive/negative pair as one half).
 */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b]);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]] === values[order[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) ranks[order[t]] = r;
    i = j + 1;
  }
  return ranks;
}

/**
 * Binary ROC AUC = P(score of a random positive > score of a random negative), ties counting 1/2,
 * via the rank-sum formula. NaN when either class is empty (AUC is undefined).
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean | number>): number {
  if (scores.length !== positive.length) throw new Error('rocAuc: length mismatch');
  const ranks = averageRanks(scores);
  let nPos = 0, rankSum = 0;
  for (let i = 0; i < scores.length; i++) if (positive[i]) { nPos++; rankSum += ranks[i]; }
  const nNeg = scores.length - nPos;
  if (!nPos || !nNeg) return NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export interface MacroAuc {
  /** mean of the per-class AUCs over the classes present; NaN when none is */
  auc: number;
  /** class index → its one-vs-rest AUC, for the classes kept */
  perClass: Record<number, number>;
  /** classes left out because the split has no image of them (or only images of them) */
  dropped: number[];
}

/**
 * Macro one-vs-rest ROC AUC on the logits (DESIGN §6, CCT): for each class c, AUC of logit c for "label == c"
 * against the rest; classes absent from the split are dropped, not counted as 0 or 1.
 */
export function macroOvrAuc(logits: ArrayLike<number>, k: number, labels: ArrayLike<number>): MacroAuc {
  const n = labels.length;
  if (logits.length !== n * k) throw new Error(`macroOvrAuc: ${logits.length} logits for ${n} images × ${k} classes`);
  const perClass: Record<number, number> = {};
  const dropped: number[] = [];
  const col = new Float64Array(n);
  const pos = new Uint8Array(n);
  let sum = 0, kept = 0;
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < n; i++) { col[i] = logits[i * k + c]; pos[i] = labels[i] === c ? 1 : 0; }
    const a = rocAuc(col, pos);
    if (Number.isNaN(a)) { dropped.push(c); continue; }
    perClass[c] = a;
    sum += a;
    kept++;
  }
  return { auc: kept ? sum / kept : NaN, perClass, dropped };
}

/**
 * Average precision of scores against binary targets, the step-wise (no interpolation) definition used by
 * scikit-learn: AP = Σ_t (R_t − R_{t−1}) P_t over distinct score thresholds t, from the highest down. Tied
 * scores form one threshold, so the order of tied pixels cannot change the result. NaN without positives.
 */
export function averagePrecision(scores: ArrayLike<number>, target: ArrayLike<boolean | number>): number {
  const n = scores.length;
  if (target.length !== n) throw new Error('averagePrecision: length mismatch');
  let nPos = 0;
  for (let i = 0; i < n; i++) if (target[i]) nPos++;
  if (!nPos) return NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  let tp = 0, seen = 0, ap = 0, prevRecall = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j < n && scores[order[j]] === scores[order[i]]) { if (target[order[j]]) tp++; j++; }
    seen = j;
    const recall = tp / nPos;
    ap += (recall - prevRecall) * (tp / seen);
    prevRecall = recall;
    i = j;
  }
  return ap;
}

/** Per-pixel importance = Σ over channels of attribution², from an HWC attribution map (DESIGN §7). */
export function pixelImportance(attribution: ArrayLike<number>, channels = 3): Float64Array {
  const out = new Float64Array(Math.floor(attribution.length / channels));
  for (let p = 0; p < out.length; p++) {
    let s = 0;
    for (let c = 0; c < channels; c++) { const v = attribution[p * channels + c]; s += v * v; }
    out[p] = s;
  }
  return out;
}

export interface SaliencyAupr {
  /** mean per-image AP over the scored images; NaN when none could be scored */
  mean: number;
  /** images scored */
  n: number;
  /** images skipped because their mask is all background or all object (AP is meaningless there) */
  skipped: number;
  perImage: number[];
}

/**
 * Saliency AUPR (DESIGN §7): for each image, the average precision of its pixel importance against its
 * foreground mask, then the mean over images. Images whose mask is all 0 or all 1 are skipped and counted.
 */
export function saliencyAupr(items: Iterable<{ importance: ArrayLike<number>; mask: ArrayLike<number> }>): SaliencyAupr {
  const perImage: number[] = [];
  let skipped = 0;
  for (const { importance, mask } of items) {
    let on = 0;
    for (let i = 0; i < mask.length; i++) if (mask[i]) on++;
    if (on === 0 || on === mask.length) { skipped++; continue; }
    perImage.push(averagePrecision(importance, mask));
  }
  const mean = perImage.length ? perImage.reduce((a, b) => a + b, 0) / perImage.length : NaN;
  return { mean, n: perImage.length, skipped, perImage };
}

export interface NextClassShift {
  /** mean p(next class) on Mixed-Next minus mean p(next class) on Original, over the paired images */
  shift: number;
  meanOriginal: number;
  meanMixedNext: number;
  /** pairs used */
  n: number;
  /** images present in only one of the two sets (left out) */
  unpaired: number;
}

/**
 * Background reliance (DESIGN §7, paper Table 3): the increase of the mean probability of the next class
 * (y + 1) mod K from Original to Mixed-Next on identical foregrounds. Images are paired by key (the file
 * name, which IN-9 keeps across its test variants); probs are row-major softmax outputs [n, k].
 */
export function nextClassShift(
  original: { keys: readonly string[]; labels: ArrayLike<number>; probs: ArrayLike<number> },
  mixedNext: { keys: readonly string[]; labels: ArrayLike<number>; probs: ArrayLike<number> },
  k: number,
): NextClassShift {
  const origIndex = new Map<string, number>();
  original.keys.forEach((key, i) => origIndex.set(key, i));
  let sumO = 0, sumM = 0, n = 0;
  mixedNext.keys.forEach((key, j) => {
    const i = origIndex.get(key);
    if (i === undefined) return;
    if (original.labels[i] !== mixedNext.labels[j]) throw new Error(`nextClassShift: "${key}" has label ${original.labels[i]} in Original but ${mixedNext.labels[j]} in Mixed-Next`);
    const next = (original.labels[i] + 1) % k;
    sumO += original.probs[i * k + next];
    sumM += mixedNext.probs[j * k + next];
    n++;
  });
  const unpaired = original.keys.length + mixedNext.keys.length - 2 * n;
  const meanOriginal = n ? sumO / n : NaN;
  const meanMixedNext = n ? sumM / n : NaN;
  return { shift: meanMixedNext - meanOriginal, meanOriginal, meanMixedNext, n, unpaired };
}

export interface MeanStd {
  mean: number;
  /** sample standard deviation (n − 1 in the denominator); 0 for a single value */
  std: number;
  n: number;
}

/** Mean ± sample std over seeds; NaN values (a metric a run could not compute) are left out. */
export function meanStd(values: readonly number[]): MeanStd {
  const v = values.filter((x) => !Number.isNaN(x));
  if (!v.length) return { mean: NaN, std: NaN, n: 0 };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length === 1) return { mean, std: 0, n: 1 };
  const ss = v.reduce((a, b) => a + (b - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (v.length - 1)), n: v.length };
}

/** "mean ± std" in percent with one decimal, e.g. "98.4 ± 0.3". */
export function formatPct(m: MeanStd): string {
  if (!m.n) return 'n/a';
  return `${(100 * m.mean).toFixed(1)} ± ${(100 * m.std).toFixed(1)}`;
}
