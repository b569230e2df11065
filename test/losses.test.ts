import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../manifests/index.ts';
import { initBackend } from '../trainer/backend.ts';
import {
  counterfactualLoss, crossEntropy, fgsmBackground, mixupBatch, sampleBeta, sampleGamma, saliencyPenalty,
  saliencyPenaltyAndLogits, softCrossEntropy, type CfLossKind, type Forward,
} from '../trainer/losses.ts';
import { createModel, presetConfig, type Model } from '../trainer/model.ts';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', log: () => {} });
});

const vals = (t: tf.Tensor): number[] => Array.from(t.dataSync());
const t2 = (rows: number[][]): tf.Tensor2D => tf.tensor2d(rows);
const y1 = (ys: number[]): tf.Tensor1D => tf.tensor1d(ys, 'int32');

function seededTensor(key: string, shape: number[], lo = -1, hi = 1): tf.Tensor {
  const rng = rngFor('losses-test', key);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next()), shape);
}

// Hand computation for logits z = [2, 0, -1]:
//   logsumexp(z) = log(e^2 + e^0 + e^-1) = log(7.389056 + 1 + 0.367879) = log(8.756935) = 2.1698460
//   log p = z - 2.1698460 = [-0.1698460, -2.1698460, -3.1698460]
const Z = [2, 0, -1];

describe('crossEntropy / softCrossEntropy', () => {
  it('matches hand-computed values', () => {
    // CE(y=0) = -log p0 = 0.1698460; CE(y=1) = 2.1698460
    expect(vals(crossEntropy(t2([Z, Z]), y1([0, 1])))).toEqual([
      expect.closeTo(0.169846, 5), expect.closeTo(2.169846, 5),
    ]);
  });

  it('label smoothing spreads ε over all K classes', () => {
    // ε = 0.1, K = 3, y = 0: t = [0.9 + 0.1/3, 0.1/3, 0.1/3]
    // loss = 0.933333·0.169846 + 0.033333·2.169846 + 0.033333·3.169846 = 0.3365127
    expect(vals(crossEntropy(t2([Z]), y1([0]), 0.1))[0]).toBeCloseTo(0.3365127, 5);
  });

  it('soft targets', () => {
    // t = [0.25, 0.75, 0]: 0.25·0.169846 + 0.75·2.169846 = 1.6698460
    expect(vals(softCrossEntropy(t2([Z]), t2([[0.25, 0.75, 0]])))[0]).toBeCloseTo(1.669846, 5);
  });

  it('is stable for large logits', () => {
    const v = vals(crossEntropy(t2([[1000, 0], [0, 1000]]), y1([1, 1])));
    expect(v[0]).toBeCloseTo(1000, 3);
    expect(v[1]).toBeCloseTo(0, 6);
  });
});

