/**
 * Gradient of FusedBatchNorm (tf.batchNorm; BatchNormalization layers of a LayersModel backbone in inference mode),
 * replacing tfjs-core's. Core's builds the input gradient with `tile` of the per-channel scale to the full
 * [B, H, W, C] shape: on wasm that Tile was 43% of a MobileNetV2 backward pass (765 of 1770 ms at 128 px,
 * batch 8). Here the per-channel factors broadcast in `mul` instead. Same values, every op differentiable, so
 * double backprop (the saliency penalty) passes through.
 *
 *   y = (x − mean) · rsqrt(var + ε) · scale + offset
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig } from '@tensorflow/tfjs-core';

/** Sum `t` (x's shape) down to `shape` (a broadcastable per-channel shape such as [C] or [1, 1, 1, C]). */
function sumTo(t: tf.Tensor, shape: number[]): tf.Tensor {
  const lead = t.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < t.rank; i++) if (i < lead || shape[i - lead] === 1) axes.push(i);
  return tf.reshape(axes.length ? tf.sum(t, axes) : t, shape);
}

export const fusedBatchNormGrad: GradConfig = {
  kernelName: 'FusedBatchNorm',
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy, saved, attrs) => {
    const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
    const [x, mean, variance, scale] = saved;
    const g = dy as tf.Tensor;
    const inv = tf.rsqrt(tf.add(variance, varianceEpsilon));
    const invScale = scale == null ? inv : tf.mul(inv, scale);
    return {
      x: () => tf.mul(g, invScale),
      mean: () => tf.neg(sumTo(tf.mul(g, invScale), mean.shape)),
      variance: () => sumTo(tf.mul(tf.mul(g, tf.sub(x, mean)), tf.mul(tf.mul(invScale, tf.square(inv)), -0.5)), variance.shape),
      scale: () => sumTo(tf.mul(tf.mul(g, tf.sub(x, mean)), inv), (scale ?? mean).shape),
      offset: () => sumTo(g, mean.shape),
    };
  },
};
