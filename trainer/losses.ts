import * as tf from '@tensorflow/tfjs-core';
import { rngFor, type Rng } from '../manifests/index.ts';
import type { SalNorm } from './sal-norm.ts';

/**
 * Loss terms of the objective (DESIGN §5). Every loss is per example (Tensor1D of length B): the training loop
 * sums each term over all images of the augmented batch and divides by the number of images in it (the saliency
 * term, by default, is instead a mean over the originals with a mask: salContribution).
 *
 * `forward` arguments are pure functions x ↦ logits (e.g. `model.apply`). The saliency penalty and FGSM take
 * gradients w.r.t. the input, so the forward pass must not mix images of a batch (no batch statistics): our
 * ResNetV2 uses GroupNorm, which is per image.
 */

export type Forward = (x: tf.Tensor4D) => tf.Tensor2D;

function oneHotF(labels: tf.Tensor1D, k: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, k), 'float32') as tf.Tensor2D;
}

/**
 * −Σ_k t_k log softmax(z)_k with t = (1 − ε)·onehot(y) + ε/K (smoothing spreads ε over all K classes, the
 * TensorFlow/PyTorch convention).
 */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, labelSmoothing = 0): tf.Tensor1D {
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new Error(`labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  return tf.tidy(() => {
    const k = logits.shape[1];
    const logp = tf.logSoftmax(logits);
    let t = oneHotF(labels, k);
    if (labelSmoothing > 0) t = tf.add(tf.mul(t, 1 - labelSmoothing), labelSmoothing / k);
    return tf.neg(tf.sum(tf.mul(t, logp), 1)) as tf.Tensor1D;
  });
}

/** −Σ_k t_k log softmax(z)_k for soft targets (rows sum to 1), e.g. mixup. */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1)) as tf.Tensor1D);
}

export type CfLossKind = 'logp' | 'uniform' | 'uniform-except-y';
export const CF_LOSS_KINDS: readonly CfLossKind[] = ['logp', 'uniform', 'uniform-except-y'];

/**
 * Loss for a counterfactual image labelled "not y" (DESIGN §2):
 * - logp: −log(1 − p_y) = logsumexp(z) − logsumexp(z_{k≠y}); finite for p_y → 1 and p_y → 0.
 * - uniform: −mean_k log p_k (KL(Uniform ‖ p) up to the constant −log K).
 * - uniform-except-y: −Σ_{k≠y} log p_k / (K − 1).
 */
export function counterfactualLoss(logits: tf.Tensor2D, labels: tf.Tensor1D, kind: CfLossKind = 'logp'): tf.Tensor1D {
  return tf.tidy(() => {
    const k = logits.shape[1];
    if (k < 2) throw new Error('counterfactualLoss needs at least 2 classes');
    const isY = tf.cast(oneHotF(labels, k), 'bool');
    switch (kind) {
      case 'logp': {
        // y's logit is replaced (not offset) by a large negative number: exp underflows to exactly 0 and the
        // gradient w.r.t. z_y flows only through the first logsumexp.
        const others = tf.where(isY, tf.fill(logits.shape, -1e30), logits);
        return tf.sub(tf.logSumExp(logits, 1), tf.logSumExp(others, 1)) as tf.Tensor1D;
      }
      case 'uniform':
        return tf.neg(tf.mean(tf.logSoftmax(logits), 1)) as tf.Tensor1D;
      case 'uniform-except-y': {
        const notY = tf.sub(1, oneHotF(labels, k));
        return tf.div(tf.neg(tf.sum(tf.mul(notY, tf.logSoftmax(logits)), 1)), k - 1) as tf.Tensor1D;
      }
      default:
        throw new Error(`unknown counterfactual loss '${kind as string}' (known: ${CF_LOSS_KINDS.join(', ')})`);
    }
  });
}

/**
 * ∂(Σ_b z_{b,y_b})/∂x. Because the forward pass treats every image on its own (GroupNorm, no batch statistics),
 * ∂z_{b',y_{b'}}/∂x_b = 0 for b' ≠ b, so row b of this gradient is exactly image b's own ∂z_{b,y_b}/∂x_b. One
 * backward pass thus gives all B per-image input gradients. (The authors' `logits[:, y].sum()` with a vector y
 * differentiates Σ_b Σ_{b'} z_{b,y_{b'}} instead: every image's logits for every label in the batch.)
 *
 * The logits are returned too (kept with `tf.keep` to leave tf.grad's scope; the caller disposes them).
 */
function targetLogitInputGradient(forward: Forward, x: tf.Tensor4D, labels: tf.Tensor1D): { grad: tf.Tensor4D; logits: tf.Tensor2D } {
  let logits: tf.Tensor2D | null = null;
  const grad = tf.grad((xx: tf.Tensor) => {
    const z = forward(xx as tf.Tensor4D);
    logits = tf.keep(z);
    return tf.sum(tf.mul(z, oneHotF(labels, z.shape[1])));
  })(x) as tf.Tensor4D;
  return { grad, logits: logits! };
}

export { SAL_NORMS, type SalNorm } from './sal-norm.ts';

/**
 * Σ_j bg_j Σ_c g_{j,c}² per image, divided by Σ_j bg_j (`background-area`) or by C·H·W (`authors`); 0 for an
 * image with no background. The weighted pixel sum is a batched matMul so that its gradient (needed for double
 * backprop) is a matMul too, not a broadcast.
 */
function maskedSquaredGradient(grad: tf.Tensor4D, background: tf.Tensor4D, norm: SalNorm): tf.Tensor1D {
  return tf.tidy(() => {
    const [b, h, w, c] = grad.shape;
    const bg = tf.reshape(tf.cast(background, 'float32'), [b, 1, h * w]);
    const perChannel = tf.matMul(bg, tf.reshape(tf.square(grad), [b, h * w, c]));
    const num = tf.sum(tf.reshape(perChannel, [b, c]), 1);
    if (norm === 'authors') return tf.div(num, c * h * w) as tf.Tensor1D;
    const den = tf.sum(tf.reshape(bg, [b, h * w]), 1);
    // an image without background has num = 0, so the guard only avoids 0/0
    return tf.div(num, tf.maximum(den, 1e-12)) as tf.Tensor1D;
  });
}

function checkBackground(x: tf.Tensor4D, background: tf.Tensor4D, what: string): void {
  const [b, h, w] = x.shape;
  const s = background.shape;
  if (s.length !== 4 || s[0] !== b || s[1] !== h || s[2] !== w || s[3] !== 1) {
    throw new Error(`${what}: background must be [${b}, ${h}, ${w}, 1] (1 = background), got [${s.join(', ')}]`);
  }
}

/**
 * Saliency penalty (GradMask form, DESIGN §4), per image b:
 *   Σ_j (∂z_{b,y_b}/∂x_{b,j})² (1 − r_j) / Σ_j (1 − r_j)   (`background-area`)
 *   Σ_j (∂z_{b,y_b}/∂x_{b,j})² (1 − r_j) / (C·H·W)          (`authors`, the default: a mean over channels and pixels)
 * over pixels j, with the squared gradient summed over colour channels, and 1 − r = `background`. How the
 * per-image values enter the loss: `salContribution`. Differentiable w.r.t. the model's variables (double
 * backprop): use it inside tf.variableGrads.
 */
export function saliencyPenalty(forward: Forward, x: tf.Tensor4D, labels: tf.Tensor1D, background: tf.Tensor4D, norm: SalNorm = 'authors'): tf.Tensor1D {
  const { penalty, logits } = saliencyPenaltyAndLogits(forward, x, labels, background, norm);
  logits.dispose();
  return penalty;
}

/**
 * saliencyPenalty plus the logits of the same forward pass, so a Sal step needs one forward instead of two:
 * `const {penalty, logits} = saliencyPenaltyAndLogits(...); loss = sum(crossEntropy(logits, y)) + λ·sum(penalty)`.
 * Both are ordinary tensors of the caller's scope (a surrounding tf.tidy / tf.variableGrads disposes them).
 */
export function saliencyPenaltyAndLogits(forward: Forward, x: tf.Tensor4D, labels: tf.Tensor1D, background: tf.Tensor4D, norm: SalNorm = 'authors'): { penalty: tf.Tensor1D; logits: tf.Tensor2D } {
  checkBackground(x, background, 'saliencyPenalty');
  return tf.tidy(() => {
    const r = targetLogitInputGradient(forward, x, labels);
    // An un-kept copy (Identity, so gradients flow through it) that the enclosing tidy owns like any other tensor.
    const logits = tf.clone(r.logits);
    r.logits.dispose();
    return { penalty: maskedSquaredGradient(r.grad, background, norm), logits };
  });
}

/**
 * The saliency term as it enters a step's running sum, which the step divides by `nImages` (the images of the
 * augmented batch): `lambdaSum` = λ·Σ_b P_b. `background-area` adds it as is (divided by nImages like every
 * term); `authors` wants λ·mean over the `nWithMask` originals that have a mask, undivided, so it is scaled by
 * nImages / nWithMask.
 */
export function salContribution(lambdaSum: tf.Scalar, norm: SalNorm | undefined, nWithMask: number, nImages: number): tf.Scalar {
  if ((norm ?? 'authors') === 'background-area') return lambdaSum;
  return tf.mul(lambdaSum, nImages / Math.max(1, nWithMask)) as tf.Scalar;
}

/** How many of the first `n` images have any object pixel in `objMask` ([n, S, S] flattened), the authors' has_bbox. */
export function countImagesWithMask(objMask: Float32Array | null, n: number): number {
  if (!objMask || n === 0) return 0;
  const per = objMask.length / n;
  let count = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i * per; j < (i + 1) * per; j++) if (objMask[j] > 0) { count++; break; }
  }
  return count;
}

export interface FgsmOptions {
  /** ℓ∞ radius in input units ([-1, 1] images) */
  epsilon: number;
  /** step size, default 1.25·ε */
  alpha?: number;
  /** 1 = FGSM (default), > 1 = PGD */
  steps?: number;
  seed: number;
  clipMin?: number;
  clipMax?: number;
}

/**
 * FGSM / PGD on the background only (DESIGN §3): δ₀ ~ U(−ε, ε) on the background, then per step
 * δ ← clip(δ + α·sign(∇_δ Σ_b CE(f(x + δ), y)), −ε, ε), keeping x + δ in [clipMin, clipMax].
 * Object pixels are returned bit-identical to x. Gradients are taken w.r.t. δ only (weights frozen), and the
 * result is a fresh tensor with no gradient path to anything: call it outside tf.variableGrads if you can
 * (inside works too but records the attack on the tape for nothing).
 */
export function fgsmBackground(forward: Forward, x: tf.Tensor4D, labels: tf.Tensor1D, background: tf.Tensor4D, opts: FgsmOptions): tf.Tensor4D {
  checkBackground(x, background, 'fgsmBackground');
  const eps = opts.epsilon;
  if (!(eps >= 0)) throw new Error(`fgsm epsilon must be ≥ 0, got ${eps}`);
  const alpha = opts.alpha ?? 1.25 * eps;
  const steps = opts.steps ?? 1;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`fgsm steps must be a positive integer, got ${steps}`);
  const lo = opts.clipMin ?? -1;
  const hi = opts.clipMax ?? 1;
  const rng = rngFor('fgsm-background', opts.seed);
  const start = new Float32Array(x.size);
  for (let i = 0; i < start.length; i++) start[i] = (2 * rng.next() - 1) * eps;

  const adv = tf.tidy(() => {
    const isBg = tf.greater(tf.broadcastTo(tf.cast(background, 'float32'), x.shape), 0.5);
    // x + δ with δ zero on the object and x + δ inside the valid range
    const project = (d: tf.Tensor4D): tf.Tensor4D =>
      tf.where(isBg, tf.clipByValue(tf.add(x, tf.clipByValue(d, -eps, eps)), lo, hi), x) as tf.Tensor4D;
    let xa = project(tf.tensor4d(start, x.shape));
    const lossOf = (d: tf.Tensor): tf.Scalar => tf.sum(crossEntropy(forward(tf.add(xa, d) as tf.Tensor4D), labels));
    for (let s = 0; s < steps; s++) {
      const g = tf.grad(lossOf)(tf.zerosLike(xa));
      const delta = tf.sub(xa, x) as tf.Tensor4D;
      xa = project(tf.add(delta, tf.mul(alpha, tf.sign(g))) as tf.Tensor4D);
    }
    return xa;
  });
  // Re-create from the values: cuts any tape link to the model's variables.
  const out = tf.tensor4d(adv.dataSync() as Float32Array, x.shape);
  adv.dispose();
  return out;
}

/** Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 via Gamma(shape + 1)·U^{1/shape}. */
export function sampleGamma(rng: Rng, shape: number): number {
  if (!(shape > 0)) throw new Error(`gamma shape must be > 0, got ${shape}`);
  if (shape < 1) {
    let u = rng.next();
    while (u === 0) u = rng.next();
    return sampleGamma(rng, shape + 1) * Math.pow(u, 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let xn: number, v: number;
    do {
      xn = rng.normal();
      v = 1 + c * xn;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.next();
    if (u < 1 - 0.0331 * xn * xn * xn * xn) return d * v;
    if (u > 0 && Math.log(u) < 0.5 * xn * xn + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  return x + y > 0 ? x / (x + y) : 0.5;
}

/**
 * Mixup (Zhang et al. 2018): λ ~ Beta(α, α), a seeded permutation π of the batch,
 * x' = λ·x + (1 − λ)·x[π], targets = λ·onehot(y) + (1 − λ)·onehot(y[π]). Train with softCrossEntropy.
 * Returns π as `permutation` (for logging and tests).
 */
export function mixupBatch(x: tf.Tensor4D, labels: tf.Tensor1D, numClasses: number, alpha: number, seed: number): { x: tf.Tensor4D; targets: tf.Tensor2D; lambda: number; permutation: Int32Array } {
  if (!(alpha > 0)) throw new Error(`mixup alpha must be > 0, got ${alpha}`);
  const rng = rngFor('mixup', seed);
  const lambda = sampleBeta(rng, alpha, alpha);
  const perm = new Int32Array(x.shape[0]);
  for (let i = 0; i < perm.length; i++) perm[i] = i;
  rng.shuffle(perm);
  const mixed = tf.tidy(() => {
    const p = tf.tensor1d(perm, 'int32');
    const t = oneHotF(labels, numClasses);
    return {
      x: tf.add(tf.mul(x, lambda), tf.mul(tf.gather(x, p), 1 - lambda)) as tf.Tensor4D,
      targets: tf.add(tf.mul(t, lambda), tf.mul(tf.gather(t, p), 1 - lambda)) as tf.Tensor2D,
    };
  });
  return { ...mixed, lambda, permutation: perm };
}