describe('counterfactualLoss', () => {
  it('logp matches −log(1 − p_y) by hand', () => {
    // y = 0: logsumexp(z) − logsumexp([0, −1]) = 2.1698460 − log(1 + e^-1) = 2.1698460 − 0.3132617 = 1.8565843
    // y = 2: 2.1698460 − log(e^2 + 1) = 2.1698460 − 2.1269280 = 0.0429180
    expect(vals(counterfactualLoss(t2([Z, Z]), y1([0, 2]), 'logp'))).toEqual([
      expect.closeTo(1.8565843, 5), expect.closeTo(0.042918, 5),
    ]);
  });

  it('uniform and uniform-except-y by hand', () => {
    // uniform: (0.169846 + 2.169846 + 3.169846) / 3 = 1.8365127
    expect(vals(counterfactualLoss(t2([Z]), y1([0]), 'uniform'))[0]).toBeCloseTo(1.8365127, 5);
    // uniform-except-y, y = 0: (2.169846 + 3.169846) / 2 = 2.6698460; y = 1: (0.169846 + 3.169846) / 2 = 1.6698460
    expect(vals(counterfactualLoss(t2([Z, Z]), y1([0, 1]), 'uniform-except-y'))).toEqual([
      expect.closeTo(2.669846, 5), expect.closeTo(1.669846, 5),
    ]);
  });

  it('logp equals CE toward the other class when K = 2', () => {
    const z = t2([[1.3, -0.4], [-2, 0.5], [0.1, 0.1], [7, -3]]);
    const y = [0, 0, 1, 1];
    const cf = vals(counterfactualLoss(z, y1(y), 'logp'));
    const ce = vals(crossEntropy(z, y1(y.map((v) => 1 - v))));
    cf.forEach((v, i) => expect(v).toBeCloseTo(ce[i], 5));
  });

  it('logp is finite and correct at p_y → 1 and p_y → 0, with finite gradients', () => {
    const z = t2([[50, 0], [-50, 0], [50, 0], [-50, 0]]);
    const y = y1([0, 0, 1, 1]);
    // [50, 0], y=0: log(1 + e^50) = 50 + log1p(e^-50) = 50; [−50, 0], y=0: log1p(e^-50) = 1.9e-22 ≈ 0
    // [50, 0], y=1: −log(1 − e^-50/(1+e^-50)) ≈ 1.9e-22 ≈ 0; [−50, 0], y=1: 0 − (−50) = 50
    const v = vals(counterfactualLoss(z, y, 'logp'));
    expect(v.every(Number.isFinite)).toBe(true);
    expect(v[0]).toBeCloseTo(50, 4);
    expect(v[1]).toBeCloseTo(0, 6);
    expect(v[2]).toBeCloseTo(0, 6);
    expect(v[3]).toBeCloseTo(50, 4);
    const g = vals(tf.grad((zz: tf.Tensor) => tf.sum(counterfactualLoss(zz as tf.Tensor2D, y, 'logp')))(z));
    expect(g.every(Number.isFinite)).toBe(true);
    // d/dz of log(1 + e^{z0 − z1}) at z0 − z1 = 50: [1, −1]
    expect(g[0]).toBeCloseTo(1, 5);
    expect(g[1]).toBeCloseTo(-1, 5);
  });
});

/** central finite differences of Σ loss w.r.t. every logit (float32-friendly step) */
function finiteDiff(f: (z: tf.Tensor2D) => tf.Tensor1D, z: number[][], h = 1e-2): number[] {
  const out: number[] = [];
  const total = (m: number[][]): number => tf.tidy(() => tf.sum(f(t2(m))).dataSync()[0]);
  for (let i = 0; i < z.length; i++) {
    for (let j = 0; j < z[i].length; j++) {
      const p = z.map((r) => [...r]); p[i][j] += h;
      const m = z.map((r) => [...r]); m[i][j] -= h;
      out.push((total(p) - total(m)) / (2 * h));
    }
  }
  return out;
}

describe('gradients w.r.t. logits against finite differences', () => {
  const z = [[0.3, -1.2, 2.0, 0.5], [1.1, 0.4, -0.7, -2.2], [-0.5, 0.0, 0.9, 1.5]];
  // built lazily: tensors cannot be made before the backend is initialised in beforeAll
  const y = (): tf.Tensor1D => y1([2, 0, 3]);
  const cases: [string, (zz: tf.Tensor2D) => tf.Tensor1D][] = [
    ['crossEntropy', (zz) => crossEntropy(zz, y())],
    ['crossEntropy ls=0.2', (zz) => crossEntropy(zz, y(), 0.2)],
    ['softCrossEntropy', (zz) => softCrossEntropy(zz, t2([[0.5, 0.5, 0, 0], [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 1]]))],
    ...(['logp', 'uniform', 'uniform-except-y'] as CfLossKind[]).map((k): [string, (zz: tf.Tensor2D) => tf.Tensor1D] =>
      [`counterfactual ${k}`, (zz) => counterfactualLoss(zz, y(), k)]),
  ];
  for (const [name, f] of cases) {
    it(name, () => {
      const analytic = vals(tf.grad((zz: tf.Tensor) => tf.sum(f(zz as tf.Tensor2D)))(t2(z)));
      const numeric = finiteDiff(f, z);
      analytic.forEach((a, i) => expect(a).toBeCloseTo(numeric[i], 3));
      expect(analytic.some((a) => Math.abs(a) > 0.05)).toBe(true);
    });
  }
});

