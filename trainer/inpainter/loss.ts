import * as tf from '@tensorflow/tfjs-core';

/**
 * Mean absolute error inside the mask (weights 1 in the hole) and outside it, per channel-pixel, in [−1, 1] units.
 * Normalised by the region's own size so small and large holes weigh the same per pixel.
 */
export function maskedL1(pred: tf.Tensor4D, target: tf.Tensor4D, mask: tf.Tensor4D): { hole: tf.Scalar; outside: tf.Scalar } {
  const err = tf.abs(tf.sub(pred, target));
  const channels = pred.shape[3];
  const holeArea = tf.mul(tf.sum(mask), channels);
  const keep = tf.sub(1, mask);
  const outArea = tf.mul(tf.sum(keep), channels);
  return {
    hole: tf.div(tf.sum(tf.mul(err, mask)), tf.maximum(holeArea, 1)) as tf.Scalar,
    outside: tf.div(tf.sum(tf.mul(err, keep)), tf.maximum(outArea, 1)) as tf.Scalar,
  };
}

/**
 * The training loss: L1 in the hole for the final and the coarse output, plus `outsideWeight` × L1 outside it
 * (DeepFill trains its coarse stage on the same target; the outside term keeps the network an identity off the hole,
 * which the refinement stage then sees as clean context).
 */
export function inpainterLoss(
  fine: tf.Tensor4D, coarse: tf.Tensor4D, target: tf.Tensor4D, mask: tf.Tensor4D, outsideWeight: number,
): { total: tf.Scalar; fineHole: tf.Scalar } {
  const f = maskedL1(fine, target, mask);
  const c = maskedL1(coarse, target, mask);
  const total = tf.addN([f.hole, c.hole, tf.mul(outsideWeight, tf.add(f.outside, c.outside))]) as tf.Scalar;
  return { total, fineHole: f.hole };
}
