/**
 * Ops whose tfjs-core version cannot be differentiated twice, rewritten from ops that can.
 *
 * tf.logSoftmax (and tf.losses.softmaxCrossEntropy) are `customGrad` ops that save their output; like the
 * kernels patched in gradients.ts, that saved copy is invisible to a second-order pass (tensorflow/tfjs#3252),
 * and a custom-gradient op cannot be re-registered. Use these wherever a loss may end up inside a `tf.grad`
 * that is itself differentiated (e.g. a saliency penalty on the input gradient of the cross-entropy).
 */
import * as tf from '@tensorflow/tfjs-core';

/** log-softmax along the last axis as x − logSumExp(x); numerically stable (logSumExp subtracts the max) */
export function logSoftmax(logits: tf.Tensor): tf.Tensor {
  return tf.sub(logits, tf.logSumExp(logits, -1, true));
}