describe('saliencyPenalty', () => {
  let model: Model;
  let forward: Forward;
  const B = 3, H = 8, W = 8;
  let x: tf.Tensor4D, bg: tf.Tensor4D;
  const labels = [0, 2, 1];

  beforeAll(() => {
    model = createModel(presetConfig('tiny', 3), 11, { zeroHead: false });
    forward = (t) => model.apply(t);
    x = seededTensor('sal-x', [B, H, W, 3]) as tf.Tensor4D;
    // background: a different region per image, and image 2 has a 1-pixel object only
    const m = new Float32Array(B * H * W);
    for (let b = 0; b < B; b++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
      const object = b === 0 ? i < 4 : b === 1 ? j >= 3 && j < 6 : i === 4 && j === 4;
      m[(b * H + i) * W + j] = object ? 0 : 1;
    }
    bg = tf.tensor4d(m, [B, H, W, 1]);
  });

  /** the definition, image by image: tf.grad of that single image's own target logit */
  function bruteForce(f: Forward, target: (b: number) => number[]): number[] {
    const bgv = vals(bg);
    const out: number[] = [];
    for (let b = 0; b < B; b++) {
      const xb = tf.slice(x, [b, 0, 0, 0], [1, H, W, 3]);
      const weights = tf.tensor2d([target(b)]);
      const g = vals(tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(f(xx as tf.Tensor4D), weights)))(xb));
      let num = 0, den = 0;
      for (let p = 0; p < H * W; p++) {
        const r = bgv[b * H * W + p];
        num += r * (g[p * 3] ** 2 + g[p * 3 + 1] ** 2 + g[p * 3 + 2] ** 2);
        den += r;
      }
      out.push(num / den);
    }
    return out;
  }
  const ownTarget = (b: number): number[] => [0, 1, 2].map((k) => (k === labels[b] ? 1 : 0));

  it('equals a per-image loop over tf.grad of each image\'s own target logit', () => {
    const ours = vals(saliencyPenalty(forward, x, y1(labels), bg, 'background-area'));
    const brute = bruteForce(forward, ownTarget);
    expect(ours.every((v) => v > 0)).toBe(true);
    ours.forEach((v, b) => expect(v).toBeCloseTo(brute[b], 5 - Math.ceil(Math.log10(Math.max(1, brute[b])))));
    ours.forEach((v, b) => expect(Math.abs(v - brute[b]) / brute[b]).toBeLessThan(1e-4));
  });

  it('the authors\' logits[:, y].sum() (a B×B mix) gives something else', () => {
    // Σ_b Σ_b' z_{b, y_b'}: each image's gradient is that of the sum of its logits for every label in the batch.
    const counts = [0, 1, 2].map((k) => labels.filter((l) => l === k).length);
    const mixed = bruteForce(forward, () => counts);
    const ours = vals(saliencyPenalty(forward, x, y1(labels), bg, 'background-area'));
    const relDiff = ours.map((v, b) => Math.abs(v - mixed[b]) / v);
    expect(Math.max(...relDiff)).toBeGreaterThan(0.1);
    // and with one label for the whole batch it is B² times ours (the gradient is B times the image's own)
    const same = vals(saliencyPenalty(forward, x, y1([1, 1, 1]), bg, 'background-area'));
    const mixedSame = bruteForce(forward, () => [0, 3, 0]);
    same.forEach((v, b) => expect(mixedSame[b] / v).toBeCloseTo(9, 3));
  });

  it('the one-backward-pass trick needs image-independent forwards: a batch-mixing model breaks it', () => {
    // Subtracting the batch mean couples the images (as BatchNorm would); our GroupNorm model does not.
    const mixing: Forward = (t) => model.apply(tf.sub(t, tf.mul(0.5, tf.mean(t, 0, true))) as tf.Tensor4D);
    const sumTrick = vals(saliencyPenalty(mixing, x, y1(labels), bg, 'background-area'));
    const perImage = [0, 1, 2].map((b) => {
      // image b's own target logit, differentiated w.r.t. image b only, in the batch context
      const g = vals(tf.grad((xb: tf.Tensor) => {
        const parts = [0, 1, 2].map((i) => (i === b ? xb : tf.slice(x, [i, 0, 0, 0], [1, H, W, 3])));
        const z = mixing(tf.concat(parts, 0) as tf.Tensor4D);
        return tf.sum(tf.slice(z, [b, labels[b]], [1, 1]));
      })(tf.slice(x, [b, 0, 0, 0], [1, H, W, 3])));
      const bgv = vals(bg).slice(b * H * W, (b + 1) * H * W);
      let num = 0, den = 0;
      bgv.forEach((r, p) => { num += r * (g[3 * p] ** 2 + g[3 * p + 1] ** 2 + g[3 * p + 2] ** 2); den += r; });
      return num / den;
    });
    const relDiff = sumTrick.map((v, b) => Math.abs(v - perImage[b]) / perImage[b]);
    expect(Math.max(...relDiff)).toBeGreaterThan(1e-2);
  });

  it('saliencyPenaltyAndLogits returns the same penalty and the model\'s logits', () => {
    const { penalty, logits } = saliencyPenaltyAndLogits(forward, x, y1(labels), bg);
    const ref = vals(saliencyPenalty(forward, x, y1(labels), bg));
    vals(penalty).forEach((v, i) => expect(v).toBeCloseTo(ref[i], 6));
    const direct = vals(model.apply(x));
    vals(logits).forEach((v, i) => expect(v).toBeCloseTo(direct[i], 5));
    logits.dispose();
  });

  it('an image without background gets 0', () => {
    const noBg = tf.zeros([1, H, W, 1]) as tf.Tensor4D;
    const v = vals(saliencyPenalty(forward, tf.slice(x, [0, 0, 0, 0], [1, H, W, 3]), y1([0]), noBg));
    expect(v).toEqual([0]);
  });

  /** directional derivative of mean(penalty) along a seeded direction, analytic (double backprop) vs central FD */
  function checkWeightGradient(paramName: string, relStep: number): void {
    const i = model.paramNames.indexOf(paramName);
    expect(i).toBeGreaterThanOrEqual(0);
    const v = model.variables[i];
    const objective = (): tf.Scalar => tf.mean(saliencyPenalty(forward, x, y1(labels), bg));
    const { grads } = tf.variableGrads(objective, [v]);
    const g = grads[v.name];
    const dir = seededTensor(`dir-${paramName}`, v.shape);
    const analytic = tf.sum(tf.mul(g, dir)).dataSync()[0];
    const w0 = v.clone();
    const h = relStep * Math.sqrt(tf.mean(tf.square(w0)).dataSync()[0]);
    const at = (s: number): number => {
      v.assign(tf.add(w0, tf.mul(dir, s)));
      return tf.tidy(() => objective().dataSync()[0]);
    };
    const numeric = (at(h) - at(-h)) / (2 * h);
    v.assign(w0);
    expect(Math.abs(analytic)).toBeGreaterThan(0);
    expect(Math.abs(analytic - numeric) / Math.abs(numeric)).toBeLessThan(1e-2);
  }

  it('is differentiable w.r.t. the head (double backprop) — matches finite differences', () => {
    checkWeightGradient('resnet/head/conv2d/kernel', 1e-2);
  });

  // The penalty jumps where a ReLU input crosses 0 (the input gradient changes there), so the steps are small
  // enough not to cross a kink along the chosen direction (1e-3 does cross one for this kernel).
  it('is differentiable w.r.t. an inner conv kernel through WS and GroupNorm — matches finite differences', () => {
    checkWeightGradient('resnet/block1/unit01/a/standardized_conv2d/kernel', 1e-4);
  });

  it('is differentiable w.r.t. the root conv kernel — matches finite differences', () => {
    checkWeightGradient('resnet/root_block/standardized_conv2d/kernel', 1e-3);
  });

  it('is differentiable w.r.t. a GroupNorm scale — matches finite differences', () => {
    checkWeightGradient('resnet/block2/unit01/b/group_norm/gamma', 1e-3);
  });
});

