import * as tf from '@tensorflow/tfjs-core';

/**
 * The forward pass's building blocks (trainer/model.ts composes them): GroupNorm, weight standardisation, global
 * average pool and BiT's root max-pool. Every one is made of ops whose gradients are themselves differentiable, so
 * the model supports double backprop (input-gradient penalties, losses.ts).
 */

/** Largest divisor of `channels` that is ≤ `groups`. */
export function effectiveGroups(channels: number, groups: number): number {
  let g = Math.max(1, Math.min(groups, channels));
  while (channels % g !== 0) g--;
  return g;
}

/*
 * Reductions and broadcasts below are written as matMuls with constant ones / 0-1 matrices. Why: the cpu
 * backend reduces over a non-trailing axis through an element-by-element transpose, and broadcasts a tensor with
 * size-1 dims through a per-element index computation; the gradient of every broadcasting op is such a reduction.
 * With tf.moments, GroupNorm cost more than the convolutions. matMul and its gradients (matMuls again) avoid
 * both slow paths on every backend and stay differentiable to any order.
 */

/** [B, n, C] → [B, C]: sums over the middle axis */
function sumOverMiddle(x: tf.Tensor3D): tf.Tensor2D {
  const [b, n, c] = x.shape;
  // full-batch ones: a batch-broadcast matMul is 4× slower on wasm
  return tf.reshape(tf.matMul(tf.ones([b, 1, n]) as tf.Tensor3D, x), [b, c]) as tf.Tensor2D;
}

/** [B, C] → [B, n, C]: each row repeated n times */
function repeatOverMiddle(v: tf.Tensor2D, n: number): tf.Tensor3D {
  const [b, c] = v.shape;
  return tf.matMul(tf.ones([1, n, 1]) as tf.Tensor3D, tf.reshape(v, [b, 1, c]) as tf.Tensor3D);
}

/** [C, G] 0/1 matrix: channel c belongs to group ⌊c / (C/G)⌋ */
function groupMatrix(c: number, g: number): tf.Tensor2D {
  const m = new Float32Array(c * g);
  const cg = c / g;
  for (let i = 0; i < c; i++) m[i * g + Math.floor(i / cg)] = 1;
  return tf.tensor2d(m, [c, g]);
}

/** Global average pool [B, H, W, C] → [B, C]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  const [b, h, w, c] = x.shape;
  return tf.div(sumOverMiddle(tf.reshape(x, [b, h * w, c]) as tf.Tensor3D), h * w) as tf.Tensor2D;
}

/** GroupNorm over (H, W, channels-in-group) per image (two-pass variance), then per-channel affine. */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps = 1e-5): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const g = effectiveGroups(c, groups);
  const n = h * w;
  const e = groupMatrix(c, g);
  // per-channel sums [B, C] → per-group means [B, G] → back to per-channel [B, C]
  const groupMeanPerChannel = (sums: tf.Tensor2D): tf.Tensor2D =>
    tf.matMul(tf.div(tf.matMul(sums, e), n * (c / g)), e, false, true);
  const x3 = tf.reshape(x, [b, n, c]);
  const mean = groupMeanPerChannel(sumOverMiddle(x3 as tf.Tensor3D));
  const xc = tf.sub(x3, repeatOverMiddle(mean, n));
  const variance = groupMeanPerChannel(sumOverMiddle(tf.square(xc) as tf.Tensor3D));
  const scale = tf.mul(tf.rsqrt(tf.add(variance, eps)), gamma) as tf.Tensor2D;
  const shift = tf.add(tf.zeros([b, c]), beta) as tf.Tensor2D;
  const y = tf.add(tf.mul(xc, repeatOverMiddle(scale, n)), repeatOverMiddle(shift, n));
  return tf.reshape(y, [b, h, w, c]) as tf.Tensor4D;
}

/** (w − mean) / sqrt(var + eps) per output channel over [fh, fw, cin] (biased variance, as BiT). */
export function standardizeKernel(w: tf.Tensor4D, eps = 1e-10): tf.Tensor4D {
  const [kh, kw, ci, co] = w.shape;
  const n = kh * kw * ci;
  const w2 = tf.reshape(w, [n, co]);
  const colMean = (m: tf.Tensor2D): tf.Tensor2D => tf.div(tf.matMul(tf.ones([1, n]), m), n);
  const spread = (row: tf.Tensor2D): tf.Tensor2D => tf.matMul(tf.ones([n, 1]), row);
  const wc = tf.sub(w2, spread(colMean(w2 as tf.Tensor2D))) as tf.Tensor2D;
  const inv = tf.rsqrt(tf.add(colMean(tf.square(wc) as tf.Tensor2D), eps)) as tf.Tensor2D;
  return tf.reshape(tf.mul(wc, spread(inv)), [kh, kw, ci, co]) as tf.Tensor4D;
}

/**
 * Zero-pad 1, then 3×3 stride-2 'valid' max-pool (BiT's root pool), built from slice/maximum/reshape so that
 * its gradient is itself differentiable.
 */
export function maxPool3x3s2(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
  const oh = Math.floor((h - 1) / 2) + 1;
  const ow = Math.floor((w - 1) / 2) + 1;
  // Window maxima at stride 1 for the 2·o−1 positions we need, then keep every other one.
  const lh = 2 * oh - 1, lw = 2 * ow - 1;
  let rows: tf.Tensor4D | null = null;
  for (let d = 0; d < 3; d++) {
    const s = tf.slice(xp, [0, d, 0, 0], [b, lh, w + 2, c]);
    rows = rows ? (tf.maximum(rows, s) as tf.Tensor4D) : s;
  }
  let m: tf.Tensor4D | null = null;
  for (let d = 0; d < 3; d++) {
    const s = tf.slice(rows!, [0, 0, d, 0], [b, lh, lw, c]);
    m = m ? (tf.maximum(m, s) as tf.Tensor4D) : s;
  }
  const even = tf.reshape(tf.pad(m!, [[0, 0], [0, 1], [0, 1], [0, 0]]), [b, oh, 2, ow, 2, c]);
  return tf.reshape(tf.slice(even, [0, 0, 0, 0, 0, 0], [b, oh, 1, ow, 1, c]), [b, oh, ow, c]) as tf.Tensor4D;
}
