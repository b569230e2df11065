import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../manifests/rng.ts';

/**
 * Pixel attributions for the saliency AUPR (DESIGN §7), target = each image's true class.
 *
 * The gradient of Σ_i z_{i, y_i} with respect to the batch is every image's own input gradient because the model
 * normalises each image on its own (GroupNorm, no batch statistics): image j's logits do not depend on image i.
 */

export type Forward = (x: tf.Tensor4D) => tf.Tensor2D;

function ownLogitSum(forward: Forward, x: tf.Tensor4D, oneHot: tf.Tensor2D): tf.Scalar {
  return tf.sum(tf.mul(forward(x), oneHot));
}

/** ∂z_y/∂x per image, [B, H, W, C]. */
export function inputGradient(forward: Forward, x: tf.Tensor4D, labels: Int32Array, numClasses: number): tf.Tensor4D {
  return tf.tidy(() => {
    const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat() as tf.Tensor2D;
    return tf.grad((xx: tf.Tensor) => ownLogitSum(forward, xx as tf.Tensor4D, oneHot))(x) as tf.Tensor4D;
  });
}

/**
 * Expected gradients (Erion et al. 2021): E over a baseline b drawn from the eval images and α ~ U(0, 1) of
 * (x − b) ⊙ ∂z_y/∂x at b + α(x − b). A Monte-Carlo average over `samples` draws, seeded; with one baseline and
 * α on a grid it is integrated gradients. `baselines` is a pool [N, H, W, C] (e.g. other images of the eval set).
 * `onSample(s)` is called after draw s (1-based), for progress reports.
 */
export function expectedGradients(
  forward: Forward, x: tf.Tensor4D, labels: Int32Array, numClasses: number, baselines: tf.Tensor4D,
  opts: { samples: number; seed: number | string; onSample?: (s: number) => void },
): tf.Tensor4D {
  const [B] = x.shape;
  const pool = baselines.shape[0];
  if (!pool) throw new Error('expectedGradients: empty baseline pool');
  const rng = rngFor('expected-gradients', opts.seed);
  let acc = tf.zerosLike(x) as tf.Tensor4D;
  for (let s = 0; s < opts.samples; s++) {
    const idx = Int32Array.from({ length: B }, () => rng.int(pool));
    const alpha = Float32Array.from({ length: B }, () => rng.next());
    const next = tf.tidy(() => {
      const b = tf.gather(baselines, tf.tensor1d(idx, 'int32')) as tf.Tensor4D;
      const diff = tf.sub(x, b);
      const point = tf.add(b, tf.mul(diff, tf.tensor4d(alpha, [B, 1, 1, 1]))) as tf.Tensor4D;
      const g = inputGradient(forward, point, labels, numClasses);
      return tf.add(acc, tf.mul(diff, g)) as tf.Tensor4D;
    });
    acc.dispose();
    acc = next;
    opts.onSample?.(s + 1);
  }
  const out = tf.div(acc, opts.samples) as tf.Tensor4D;
  acc.dispose();
  return out;
}