describe('fgsmBackground', () => {
  const B = 2, H = 6, W = 6, C = 3;
  let model: Model;
  let x: tf.Tensor4D, bg: tf.Tensor4D, labels: tf.Tensor1D;

  beforeAll(() => {
    model = createModel(presetConfig('tiny', 2), 5, { zeroHead: false });
    labels = y1([1, 0]);
    const xv = seededTensor('fgsm-x', [B, H, W, C]).dataSync() as Float32Array;
    xv[0] = 1; xv[1] = -1; xv[100] = 1; xv[101] = -1; // some pixels already at the clip limits
    x = tf.tensor4d(xv, [B, H, W, C]);
    const m = new Float32Array(B * H * W);
    for (let b = 0; b < B; b++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) m[(b * H + i) * W + j] = (b === 0 ? j < 3 : i >= 2) ? 1 : 0;
    bg = tf.tensor4d(m, [B, H, W, 1]);
  });

  function checkConstraints(adv: tf.Tensor4D, eps: number): { changedBg: number } {
    const xv = vals(x), av = vals(adv), bgv = vals(bg);
    let changedBg = 0;
    for (let i = 0; i < xv.length; i++) {
      const isBg = bgv[Math.floor(i / C)] > 0.5;
      if (!isBg) expect(av[i]).toBe(xv[i]);
      else {
        expect(Math.abs(av[i] - xv[i])).toBeLessThanOrEqual(eps + 1e-6);
        if (av[i] !== xv[i]) changedBg++;
      }
      expect(av[i]).toBeGreaterThanOrEqual(-1);
      expect(av[i]).toBeLessThanOrEqual(1);
    }
    return { changedBg };
  }

  it('changes only the background, within ε and the clip range, and raises the loss', () => {
    const f: Forward = (t) => model.apply(t);
    const adv = fgsmBackground(f, x, labels, bg, { epsilon: 0.3, seed: 1 });
    const { changedBg } = checkConstraints(adv, 0.3);
    expect(changedBg).toBeGreaterThan(0.8 * vals(bg).filter((v) => v > 0).length * C);
    const before = tf.sum(crossEntropy(f(x), labels)).dataSync()[0];
    const after = tf.sum(crossEntropy(f(adv), labels)).dataSync()[0];
    expect(after).toBeGreaterThan(before);
  });

  it('steps along −sign(w) for a linear model (FGSM: ≥ 0.25ε; PGD: exactly ε)', () => {
    const wv = seededTensor('fgsm-w', [H * W * C, 1]);
    // logits [w·x, 0] with y = 0: CE falls as w·x grows, so the attack moves x along −sign(w)
    const linear: Forward = (t) => tf.concat([tf.matMul(tf.reshape(t, [t.shape[0], -1]), wv), tf.zeros([t.shape[0], 1])], 1) as tf.Tensor2D;
    const y = y1([0, 0]);
    const small = tf.mul(x, 0.5) as tf.Tensor4D; // keep x ± ε inside [−1, 1] so the clip does not interfere
    const sw = vals(tf.sign(wv));
    const bgv = vals(bg);
    for (const [steps, minMag] of [[1, 0.25 * 0.2], [3, 0.2]] as const) {
      const adv = vals(fgsmBackground(linear, small, y, bg, { epsilon: 0.2, steps, seed: 3 }));
      const sv = vals(small);
      for (let i = 0; i < sv.length; i++) {
        const b = Math.floor(i / (H * W * C));
        const d = adv[i] - sv[i];
        if (bgv[Math.floor(i / C)] < 0.5) { expect(d).toBe(0); continue; }
        const s = sw[i % (H * W * C)];
        expect(Math.sign(d)).toBe(-s);
        expect(Math.abs(d)).toBeGreaterThanOrEqual(minMag - 1e-6);
        expect(Math.abs(d)).toBeLessThanOrEqual(0.2 + 1e-6);
        void b;
      }
    }
  });

  it('is deterministic for a seed, differs across seeds, PGD stays within bounds', () => {
    const f: Forward = (t) => model.apply(t);
    const a = vals(fgsmBackground(f, x, labels, bg, { epsilon: 0.25, seed: 7 }));
    const b = vals(fgsmBackground(f, x, labels, bg, { epsilon: 0.25, seed: 7 }));
    const c = vals(fgsmBackground(f, x, labels, bg, { epsilon: 0.25, seed: 8 }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    checkConstraints(fgsmBackground(f, x, labels, bg, { epsilon: 0.25, steps: 3, alpha: 0.1, seed: 7 }), 0.25);
  });

  it('leaves the weights unchanged and returns a tensor with no gradient path', () => {
    const f: Forward = (t) => model.apply(t);
    const before = model.variables.map((v) => vals(v));
    const adv = fgsmBackground(f, x, labels, bg, { epsilon: 0.3, seed: 2 });
    model.variables.forEach((v, i) => expect(vals(v)).toEqual(before[i]));
    // no path from the weights to the adversarial image: its gradient w.r.t. every variable is absent
    const { grads } = tf.variableGrads(() => tf.add(tf.sum(fgsmBackground(f, x, labels, bg, { epsilon: 0.3, seed: 2 })), tf.mul(0, tf.sum(model.variables[0]))) as tf.Scalar, model.variables);
    expect(Object.keys(grads)).toEqual([model.variables[0].name]);
    expect(vals(grads[model.variables[0].name]).every((v) => v === 0)).toBe(true);
    adv.dispose();
  });
});

describe('mixup', () => {
  it('mixes images and one-hot targets with λ and the returned permutation; rows sum to 1', () => {
    const x = seededTensor('mix-x', [5, 2, 2, 3]) as tf.Tensor4D;
    const labels = [0, 1, 2, 1, 0];
    const m = mixupBatch(x, y1(labels), 3, 0.2, 4);
    expect(m.lambda).toBeGreaterThanOrEqual(0);
    expect(m.lambda).toBeLessThanOrEqual(1);
    const perm = Array.from(m.permutation);
    expect([...perm].sort()).toEqual([0, 1, 2, 3, 4]);
    const xv = vals(x), mv = vals(m.x), tv = vals(m.targets);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 12; j++) expect(mv[i * 12 + j]).toBeCloseTo(m.lambda * xv[i * 12 + j] + (1 - m.lambda) * xv[perm[i] * 12 + j], 5);
      const row = tv.slice(i * 3, i * 3 + 3);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      const expected = [0, 1, 2].map((k) => (labels[i] === k ? m.lambda : 0) + (labels[perm[i]] === k ? 1 - m.lambda : 0));
      row.forEach((v, k) => expect(v).toBeCloseTo(expected[k], 6));
    }
    const again = mixupBatch(x, y1(labels), 3, 0.2, 4);
    expect(again.lambda).toBe(m.lambda);
    expect(Array.from(again.permutation)).toEqual(perm);
  });

  it('Gamma draws have mean k and variance k (Marsaglia–Tsang, and the k < 1 boost)', () => {
    for (const k of [0.3, 2.5]) {
      const rng = rngFor('gamma-test', k);
      const n = 20000;
      const d = Array.from({ length: n }, () => sampleGamma(rng, k));
      const mean = d.reduce((a, b) => a + b, 0) / n;
      const variance = d.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
      expect(Math.abs(mean - k)).toBeLessThan(4 * Math.sqrt(k / n));
      expect(Math.abs(variance - k) / k).toBeLessThan(0.1);
    }
  });

  it('λ ~ Beta(α, α): mean 0.5, variance 1 / (4(2α + 1))', () => {
    const alpha = 0.2;
    const rng = rngFor('beta-test');
    const n = 20000;
    const d = Array.from({ length: n }, () => sampleBeta(rng, alpha, alpha));
    const mean = d.reduce((a, b) => a + b, 0) / n;
    const variance = d.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.015);
    expect(variance).toBeCloseTo(1 / (4 * (2 * alpha + 1)), 2); // 0.1786
    // mixupBatch's own λ over seeds
    const x = tf.zeros([2, 1, 1, 1]) as tf.Tensor4D;
    const lambdas = Array.from({ length: 300 }, (_, s) => {
      const m = mixupBatch(x, y1([0, 1]), 2, alpha, s);
      m.x.dispose(); m.targets.dispose();
      return m.lambda;
    });
    const lm = lambdas.reduce((a, b) => a + b, 0) / lambdas.length;
    expect(Math.abs(lm - 0.5)).toBeLessThan(0.08);
    expect(lambdas.filter((l) => l < 0.1 || l > 0.9).length).toBeGreaterThan(100); // U-shaped for α < 1
  });
});
